#!/usr/bin/env bash
# Two defender builds against each other and against native, in the same
# interleaved rounds (the order rotates each round): launches, file
# creations, TCP connects and sends on connected sockets (udpsend,
# tcpsendmsg) under both supervision mechanisms, and the fair peer strace -f
# --seccomp-bpf on the calls the defender's filter stops (as in run.sh; left
# out without strace or with PEER=0), medians of the ratios to native. It shows what a change did when the shared machine's load swings
# more between runs of bench/defender/run.sh than the change moves them.
# Run as root from the repository root, with a git revision to compare the
# working tree against:
#   bench/defender/ab.sh main
set -euo pipefail
cd "$(dirname "$0")/../.."
base=${1:?usage: bench/defender/ab.sh GIT-REVISION}
ROUNDS=${ROUNDS:-9}
N_EXEC=${N_EXEC:-1000}
N_CONN=${N_CONN:-5000}
N_FILES=${N_FILES:-20000}
N_SEND=${N_SEND:-20000}

work=$(mktemp -d)
files=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d) # as in run.sh: a tmpfs
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work" "$files"' EXIT
git worktree add --detach "$work/base" "$base" >/dev/null 2>&1
(cd "$work/base" && CGO_ENABLED=0 go build -o "$work/old" ./cmd/taskguard-defender)
CGO_ENABLED=0 go build -o "$work/new" ./cmd/taskguard-defender
go build -o "$work/workload" ./bench/defender/workload
cp bench/defender/policy.json "$work/policy.json" # the runtime rule every script measures under
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
# The mechanism is always named: the default (auto) is user notification
# wherever the kernel offers it.
def() { "$work/$1" entrypoint --policy "$work/policy.json" --audits /dev/null -- "${@:2}"; }
# The fair peer, as in run.sh: strace stopping only on the calls the
# defender's filter stops.
peer() { strace -f -qq --seccomp-bpf -e trace=execve,execveat,connect,sendto,sendmsg,sendmmsg,bind,listen -o /dev/null "$@"; }
have_peer=0
[ "${PEER:-1}" = 0 ] || ! command -v strace >/dev/null || have_peer=1

echo "$base (old) against the working tree (new); medians of $ROUNDS interleaved rounds, ratios to native"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
printf '%-10s %10s %12s %12s %12s %12s %12s\n' workload native/s "ptrace old" "ptrace new" "notify old" "notify new" "strace-bpf"
# WORKLOADS picks rows by name (default: all of them), e.g. WORKLOADS="exec connect".
all=("exec $N_EXEC" "files $files $N_FILES" "connect $N_CONN" "udpsend $N_SEND" "tcpsendmsg $N_SEND")
rows=()
for w in "${all[@]}"; do
	case " ${WORKLOADS:-exec files connect udpsend tcpsendmsg} " in *" ${w%% *} "*) rows+=("$w") ;; esac
done
for w in "${rows[@]}"; do
	variants=(nat op np on nn)
	[ $have_peer = 0 ] || variants+=(ps)
	for v in "${variants[@]}"; do : >"$work/r.$v"; done
	for r in $(seq "$ROUNDS"); do
		for i in "${!variants[@]}"; do
			v=${variants[$(((i + r) % ${#variants[@]}))]}
			# shellcheck disable=SC2086
			case $v in
			nat) "$work/workload" $w >>"$work/r.nat" ;;
			op) TASKGUARD_SUPERVISOR=ptrace def old "$work/workload" $w >>"$work/r.op" ;;
			np) TASKGUARD_SUPERVISOR=ptrace def new "$work/workload" $w >>"$work/r.np" ;;
			on) TASKGUARD_SUPERVISOR=usernotif def old "$work/workload" $w >>"$work/r.on" ;;
			nn) TASKGUARD_SUPERVISOR=usernotif def new "$work/workload" $w >>"$work/r.nn" ;;
			ps) peer "$work/workload" $w >>"$work/r.ps" ;;
			esac
		done
	done
	nat=$(median <"$work/r.nat")
	pr=n/a
	[ $have_peer = 0 ] || pr=$(ratio "$(median <"$work/r.ps")" "$nat")
	printf '%-10s %10.0f %12s %12s %12s %12s %12s\n' "${w%% *}" "$nat" "$(ratio "$(median <"$work/r.op")" "$nat")" \
		"$(ratio "$(median <"$work/r.np")" "$nat")" "$(ratio "$(median <"$work/r.on")" "$nat")" "$(ratio "$(median <"$work/r.nn")" "$nat")" "$pr"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
