#!/usr/bin/env bash
# Installs what taskguard's tests need on a fresh Debian machine. Idempotent:
# packages and tools already present are not fetched again.
set -euo pipefail

# Debian packages the tests use. Keep this list in step with README "Testing".
DEBIAN_PACKAGES=(ca-certificates jq curl)
DEBIAN_PACKAGES+=(wget)       # defender end-to-end tests: the seeds' script fetches with wget
DEBIAN_PACKAGES+=(util-linux) # defender PID 1 test: unshare
DEBIAN_PACKAGES+=(strace)     # bench/defender: the ptrace peer compared against

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Go tools, pinned.
GOBIN="$(go env GOPATH)/bin"
install_tool() { # name module@version
	if ! "$GOBIN/$1" -version 2>/dev/null | grep -q "${2##*@}"; then
		echo "go install $2"
		go install "$2"
	fi
}
install_tool staticcheck honnef.co/go/tools/cmd/staticcheck@v0.8.2
