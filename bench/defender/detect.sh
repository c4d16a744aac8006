#!/usr/bin/env bash
# Cost of the built-in threat detectors: process launches (fork+exec of
# /bin/true) natively, under the defender with detection on (the default)
# and with every detector off, for both mechanisms; medians of interleaved
# rounds. Run as root from anywhere: bench/defender/detect.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-7}; N=${N:-1000}
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
CGO_ENABLED=0 go build -o $w/defender ./cmd/taskguard-defender
go build -o $w/workload ./bench/defender/workload
cat > $w/on.json <<'JSON'
{"revision": 1, "runtime": [{"name": "bench", "processes": {"effect": "prevent", "denied": ["mkdir", "nc"]},
  "network": {"effect": "prevent", "deniedDomains": ["yahoo.com"]}}]}
JSON
cat > $w/off.json <<'JSON'
{"revision": 1, "runtime": [{"name": "bench", "processes": {"effect": "prevent", "denied": ["mkdir", "nc"]},
  "network": {"effect": "prevent", "deniedDomains": ["yahoo.com"]},
  "detectors": {"fileless-exec":"off","tempdir-exec":"off","drift":"off","reverse-shell":"off","crypto-miner":"off",
   "netcat-listener":"off","shell-listener":"off","network-scanner":"off","package-manager":"off",
   "process-injection":"off","account-file-write":"off","credential-file-access":"off"}}]}
JSON
med() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
for m in ptrace usernotif; do
  : > $w/nat; : > $w/on; : > $w/off
  for _ in $(seq $ROUNDS); do
    $w/workload exec $N >> $w/nat
    TASKGUARD_SUPERVISOR=$m $w/defender entrypoint --policy $w/on.json --audits /dev/null -- $w/workload exec $N >> $w/on
    TASKGUARD_SUPERVISOR=$m $w/defender entrypoint --policy $w/off.json --audits /dev/null -- $w/workload exec $N >> $w/off
  done
  n=$(med < $w/nat); on=$(med < $w/on); off=$(med < $w/off)
  echo "$m: native $n/s, detection on $on/s ($(awk -v a=$on -v b=$n 'BEGIN{printf "%.2f", a/b}')x native), off $off/s ($(awk -v a=$off -v b=$n 'BEGIN{printf "%.2f", a/b}')x native), on/off $(awk -v a=$on -v b=$off 'BEGIN{printf "%.2f", a/b}')"
done
