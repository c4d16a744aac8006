#!/usr/bin/env bash
# Defender overhead against native, in one run: process launches (fork+exec of
# /bin/true), file creations (system calls the defender does not stop), TCP
# connects (to loopback, the goal's row, and to another network namespace
# over a veth pair) and sends on connected sockets (udpsend, tcpsendmsg) per
# second, with a runtime policy loaded, under both supervision mechanisms
# (ptrace, seccomp user notification); against the fair peer, strace -f
# --seccomp-bpf tracing the calls the defender's filter stops, and plain
# strace -f (second row). Prints medians of interleaved rounds as ratios to
# native (higher is better, 1.00x = native). Run as root from the
# repository root:
# bench/defender/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5}
N_EXEC=${N_EXEC:-1000}
N_FILES=${N_FILES:-20000}
N_CONN=${N_CONN:-5000}
N_SEND=${N_SEND:-20000}

work=$(mktemp -d)
# The file workload measures system calls the defender never stops, not
# the disk: it runs on a tmpfs when there is one (/dev/shm), since the
# shared machine's disk makes its rate swing several-fold between runs.
files=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
ns=tgbench$$
cleanup() {
	[ -z "${server:-}" ] || kill "$server" 2>/dev/null || true
	ip link del tgb$$a 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work" "$files"
}
trap cleanup EXIT
CGO_ENABLED=0 go build -o "$work/defender" ./cmd/taskguard-defender
go build -o "$work/workload" ./bench/defender/workload
cp bench/defender/policy.json "$work/policy.json" # the runtime rule every script measures under

# The mechanism is named for both columns: the launcher's default (auto)
# picks user notification wherever the kernel offers it, so a ptrace column
# run without TASKGUARD_SUPERVISOR=ptrace measures user notification.
# Every variant runs behind "${in_ns[@]}": nothing, or ip netns exec for the
# connect-veth row, whose client runs in the bench's namespace.
in_ns=()
native() { "${in_ns[@]}" "$@"; }
run_defender() { "${in_ns[@]}" env TASKGUARD_SUPERVISOR="$1" "$work/defender" entrypoint --policy "$work/policy.json" --audits /dev/null -- "${@:2}"; }
defended() { run_defender ptrace "$@"; }
notified() { run_defender usernotif "$@"; }
# The fair peer: strace stopping only on the calls it reports, like the
# defender's filter (seccomp-bpf). Plain strace -f (every call stops) is
# shown as a second, labelled row for reference.
# It traces the calls the defender's filter stops (it traced execve,connect
# before the send rows came: the same for the other rows, whose workloads
# make no send, bind or listen).
peer() { "${in_ns[@]}" strace -f -qq --seccomp-bpf -e trace=execve,execveat,connect,sendto,sendmsg,sendmmsg,bind,listen -o /dev/null "$@"; }
traced() { "${in_ns[@]}" strace -f -qq -o /dev/null "$@"; }

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

# connect-veth: the connect workload over a realistic path, from a network
# namespace of the bench's own to a listener here, over a veth pair, with 250 us of delay
# each way (tc netem) where the kernel has sch_netem. The loopback row stays
# the goal's row.
veth=""
netem=no
if command -v ip >/dev/null && ip netns add "$ns" 2>/dev/null; then
	ip link add tgb$$a type veth peer name tgb$$b
	ip link set tgb$$b netns "$ns"
	ip addr add 10.231.7.1/30 dev tgb$$a
	ip link set tgb$$a up
	ip -n "$ns" addr add 10.231.7.2/30 dev tgb$$b
	ip -n "$ns" link set tgb$$b up
	ip -n "$ns" link set lo up
	if tc qdisc add dev tgb$$a root netem delay 250us 2>/dev/null &&
		ip netns exec "$ns" tc qdisc add dev tgb$$b root netem delay 250us 2>/dev/null; then
		netem=yes
	fi
	# The client runs in the namespace (every variant of the row), the
	# listener here; the namespace's own tcp_tw_reuse lets the client's
	# ports in TIME_WAIT serve again, as the loopback row's fresh listener
	# port per run does (else each run's connects collide with the last
	# runs' and the row measures SYN retries).
	ip netns exec "$ns" sysctl -qw net.ipv4.tcp_tw_reuse=1
	"$work/workload" serve 10.231.7.1:7000 &
	server=$!
	for _ in $(seq 100); do
		ip netns exec "$ns" "$work/workload" dial 10.231.7.1:7000 1 >/dev/null 2>&1 && veth="dial 10.231.7.1:7000 $N_CONN@-" && break
		sleep 0.05
	done
