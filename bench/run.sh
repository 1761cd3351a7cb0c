#!/usr/bin/env bash
# Issue 8's benchmark: BenchmarkScale (cmd/idsync/scale_bench_test.go) for every source,
# size and scenario asked, RUNS measured runs of the idsync binary each, then a markdown
# table of the medians: wall time, CPU time (user + system), peak RSS, requests to the
# Haplo contract server and their rate, operations applied, the state file's size, and
# the CPU time of the benchmark's process meanwhile (the contract server's, which shares
# the machine with idsync).
# For LDAP's no-op, also ldapsearch -E pr=500/noprompt reading the same entries, and the
# ratio. When a scenario was measured at two sizes, the ratio of their wall times. With
# first syncs, also bench/ceiling's rate: what this machine allows a plain HTTP client
# with the same latency and concurrency (see bench/ceiling/main.go).
#
#   SOURCES="csv ldap" SIZES="10000 100000" SCENARIOS="first noop changed left" \
#     RUNS=3 LATENCY=2ms CONCURRENCY=16 bench/run.sh
#
# SCENARIOS may also name delta (an incremental LDAP read after one person in a thousand
# changed) and delta-full (the same run with --full-read), for LDAP only:
#   SOURCES=ldap SIZES=100000 SCENARIOS="delta delta-full" bench/run.sh
#
# CPUPROFILE_DIR=dir also writes a CPU profile of one more run per combination, made in
# the benchmark's process (so it includes the contract server): dir/<scenario>-<source>-<N>.pprof.
# Every run's own figures are in the log (LOG=file, default a new file in /tmp). COMMIT
# names the code in the header when this is not a git checkout.
# Needs slapd and ldap-utils for the LDAP source (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
SOURCES=${SOURCES:-csv ldap}
SIZES=${SIZES:-10000 100000}
SCENARIOS=${SCENARIOS:-first noop changed left}
RUNS=${RUNS:-3} LATENCY=${LATENCY:-2ms} CONCURRENCY=${CONCURRENCY:-16}
log=${LOG:-$(mktemp /tmp/idsync-bench.XXXXXX.log)}
if [ -n "${CPUPROFILE_DIR:-}" ]; then
  mkdir -p "$CPUPROFILE_DIR"
  CPUPROFILE_DIR=$(cd "$CPUPROFILE_DIR" && pwd)
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Both binaries are built once, before anything is measured, so that every combination
# measures the same code even if the checkout changes meanwhile; idsync without -race.
go build -o "$tmp/idsync" ./cmd/idsync
go test -c -o "$tmp/idsync.test" ./cmd/idsync
go build -o "$tmp/ceiling" ./bench/ceiling
commit=${COMMIT:-}
if [ -z "$commit" ]; then
  commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit + uncommitted changes"; fi
fi

