#!/usr/bin/env bash
# Defender overhead against native, in one run: process launches (fork+exec of
# /bin/true), file creations (system calls the defender does not stop) and TCP
# connects per second, with a runtime policy loaded, under both supervision
# mechanisms (ptrace, seccomp user notification); strace -f, a ptrace peer,
# for comparison when it is installed. Prints rates and ratios (higher is better,
# 1.00 = native). Run as root from the repository root: bench/defender/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
N_EXEC=${N_EXEC:-1000}
N_FILES=${N_FILES:-20000}
N_CONN=${N_CONN:-5000}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
CGO_ENABLED=0 go build -o "$work/defender" ./cmd/taskguard-defender
go build -o "$work/workload" ./bench/defender/workload
mkdir "$work/files"
cat > "$work/policy.json" <<'JSON'
{"revision": 1, "runtime": [{"name": "bench",
  "processes": {"effect": "prevent", "denied": ["mkdir", "nc", "/tmp/*"]},
  "network": {"effect": "prevent", "deniedDomains": ["yahoo.com"],
              "deniedOutbound": [{"cidr": "192.0.2.0/24"}, {"cidr": "2001:db8::/32", "ports": [443]}]}}]}
JSON

defended() { "$work/defender" entrypoint --policy "$work/policy.json" --audits /dev/null -- "$@"; }
notified() { TASKGUARD_SUPERVISOR=usernotif defended "$@"; }
traced() { strace -f -qq -o /dev/null "$@"; }

maxof() { awk -v a="$1" -v c="$2" 'BEGIN { print (c > a) ? c : a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

have_strace=0
command -v strace >/dev/null && have_strace=1
printf '%-10s %10s %10s %6s %10s %6s' workload native/s ptrace/s ratio notify/s ratio
[ $have_strace = 1 ] && printf ' %10s %6s' strace/s ratio
printf '   goal\n'
for w in "exec $N_EXEC:0.70" "files $work/files $N_FILES:0.98" "connect $N_CONN:0.80"; do
	args=${w%%:*}
	goal=${w##*:}
	name=${args%% *}
	# Rounds interleave native, defended and strace runs so that load from
	# other jobs on the machine hits them alike; the best of each counts.
	nat=0 def=0 ntf=0 st=0
	for _ in $(seq "$ROUNDS"); do
		# shellcheck disable=SC2086
		nat=$(maxof "$nat" "$("$work/workload" $args)")
		# shellcheck disable=SC2086
		def=$(maxof "$def" "$(defended "$work/workload" $args)")
		# shellcheck disable=SC2086
		ntf=$(maxof "$ntf" "$(notified "$work/workload" $args)")
		if [ $have_strace = 1 ]; then
			# shellcheck disable=SC2086
			st=$(maxof "$st" "$(traced "$work/workload" $args)")
		fi
	done
	printf '%-10s %10.0f %10.0f %6s %10.0f %6s' "$name" "$nat" "$def" "$(ratio "$def" "$nat")" "$ntf" "$(ratio "$ntf" "$nat")"
	[ $have_strace = 1 ] && printf ' %10.0f %6s' "$st" "$(ratio "$st" "$nat")"
	printf '   >= %s\n' "$goal"
done
