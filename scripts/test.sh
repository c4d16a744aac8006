#!/usr/bin/env bash
# Runs every taskguard test on a fresh Debian machine: installs what the tests
# need (Debian packages, pinned Go tools), checks formatting, vet and
# staticcheck, then runs the whole test suite. Fails loudly at the first
# failing step. Usage: scripts/test.sh  (or: make test)
set -euo pipefail
cd "$(dirname "$0")/.."


step() { printf '\n== %s == (%s, %ds in)\n' "$*" "$(date -u +%H:%M:%S)" "$SECONDS"; }

step "install test dependencies"
scripts/install-deps.sh

export PATH="$(go env GOPATH)/bin:$PATH"
export TASKGUARD_SHARED="${TASKGUARD_SHARED:-$(cd .. && pwd)/shared}"
TOOLS="${TASKGUARD_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/taskguard/tools}"
# install-deps.sh installs every prerequisite, so no test may skip for a
# missing tool, a taken port or a missing privilege: CI=true turns each such
# skip into a failure (internal/testenv.Skip). CI sets it too.
export CI="${CI:-true}"
export TASKGUARD_SARIF_MULTITOOL="$TOOLS/sarif/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool"
# One build configuration for every step but the race run: the one the
# release ships (scripts/release.sh: CGO_ENABLED=0, -trimpath; taskguard has
# no cgo code). vet, staticcheck, the build, the tests and the binaries the
# tests build (the release, the defender image, the Jenkins and CLI
# harnesses) then share one set of compiled packages; with cgo on for the
# tests and off for the binaries, an empty cache compiled every package twice.
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath"

# The packages whose goroutines share state; their tests run again under the
# race detector.
RACE_PACKAGES="./console/... ./agent/sidecar/... ./agent/waf ./agent/launcher/... ./agent/socket/..."

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

step "go vet"
go vet ./...
GOARCH=arm64 go vet ./agent/... ./cmd/taskguard-defender # the defender ships for Graviton (linux/arm64) too

step "staticcheck"
staticcheck ./...

step "build"
mkdir -p bin
go build -o bin/ ./cmd/...
# The release's static linux taskguard (taskguard-static_*: no ISA-L loading).
go build -tags nodlopen -o bin/taskguard-static ./cmd/taskguard
for b in taskguard-static taskguard-defender taskguard-action; do # static: no ELF interpreter
  if readelf -lW "bin/$b" | grep -q INTERP; then echo "bin/$b is dynamically linked; it must be static"; exit 1; fi
done
# The release's other platforms (scripts/release.sh) must build too.
for target in windows/amd64 darwin/arm64; do
  for c in taskguard taskguard-console taskguard-action; do
    CGO_ENABLED=0 GOOS=${target%/*} GOARCH=${target#*/} go build -o /dev/null ./cmd/$c
  done
done

step "go test"
log="${TMPDIR:-/tmp}/taskguard-test.$$.log"
go test -p 4 -count=1 -timeout 25m ./... 2>&1 | tee "$log"

step "arm64: the supervisor's architecture tests under qemu-aarch64-static"
# ptrace and seccomp do not run under qemu-user (scripts/arm64-vm-check.sh boots
# a real arm64 kernel for those); the filter program (in a BPF VM), the
# decoders and the path resolution run as arm64 code here.
arm64_test="${TMPDIR:-/tmp}/supervise.arm64.$$.test"
GOARCH=arm64 CGO_ENABLED=0 go test -c -o "$arm64_test" ./agent/supervise
qemu-aarch64-static "$arm64_test" -test.count=1 \
	-test.run '^(TestParseSockaddr|TestDNSQueryNames|TestRefuse|TestSupervisedNumbersDoNotOverlap|TestSeccompFilterArm64|TestResolveUnder)$' -test.v 2>&1 | tee -a "$log" | grep -E '^(--- |ok|PASS|FAIL)'
rm -f "$arm64_test"

step "arm64: supervision on a real arm64 kernel (Debian's, under qemu-system-aarch64)"
# ptrace and seccomp (both mechanisms) refuse an exec and a connect, run an
# allowed exec, refuse io_uring, and survive a caller killed mid-stop, as arm64 code on an arm64
# kernel (install-deps.sh fetched the kernel).
scripts/arm64-vm-check.sh "$TOOLS/arm64-kernel/vmlinuz" 2>&1 | tee -a "$log" | grep -E '^(native|mode|ptrace,|app:|VMCHECK)'

step "go test -tags nodlopen: the scanner without ISA-L loading (the release's taskguard-static)"
CGO_ENABLED=0 go test -tags nodlopen -count=1 ./scanners/image/... 2>&1 | tee -a "$log"

step "go test -race (the packages with concurrency)"
# go-re2's RE2 is C++ translated to Go (wasm2go); instrumenting that
# translation made one WAF rule's first compile take 30 s under -race. Here it
# runs as RE2 itself, the C++ library, through cgo instead (tag re2_cgo, Debian's
# libre2): C code is not instrumented, and every Go package (ours, Coraza's,
# go-re2's wrapper) is. Do not exclude packages with -gcflags=PATTERN=-race=false:
# the linker keeps one copy of each generic instantiation, and the excluded
# package's uninstrumented sync.Map (internal/sync.HashTrieMap) replaced the
# standard library's, so the detector lost sync.Map's happens-before edges and
# reported races inside encoding/json's and crypto/tls's caches (CI, stop 14).
CGO_ENABLED=1 CGO_CXXFLAGS="-O2 -Wno-write-strings" go test -race -tags re2_cgo -p 4 -count=1 -timeout 20m $RACE_PACKAGES 2>&1 | tee -a "$log"

step "done"
