"""The official WorkOS Python SDK against a running Vellum: Admin Portal links.

Run by the Rust test `sdk_python`. Links are generated and revoked through the SDK exactly as an
application does; opening a link is what the admin's browser does, so it is plain HTTP here.
"""

import http.client
import os
import unittest
import urllib.parse
import uuid

from workos import WorkOSClient
from workos._errors import NotFoundError, UnprocessableEntityError

BASE_URL = os.environ["VELLUM_BASE_URL"]
API_KEY = os.environ["VELLUM_API_KEY"]


def client():
    return WorkOSClient(api_key=API_KEY, base_url=BASE_URL, max_retries=0)


def browser_get(url, cookie=None):
    """A GET without following redirects: (status, headers)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Cookie": cookie} if cookie else {}
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, response.headers


def open_link(link):
    """Opens a portal link as a browser would; returns the session cookie."""
    status, headers = browser_get(link)
    assert status == 303, status
    return headers["Set-Cookie"].split(";")[0]


class AdminPortal(unittest.TestCase):
    def setUp(self):
        self.workos = client()
        self.tag = uuid.uuid4().hex[:8]
        self.organization = self.workos.organizations.create_organization(name=f"Portal {self.tag}").id

    def test_links_for_both_intents_open_once(self):
        for intent in ["audit_logs", "log_streams"]:
            result = self.workos.admin_portal.generate_link(
                organization=self.organization,
                intent=intent,
                return_url="https://app.example.com/settings",
                it_contact_emails=[f"it-{self.tag}@customer.test"],
            )
            self.assertTrue(result.link.startswith(f"{BASE_URL}/portal/launch?secret="), result.link)
            cookie = open_link(result.link)
            status, _ = browser_get(f"{BASE_URL}/portal/api/session", cookie)
            self.assertEqual(status, 200)
            status, _ = browser_get(result.link)
            self.assertEqual(status, 403, "a link opens once")

    def test_unserved_intents_and_unknown_organizations_are_refused(self):
        with self.assertRaises(UnprocessableEntityError):
            self.workos.admin_portal.generate_link(organization=self.organization, intent="sso")
        with self.assertRaises(NotFoundError):
            self.workos.admin_portal.generate_link(
                organization="org_01EHWNCE74X7JSDV0X3SZ3KJNY", intent="audit_logs"
            )

    def test_revoking_ends_an_admins_sessions_and_unopened_links(self):
        opened = self.workos.admin_portal.generate_link(
            organization=self.organization, intent="audit_logs", external_user_id=f"admin-{self.tag}"
        )
        unopened = self.workos.admin_portal.generate_link(
            organization=self.organization, intent="log_streams", external_user_id=f"admin-{self.tag}"
        )
        cookie = open_link(opened.link)
        self.assertIsNone(
            self.workos.admin_portal.revoke_link(
                organization=self.organization, external_user_id=f"admin-{self.tag}"
            )
        )
        status, _ = browser_get(f"{BASE_URL}/portal/api/session", cookie)
        self.assertEqual(status, 401)
        status, _ = browser_get(unopened.link)
        self.assertEqual(status, 403)


if __name__ == "__main__":
    unittest.main()
