#!/usr/bin/env bash
# The real sidecar process (taskguard-defender sidecar, policy file, every
# protection on) against a bare httputil.ReverseProxy and plain Coraza+CRS,
# each in its own process at GOMAXPROCS=1, loaded by wrk (Debian package wrk)
# with a benign mix whose values change on every request (mix.lua).
#   bench/waf/wrk.sh                        # 3 s warm-up, 8 s x 3 rounds, 16 connections
#   bench/waf/wrk.sh -rounds 5 -plain=false
#   bench/waf/wrk.sh -plain=false -compare OLD-DEFENDER -flood 10   # one client over a 10 req/s limit: audits written
#   bench/waf/wrk.sh -perf /tmp/sidecar.perf                         # perf record of the sidecar's last round
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/taskguard-defender" ./cmd/taskguard-defender
go build -o "$bin/waf-bench" ./bench/waf
"$bin/waf-bench" wrk -defender "$bin/taskguard-defender" "$@"
