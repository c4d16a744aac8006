#!/usr/bin/env bash
# Builds a taskguard release into a dist directory: the four programs for
# linux/darwin/windows x amd64/arm64 (taskguard-defender for linux only: it
# uses ptrace), one archive per program and platform (tar.gz; zip for
# windows), a CycloneDX SBOM of each archive's binary, the defender image as
# an OCI image layout per architecture (taskguard defender image), and
# checksums.txt (sha256sum format) over every file.
#
# On linux, taskguard is built twice: taskguard_* loads ISA-L (libisal.so.2)
# at run time for faster gzip layers, which links it against glibc
# (scanners/image/isal); taskguard-static_* is built with -tags nodlopen and
# is fully static (Alpine/musl, distroless, scratch). Every linux binary but
# taskguard_* is checked to have no ELF interpreter (static).
#
#   scripts/release.sh VERSION [DIST]          e.g. scripts/release.sh v0.9.0
#
# Environment:
#   TASKGUARD_RELEASE_TARGETS  space-separated os/arch list (default: all six)
#   SOURCE_DATE_EPOCH          timestamp of the archives' entries (default: the
#                              last commit's time, else 0): the same source and
#                              version give the same archives
#
# It is what .github/workflows/release.yml runs, and what action/release_test.go
# runs for a snapshot release (linux/amd64 only). Why a script rather than
# goreleaser: see docs/releases.md.
set -euo pipefail

version="${1:?usage: scripts/release.sh VERSION [DIST]}"
dist="${2:-dist}"
case "$version" in
v[0-9]*) ;;
*) echo "release: version $version: want vMAJOR.MINOR.PATCH[-suffix]" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
targets="${TASKGUARD_RELEASE_TARGETS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64}"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH="$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)"
fi
export SOURCE_DATE_EPOCH

mkdir -p "$dist"
dist="$(cd "$dist" && pwd)"
if [ -n "$(ls -A "$dist")" ]; then
	echo "release: $dist is not empty" >&2
	exit 2
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

step() { printf 'release: %s\n' "$*" >&2; }

# build OS ARCH PROGRAM [VARIANT] -> path of the binary. VARIANT static:
# -tags nodlopen (no run-time library loading: a fully static linux binary).
build() {
	local os="$1" arch="$2" prog="$3" variant="${4:-}" ext="" tags=""
	[ "$os" = windows ] && ext=.exe
	[ "$variant" = static ] && tags=nodlopen
	local out="$work/bin/${os}_${arch}${variant:+-$variant}/$prog$ext"
	mkdir -p "$(dirname "$out")"
	(cd "$root" && CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" GOFLAGS="${GOFLAGS:-} -buildvcs=false" \
		go build -trimpath -tags "$tags" -ldflags "-s -w -X github.com/taskguard/taskguard/cli.releaseVersion=$version" -o "$out" "./cmd/$prog")
	echo "$out"
}

# require_static FILE: fails the release when the linux binary has an ELF
# interpreter (is dynamically linked).
require_static() {
	if ! command -v readelf >/dev/null; then
		echo "release: readelf (binutils) is needed to check that $1 is static" >&2
		exit 2
	fi
	if readelf -lW "$1" | grep -q 'INTERP\|Requesting program interpreter'; then
		echo "release: $1 is dynamically linked; it must be static" >&2
		readelf -lW "$1" | grep -A1 INTERP >&2 || true
		exit 2
	fi
}

# archive NAME OS FILE...: a reproducible tar.gz (zip on windows) in dist.
archive() {
	local name="$1" os="$2"
	shift 2
	local stage="$work/stage/$name"
	rm -rf "$stage" && mkdir -p "$stage"
	cp "$@" "$stage/"
	cp "$root/README.md" "$stage/"
	[ -f "$root/LICENSE" ] && cp "$root/LICENSE" "$stage/"
	find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	if [ "$os" = windows ]; then
		(cd "$stage" && find . -type f | LC_ALL=C sort | zip -q -X -D "$dist/$name.zip" -@)
		echo "$dist/$name.zip"
	else
		tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
			-C "$stage" -cf - . | gzip -n -9 >"$dist/$name.tar.gz"
		echo "$dist/$name.tar.gz"
	fi
}

# The SBOMs come from taskguard itself (image scan --format cyclonedx, over a
# root filesystem holding the binary: its Go build info lists the modules).
host_os="$(go env GOOS)"
host_arch="$(go env GOARCH)"
step "building taskguard for this machine ($host_os/$host_arch) to write the SBOMs and the defender image"
tg="$(build "$host_os" "$host_arch" taskguard)"
sbom=true
if ! "$tg" image scan --help 2>/dev/null | grep -q cyclonedx; then
	echo "release: this taskguard cannot write CycloneDX (image scan --format cyclonedx), so the release would have no SBOMs" >&2
	exit 2
fi

for target in $targets; do
	os="${target%/*}"
	arch="${target#*/}"
	programs="taskguard taskguard-console taskguard-action"
	# taskguard-static: linux taskguard without ISA-L loading, fully static.
	[ "$os" = linux ] && programs="$programs taskguard-static taskguard-defender"
	for entry in $programs; do
		prog="$entry" variant=""
		[ "$entry" = taskguard-static ] && prog=taskguard variant=static
		step "$entry $os/$arch"
		bin="$(build "$os" "$arch" "$prog" "$variant")"
		if [ "$os" = linux ] && [ "$entry" != taskguard ]; then
			require_static "$bin"
		fi
		name="${entry}_${version}_${os}_${arch}"
		out="$(archive "$name" "$os" "$bin")"
		if $sbom; then
			rootfs="$work/sbom/$name"
			mkdir -p "$rootfs/usr/local/bin"
			cp "$bin" "$rootfs/usr/local/bin/"
			"$tg" image scan --rootfs "$rootfs" --format cyclonedx --output "$out.cdx.json" >/dev/null
		fi
		if [ "$prog" = taskguard-defender ]; then
			step "defender image linux/$arch (OCI layout)"
			layout="$work/oci/$arch"
			"$tg" defender image --defender-binary "linux/$arch=$bin" --oci-layout "$layout" \
				--tag "ghcr.io/taskguard/defender:${version#v}" >"$work/digest-$arch"
			tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
				-C "$layout" -cf "$dist/taskguard-defender-image_${version}_linux_${arch}.oci.tar" .
		fi
	done
done

step "checksums"
(cd "$dist" && find . -maxdepth 1 -type f ! -name checksums.txt -printf '%f\n' | LC_ALL=C sort | xargs sha256sum >checksums.txt)
step "done: $(wc -l <"$dist/checksums.txt") files in $dist"
