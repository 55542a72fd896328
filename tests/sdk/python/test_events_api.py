"""The official WorkOS Python SDK against a running Vellum: WorkOS's Events API, not served.

`client.events.list_events` calls `GET /events`, the path of the legacy Audit Trail list. The
SDK always sends `events` (the event types, comma-joined) and no Audit Trail client does, so
Vellum answers a 404 saying it does not serve that API, which the SDK raises as NotFoundError,
instead of a legacy list it would misread as events.
"""

import os
import unittest

from workos import WorkOSClient
from workos._errors import NotFoundError

BASE_URL = os.environ["VELLUM_BASE_URL"]
API_KEY = os.environ["VELLUM_API_KEY"]


class EventsApi(unittest.TestCase):
    def test_list_events_raises_not_found(self):
        workos = WorkOSClient(api_key=API_KEY, base_url=BASE_URL, max_retries=0)
        for events in (["dsync.user.created", "dsync.user.updated"], []):
            with self.assertRaises(NotFoundError) as raised:
                workos.events.list_events(events=events, limit=5)
            self.assertEqual(raised.exception.code, "events_api_not_supported")
            self.assertIn("does not serve WorkOS's Events API", raised.exception.message)


if __name__ == "__main__":
    unittest.main()
