"""The last official WorkOS Python SDK with Audit Trail (workos 1.26.0) against a running Vellum.

Drives `workos.client.audit_trail.create_event` (with and without an idempotency key) and
`get_events` with every filter it has and with cursor paging in both directions, pointed at the
server through the SDK's base URL setting (`workos.base_api_url`). Run by the Rust test
`sdk_python`, which starts the server and sets VELLUM_BASE_URL and VELLUM_API_KEY.

`GET /events` lists every group's events, so each test writes to groups of its own (suffixed
with a random tag) and filters on them.
"""

import os
import unittest
import uuid

import workos
from workos.exceptions import AuthenticationException, BadRequestException
from workos.utils.pagination_order import Order

workos.base_api_url = os.environ["VELLUM_BASE_URL"].rstrip("/") + "/"
workos.api_key = os.environ["VELLUM_API_KEY"]

from workos import client  # noqa: E402  (reads the settings above on first use)


def tag():
    return uuid.uuid4().hex[:10]


def event(group, **fields):
    body = {
        "group": group,
        "location": "192.0.2.8",
        "action": "document.updated",
        "action_type": "U",
        "actor_name": "jane@foo-corp.com",
        "actor_id": "user_1",
        "target_name": "Security Audit 2018",
        "target_id": "document_39127",
        "occurred_at": "2020-08-14T05:04:17.957Z",
    }
    body.update(fields)
    return body


def ids(events):
    return [each.id for each in events]


class CreateEvent(unittest.TestCase):
    def test_create_event_returns_true_and_the_event_reads_back_flat(self):
        group = "create-" + tag() + ".example"
        created = client.audit_trail.create_event(
            event(group, metadata={"description": "Changed the title", "x_request_id": ""}, latitude="37.77")
        )
        self.assertIs(created, True)
        events, before, after = client.audit_trail.get_events(group=group)
        self.assertEqual((len(events), before, after), (1, None, None))
        stored = events[0]
        self.assertTrue(stored.id.startswith("evt_"), stored.id)
        self.assertEqual(stored.group, group)
        self.assertEqual(stored.location, "192.0.2.8")
        self.assertEqual(stored.latitude, "37.77")
        self.assertIsNone(stored.longitude)
        self.assertEqual(stored.type, "U")
        self.assertEqual(stored.actor_name, "jane@foo-corp.com")
        self.assertEqual(stored.actor_id, "user_1")
        self.assertEqual(stored.target_name, "Security Audit 2018")
        self.assertEqual(stored.target_id, "document_39127")
        self.assertEqual(stored.metadata, {"description": "Changed the title", "x_request_id": ""})
        self.assertEqual(stored.occurred_at, "2020-08-14T05:04:17.957Z")
        self.assertEqual(stored.action.name, "document.updated")
        self.assertTrue(stored.action.id.startswith("evt_action_"), stored.action.id)
        self.assertEqual(stored.to_dict()["action"]["name"], "document.updated")

    def test_an_idempotency_key_stores_the_event_once(self):
        group = "idem-" + tag() + ".example"
        key = str(uuid.uuid4())
        self.assertIs(client.audit_trail.create_event(event(group), idempotency_key=key), True)
        self.assertIs(client.audit_trail.create_event(event(group), idempotency_key=key), True)
        events, _, _ = client.audit_trail.get_events(group=group)
        self.assertEqual(len(events), 1)
        with self.assertRaises(BadRequestException) as raised:
            client.audit_trail.create_event(event(group, actor_id="user_2"), idempotency_key=key)
        self.assertEqual(raised.exception.response.status_code, 409)
        events, _, _ = client.audit_trail.get_events(group=group)
        self.assertEqual(len(events), 1)
        # Without a key, the same event is a second event.
        client.audit_trail.create_event(event(group))
        events, _, _ = client.audit_trail.get_events(group=group)
        self.assertEqual(len(events), 2)

    def test_invalid_events_raise_with_the_legacy_error_shape(self):
        group = "invalid-" + tag() + ".example"
        body = event(group, action_type="X", occurred_at="yesterday")
        del body["target_id"]
        with self.assertRaises(BadRequestException) as raised:
            client.audit_trail.create_event(body)
        error = raised.exception
        self.assertEqual(error.response.status_code, 422)
        self.assertEqual(error.message, "Validation failed")
        self.assertEqual(
            error.errors,
            [
                {"field": "action_type", "code": "action_type must be one of C, R, U or D"},
                {"field": "target_id", "code": "target_id must be a string"},
                {"field": "occurred_at", "code": "occurred_at must be an ISO 8601 date string"},
            ],
        )
        with self.assertRaises(BadRequestException) as raised:
            client.audit_trail.create_event(event(group, metadata={"k" * 41: "v"}))
        self.assertEqual(raised.exception.errors[0]["field"], "metadata." + "k" * 41)
        # The SDK itself refuses more than 50 metadata keys before sending.
        with self.assertRaises(ValueError):
            client.audit_trail.create_event(event(group, metadata={"k%d" % n: "v" for n in range(51)}))
        events, _, _ = client.audit_trail.get_events(group=group)
        self.assertEqual(events, [], "nothing invalid was stored")

    def test_a_wrong_api_key_is_an_authentication_error(self):
        original = workos.api_key
        workos.api_key = "sk_test_not_a_key"
        try:
            with self.assertRaises(AuthenticationException):
                client.audit_trail.get_events()
        finally:
            workos.api_key = original


