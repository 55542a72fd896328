"""The official WorkOS Python SDK against a running Vellum: organizations and authentication.

Run by the Rust test `sdk_python`, which starts the server and sets VELLUM_BASE_URL and
VELLUM_API_KEY. The SDK is used exactly as an application would, changing only `base_url`.
"""

import os
import unittest
import uuid

from workos import WorkOSClient
from workos._errors import AuthenticationError, ConflictError, NotFoundError, UnprocessableEntityError
from workos.organizations.models import OrganizationDomainData

BASE_URL = os.environ["VELLUM_BASE_URL"]
API_KEY = os.environ["VELLUM_API_KEY"]


def client(api_key=API_KEY):
    return WorkOSClient(api_key=api_key, base_url=BASE_URL, max_retries=0)


class Organizations(unittest.TestCase):
    def setUp(self):
        self.workos = client()
        self.tag = uuid.uuid4().hex[:8]

    def test_create_get_update_delete(self):
        created = self.workos.organizations.create_organization(
            name=f"Acme {self.tag}",
            domain_data=[OrganizationDomainData(domain=f"acme-{self.tag}.com", state="verified")],
            external_id=f"ext-{self.tag}",
            metadata={"tier": "gold"},
        )
        self.assertTrue(created.id.startswith("org_"))
        self.assertEqual(created.name, f"Acme {self.tag}")
        self.assertEqual(created.external_id, f"ext-{self.tag}")
        self.assertEqual(created.metadata, {"tier": "gold"})
        self.assertEqual([d.domain for d in created.domains], [f"acme-{self.tag}.com"])
        self.assertEqual(created.domains[0].state, "verified")
        self.assertIsNotNone(created.created_at.tzinfo)

        fetched = self.workos.organizations.get_organization(created.id)
        self.assertEqual(fetched.id, created.id)
        self.assertEqual(fetched.updated_at, created.updated_at)

        by_external = self.workos.organizations.get_organization_by_external_id(f"ext-{self.tag}")
        self.assertEqual(by_external.id, created.id)

        updated = self.workos.organizations.update_organization(created.id, name=f"Acme Inc {self.tag}", metadata={"tier": "platinum"})
        self.assertEqual(updated.name, f"Acme Inc {self.tag}")
        self.assertEqual(updated.metadata, {"tier": "platinum"})
        self.assertEqual(updated.external_id, f"ext-{self.tag}")

        self.workos.organizations.delete_organization(created.id)
        with self.assertRaises(NotFoundError):
            self.workos.organizations.get_organization(created.id)

    def test_list_auto_paginates_over_several_pages(self):
        ids = set()
        for index in range(23):
            org = self.workos.organizations.create_organization(name=f"Paged {self.tag} {index}", domains=[f"p{index}-{self.tag}.io"])
            ids.add(org.id)
        first_page = self.workos.organizations.list_organizations(limit=5)
        self.assertEqual(len(first_page.data), 5)
        self.assertIsNotNone(first_page.list_metadata.after)

        seen = [org.id for org in self.workos.organizations.list_organizations(limit=5).auto_paging_iter()]
        self.assertEqual(len(seen), len(set(seen)), "no organization appears twice")
        self.assertTrue(ids.issubset(seen), "every organization is reached by auto-pagination")

        ascending = [org.id for org in self.workos.organizations.list_organizations(limit=7, order="asc").auto_paging_iter()]
        self.assertEqual(ascending, sorted(ascending))
        self.assertEqual(set(ascending), set(seen))

        filtered = self.workos.organizations.list_organizations(domains=[f"p3-{self.tag}.io", f"p4-{self.tag}.io"])
        self.assertEqual(len(filtered.data), 2)

    def test_errors_surface_as_the_sdk_typed_errors(self):
        with self.assertRaises(UnprocessableEntityError):
            self.workos.organizations.create_organization(name="   ")
        self.workos.organizations.create_organization(name="Once", external_id=f"dup-{self.tag}")
        with self.assertRaises(ConflictError):
            self.workos.organizations.create_organization(name="Twice", external_id=f"dup-{self.tag}")
        with self.assertRaises(NotFoundError):
            self.workos.organizations.get_organization("org_01EHWNCE74X7JSDV0X3SZ3KJNY")

    def test_a_wrong_key_raises_the_authentication_error(self):
        with self.assertRaises(AuthenticationError) as raised:
            client("sk_test_" + "0" * 40).organizations.list_organizations()
        self.assertEqual(raised.exception.status_code, 401)
        self.assertTrue(raised.exception.request_id, "the SDK picks up X-Request-ID")


if __name__ == "__main__":
    unittest.main()
