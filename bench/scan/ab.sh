#!/usr/bin/env bash
# Interleaved A/B rounds of the cold scan (no layer cache) on the image and
# DB that `KEEP=DIR bench/scan/run.sh` left in DIR: each round runs every
# command once, in the order given; the table gives each command's medians
# (wall, CPU, peak RSS) and, per command, the median over rounds of
# (first command's wall / its wall), so that a load change hits both sides
# of a pair alike.
#
# Usage: bench/scan/ab.sh DIR RUNS CMD...
#   CMD is a taskguard binary, "go=BIN" (the binary with
#   TASKGUARD_ISAL_LIBRARY=off: the pure-Go inflater), or "trivy=/path/to/trivy".
# e.g.   git -C /work/main worktree add /tmp/tg-main main   (the baseline)
#        (cd /tmp/tg-main && CGO_ENABLED=0 go build -o /tmp/scanbench/taskguard-main ./cmd/taskguard)
#        bench/scan/ab.sh /tmp/scanbench 9 trivy=/tmp/trivy-bin/trivy \
#            /tmp/scanbench/taskguard-main go=/tmp/scanbench/taskguard /tmp/scanbench/taskguard
set -euo pipefail
DIR=$1 RUNS=$2
shift 2
[ -f "$DIR/image.tar" ] || { echo "no $DIR/image.tar: run KEEP=$DIR bench/scan/run.sh first" >&2; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
run() { # run I CMD: one cold scan; appends "wall rss cpu" to $OUT/I
	local i=$1 c=$2
	local cmd
	if [[ $c == trivy=* ]]; then
		rm -rf "$DIR/trivy-cache/fanal"
		cmd=("${c#trivy=}" image --input "$DIR/image.tar" --skip-db-update --skip-java-db-update --offline-scan
			--cache-dir "$DIR/trivy-cache" --scanners vuln --format json --quiet --cache-backend memory)
	else
		local env=()
		if [[ $c == go=* ]]; then
			env=(TASKGUARD_ISAL_LIBRARY=off) c=${c#go=}
		fi
		rm -rf "$DIR/db/layers"
		cmd=(env "${env[@]}" "$c" image scan --input "$DIR/image.tar" --cache-dir "$DIR/db" --skip-db-update --format json --no-cache)
	fi
	/usr/bin/time -f "%e %M %U %S" -o "$OUT/time" "${cmd[@]}" >/dev/null 2>"$OUT/err" || { echo "$c failed:"; cat "$OUT/err"; exit 2; }
	read -r t m u s <"$OUT/time"
	echo "$t $m $(awk "BEGIN{print $u + $s}")" >>"$OUT/$i"
}
for c in "$@"; do # warm-up
	run warm "$c"
done
for _ in $(seq "$RUNS"); do
	i=0
	for c in "$@"; do
		run $i "$c"
		i=$((i + 1))
	done
done
median() { sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
printf '| command | wall | CPU | peak RSS | speed vs %s (median of paired ratios) |\n|---|---|---|---|---|\n' "$(basename "${1#trivy=}")"
i=0
for c in "$@"; do
	w=$(cut -d' ' -f1 "$OUT/$i" | median) m=$(cut -d' ' -f2 "$OUT/$i" | median) u=$(cut -d' ' -f3 "$OUT/$i" | median)
	r=$(paste -d' ' "$OUT/0" "$OUT/$i" | awk '{print $1 / $4}' | median)
	label=$(basename "${c#*=}")
	[[ $c == go=* ]] && label="$label (TASKGUARD_ISAL_LIBRARY=off)"
	printf '| %s | %.3f s | %.3f s | %d MiB | %.2fx |\n' "$label" "$w" "$u" "$((${m%.*} / 1024))" "$r"
	i=$((i + 1))
done