class GetEvents(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        run = tag()
        cls.acme = "acme-" + run + ".example"
        cls.globex = "globex-" + run + ".example"
        rows = [
            (cls.acme, "user.login", "R", "Jane", "user_1", "Console", "app_1", "2021-01-01T00:00:01.000Z"),
            (cls.acme, "document.created", "C", "Jane", "user_1", "Plan", "doc_1", "2021-01-01T00:00:02.000Z"),
            (cls.globex, "document.updated", "U", "Bob, Jr.", "user_2", "Plan", "doc_2", "2021-01-01T00:00:03.000Z"),
            (cls.acme, "document.deleted", "D", "Bob, Jr.", "user_2", "Budget", "doc_3", "2021-01-01T00:00:04.000Z"),
            (cls.globex, "user.login", "r", "Ann", "user_3", "Console", "app_1", "2021-01-01T00:00:05.000Z"),
        ]
        for group, action, action_type, actor_name, actor_id, target_name, target_id, occurred_at in rows:
            client.audit_trail.create_event(
                event(
                    group,
                    action=action,
                    action_type=action_type,
                    actor_name=actor_name,
                    actor_id=actor_id,
                    target_name=target_name,
                    target_id=target_id,
                    occurred_at=occurred_at,
                    metadata={"note": "row %s" % occurred_at[-6:-5]},
                )
            )
        cls.groups = [cls.acme, cls.globex]
        events, _, _ = client.audit_trail.get_events(group=cls.groups, limit=100)
        # Newest first: index 0 is the event at :05.
        cls.newest_first = ids(events)
        cls.by_second = {int(each.occurred_at[17:19]): each.id for each in events}
        assert len(cls.newest_first) == 5, cls.newest_first

    def seconds(self, **filters):
        events, _, _ = client.audit_trail.get_events(group=filters.pop("group", self.groups), limit=100, **filters)
        return [int(each.occurred_at[17:19]) for each in events]

    def test_every_list_filter_takes_one_value_or_several(self):
        self.assertEqual(self.seconds(group=self.acme), [4, 2, 1])
        self.assertEqual(self.seconds(group=[self.globex]), [5, 3])
        self.assertEqual(self.seconds(action="user.login"), [5, 1])
        self.assertEqual(self.seconds(action=["document.created", "document.deleted"]), [4, 2])
        self.assertEqual(self.seconds(action_type="R"), [5, 1], "the CRUD letter ignores case")
        self.assertEqual(self.seconds(action_type=["c", "D"]), [4, 2])
        self.assertEqual(self.seconds(actor_name="Bob, Jr."), [4, 3], "a comma is part of the value")
        self.assertEqual(self.seconds(actor_name=["Ann", "Jane"]), [5, 2, 1])
        self.assertEqual(self.seconds(actor_id="user_2"), [4, 3])
        self.assertEqual(self.seconds(actor_id=["user_1", "user_3"]), [5, 2, 1])
        self.assertEqual(self.seconds(target_name="Plan"), [3, 2])
        self.assertEqual(self.seconds(target_name=["Budget", "Console"]), [5, 4, 1])
        self.assertEqual(self.seconds(target_id="app_1"), [5, 1])
        self.assertEqual(self.seconds(target_id=["doc_1", "doc_2"]), [3, 2])

    def test_filters_combine(self):
        self.assertEqual(self.seconds(group=self.acme, actor_id="user_2"), [4])
        self.assertEqual(self.seconds(action="user.login", target_id="app_1", actor_name="Jane"), [1])
        self.assertEqual(
            self.seconds(action_type=["C", "U", "D"], occurred_at_gte="2021-01-01T00:00:03.000Z"), [4, 3]
        )
        self.assertEqual(self.seconds(group=self.globex, action_type="C"), [])

    def test_time_filters(self):
        self.assertEqual(self.seconds(occurred_at="2021-01-01T00:00:03.000Z"), [3])
        self.assertEqual(self.seconds(occurred_at_gt="2021-01-01T00:00:03.000Z"), [5, 4])
        self.assertEqual(self.seconds(occurred_at_gte="2021-01-01T00:00:03.000Z"), [5, 4, 3])
        self.assertEqual(self.seconds(occurred_at_lt="2021-01-01T00:00:03.000Z"), [2, 1])
        self.assertEqual(self.seconds(occurred_at_lte="2021-01-01T00:00:03.000Z"), [3, 2, 1])
        self.assertEqual(
            self.seconds(occurred_at_gt="2021-01-01T00:00:01.000Z", occurred_at_lt="2021-01-01T00:00:04.000Z"),
            [3, 2],
        )
        # The SDK sends occurred_at alone when given, dropping the range.
        self.assertEqual(
            self.seconds(occurred_at="2021-01-01T00:00:02.000Z", occurred_at_gte="2021-01-01T00:00:04.000Z"), [2]
        )

    def test_keyword_search(self):
        self.assertEqual(self.seconds(search="budget"), [4], "target names, ignoring case")
        self.assertEqual(self.seconds(search="row 3"), [3], "metadata values")
        self.assertEqual(self.seconds(search="document."), [4, 3, 2], "actions")
        self.assertEqual(self.seconds(search="globex-"), [5, 3], "groups")
        self.assertEqual(self.seconds(search="no such text"), [])

    def test_order_and_cursor_paging_both_ways(self):
        page, before, after = client.audit_trail.get_events(group=self.groups, limit=2)
        self.assertEqual(ids(page), self.newest_first[:2])
        self.assertIsNone(before)
        walked = ids(page)
        while after:
            page, before, after = client.audit_trail.get_events(group=self.groups, limit=2, after=after)
            walked += ids(page)
        self.assertEqual(walked, self.newest_first)
        # Back from the last page with `before`.
        back, before, _ = client.audit_trail.get_events(group=self.groups, limit=2, before=self.newest_first[3])
        self.assertEqual(ids(back), self.newest_first[1:3])
        self.assertIsNotNone(before)
        back, before, _ = client.audit_trail.get_events(group=self.groups, limit=2, before=before)
        self.assertEqual(ids(back), self.newest_first[:1])
        self.assertIsNone(before)

        ascending, _, after = client.audit_trail.get_events(group=self.groups, limit=3, order="asc")
        self.assertEqual(ids(ascending), list(reversed(self.newest_first))[:3])
        rest, _, after = client.audit_trail.get_events(group=self.groups, limit=3, order="asc", after=after)
        self.assertEqual(ids(rest), list(reversed(self.newest_first))[3:])
        self.assertIsNone(after)
        # The SDK's own Order enum is sent as its text ("Order.Asc") and understood.
        enum_page, _, _ = client.audit_trail.get_events(group=self.groups, limit=100, order=Order.Asc)
        self.assertEqual(ids(enum_page), list(reversed(self.newest_first)))
        descending, _, _ = client.audit_trail.get_events(group=self.groups, limit=100, order="desc")
        self.assertEqual(ids(descending), self.newest_first)

    def test_a_bad_cursor_or_limit_is_a_validation_error(self):
        for arguments in ({"after": "evt_not_an_id"}, {"limit": 0}, {"limit": 101}):
            with self.assertRaises(BadRequestException) as raised:
                client.audit_trail.get_events(group=self.groups, **arguments)
            self.assertEqual(raised.exception.response.status_code, 422, arguments)
            self.assertTrue(raised.exception.errors[0]["code"], arguments)


if __name__ == "__main__":
    unittest.main()
