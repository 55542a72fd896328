"""Fills an organization with synthetic events through the batch endpoint (4 concurrent clients).

    python3 bench/fill.py BASE_URL API_KEY ORGANIZATION_ID EVENTS
"""
import concurrent.futures
import json
import sys
import time
import urllib.request

base, key, organization, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def batch(start):
    events = [
        {
            "action": "bulk.event",
            "occurred_at": f"2026-05-01T{(i // 3_600_000) % 24:02d}:{(i // 60_000) % 60:02d}:{(i // 1000) % 60:02d}.{i % 1000:03d}Z",
            "actor": {"id": f"user_{i % 977}", "type": "user", "name": f"User {i % 977}"},
            "targets": [{"id": f"doc_{i}", "type": "doc", "name": f"Document {i}"}],
            "context": {"location": "192.0.2.1", "user_agent": "Mozilla/5.0 (bench)"},
            "metadata": {"n": i, "note": "synthetic event for the export benchmark", "ok": True},
        }
        for i in range(start, min(start + 1000, total))
    ]
    request = urllib.request.Request(
        f"{base}/audit_logs/events/batch",
        data=json.dumps({"organization_id": organization, "events": events}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        assert json.load(response)["succeeded"] == len(events)


started = time.time()
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    list(pool.map(batch, range(0, total, 1000)))
print(f"filled {total} events in {time.time() - started:.1f} s", file=sys.stderr)
