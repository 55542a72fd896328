"""The official WorkOS Python SDK against a running Vellum: audit logs.

Covers every audit-log method the SDK exposes except exports (test_exports.py): schemas, actions,
events (with and without `version` and idempotency keys), retention and the audit log
configuration, and the typed error each refusal surfaces as.

Run by the Rust test `sdk_python`, which starts the server and sets VELLUM_BASE_URL and
VELLUM_API_KEY. The SDK has no method to read events back, so the tests read what was stored
with `GET /audit_logs/events` over plain HTTP. Every test works in its own organization and its
own actions (suffixed with a random tag), so suites sharing one server do not collide.
"""

import json
import os
import unittest
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

from workos import WorkOSClient
from workos._errors import BadRequestError, ConflictError, NotFoundError, UnprocessableEntityError
from workos.audit_logs import RetentionPeriod, RetentionPeriodInDays
from workos.audit_logs.models import (
    AuditLogEvent,
    AuditLogEventActor,
    AuditLogEventContext,
    AuditLogEventTarget,
    AuditLogSchemaActorInput,
    AuditLogSchemaTargetInput,
)
from workos.common.models.update_audit_logs_retention_retention_period import UpdateAuditLogsRetentionRetentionPeriod

BASE_URL = os.environ["VELLUM_BASE_URL"]
API_KEY = os.environ["VELLUM_API_KEY"]
UNKNOWN_ORGANIZATION = "org_01EHWNCE74X7JSDV0X3SZ3KJNY"

DOCUMENT_METADATA = {"type": "object", "properties": {"sensitivity": {"type": "string"}}}
ACTOR_METADATA = {"type": "object", "properties": {"role": {"type": "string"}}}
EVENT_METADATA = {"type": "object", "properties": {"words": {"type": "number"}, "draft": {"type": "boolean"}}}


def client():
    return WorkOSClient(api_key=API_KEY, base_url=BASE_URL, max_retries=0)


