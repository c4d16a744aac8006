#!/usr/bin/env bash
# Full detection measurement: every go-ftw test of ../shared/corpora/crs-regression
# and every line of ../shared/corpora/libinjection, through taskguard's engine and
# plain Coraza+CRS in the same run. Reports (with every miss listed) go to $OUT.
#   bench/waf/corpus.sh            # PL1
#   PL=2 bench/waf/corpus.sh       # both engines at paranoia level 2
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-bench/waf/out}"
case "$OUT" in /*) ;; *) OUT="$(pwd)/$OUT" ;; esac
mkdir -p "$OUT"
WAF_CORPUS_REPORT_DIR="$OUT" go test ./agent/waf -count=1 -run 'TestCorpus' \
	-waf.corpus=full -waf.pl="${PL:-1}" -timeout 20m -v | grep -v '^=== ' | sed -n '/CRS regression\|libinjection (/,/^---/p' | grep -v '^\s*\(misses\|blocked benign\)'
echo "full reports with misses: $OUT/crs-regression.txt $OUT/libinjection.txt"
