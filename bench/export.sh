#!/usr/bin/env bash
# Measures exports on a store of EVENTS events (default 1,000,000) of one organization:
#
#   bench/export.sh [BINARY] [EVENTS]      e.g. bench/export.sh target/release/vellum 1000000
#
# Reports, from the same run and the same store:
# - the ceiling: reading the same rows straight from SQLite in export order (Python's sqlite3,
#   every column, no encoding), rows/s;
# - CSV and NDJSON exports: rows/s (the server's own timing, request to ready), and the server's
#   resident memory before and at its peak while exporting;
# - downloading the CSV through the signed link, MB/s;
# - `vellum verify export` on the NDJSON file, events/s.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
binary="${1:-$here/../target/release/vellum}"
events="${2:-1000000}"
key=sk_bench_0123456789abcdef0123
port=18190
data="$(mktemp -d)"
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT
start_server() {
  VELLUM_API_KEY="$key" VELLUM_DATA_DIR="$data" "$binary" serve --listen "127.0.0.1:$port" --export-workers 1 \
    >>"$data/serve.out" 2>>"$data/serve.log" &
  server=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && return; sleep 0.1; done
  echo "error: the server did not start" >&2; exit 1
}
auth=(-H "Authorization: Bearer $key" -H "Content-Type: application/json")
start_server
organization=$(curl -sf "${auth[@]}" -d '{"name":"Bench"}' "http://127.0.0.1:$port/organizations" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
curl -sf "${auth[@]}" -d '{"targets":[{"type":"doc"}]}' "http://127.0.0.1:$port/audit_logs/actions/bulk.event/schemas" >/dev/null
python3 "$here/fill.py" "http://127.0.0.1:$port" "$key" "$organization" "$events"
kill "$server"; wait "$server" 2>/dev/null || true

python3 - "$data/vellum.sqlite3" <<'PY'
import sqlite3, sys, time
connection = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
started = time.time()
rows = 0
for row in connection.execute(
    "select e.id, e.log_index, e.occurred_at, e.received_at, e.action, e.schema_version, e.payload "
    "from events e order by e.organization_seq, e.occurred_at, e.seq"):
    rows += 1
seconds = time.time() - started
print(f"ceiling: SQLite read of {rows} rows in export order: {rows / seconds:,.0f} rows/s")
PY

start_server
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
export_once() {
  local format="$1" idle peak id state
  idle=$(rss); peak=$idle
  id=$(curl -sf "${auth[@]}" -d "{\"organization_id\":\"$organization\",\"range_start\":\"2000-01-01T00:00:00Z\",\"range_end\":\"2100-01-01T00:00:00Z\",\"format\":\"$format\"}" \
    "http://127.0.0.1:$port/audit_logs/exports" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
  while :; do
    now=$(rss); [ "$now" -gt "$peak" ] && peak=$now
    state=$(curl -sf "${auth[@]}" "http://127.0.0.1:$port/audit_logs/exports/$id" | python3 -c 'import json, sys; e = json.load(sys.stdin); print(e["state"])')
    [ "$state" = pending ] || break
    sleep 0.1
  done
  [ "$state" = ready ] || { echo "error: export $id ended $state" >&2; exit 1; }
  rate=$(grep "export ready" "$data/serve.log" | grep "$id" | sed -E 's/.*rows_per_second=([0-9]+).*/\1/')
  echo "$format export: $rate rows/s; resident $((idle / 1024)) MB before, $((peak / 1024)) MB peak"
  curl -sf "${auth[@]}" "http://127.0.0.1:$port/audit_logs/exports/$id" | python3 -c 'import json, sys; print(json.load(sys.stdin)["url"])' > "$data/url"
}
export_once csv
curl -sf -o /dev/null -w 'CSV download: %{size_download} bytes at %{speed_download} bytes/s\n' "$(cat "$data/url")"
export_once ndjson
curl -sf -o "$data/export.ndjson" "$(cat "$data/url")"
public_key=$(curl -sf "${auth[@]}" "http://127.0.0.1:$port/audit_logs/log/public_key" | python3 -c 'import json, sys; print(json.load(sys.stdin)["verifier_key"])')
started=$(date +%s.%N)
"$binary" verify export "$data/export.ndjson" --public-key "$public_key" >/dev/null
python3 -c "import sys; s = float(sys.argv[2]) - float(sys.argv[1]); print(f'verify export: {int(sys.argv[3]) / s:,.0f} events/s ({s:.1f} s)')" \
  "$started" "$(date +%s.%N)" "$events"