: >"$tmp/rows"
failed=0
for scenario in $SCENARIOS; do
  for source in $SOURCES; do
    for n in $SIZES; do
      bench_scenario=$scenario full_read=
      case $scenario in
        delta) [ "$source" = ldap ] || continue ;;
        delta-full) [ "$source" = ldap ] || continue; bench_scenario=delta full_read=1 ;;
      esac
      echo "== $scenario $source N=$n ($(date +%T))" | tee -a "$log" >&2
      if ! out=$(cd cmd/idsync && IDSYNC_BENCH_SOURCE=$source IDSYNC_BENCH_N=$n IDSYNC_BENCH_SCENARIO=$bench_scenario \
        IDSYNC_BENCH_FULL_READ=$full_read \
        IDSYNC_BENCH_RUNS=$RUNS IDSYNC_BENCH_LATENCY=$LATENCY IDSYNC_BENCH_CONCURRENCY=$CONCURRENCY \
        IDSYNC_BENCH_BIN="$tmp/idsync" IDSYNC_BENCH_CPUPROFILE_DIR="${CPUPROFILE_DIR:-}" \
        "$tmp/idsync.test" -test.run='^$' -test.bench='^BenchmarkScale$' -test.benchtime=1x -test.timeout=0 2>&1); then
        echo "$out" >>"$log"
        echo "$out" | tail -20 >&2
        echo "== $scenario $source N=$n FAILED (see $log)" >&2
        printf '%s\t%s\t%s\tFAILED\n' "$scenario" "$source" "$n" >>"$tmp/rows"
        failed=1
        continue
      fi
      echo "$out" >>"$log"
      echo "$out" | grep -E 'scale_bench_test.go' >&2 || true
      echo "$out" | grep -m1 '^cpu:' | sed 's/^cpu: *//' >"$tmp/cpu" || true
      # The result line: BenchmarkScale-P 1 <value> <unit> <value> <unit> ...
      echo "$out" | awk -v sc="$scenario" -v src="$source" -v n="$n" '/^BenchmarkScale/ {
        for (i = 3; i < NF; i += 2) v[$(i+1)] = $i
        ops = ""
        nk = split("create_profile create_user update_profile update_user enable_user disable_user delete_user", kinds, " ")
        for (i = 1; i <= nk; i++) if ((kinds[i] "-ops") in v) ops = ops (ops == "" ? "" : ", ") kinds[i] " " sprintf("%d", v[kinds[i] "-ops"])
        if (ops == "") ops = "none"
        ls = ("ldapsearch-s" in v) ? sprintf("%.2f s, %.0f MB (idsync/ldapsearch %.2f)", v["ldapsearch-s"], v["ldapsearch-MB"], v["ratio"]) : ""
        printf "%s\t%s\t%s\t%.3f\t%.3f\t%.0f\t%d\t%.0f\t%s\t%.1f\t%s\t%d\t%d\t%.3f\n", sc, src, n, v["wall-s"], v["cpu-s"], v["rss-MB"],
          v["requests"], v["req/s"], ops, v["db-MB"], ls, v["runs"], v["cores"], v["server-cpu-s"]
      }' >>"$tmp/rows"
    done
  done
done

cores=$(awk -F'\t' '$4 != "FAILED" { print $13; exit }' "$tmp/rows")
echo
echo "BenchmarkScale, $(date -u +'%Y-%m-%d %H:%M UTC'), commit $commit"
echo "machine: ${cores:-?} cores (runtime.NumCPU), $(cat "$tmp/cpu" 2>/dev/null || echo 'cpu unknown'); contract server latency $LATENCY, Haplo concurrency $CONCURRENCY; medians of $RUNS runs"
echo
echo "| scenario | source | N | wall s | CPU s | peak RSS MB | requests | req/s | operations applied | bbolt MB | contract server CPU s | ldapsearch |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"
awk -F'\t' '{
  if ($4 == "FAILED") { printf "| %s | %s | %s | failed | | | | | | | | |\n", $1, $2, $3; next }
  printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $14, $11
}' "$tmp/rows"

# Scaling: each scenario and source measured at more than one size, against the smallest.
awk -F'\t' '$4 != "FAILED" {
  key = $1 " " $2
  if (!(key in small)) order[++keys] = key
  if (!(key in small) || $3 + 0 < small[key]) { small[key] = $3 + 0; swall[key] = $4 }
  if (!(key in large) || $3 + 0 > large[key]) { large[key] = $3 + 0; lwall[key] = $4 }
} END {
  for (i = 1; i <= keys; i++) if (large[k = order[i]] > small[k]) {
    if (!header++) print "\n| scaling | sizes | wall time ratio (linear = size ratio) |\n|---|---|---|"
    printf "| %s | %d -> %d (x%g) | x%.2f |\n", k, small[k], large[k], large[k] / small[k], lwall[k] / swall[k]
  }
}' "$tmp/rows"
# A first sync's request rate is bounded by the machine: what a plain HTTP client and a
# server that only waits out the same latency reach, in two processes on these cores.
case " $SCENARIOS " in
*" first "*)
  echo
  "$tmp/ceiling" -latency "$LATENCY" -workers "$CONCURRENCY" -requests 30000 -runs "$RUNS" | tee -a "$log" | tail -1
  ;;
esac
echo
echo "every run's figures: $log"
exit $failed
