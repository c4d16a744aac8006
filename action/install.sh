#!/usr/bin/env bash
# Installs the taskguard-action binary for the composite action (action.yml).
#
# 1. A released binary: when the "version" input names a release listed in
#    action/checksums.txt for this OS and architecture, download it from the
#    release and verify its SHA-256 before use.
# 2. Otherwise build it from the action's own source with the runner's Go
#    (hosted runners have Go; GOTOOLCHAIN=auto fetches the version go.mod
#    asks for), cached per source digest in the runner's tool cache.
# Prints bin=PATH to $GITHUB_OUTPUT.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${TASKGUARD_VERSION:-}"
os="$(uname -s | tr '[:upper:]' '[:lower:]')"
case "$(uname -m)" in
	x86_64 | amd64) arch=amd64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) echo "::error::taskguard: unsupported architecture $(uname -m)"; exit 2 ;;
esac
cache="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/taskguard-action"
mkdir -p "$cache"

asset="taskguard-action_${version}_${os}_${arch}"
sum=""
if [ -n "$version" ] && [ -f "$here/action/checksums.txt" ]; then
	sum="$(awk -v a="$asset" '$2 == a { print $1 }' "$here/action/checksums.txt")"
fi

if [ -n "$sum" ]; then
	bin="$cache/$asset"
	if [ ! -x "$bin" ] || ! echo "$sum  $bin" | sha256sum -c --status -; then
		url="${TASKGUARD_RELEASES_URL:-https://github.com/taskguard/taskguard/releases/download}/$version/$asset"
		echo "taskguard: downloading $url"
		curl -fsSL --retry 3 -o "$bin.tmp" "$url"
		echo "$sum  $bin.tmp" | sha256sum -c --quiet - || { echo "::error::taskguard: checksum mismatch for $asset"; rm -f "$bin.tmp"; exit 2; }
		chmod +x "$bin.tmp" && mv "$bin.tmp" "$bin"
	fi
else
	if ! command -v go >/dev/null; then
		echo "::error::taskguard: no released binary for version '${version:-unset}' on $os/$arch and no Go to build one; add actions/setup-go before this step or set the version input to a release"
		exit 2
	fi
	digest="$(cd "$here" && cat go.mod go.sum $(find action cli cmd console scanners internal -name '*.go' -o -name '*.yaml' | sort) | sha256sum | cut -c1-16)"
	bin="$cache/taskguard-action-$digest"
	if [ ! -x "$bin" ]; then
		echo "taskguard: building taskguard-action from source ($digest)"
		tmp="$(mktemp "$cache/build.XXXXXX")"
		(cd "$here" && CGO_ENABLED=0 go build -trimpath -o "$tmp" ./cmd/taskguard-action)
		mv "$tmp" "$bin"
	fi
fi
echo "bin=$bin" >>"${GITHUB_OUTPUT:-/dev/stdout}"
