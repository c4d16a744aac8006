#!/usr/bin/env bash
# Benign-request throughput and added latency: taskguard WAF vs bare
# httputil.ReverseProxy vs plain Coraza+CRS, one run, loopback, bounded.
#   bench/waf/run.sh                       # defaults: 3s x 3 rounds, 8 connections
#   bench/waf/run.sh -duration 5s -rounds 5 -protections sqli,xss
set -euo pipefail
cd "$(dirname "$0")/../.."
go run ./bench/waf "$@"
