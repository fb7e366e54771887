#!/usr/bin/env bash
# The growth curve (`make bench-growth`, issue 21 item 5): create, read by id,
# list and transition at 16 connections on data sets of each size in
# BENCH_GROWTH ("20000 1000000 5000000" cases; 20 k stands for an empty
# table, which the read, list and transition workloads cannot run on),
# each a run.sh invocation of its own (its own cluster, load and minimal
# pgbench baselines), then one table: every rate at each size against the
# same rate at the smallest. Written to tests/bench/GROWTH.md
# (BENCH_GROWTH_OUT). Expect the 5 M load to take 5 minutes or more and
# about 25 GB of disk under /var/tmp.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SIZES=${BENCH_GROWTH:-"20000 1000000 5000000"}
OUTMD=${BENCH_GROWTH_OUT:-$here/GROWTH.md}
TMP=$(mktemp -d /var/tmp/arbiter-growth-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
args=()
for n in $SIZES; do
	echo "==> growth: $n cases" >&2
	BENCH_CASES=$n BENCH_SHOPS=$(( n / 100 > 10 ? n / 100 : 10 )) BENCH_CLIENTS=16 \
		BENCH_ONLY="create get list note" BENCH_PACED_LEVELS=" " BENCH_DRAIN=1000 \
		BENCH_RESULTS="$TMP/run_$n.md" BENCH_RESULTS_JSONL="$TMP/run_$n.jsonl" \
		bash "$here/run.sh"
	args+=("$n" "$TMP/run_$n.jsonl")
done
/usr/bin/python3 "$here/report.py" growth "$OUTMD" "${args[@]}"
# Each size's conditions: the machine is shared, and a ratio between two
# sizes means little when its load moved between their runs.
{
	echo
	echo "## The runs"
	for n in $SIZES; do
		echo
		echo "$n cases:"
		grep -E '^- (date|commit|machine|whole run):' "$TMP/run_$n.md" || true
	done
} >>"$OUTMD"