def stored_events(organization_id, action):
    """The events stored for one organization and action, newest first (plain HTTP: the SDK has no method)."""
    query = urllib.parse.urlencode([("organization_id", organization_id), ("actions[]", action), ("limit", "100")])
    request = urllib.request.Request(
        f"{BASE_URL}/audit_logs/events?{query}",
        headers={"Authorization": f"Bearer {API_KEY}", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.load(response)
    assert body["object"] == "list", body
    assert body["list_metadata"]["after"] is None, "fewer than 100 events: one page"
    return body["data"]


def event(action, *, target_type="document", version=None, occurred_at=None, metadata=None, target_metadata=None, actor_metadata=None):
    return AuditLogEvent(
        action=action,
        occurred_at=occurred_at if occurred_at is not None else datetime.now(timezone.utc),
        actor=AuditLogEventActor(id="user_01", type="user", name="Jane Doe", metadata=actor_metadata or {"role": "admin"}),
        targets=[AuditLogEventTarget(id="doc_01", type=target_type, name="Q3 plan", metadata=target_metadata)],
        context=AuditLogEventContext(location="203.0.113.7", user_agent="Mozilla/5.0"),
        metadata=metadata,
        version=version,
    )


class AuditLogTestCase(unittest.TestCase):
    def setUp(self):
        self.workos = client()
        self.addCleanup(self.workos.close)
        self.tag = uuid.uuid4().hex[:10]
        self.organization = self.workos.organizations.create_organization(name=f"Audit {self.tag}")

    def action(self, name):
        return f"{name}.{self.tag}"

    def create_document_schema(self, action):
        """Version 1 of the schema the event tests use: document targets, typed metadata."""
        return self.workos.audit_logs.create_schema(
            action,
            targets=[AuditLogSchemaTargetInput(type="document", metadata=DOCUMENT_METADATA)],
            actor=AuditLogSchemaActorInput(metadata=ACTOR_METADATA),
            metadata=EVENT_METADATA,
        )


class Schemas(AuditLogTestCase):
    def test_create_schema_returns_each_new_version(self):
        action = self.action("document.updated")
        first = self.create_document_schema(action)
        self.assertEqual(first.object, "audit_log_schema")
        self.assertEqual(first.version, 1)
        self.assertEqual([t.type for t in first.targets], ["document"])
        self.assertEqual(first.targets[0].metadata, DOCUMENT_METADATA)
        self.assertEqual(first.actor.metadata, ACTOR_METADATA)
        self.assertEqual(first.metadata, EVENT_METADATA)
        self.assertIsNotNone(first.created_at.tzinfo)

        second = self.workos.audit_logs.create_schema(
            action, targets=[AuditLogSchemaTargetInput(type="document"), AuditLogSchemaTargetInput(type="folder")]
        )
        self.assertEqual(second.version, 2)
        self.assertEqual([t.type for t in second.targets], ["document", "folder"])
        self.assertIsNone(second.targets[0].metadata)
        self.assertIsNone(second.actor)
        self.assertIsNone(second.metadata)
        self.assertGreaterEqual(second.created_at, first.created_at)

        third = self.workos.audit_logs.create_schema(action, targets=[AuditLogSchemaTargetInput(type="folder")])
        self.assertEqual(third.version, 3)

        other = self.workos.audit_logs.create_schema(self.action("document.deleted"), targets=[AuditLogSchemaTargetInput(type="document")])
        self.assertEqual(other.version, 1, "versions are counted per action")

    def test_list_action_schemas_auto_paginates_newest_first(self):
        action = self.action("report.exported")
        for index in range(12):
            created = self.workos.audit_logs.create_schema(action, targets=[AuditLogSchemaTargetInput(type=f"report_{index}")])
            self.assertEqual(created.version, index + 1)

        first_page = self.workos.audit_logs.list_action_schemas(action, limit=5)
        self.assertEqual([s.version for s in first_page.data], [12, 11, 10, 9, 8])
        self.assertIsNotNone(first_page.list_metadata.after)
        self.assertTrue(first_page.has_more())

        versions = [s.version for s in self.workos.audit_logs.list_action_schemas(action, limit=5).auto_paging_iter()]
        self.assertEqual(versions, list(range(12, 0, -1)), "three pages of 5, 5 and 2, newest first")

        schemas = list(self.workos.audit_logs.list_action_schemas(action, limit=5, order="asc").auto_paging_iter())
        self.assertEqual([s.version for s in schemas], list(range(1, 13)))
        self.assertEqual([s.targets[0].type for s in schemas], [f"report_{index}" for index in range(12)])
        self.assertTrue(all(s.object == "audit_log_schema" for s in schemas))

    def test_list_actions_shows_each_action_with_its_latest_schema(self):
        names = [self.action(f"invoice.{verb}") for verb in ("created", "paid", "voided")]
        for name in names:
            self.workos.audit_logs.create_schema(name, targets=[AuditLogSchemaTargetInput(type="invoice")])
        latest = self.workos.audit_logs.create_schema(
            names[0], targets=[AuditLogSchemaTargetInput(type="invoice"), AuditLogSchemaTargetInput(type="customer")]
        )
        self.assertEqual(latest.version, 2)

        first_page = self.workos.audit_logs.list_actions(limit=2)
        self.assertEqual(len(first_page.data), 2)
        self.assertIsNotNone(first_page.list_metadata.after)

        listed = list(self.workos.audit_logs.list_actions(limit=2).auto_paging_iter())
        all_names = [a.name for a in listed]
        self.assertEqual(len(all_names), len(set(all_names)), "no action appears twice")
        ours = [a for a in listed if a.name in names]
        self.assertEqual([a.name for a in ours], list(reversed(names)), "newest action first")
        by_name = {a.name: a for a in ours}
        self.assertEqual(by_name[names[0]].object, "audit_log_action")
        self.assertEqual(by_name[names[0]].schema.version, 2)
        self.assertEqual([t.type for t in by_name[names[0]].schema.targets], ["invoice", "customer"])
        self.assertEqual(by_name[names[1]].schema.version, 1)
        self.assertGreaterEqual(by_name[names[0]].updated_at, by_name[names[0]].created_at)

        ascending = [a.name for a in self.workos.audit_logs.list_actions(limit=2, order="asc").auto_paging_iter() if a.name in names]
        self.assertEqual(ascending, names)

    def test_invalid_schemas_raise_unprocessable_entity_and_store_nothing(self):
        action = self.action("broken.schema")
        with self.assertRaises(UnprocessableEntityError) as raised:
            self.workos.audit_logs.create_schema(action, targets=[])
        self.assertEqual(raised.exception.status_code, 422)
        self.assertEqual(raised.exception.code, "validation_failed")
        self.assertEqual(raised.exception.errors[0]["field"], "targets")

        with self.assertRaises(UnprocessableEntityError) as raised:
            self.workos.audit_logs.create_schema(action, targets=[AuditLogSchemaTargetInput(type="document")], metadata={"type": "string"})
        self.assertEqual(raised.exception.errors[0]["field"], "metadata")

        with self.assertRaises(UnprocessableEntityError) as raised:
            self.workos.audit_logs.create_schema(
                action,
                targets=[AuditLogSchemaTargetInput(type="document", metadata={"type": "object", "properties": {"k": {"type": "nope"}}})],
            )
        self.assertEqual(raised.exception.errors[0]["field"], "targets.0.metadata")

        with self.assertRaises(NotFoundError) as raised:
            self.workos.audit_logs.list_action_schemas(action)
        self.assertEqual(raised.exception.status_code, 404)
        self.assertNotIn(action, [a.name for a in self.workos.audit_logs.list_actions(limit=100).auto_paging_iter()])


class Events(AuditLogTestCase):
    def test_an_event_is_validated_against_the_latest_or_the_named_version(self):
        action = self.action("document.moved")
        self.create_document_schema(action)
        self.workos.audit_logs.create_schema(action, targets=[AuditLogSchemaTargetInput(type="folder")])

        created = self.workos.audit_logs.create_event(organization_id=self.organization.id, event=event(action, target_type="folder"))
        self.assertTrue(created.success)
        self.workos.audit_logs.create_event(
            organization_id=self.organization.id,
            event=event(
                action,
                target_type="document",
                version=1,
                occurred_at=datetime.now(timezone.utc) - timedelta(minutes=1),
                metadata={"words": 1200, "draft": False},
                target_metadata={"sensitivity": "internal"},
            ),
        )

        with self.assertRaises(BadRequestError) as raised:
            self.workos.audit_logs.create_event(organization_id=self.organization.id, event=event(action, target_type="document"))
        self.assertEqual(raised.exception.status_code, 400)
        self.assertEqual(raised.exception.code, "invalid_audit_log_event")
        self.assertEqual(raised.exception.errors[0]["instancePath"], "/targets/0/type")
        with self.assertRaises(BadRequestError) as raised:
            self.workos.audit_logs.create_event(organization_id=self.organization.id, event=event(action, target_type="folder", version=1))
        self.assertEqual(raised.exception.errors[0]["instancePath"], "/targets/0/type")

        stored = stored_events(self.organization.id, action)
        self.assertEqual([(e["version"], e["targets"][0]["type"]) for e in stored], [(2, "folder"), (1, "document")])
        latest, named = stored
        self.assertEqual(latest["object"], "audit_log_event")
        self.assertTrue(latest["id"].startswith("audit_log_event_"))
        self.assertEqual(latest["organization_id"], self.organization.id)
        self.assertEqual(latest["actor"], {"id": "user_01", "type": "user", "name": "Jane Doe", "metadata": {"role": "admin"}})
        self.assertEqual(latest["context"], {"location": "203.0.113.7", "user_agent": "Mozilla/5.0"})
        self.assertNotIn("metadata", latest)
        self.assertEqual(named["metadata"], {"words": 1200, "draft": False})
        self.assertEqual(named["targets"], [{"id": "doc_01", "type": "document", "name": "Q3 plan", "metadata": {"sensitivity": "internal"}}])

    def test_occurred_at_datetimes_are_sent_as_utc(self):
        action = self.action("user.signed_in")
        self.create_document_schema(action)
        cases = [
            # A naive datetime is taken as UTC; the SDK keeps milliseconds.
            (datetime(2024, 3, 1, 12, 0, 0, 123456), "2024-03-01T12:00:00.123Z"),
            # An aware one in another zone is converted to UTC.
            (datetime(2024, 3, 2, 9, 15, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))), "2024-03-02T03:45:00.000Z"),
            (datetime(2024, 3, 2, 20, 0, 0, 500000, tzinfo=timezone(timedelta(hours=-8))), "2024-03-03T04:00:00.500Z"),
            (datetime(2024, 3, 3, 23, 59, 59, 999000, tzinfo=timezone.utc), "2024-03-03T23:59:59.999Z"),
        ]
        for occurred_at, _ in cases:
            response = self.workos.audit_logs.create_event(
                organization_id=self.organization.id, event=event(action, occurred_at=occurred_at)
            )
            self.assertTrue(response.success)
        stored = [e["occurred_at"] for e in stored_events(self.organization.id, action)]
        self.assertEqual(stored, sorted((expected for _, expected in cases), reverse=True), "newest occurred_at first")
        for entry in stored_events(self.organization.id, action):
            self.assertEqual(entry["version"], 1)
            self.assertTrue(entry["received_at"].endswith("Z"))

    def test_an_idempotency_key_stores_the_event_once(self):
        action = self.action("document.shared")
        self.create_document_schema(action)
        key = f"idem-{uuid.uuid4()}"
        the_event = event(action, metadata={"words": 10})

        first = self.workos.audit_logs.create_event(organization_id=self.organization.id, event=the_event, idempotency_key=key)
        replay = self.workos.audit_logs.create_event(organization_id=self.organization.id, event=the_event, idempotency_key=key)
        self.assertTrue(first.success)
        self.assertTrue(replay.success)
        self.assertEqual(len(stored_events(self.organization.id, action)), 1, "the replay stored nothing new")

        with self.assertRaises(ConflictError) as raised:
            self.workos.audit_logs.create_event(
                organization_id=self.organization.id, event=event(action, metadata={"words": 11}), idempotency_key=key
            )
        self.assertEqual(raised.exception.status_code, 409)
        self.assertEqual(raised.exception.code, "idempotency_key_reused")
        self.assertEqual(len(stored_events(self.organization.id, action)), 1)

        # Without a key of the caller's, the SDK sends a fresh one each time: each call stores.
        self.workos.audit_logs.create_event(organization_id=self.organization.id, event=the_event)
        self.workos.audit_logs.create_event(organization_id=self.organization.id, event=the_event)
        self.assertEqual(len(stored_events(self.organization.id, action)), 3)

    def test_refused_events_raise_the_typed_errors_and_store_nothing(self):
        action = self.action("document.viewed")
        self.create_document_schema(action)
        organization = self.organization.id

        def bad_request(the_event, instance_path):
            with self.assertRaises(BadRequestError) as raised:
                self.workos.audit_logs.create_event(organization_id=organization, event=the_event)
            self.assertEqual(raised.exception.status_code, 400)
            self.assertEqual(raised.exception.code, "invalid_audit_log_event")
            self.assertIn(instance_path, [error["instancePath"] for error in raised.exception.errors], raised.exception.errors)

        bad_request(event(self.action("never.defined")), "/action")
        bad_request(event(action, version=7), "/version")
        bad_request(event(action, target_type="spreadsheet"), "/targets/0/type")
        bad_request(event(action, metadata={"words": "many"}), "/metadata/words")
        bad_request(event(action, target_metadata={"sensitivity": 3}), "/targets/0/metadata/sensitivity")
        bad_request(event(action, actor_metadata={"role": True}), "/actor/metadata/role")

        with self.assertRaises(UnprocessableEntityError) as raised:
            self.workos.audit_logs.create_event(organization_id=organization, event=event(action, metadata={"nested": {"a": 1}}))
        self.assertEqual(raised.exception.code, "validation_failed")
        self.assertEqual(raised.exception.errors[0]["field"], "event.metadata.nested")
        with self.assertRaises(UnprocessableEntityError) as raised:
            self.workos.audit_logs.create_event(
                organization_id=organization, event=event(action, metadata={f"key_{index}": index for index in range(51)})
            )
        self.assertEqual(raised.exception.errors[0]["field"], "event.metadata")

        with self.assertRaises(NotFoundError) as raised:
            self.workos.audit_logs.create_event(organization_id=UNKNOWN_ORGANIZATION, event=event(action))
        self.assertEqual(raised.exception.status_code, 404)
        self.assertIn(UNKNOWN_ORGANIZATION, raised.exception.message)

        self.assertEqual(stored_events(organization, action), [])
        self.assertEqual(stored_events(organization, self.action("never.defined")), [])


