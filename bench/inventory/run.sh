#!/usr/bin/env bash
# Cost of the defender's container inventory, in one run, on a generated tree
# of FILES files (default one million):
#   - the app's start time under the launcher with the inventory off and on
#     (on = the scan starts at once, beside the app; the default waits 30 s):
#     prints the on/off ratio (goal: at most 1.05);
#   - an unthrottled scan of the tree: files/s and the peak Go heap.
# Run as root (supervision) from the repository root: bench/inventory/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
FILES=${FILES:-1000000}
ROUNDS=${ROUNDS:-20}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "generating $FILES files ..."
go run ./bench/inventory/mktree "$work/root" "$FILES"
sync # let the writeback of the new tree finish before measuring
export TASKGUARD_BENCH_TREE="$work/root"
go test -run '^$' -bench 'BenchmarkAppStartInventory' -benchtime "${ROUNDS}x" ./agent/launcher | grep -E 'Benchmark|ratio='
go test -run '^$' -bench 'BenchmarkScanTree' -benchtime 1x ./agent/inventory | grep -E 'Benchmark'
