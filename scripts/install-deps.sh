#!/usr/bin/env bash
# Installs what taskguard's tests need on a fresh Debian machine (as root).
# Idempotent: what is already present is not fetched again.
set -euo pipefail

# Debian packages the tests use, one per line with the reason.
DEBIAN_PACKAGES=(
	ca-certificates
	curl            # the seeds' curl flow against the console
	jq              # the seeds' Jenkins step pipes through jq
	libxml2-utils   # xmllint: JUnit reports validated against the JUnit schema
	nodejs npm      # npm installs the SARIF validator below
)
DEBIAN_PACKAGES+=(debootstrap) # scanners/scan: debootstrap'ed bookworm rootfs (Debian findings test)
DEBIAN_PACKAGES+=(openjdk-17-jre-headless) # jenkins: the JVM for groovy and npm-groovy-lint (JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64)
DEBIAN_PACKAGES+=(groovy)                  # jenkins: the pipeline harness runs the shared library under groovy
DEBIAN_PACKAGES+=(rpm) # scanners/analyzer: rpmbuild and rpm -qa to cross-check the rpm analyzer
DEBIAN_PACKAGES+=(wget)       # defender end-to-end tests: the seeds' script fetches with wget
DEBIAN_PACKAGES+=(util-linux) # defender PID 1 test: unshare
DEBIAN_PACKAGES+=(strace)     # bench/defender: the ptrace peer compared against
DEBIAN_PACKAGES+=(wrk)        # bench/waf wrk.sh: the external load generator driving the real sidecar
DEBIAN_PACKAGES+=(qemu-user-static) # defender arm64: the supervisor's parsers, filter and path tests run under qemu-aarch64-static
DEBIAN_PACKAGES+=(qemu-system-arm cpio) # defender arm64: scripts/arm64-vm-check.sh boots Debian's arm64 kernel (fetched below) and supervises for real
DEBIAN_PACKAGES+=(libisal2) # scanners/image/isal: gzip layers inflated by ISA-L, libisal.so.2 loaded at run time (its tests fail without it in CI)
DEBIAN_PACKAGES+=(gcc libc6-dev) # scanners/image/isal: TestHostileLibrary builds look-alike libraries that must fail the self-test
DEBIAN_PACKAGES+=(g++ libre2-dev pkg-config) # go test -race: go-re2 runs RE2 as C++ through cgo (tag re2_cgo), not instrumented (scripts/test.sh)
DEBIAN_PACKAGES+=(postgresql)  # console/store/postgres: tests start their own cluster (initdb, pg_ctl)
DEBIAN_PACKAGES+=(chromium)    # console/server: the web pages are tested in headless Chromium (chromedp)
DEBIAN_PACKAGES+=(busybox-static) # agent/image, cli, e2e: a static binary and the tiny test images
DEBIAN_PACKAGES+=(podman runc catatonit) # cli/localrun, e2e: task run-local (runc: crun fails on hybrid cgroups; catatonit: the pod infra)
DEBIAN_PACKAGES+=(slirp4netns uidmap) # podman networking (the pod reaches the host loopback) and its user-namespace helpers
DEBIAN_PACKAGES+=(iproute2)           # e2e, cli/localrun: ip netns list after teardown
DEBIAN_PACKAGES+=(python3-botocore)   # console/fargate: protect output checked against the ECS API model (service-2.json, ParamValidator)
DEBIAN_PACKAGES+=(zsh dnf python3-pip) # agent/launcher: real bind shell (zsh ztcp -l) and real package managers run under the launcher
DEBIAN_PACKAGES+=(binutils)           # scanners/scan: objcopy adds a cargo-auditable .dep-v0 section to a test executable
DEBIAN_PACKAGES+=(ruby-bundler ruby-rack) # scanners/analyzer: bundler locks a Gemfile offline; its LockfileParser and RubyGems cross-check Gemfile.lock and gemspecs
DEBIAN_PACKAGES+=(composer php-cli)      # scanners/analyzer: composer writes composer.lock and installed.json from path repositories
DEBIAN_PACKAGES+=(cargo librust-smallvec-dev librust-log-dev) # scanners/analyzer: cargo locks a crate against Debian's vendored crates; cargo metadata cross-checks Cargo.lock

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
	command -v dpkg-query >/dev/null || break
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A machine image may ship node and npm outside Debian's packages; keep those.
if command -v node >/dev/null && command -v npm >/dev/null; then
	missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
	read -r -a missing <<<"${missing[*]}"
fi
if [ ${#missing[@]} -gt 0 ]; then
	echo "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian's arm64 kernel for scripts/arm64-vm-check.sh (ptrace and seccomp on a
# real arm64 kernel under qemu-system-aarch64): the newest
# linux-image-*-arm64-unsigned of the release, its vmlinuz kept in the tools
# cache. Needs the arm64 architecture in dpkg to download (nothing is installed).
TOOLS="${TASKGUARD_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/taskguard/tools}"
if [ ! -f "$TOOLS/arm64-kernel/vmlinuz" ]; then
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		dpkg --add-architecture arm64
		apt-get update -qq
	fi
	kpkg=$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-arm64-unsigned$' | cut -d' ' -f1 | sort -V | tail -1)
	if [ -z "$kpkg" ]; then
		apt-get update -qq
		kpkg=$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-arm64-unsigned$' | cut -d' ' -f1 | sort -V | tail -1)
	fi
	[ -n "$kpkg" ] || { echo "no linux-image-*-arm64-unsigned package in the apt sources" >&2; exit 1; }
	echo "apt-get download $kpkg:arm64"
	kdir=$(mktemp -d)
	(cd "$kdir" && apt-get download -q "$kpkg:arm64" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
	dpkg-deb -x "$kdir"/*.deb "$kdir/x"
	mkdir -p "$TOOLS/arm64-kernel"
	cp "$kdir"/x/boot/vmlinuz-* "$TOOLS/arm64-kernel/vmlinuz.$$"
	mv "$TOOLS/arm64-kernel/vmlinuz.$$" "$TOOLS/arm64-kernel/vmlinuz" # atomic for parallel runs
	rm -rf "$kdir"
fi

# Go tools, pinned.
GOBIN="$(go env GOPATH)/bin"
install_go_tool() { # name module@version
	if ! go version -m "$GOBIN/$1" 2>/dev/null | grep -q "[[:space:]]${2##*@}[[:space:]]"; then
		echo "go install $2"
		go install "$2"
	fi
}
install_go_tool staticcheck honnef.co/go/tools/cmd/staticcheck@v0.8.2
install_go_tool act github.com/nektos/act@v0.2.89   # runs the GitHub Action's workflow test on this host

# npm tools, pinned, under the tools cache.
install_npm_tool() { # dir package@version
	if [ ! -f "$TOOLS/$1/.installed-${2//\//_}" ]; then
		echo "npm install $2"
		mkdir -p "$TOOLS/$1"
		npm install --silent --no-audit --no-fund --prefix "$TOOLS/$1" "$2"
		touch "$TOOLS/$1/.installed-${2//\//_}"
	fi
}
# Microsoft's SARIF validator, with GitHub code scanning's rules.
install_npm_tool sarif @microsoft/sarif-multitool@5.7.0
chmod u+x "$TOOLS/sarif/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool"
# jenkins: lints the shared library's Groovy (15.2.2 runs on this Node; 18.x does not).
install_npm_tool groovylint npm-groovy-lint@15.2.2
