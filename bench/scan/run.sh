#!/usr/bin/env bash
# Scans images with one vulnerability DB through taskguard and, when
# TRIVY=/path/to/trivy is given, through trivy too, in three rows:
#   cold     no layer caches (trivy --cache-backend memory, taskguard --no-cache)
#   rescan   the same image again, both with their default on-disk layer cache
#   newlayer an image whose base layer is cached and whose app layer is new
#            (each run starts from a cache that holds only the first image)
# Each row diffs the finding sets and prints medians of RUNS paired runs
# (wall time, CPU, peak RSS) with their ratios.
#
# Usage: bench/scan/run.sh            (builds the images below)
#        TRIVY=/path/to/trivy RUNS=5 bench/scan/run.sh
#        KEEP=/tmp/scanbench ...   keeps the images, DB and binaries in
#            that folder (bench/scan/ab.sh runs A/B rounds on them)
#        GOINFLATE=1 TRIVY=... bench/scan/run.sh   adds the row cold-go:
#            the cold scan with TASKGUARD_ISAL_LIBRARY=off (the pure-Go
#            inflater; the cold row uses ISA-L when libisal2 is installed)
#
# Images: a debootstrap'ed bookworm minbase rootfs (needs root and
# debootstrap; cached in $XDG_CACHE_HOME/taskguard/debootstrap, the same
# cache the tests use) plus a layer with a Go binary built against
# golang.org/x/text v0.3.5 and lodash 4.17.15 / minimist 1.2.5 under
# node_modules; the second image has the same base and an app layer with
# one more npm package. The DB is built from ../shared/corpora/advisories.
# trivy runs offline with an empty Java DB (no jars in the images).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
RUNS=${RUNS:-5}
SHARED=${TASKGUARD_SHARED:-$ROOT/../shared}
if [ -n "${KEEP:-}" ]; then
	# KEEP=DIR keeps the images, the DB and the binaries there (for ab.sh).
	WORK=$KEEP
	rm -rf "$WORK/db/layers" "$WORK"/*.times
	mkdir -p "$WORK"
else
	WORK=$(mktemp -d)
	trap 'rm -rf "$WORK"' EXIT
fi
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/taskguard

echo "== build taskguard"
CGO_ENABLED=0 go build -o "$WORK/taskguard" ./cmd/taskguard
ROWS="cold rescan newlayer"
if [ "${GOINFLATE:-0}" = 1 ]; then
	ROWS="$ROWS cold-go"
fi
# taskguard loads ISA-L (libisal.so.2, Debian's libisal2) at run time to
# inflate gzip layers; without it, the cold row measures the Go inflater.
if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libisal\.so\.2 '; then
	echo "== note: libisal.so.2 not found (apt-get install libisal2): gzip layers are inflated in Go"
fi

echo "== build the DB from $SHARED/corpora/advisories"
"$WORK/taskguard" db build --advisories "$SHARED/corpora/advisories" --cache-dir "$WORK/db" >/dev/null
# trivy reads <cache-dir>/db/{trivy.db,metadata.json}
mkdir -p "$WORK/trivy-cache/db"
cp "$WORK/db/trivy.db" "$WORK/db/metadata.json" "$WORK/trivy-cache/db/"

echo "== make the images"
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
cp -a "$WORK/app" "$WORK/app2"
mkdir -p "$WORK/app2/srv/app/node_modules/ms"
printf '{"name":"ms","version":"2.0.0"}\n' >"$WORK/app2/srv/app/node_modules/ms/package.json"
IMAGE="$WORK/image.tar" IMAGE2="$WORK/image2.tar"
go run ./bench/scan/mkimage -o "$IMAGE" "$ROOTFS" "$WORK/app"
go run ./bench/scan/mkimage -o "$IMAGE2" -ref taskguard.local/bench:2 "$ROOTFS" "$WORK/app2"
echo "images: $IMAGE ($(du -h "$IMAGE" | cut -f1)), $IMAGE2 (same base layer, new app layer)"

if [ -n "${TRIVY:-}" ]; then
	# An empty Java DB, so that the offline trivy never tries to fetch one.
	mkdir -p "$WORK/trivy-cache/java-db"
	printf '{"Version":1,"NextUpdate":"2100-01-01T00:00:00Z","UpdatedAt":"%s","DownloadedAt":"%s"}\n' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$WORK/trivy-cache/java-db/metadata.json"
	: >"$WORK/trivy-cache/java-db/trivy-java.db"
fi

# tg IMAGE [flags]: a taskguard scan; its layer cache is $WORK/db/layers.
tg() {
	local img=$1
	shift
	"$WORK/taskguard" image scan --input "$img" --cache-dir "$WORK/db" --skip-db-update --format json "$@"
}
# tv IMAGE [flags]: a trivy scan; its layer cache is $WORK/trivy-cache/fanal.
tv() {
	local img=$1
	shift
	"$TRIVY" image --input "$img" --skip-db-update --skip-java-db-update --offline-scan \
		--cache-dir "$WORK/trivy-cache" --scanners vuln --format json --quiet "$@"
}

# once NAME OUT CMD...: one timed run; appends "wall rss cpu" to $WORK/NAME.times.
once() {
	local name=$1 out=$2
	shift 2
	/usr/bin/time -f "%e %M %U %S" -o "$WORK/time" "$@" >"$out" 2>"$WORK/$name.err" || {
		echo "$name failed:"; cat "$WORK/$name.err"; exit 2; }
	read -r t m u s <"$WORK/time"
	echo "$t $m $(awk "BEGIN{print $u + $s}")" >>"$WORK/$name.times"
}

# median FILE COLUMN
median() { cut -d' ' -f"$2" "$1" | sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

tg_findings() { jq -r '.findings[] | [.vulnerabilityID, .pkgName, .installedVersion, (.fixedVersion // "")] | @tsv' "$1" | sort -u; }
tv_findings() { jq -r '.Results[]?.Vulnerabilities[]? | [.VulnerabilityID, .PkgName, .InstalledVersion, (.FixedVersion // "")] | @tsv' "$1" | sort -u; }

# prepare ROW TOOL: the cache state a run of ROW starts from.
prepare() {
	local row=$1 tool=$2
	case "$row/$tool" in
	cold*/tg) rm -rf "$WORK/db/layers" ;;
	cold*/tv) rm -rf "$WORK/trivy-cache/fanal" ;;
	rescan/*) ;; # warmed once before the runs
	newlayer/tg) rm -rf "$WORK/db/layers" && cp -a "$WORK/tg-base" "$WORK/db/layers" ;;
	newlayer/tv) rm -rf "$WORK/trivy-cache/fanal" && cp -a "$WORK/tv-base" "$WORK/trivy-cache/fanal" ;;
	esac
}

# Cache states after scanning the first image only: the newlayer row's start.
rm -rf "$WORK/db/layers"
tg "$IMAGE" >/dev/null 2>&1
cp -a "$WORK/db/layers" "$WORK/tg-base"
if [ -n "${TRIVY:-}" ]; then
	rm -rf "$WORK/trivy-cache/fanal"
	tv "$IMAGE" >/dev/null 2>&1
	cp -a "$WORK/trivy-cache/fanal" "$WORK/tv-base"
fi

printf '\n| row | findings | taskguard wall | trivy wall | speed (trivy/taskguard, goal >= 2) | taskguard CPU | trivy CPU | taskguard peak RSS | trivy peak RSS | memory (taskguard/trivy, goal <= 0.5) |\n|---|---|---|---|---|---|---|---|---|---|\n' >"$WORK/table"
for row in $ROWS; do
	img=$IMAGE tgflags=() tvflags=() tgenv=() tgbin=$WORK/taskguard
	case $row in
	cold) tgflags=(--no-cache) tvflags=(--cache-backend memory) ;;
	cold-go) tgflags=(--no-cache) tvflags=(--cache-backend memory) tgenv=(TASKGUARD_ISAL_LIBRARY=off) ;;
	newlayer) img=$IMAGE2 ;;
	esac
	echo "== $row ($RUNS paired runs)"
	tgcmd=(env "${tgenv[@]}" "$tgbin" image scan --input "$img" --cache-dir "$WORK/db" --skip-db-update --format json "${tgflags[@]}")
	tvcmd=("${TRIVY:-trivy}" image --input "$img" --skip-db-update --skip-java-db-update --offline-scan
		--cache-dir "$WORK/trivy-cache" --scanners vuln --format json --quiet "${tvflags[@]}")
	prepare "$row" tg && "${tgcmd[@]}" >/dev/null 2>&1 # warm-up (page cache; rescan's cache)
	if [ -n "${TRIVY:-}" ]; then prepare "$row" tv && "${tvcmd[@]}" >/dev/null 2>&1; fi
	for _ in $(seq "$RUNS"); do
		prepare "$row" tg
		once "tg-$row" "$WORK/tg-$row.json" "${tgcmd[@]}"
		if [ -n "${TRIVY:-}" ]; then
			prepare "$row" tv
			once "tv-$row" "$WORK/tv-$row.json" "${tvcmd[@]}"
		fi
	done
	tg_findings "$WORK/tg-$row.json" >"$WORK/tg-$row.tsv"
	tg_t=$(median "$WORK/tg-$row.times" 1) tg_m=$(median "$WORK/tg-$row.times" 2) tg_c=$(median "$WORK/tg-$row.times" 3)
	printf 'taskguard: %d findings, median %.3fs wall, %.3fs CPU, %d MiB peak RSS\n' "$(wc -l <"$WORK/tg-$row.tsv")" "$tg_t" "$tg_c" "$((${tg_m%.*} / 1024))"
	if [ -z "${TRIVY:-}" ]; then continue; fi
	tv_findings "$WORK/tv-$row.json" >"$WORK/tv-$row.tsv"
	tv_t=$(median "$WORK/tv-$row.times" 1) tv_m=$(median "$WORK/tv-$row.times" 2) tv_c=$(median "$WORK/tv-$row.times" 3)
	printf 'trivy:     %d findings, median %.3fs wall, %.3fs CPU, %d MiB peak RSS\n' "$(wc -l <"$WORK/tv-$row.tsv")" "$tv_t" "$tv_c" "$((${tv_m%.*} / 1024))"
	same="identical ($(wc -l <"$WORK/tg-$row.tsv"))"
	if ! diff "$WORK/tg-$row.tsv" "$WORK/tv-$row.tsv" >"$WORK/diff-$row"; then
		same="DIFFERENT"
		echo "findings diff (< taskguard only, > trivy only):"; cat "$WORK/diff-$row"
	fi
	awk -v row="$row" -v same="$same" -v a="$tg_t" -v b="$tv_t" -v c="$tg_c" -v d="$tv_c" -v e="$tg_m" -v f="$tv_m" 'BEGIN{
		printf "| %s | %s | %.3f s | %.3f s | %.2fx | %.3f s | %.3f s | %d MiB | %d MiB | %.2f |\n", row, same, a, b, b/a, c, d, e/1024, f/1024, e/f }' >>"$WORK/table"
done
if [ -n "${TRIVY:-}" ]; then
	echo "== medians of $RUNS paired runs ($("$TRIVY" --version 2>/dev/null | head -1))"
	cat "$WORK/table"
else
	echo "TRIVY not set: no comparison (TRIVY=/path/to/trivy $0)"
fi
