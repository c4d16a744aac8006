#!/usr/bin/env bash
# Console benchmarks: audit ingest (batches of 100) into SQLite and
# PostgreSQL, and the policy long-poll fan-out to 1,000 defenders.
# PostgreSQL comes from Debian's postgresql package (a throwaway cluster).
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -run '^$' -bench 'AuditIngest' -benchtime 200x ./bench/console/ | tee /tmp/console-bench.txt
go test -run '^$' -bench 'LongPollFanOut' -benchtime 3x -timeout 10m ./bench/console/ | tee -a /tmp/console-bench.txt
awk '/BenchmarkAuditIngest\/sqlite/ {for(i=1;i<=NF;i++) if($(i+1)=="audits/s") s=$i}
     /BenchmarkAuditIngest\/postgres/ {for(i=1;i<=NF;i++) if($(i+1)=="audits/s") p=$i}
     END { if (s && p) printf "ingest: sqlite %.0f audits/s, postgres %.0f audits/s, postgres/sqlite %.2f\n", s, p, p/s }' /tmp/console-bench.txt
