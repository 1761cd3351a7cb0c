#!/usr/bin/env bash
# A no-op run (the snapshot already agrees with the directory) over N entries
# (default 100,000) in a loopback slapd, next to ldapsearch -E pr=500/noprompt reading
# the same entries and attributes from the same server (StartTLS both), RUNS times each
# (default 5), one after the other. Prints the medians of wall time and peak RSS.
# Needs slapd and ldap-utils (see .ci/run).
#   N=100000 RUNS=5 bench/ldap-noop.sh
set -euo pipefail
cd "$(dirname "$0")/../cmd/idsync"
N=${N:-100000} RUNS=${RUNS:-5}
out=$(IDSYNC_BENCH_LDAP_N=$N IDSYNC_BENCH_RUNS=$RUNS \
  go test -run='^$' -bench=BenchmarkLDAPNoop -benchtime=1x -timeout=30m .)
echo "$out" | grep -E '^BenchmarkLDAPNoop|ldap_bench_test'
echo "$out" | awk -v n="$N" -v r="$RUNS" '/^BenchmarkLDAPNoop/ {
  for (i = 3; i < NF; i++) v[$(i+1)] = $i
  printf "no-op run over %d entries, median of %d: idsync %.2f s, %.0f MB peak RSS; ldapsearch %.2f s, %.0f MB; ratio %.2f\n",
    n, r, v["idsync-s"], v["idsync-MB"], v["ldapsearch-s"], v["ldapsearch-MB"], v["ratio"] }'
