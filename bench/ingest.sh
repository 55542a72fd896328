#!/usr/bin/env bash
# Measures durable single-event ingest over HTTP with wrk (Debian package `wrk`), one client
# and 32 clients, against a fresh store, on loopback, for a bounded time.
#
#   bench/ingest.sh [BINARY ...]     e.g. bench/ingest.sh target/release/vellum /tmp/other/vellum
#
# Several binaries are measured in turn in the same run, so that figures compare like with like.
# This is a stop-gap until the project's benchmark harness exists.
set -euo pipefail
command -v wrk >/dev/null || { echo "error: wrk is required (apt-get install wrk)" >&2; exit 1; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
seconds="${SECONDS_PER_RUN:-8}"
[ "$#" -gt 0 ] || set -- "$here/../target/release/vellum"
export API_KEY=sk_bench_0123456789abcdef0123
port=18090
for binary in "$@"; do
  port=$((port + 1))
  data="$(mktemp -d)"
  VELLUM_API_KEY="$API_KEY" VELLUM_DATA_DIR="$data" "$binary" serve --listen "127.0.0.1:$port" >"$data/serve.log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  auth=(-H "Authorization: Bearer $API_KEY" -H "Content-Type: application/json")
  ORGANIZATION_ID=$(curl -sf "${auth[@]}" -d '{"name":"Bench"}' "http://127.0.0.1:$port/organizations" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
  export ORGANIZATION_ID
  curl -sf "${auth[@]}" -d '{"targets":[{"type":"team"},{"type":"user"}]}' \
    "http://127.0.0.1:$port/audit_logs/actions/user.signed_in/schemas" >/dev/null
  one=$(wrk -t1 -c1 -d"${seconds}s" -s "$here/ingest.lua" "http://127.0.0.1:$port/audit_logs/events" |
    awk '/Requests\/sec/ {print $2}')
  many=$(wrk -t2 -c32 -d"${seconds}s" --latency -s "$here/ingest.lua" "http://127.0.0.1:$port/audit_logs/events" |
    awk '/Requests\/sec/ {rate=$2} / 99%/ {p99=$2} END {print rate " ev/s, p99 " p99}')
  echo "$binary: 1 client $one ev/s; 32 clients $many"
  kill "$server"; wait "$server" 2>/dev/null || true
  rm -rf "$data"
done
