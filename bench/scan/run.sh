#!/usr/bin/env bash
# Scans one image with one vulnerability DB through taskguard and, when
# TRIVY=/path/to/trivy is given, through trivy too; diffs the two finding sets
# and prints wall time and peak memory with their ratios.
#
# Usage: bench/scan/run.sh            (builds the image below)
#        IMAGE=img.tar bench/scan/run.sh
#        TRIVY=/usr/local/bin/trivy bench/scan/run.sh
#
# Default image: a debootstrap'ed bookworm minbase rootfs (needs root and
# debootstrap; cached in $XDG_CACHE_HOME/taskguard/debootstrap, the same
# cache the tests use) plus a layer with a Go binary built against
# golang.org/x/text v0.3.5 and lodash 4.17.15 / minimist 1.2.5 under
# node_modules. The DB is built from ../shared/corpora/advisories.
# RUNS (default 3) runs of each tool; the best run counts.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
RUNS=${RUNS:-3}
SHARED=${TASKGUARD_SHARED:-$ROOT/../shared}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/taskguard

echo "== build taskguard"
CGO_ENABLED=0 go build -o "$WORK/taskguard" ./cmd/taskguard

echo "== build the DB from $SHARED/corpora/advisories"
"$WORK/taskguard" db build --advisories "$SHARED/corpora/advisories" --cache-dir "$WORK/db" >/dev/null
# trivy reads <cache-dir>/db/{trivy.db,metadata.json}
mkdir -p "$WORK/trivy-cache/db"
cp "$WORK/db/trivy.db" "$WORK/db/metadata.json" "$WORK/trivy-cache/db/"

if [ -z "${IMAGE:-}" ]; then
	echo "== make the image"
	ROOTFS="$CACHE/debootstrap/bookworm-minbase"
	if [ ! -e "$ROOTFS.done" ]; then
		mkdir -p "$CACHE/debootstrap/debs"
		rm -rf "$ROOTFS"
		debootstrap --variant=minbase --cache-dir="$CACHE/debootstrap/debs" bookworm "$ROOTFS" \
			"${TASKGUARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
		touch "$ROOTFS.done"
	fi
	mkdir -p "$WORK/goapp" "$WORK/app/usr/local/bin"
	cat >"$WORK/goapp/go.mod" <<'GOMOD'
module example.com/vulnapp

go 1.22

require golang.org/x/text v0.3.5
GOMOD
	cat >"$WORK/goapp/main.go" <<'GOMAIN'
package main

import (
	"fmt"

	"golang.org/x/text/language"
)

func main() { fmt.Println(language.English) }
GOMAIN
	(cd "$WORK/goapp" && GOWORK=off CGO_ENABLED=0 go build -mod=mod -trimpath -o "$WORK/app/usr/local/bin/vulnapp" .)
	for p in lodash:4.17.15 minimist:1.2.5; do
		mkdir -p "$WORK/app/srv/app/node_modules/${p%%:*}"
		printf '{"name":"%s","version":"%s"}\n' "${p%%:*}" "${p##*:}" >"$WORK/app/srv/app/node_modules/${p%%:*}/package.json"
	done
	IMAGE="$WORK/image.tar"
	go run ./bench/scan/mkimage -o "$IMAGE" "$ROOTFS" "$WORK/app"
fi
echo "image: $IMAGE ($(du -h "$IMAGE" | cut -f1))"

# measure NAME OUT CMD...: best wall time (s), its peak RSS (KiB) and CPU
# seconds (user+sys) over RUNS runs.
measure() {
	local name=$1 out=$2
	shift 2
	local best_t="" best_m="" best_c=""
	for _ in $(seq "$RUNS"); do
		# trivy keeps per-layer results in its scan cache: start each run
		# without them so that both tools do the whole work every time.
		rm -rf "$WORK/trivy-cache/fanal"
		/usr/bin/time -f "%e %M %U %S" -o "$WORK/time" "$@" >"$out" 2>"$WORK/$name.err" || {
			echo "$name failed:"; cat "$WORK/$name.err"; exit 2; }
		read -r t m u s <"$WORK/time"
		if [ -z "$best_t" ] || awk "BEGIN{exit !($t < $best_t)}"; then
			best_t=$t best_m=$m best_c=$(awk "BEGIN{print $u + $s}")
		fi
	done
	echo "$best_t $best_m $best_c"
}

echo "== taskguard ($RUNS runs)"
read -r tg_t tg_m tg_c < <(measure taskguard "$WORK/tg.json" "$WORK/taskguard" image scan --input "$IMAGE" \
	--cache-dir "$WORK/db" --skip-db-update --format json)
jq -r '.findings[] | [.vulnerabilityID, .pkgName, .installedVersion, (.fixedVersion // "")] | @tsv' "$WORK/tg.json" | sort -u >"$WORK/tg.tsv"
printf 'taskguard: %d findings, %.2fs wall, %.2fs CPU, %d MiB peak RSS\n' "$(wc -l <"$WORK/tg.tsv")" "$tg_t" "$tg_c" "$((tg_m / 1024))"

if [ -z "${TRIVY:-}" ]; then
	echo "TRIVY not set: no comparison (TRIVY=/path/to/trivy $0)"
	exit 0
fi

echo "== trivy ($RUNS runs)"
read -r tv_t tv_m tv_c < <(measure trivy "$WORK/trivy.json" "$TRIVY" image --input "$IMAGE" --skip-db-update \
	--offline-scan --cache-dir "$WORK/trivy-cache" --scanners vuln --format json --quiet)
jq -r '.Results[]?.Vulnerabilities[]? | [.VulnerabilityID, .PkgName, .InstalledVersion, (.FixedVersion // "")] | @tsv' "$WORK/trivy.json" | sort -u >"$WORK/trivy.tsv"
printf 'trivy:     %d findings, %.2fs wall, %.2fs CPU, %d MiB peak RSS\n' "$(wc -l <"$WORK/trivy.tsv")" "$tv_t" "$tv_c" "$((tv_m / 1024))"

echo "== findings diff (< taskguard only, > trivy only)"
if diff "$WORK/tg.tsv" "$WORK/trivy.tsv"; then echo "identical"; fi
awk -v a="$tv_t" -v b="$tg_t" -v c="$tg_m" -v d="$tv_m" -v e="$tv_c" -v f="$tg_c" 'BEGIN{
	printf "speed: taskguard is %.2fx faster (trivy/taskguard wall time; goal >= 2)\n", a/b
	printf "cpu: taskguard uses %.2fx less CPU (trivy/taskguard user+sys)\n", (f > 0 ? e/f : 0)
	printf "memory: taskguard uses %.2f of trivy peak RSS (goal <= 0.5)\n", c/d }'
