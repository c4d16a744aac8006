#!/usr/bin/env bash
# The supervisor's own system calls per operation: runs the defender with a
# runtime policy loaded (the policy of run.sh) under each mechanism on the
# launch and connect workloads (and udpsend), counts the system calls of the
# supervisor process, all its threads (perf trace -s attached once the app
# runs; strace -c on the threads alive then where perf is missing, which
# misses threads the Go runtime starts later), and prints them per operation
# by name. The app's calls are not counted. The workload waits
# (WORKLOAD_DELAY) until the counter is attached; the supervisor's calls
# during that wait (its runtime's idle wake-ups) are counted too. Run as root
# from the repository root:
#   bench/defender/syscalls.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
N_EXEC=${N_EXEC:-2000}
N_CONN=${N_CONN:-10000}
N_SEND=${N_SEND:-20000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
CGO_ENABLED=0 go build -o "$work/defender" ./cmd/taskguard-defender
go build -o "$work/workload" ./bench/defender/workload
cp bench/defender/policy.json "$work/policy.json" # the runtime rule every script measures under
tool=perf
command -v perf >/dev/null && perf trace -s -o /dev/null true >/dev/null 2>&1 || tool=strace
echo "supervisor system calls per operation (counted with $tool; load average $(cut -d' ' -f1-3 /proc/loadavg))"
for mech in ptrace usernotif; do
	for w in "exec $N_EXEC" "connect $N_CONN" "udpsend $N_SEND"; do
		n=${w##* }
		WORKLOAD_DELAY=${DELAY:-3s} TASKGUARD_SUPERVISOR=$mech "$work/defender" entrypoint --policy "$work/policy.json" --audits /dev/null -- "$work/workload" $w >/dev/null &
		d=$!
		for _ in $(seq 200); do pgrep -P $d >/dev/null && break; sleep 0.01; done
		sleep 0.2
		if [ $tool = perf ]; then
			perf trace -s -p $d -o "$work/count" 2>/dev/null &
		else
			args=()
			for t in /proc/$d/task/*; do args+=(-p "${t##*/}"); done
			strace -c -q "${args[@]}" -o "$work/count" &
		fi
		c=$!
		wait $d
		sleep 0.3
		kill -INT $c 2>/dev/null || true
		wait $c || true
		if [ $tool = perf ]; then
			# perf trace -s: a table per thread, "syscall calls errors total ..."
			awk '/syscall +calls/ {p = 1; next} p && NF >= 2 && $2 ~ /^[0-9]+$/ {c[$1] += $2} END {for (k in c) print c[k], k}' "$work/count"
		else
			awk '$NF ~ /^[a-z_0-9]+$/ && $(NF-1) ~ /^[0-9]+$/ && $NF != "total" {print ($(NF-2) ~ /^[0-9]+$/ && NF == 6 ? $(NF-2) : $(NF-1)), $NF}' "$work/count"
		fi | sort -rn | awk -v n="$n" -v name="$mech ${w%% *}" '
			{ per = $1 / n; total += per; if (per >= 0.01) line = line sprintf(" %s %.2f", $2, per) }
			END { printf "%-18s %6.2f per op:%s\n", name, total, line }'
	done
done
