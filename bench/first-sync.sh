#!/usr/bin/env bash
# First sync of N people (default 20,000) from CSV into the Haplo contract server with
# 2 ms of latency per request: runs BenchmarkFirstSync COUNT times (default 5) and
# prints every run and the medians.
#   N=20000 CONCURRENCY=8 COUNT=5 bench/first-sync.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000} CONCURRENCY=${CONCURRENCY:-8} COUNT=${COUNT:-5}
out=$(IDSYNC_BENCH_N=$N IDSYNC_BENCH_CONCURRENCY=$CONCURRENCY \
  go test -run='^$' -bench=BenchmarkFirstSync -benchtime=1x -count="$COUNT" ./cmd/idsync/)
runs=$(echo "$out" | grep '^BenchmarkFirstSync')
echo "$runs"
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
secs=$(echo "$runs" | awk '{ print $3 / 1e9 }' | median)
reqs=$(echo "$runs" | awk '{ for (i = 1; i < NF; i++) if ($(i+1) == "req/s") print $i }' | median)
echo "first sync of $N people, concurrency $CONCURRENCY, 2 ms latency: median ${secs} s, median ${reqs} req/s over $(echo "$runs" | wc -l) runs"
