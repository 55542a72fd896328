"""The official WorkOS Python SDK against a running Vellum: exports.

`create_export` with every filter, `get_export` polled until the export is ready, and the CSV
behind its `url` downloaded and checked to hold exactly the matching events. Run by the Rust
test `sdk_python` (see test_audit_logs.py for the environment).
"""

import csv
import io
import time
import unittest
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

from workos import WorkOSClient
from workos._errors import BadRequestError, NotFoundError
from workos.audit_logs.models import (
    AuditLogEvent,
    AuditLogEventActor,
    AuditLogEventContext,
    AuditLogEventTarget,
    AuditLogSchemaTargetInput,
)

from test_audit_logs import API_KEY, BASE_URL, UNKNOWN_ORGANIZATION, stored_events

START = datetime(2026, 3, 1, tzinfo=timezone.utc)


class Exports(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workos = WorkOSClient(api_key=API_KEY, base_url=BASE_URL, max_retries=0)
        cls.tag = uuid.uuid4().hex[:10]
        cls.organization = cls.workos.organizations.create_organization(name=f"Exports {cls.tag}")
        cls.signed_in = f"user.signed_in.{cls.tag}"
        cls.viewed = f"doc.viewed.{cls.tag}"
        cls.workos.audit_logs.create_schema(cls.signed_in, targets=[AuditLogSchemaTargetInput(type="team")])
        cls.workos.audit_logs.create_schema(
            cls.viewed, targets=[AuditLogSchemaTargetInput(type="doc"), AuditLogSchemaTargetInput(type="team")]
        )
        # (action, actor id, actor name, target types, day)
        cls.specs = [
            (cls.signed_in, "user_a", "Ada", ["team"], 0),
            (cls.viewed, "user_b", "Bea", ["doc", "team"], 1),
            (cls.signed_in, "user_b", "Bea", ["team"], 2),
            (cls.viewed, "user_c", "=Cy", ["doc"], 3),
        ]
        for action, actor_id, actor_name, target_types, day in cls.specs:
            cls.workos.audit_logs.create_event(
                organization_id=cls.organization.id,
                event=AuditLogEvent(
                    action=action,
                    occurred_at=START + timedelta(days=day),
                    actor=AuditLogEventActor(id=actor_id, type="user", name=actor_name),
                    targets=[AuditLogEventTarget(id=f"{kind}_{day}", type=kind) for kind in target_types],
                    context=AuditLogEventContext(location="203.0.113.7"),
                ),
            )
        # Event ids, by day (the SDK cannot read events back; plain HTTP can).
        by_time = {}
        for action in (cls.signed_in, cls.viewed):
            for stored in stored_events(cls.organization.id, action):
                by_time[stored["occurred_at"]] = stored["id"]
        cls.ids = [by_time[key] for key in sorted(by_time)]
        assert len(cls.ids) == 4, by_time

    @classmethod
    def tearDownClass(cls):
        cls.workos.close()

    def export(self, **filters):
        filters.setdefault("range_start", START)
        filters.setdefault("range_end", START + timedelta(days=30))
        created = self.workos.audit_logs.create_export(organization_id=self.organization.id, **filters)
        self.assertEqual(created.object, "audit_log_export")
        self.assertTrue(created.id.startswith("audit_log_export_"))
        self.assertIsNone(created.url)
        deadline = time.monotonic() + 60
        export = created
        while export.state.value == "pending":
            self.assertLess(time.monotonic(), deadline, "the export stayed pending")
            time.sleep(0.05)
            export = self.workos.audit_logs.get_export(created.id)
        self.assertEqual(export.state.value, "ready")
        self.assertEqual(export.id, created.id)
        with urllib.request.urlopen(export.url, timeout=10) as response:
            rows = list(csv.DictReader(io.StringIO(response.read().decode("utf-8"))))
        return [row["id"] for row in rows], rows

    def expect(self, indexes, **filters):
        exported, _ = self.export(**filters)
        self.assertEqual(exported, [self.ids[index] for index in indexes], filters)

    def test_every_filter_selects_exactly_the_matching_events(self):
        self.expect([0, 1, 2, 3])
        self.expect([1, 2], range_start=START + timedelta(days=1), range_end=START + timedelta(days=3))
        self.expect([0, 2], actions=[self.signed_in])
        self.expect([1, 2], actors=["Bea"])
        self.expect([0, 3], actor_names=["Ada", "=Cy"])
        self.expect([1, 2, 3], actor_ids=["user_b", "user_c"])
        self.expect([1, 3], targets=["doc"])
        self.expect([1], actions=[self.viewed], actor_ids=["user_b"], targets=["team"])
        self.expect([0, 1], range_start="2026-03-01T00:00:00Z", range_end="2026-03-02T12:00:00.000Z")

    def test_the_csv_carries_each_event_and_neutralises_formulas(self):
        _, rows = self.export(actor_ids=["user_c"])
        self.assertEqual(len(rows), 1)
        row = rows[0]
        self.assertEqual(row["organization_id"], self.organization.id)
        self.assertEqual(row["action"], self.viewed)
        self.assertEqual(row["occurred_at"], "2026-03-04T00:00:00.000Z")
        self.assertEqual(row["actor_name"], "'=Cy")
        self.assertEqual((row["target_id_1"], row["target_type_1"]), ("doc_3", "doc"))

    def test_refusals_raise_the_typed_errors(self):
        with self.assertRaises(BadRequestError) as raised:
            self.workos.audit_logs.create_export(
                organization_id=self.organization.id, range_start=START + timedelta(days=2), range_end=START
            )
        self.assertEqual(raised.exception.code, "invalid_audit_log_export_range_date")
        with self.assertRaises(BadRequestError) as raised:
            self.workos.audit_logs.create_export(
                organization_id=self.organization.id, range_start=START, range_end=START + timedelta(days=30),
                actions=["nothing.matches"],
            )
        self.assertIn("No audit log events found", str(raised.exception))
        with self.assertRaises(NotFoundError):
            self.workos.audit_logs.create_export(
                organization_id=UNKNOWN_ORGANIZATION, range_start=START, range_end=START + timedelta(days=30)
            )
        with self.assertRaises(NotFoundError):
            self.workos.audit_logs.get_export("audit_log_export_01EHWNCE74X7JSDV0X3SZ3KJNY")