fi

have_strace=0
command -v strace >/dev/null && have_strace=1
echo "medians of $ROUNDS interleaved rounds; ratios to native (higher is better, 1.00x = native)"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
printf '%-20s %10s %8s %8s %10s   %s\n' workload native/s ptrace notify strace-bpf goal
plain_rows=()
# udpsend (send(2) on a connected UDP socket) and tcpsendmsg (sendmsg(2) on
# a TCP connection) are supervised calls a C program makes for every
# datagram or message: each one stops (DNS and first-payload inspection).
# They have no goal of the issue; "-" in the goal column.
rows=("exec $N_EXEC@0.85" "files $files $N_FILES@0.98" "connect $N_CONN@0.80")
[ -z "$veth" ] || rows+=("$veth")
rows+=("udpsend $N_SEND@-" "tcpsendmsg $N_SEND@-")
for w in "${rows[@]}"; do
	args=${w%%@*}
	goal=${w##*@}
	name=${args%% *}
	in_ns=()
	if [ "$name" = dial ]; then
		name=connect-veth
		in_ns=(ip netns exec "$ns")
	fi
	# Each round runs native, the two mechanisms and the peers one after the
	# other, so that load from other jobs hits them alike; the median of
	# each column counts.
	# Each round starts with another variant (the order rotates), so that
	# none always runs first or right after another.
	: >"$work/nat" >"$work/def" >"$work/ntf" >"$work/peer" >"$work/st"
	variants=(nat def ntf)
	[ $have_strace = 1 ] && variants+=(peer st)
	for r in $(seq "$ROUNDS"); do
		for i in "${!variants[@]}"; do
			v=${variants[$(((i + r) % ${#variants[@]}))]}
			# shellcheck disable=SC2086
			case $v in
			nat) native "$work/workload" $args >>"$work/nat" ;;
			def) defended "$work/workload" $args >>"$work/def" ;;
			ntf) notified "$work/workload" $args >>"$work/ntf" ;;
			peer) peer "$work/workload" $args >>"$work/peer" ;;
			# Plain strace is slow: a fifth of the operations (a rate all the same).
			st) traced "$work/workload" ${args% *} $(((${args##* } + 4) / 5)) >>"$work/st" ;;
			esac
		done
	done
	nat=$(median <"$work/nat")
	def=$(median <"$work/def")
	ntf=$(median <"$work/ntf")
	pr=n/a
	if [ $have_strace = 1 ]; then
		pr=$(ratio "$(median <"$work/peer")" "$nat")
		plain_rows+=("$(printf '%-20s %10s %8s %8s %10s' "$name (strace -f)" "" "" "" "$(ratio "$(median <"$work/st")" "$nat")")")
	fi
	[ "$goal" = - ] || goal=">= $goal"
	printf '%-20s %10.0f %8s %8s %10s   %s\n' "$name" "$nat" "$(ratio "$def" "$nat")" "$(ratio "$ntf" "$nat")" "$pr" "$goal"
done
if [ -z "$veth" ]; then
	echo "connect-veth: not run (no ip(8), or no network namespace could be made)"
elif [ $netem = yes ]; then
	echo "connect-veth: TCP connects from another network namespace to a listener over a veth pair, netem delay 250us each way"
else
	echo "connect-veth: TCP connects from another network namespace to a listener over a veth pair; NO added delay: this kernel has no sch_netem (tc qdisc netem refused)"
fi
for r in "${plain_rows[@]}"; do
	echo "$r   plain strace -f, every call stops (reference)"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