class Retention(AuditLogTestCase):
    def test_get_and_update_retention_and_the_configuration(self):
        organization = self.organization.id
        self.assertIsNone(self.workos.audit_logs.get_organization_audit_logs_retention(organization).retention_period_in_days)
        # The configuration answers the retention in force: the server's default (365 days) until
        # the organization sets its own. The SDK types it as an int, never None.
        configuration = self.workos.organizations.get_audit_log_configuration(organization)
        self.assertEqual(configuration.retention_period_in_days, 365)
        self.assertIsNone(configuration.log_stream)

        updated = self.workos.audit_logs.update_organization_audit_logs_retention(organization, retention=RetentionPeriod(retention_period="1_YEAR"))
        self.assertEqual(updated.retention_period_in_days, 365)
        self.assertEqual(self.workos.audit_logs.get_organization_audit_logs_retention(organization).retention_period_in_days, 365)

        updated = self.workos.audit_logs.update_organization_audit_logs_retention(
            organization, retention=RetentionPeriod(retention_period=UpdateAuditLogsRetentionRetentionPeriod.VALUE_3_MONTHS)
        )
        self.assertEqual(updated.retention_period_in_days, 90)

        updated = self.workos.audit_logs.update_organization_audit_logs_retention(organization, retention=RetentionPeriodInDays(retention_period_in_days=30))
        self.assertEqual(updated.retention_period_in_days, 30)

        configuration = self.workos.organizations.get_audit_log_configuration(organization)
        self.assertEqual(configuration.organization_id, organization)
        self.assertEqual(configuration.retention_period_in_days, 30)
        self.assertEqual(configuration.state, "active")
        self.assertIsNone(configuration.log_stream)

    def test_invalid_retention_and_unknown_organizations_raise_the_typed_errors(self):
        organization = self.organization.id
        with self.assertRaises(UnprocessableEntityError) as raised:
            self.workos.audit_logs.update_organization_audit_logs_retention(organization, retention=RetentionPeriod(retention_period="13_YEARS"))
        self.assertEqual(raised.exception.errors[0]["field"], "retention_period")
        with self.assertRaises(UnprocessableEntityError) as raised:
            self.workos.audit_logs.update_organization_audit_logs_retention(organization, retention=RetentionPeriodInDays(retention_period_in_days=31))
        self.assertEqual(raised.exception.errors[0]["field"], "retention_period_in_days")
        self.assertIsNone(self.workos.audit_logs.get_organization_audit_logs_retention(organization).retention_period_in_days)

        with self.assertRaises(NotFoundError):
            self.workos.audit_logs.get_organization_audit_logs_retention(UNKNOWN_ORGANIZATION)
        with self.assertRaises(NotFoundError):
            self.workos.audit_logs.update_organization_audit_logs_retention(UNKNOWN_ORGANIZATION, retention=RetentionPeriod(retention_period="1_YEAR"))
        with self.assertRaises(NotFoundError):
            self.workos.organizations.get_audit_log_configuration(UNKNOWN_ORGANIZATION)


if __name__ == "__main__":
    unittest.main()
