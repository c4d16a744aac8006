#!/usr/bin/env bash
# Installs the taskguard-action binary for the composite action (action.yml).
#
# 1. The version: the "version" input, else the action's own ref when it is a
#    release tag (uses: taskguard/taskguard@v1.2.3), else none.
# 2. With a version, the release's taskguard-action archive for this OS and
#    architecture is downloaded from TASKGUARD_RELEASES_URL/VERSION/ (default
#    https://github.com/taskguard/taskguard/releases/download) with its
#    checksums.txt, and used only when its SHA-256 matches there (and in
#    action/checksums.txt, when that file pins it). A mismatch, or a download
#    that fails for another reason than "no such release", stops the step.
# 3. Without a version, or for a ref that has no release (a branch, a commit,
#    uses: ./), it is built from the action's own source with the runner's Go,
#    and the step says so.
# Binaries are kept in the runner's tool cache (per version, or per source
# digest). Prints bin=PATH and source=release|build to $GITHUB_OUTPUT.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${TASKGUARD_VERSION:-}"
ref="${TASKGUARD_ACTION_REF:-}"
base="${TASKGUARD_RELEASES_URL:-https://github.com/taskguard/taskguard/releases/download}"
base="${base%/}"
explicit=true
if [ -z "$version" ]; then
	explicit=false
	case "$ref" in
	v[0-9]*) version="$ref" ;;
	esac
fi
os="$(uname -s | tr '[:upper:]' '[:lower:]')"
case "$os" in
linux | darwin) ;;
mingw* | msys* | cygwin*) os=windows ;;
*) echo "::error::taskguard: unsupported OS $os"; exit 2 ;;
esac
case "$(uname -m)" in
x86_64 | amd64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
*) echo "::error::taskguard: unsupported architecture $(uname -m)"; exit 2 ;;
esac
exe=""
[ "$os" = windows ] && exe=.exe
cache="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/taskguard-action"
mkdir -p "$cache"

output() { echo "$1" >>"${GITHUB_OUTPUT:-/dev/stdout}"; }
started="$(date +%s%N)"

# fetch URL FILE: 0 downloaded, 4 no such file (HTTP 404), else an error.
fetch() {
	local code
	code="$(curl -sSL --retry 3 --retry-connrefused -o "$2" -w '%{http_code}' "$1")" || {
		echo "::error::taskguard: could not download $1"
		return 1
	}
	case "$code" in
	200) return 0 ;;
	404) return 4 ;;
	*) echo "::error::taskguard: $1 answered HTTP $code"; return 1 ;;
	esac
}

install_release() {
	local ext=tar.gz
	[ "$os" = windows ] && ext=zip
	local asset="taskguard-action_${version}_${os}_${arch}.$ext"
	local dir="$cache/$version/${os}_${arch}"
	if [ -x "$dir/taskguard-action$exe" ]; then
		echo "taskguard: using taskguard-action $version from the tool cache"
		bin="$dir/taskguard-action$exe"
		return 0
	fi
	local tmp rc=0
	tmp="$(mktemp -d "$cache/download.XXXXXX")"
	fetch "$base/$version/checksums.txt" "$tmp/checksums.txt" || rc=$?
	if [ "$rc" = 4 ]; then
		rm -rf "$tmp"
		return 4
	elif [ "$rc" != 0 ]; then
		rm -rf "$tmp"
		exit 2
	fi
	local want pinned
	want="$(awk -v a="$asset" '$2 == a || $2 == "*"a { print $1 }' "$tmp/checksums.txt")"
	if [ -z "$want" ]; then
		echo "::error::taskguard: release $version lists no $asset in checksums.txt (no build for $os/$arch?)"
		rm -rf "$tmp"
		exit 2
	fi
	if [ -f "$here/action/checksums.txt" ]; then
		pinned="$(awk -v a="$asset" '$2 == a { print $1 }' "$here/action/checksums.txt")"
		if [ -n "$pinned" ] && [ "$pinned" != "$want" ]; then
			echo "::error::taskguard: the release's checksum of $asset differs from the one pinned in action/checksums.txt"
			rm -rf "$tmp"
			exit 2
		fi
	fi
	echo "taskguard: downloading $base/$version/$asset"
	fetch "$base/$version/$asset" "$tmp/$asset" || { rm -rf "$tmp"; exit 2; }
	if ! echo "$want  $tmp/$asset" | sha256sum -c --status -; then
		echo "::error::taskguard: checksum mismatch for $asset: refusing to run it"
		rm -rf "$tmp"
		exit 2
	fi
	echo "taskguard: $asset verified (sha256 $want)"
	mkdir -p "$tmp/x"
	if [ "$ext" = zip ]; then
		unzip -q "$tmp/$asset" -d "$tmp/x"
	else
		tar -xzf "$tmp/$asset" -C "$tmp/x"
	fi
	mkdir -p "$dir"
	mv "$tmp/x/taskguard-action$exe" "$dir/taskguard-action$exe.tmp"
	chmod +x "$dir/taskguard-action$exe.tmp"
	mv "$dir/taskguard-action$exe.tmp" "$dir/taskguard-action$exe"
	rm -rf "$tmp"
	bin="$dir/taskguard-action$exe"
}

build_source() {
	if ! command -v go >/dev/null; then
		echo "::error::taskguard: no release to download for ${version:-this ref} and no Go to build one; add actions/setup-go before this step or set the version input to a release"
		exit 2
	fi
	local digest
	digest="$(cd "$here" && cat go.mod go.sum $(find action cli cmd console scanners internal agent -name '*.go' -o -name '*.yaml' | LC_ALL=C sort) | sha256sum | cut -c1-16)"
	bin="$cache/taskguard-action-$digest$exe"
	if [ ! -x "$bin" ]; then
		echo "taskguard: building taskguard-action from source ($digest)"
		local tmp
		tmp="$(mktemp "$cache/build.XXXXXX")"
		(cd "$here" && CGO_ENABLED=0 go build -trimpath -o "$tmp" ./cmd/taskguard-action)
		mv "$tmp" "$bin"
	fi
}

bin=""
source=release
if [ -n "$version" ]; then
	rc=0
	install_release || rc=$?
	if [ "$rc" = 4 ]; then
		if $explicit; then
			echo "::error::taskguard: there is no release $version at $base (checksums.txt: 404); set version to a released tag, or leave it empty to build this action's source"
			exit 2
		fi
		echo "::notice::taskguard: the action's ref $version has no release: building taskguard-action from source"
		version=""
	fi
fi
if [ -z "$bin" ]; then
	if [ -z "$version" ] && [ -n "$ref" ]; then
		echo "::notice::taskguard: the action's ref $ref is not a release: building taskguard-action from source"
	elif [ -z "$ref" ]; then
		echo "::notice::taskguard: no version given and the action has no release ref (uses: ./?): building taskguard-action from source"
	fi
	source=build
	build_source
fi
elapsed=$((($(date +%s%N) - started) / 1000000))
echo "taskguard: taskguard-action ready ($source) in ${elapsed} ms"
output "bin=$bin"
output "source=$source"
