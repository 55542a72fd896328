// The official WorkOS Node SDK against a running Vellum: organizations and authentication.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ConflictException,
  NotFoundException,
  UnauthorizedException,
  UnprocessableEntityException,
} from '@workos-inc/node';

import { UNKNOWN_ORGANIZATION, client, uniqueTag, rejection, wireTimestamp } from './helpers.mjs';

const workos = client();

test('create, get, update and delete an organization', async () => {
  const tag = uniqueTag();
  const created = await workos.organizations.createOrganization({
    name: `Acme ${tag}`,
    domainData: [{ domain: `acme-${tag}.com`, state: 'verified' }],
    externalId: `ext-${tag}`,
    metadata: { tier: 'gold' },
  });
  assert.ok(created.id.startsWith('org_'));
  assert.equal(created.object, 'organization');
  assert.equal(created.name, `Acme ${tag}`);
  assert.equal(created.externalId, `ext-${tag}`);
  assert.deepEqual(created.metadata, { tier: 'gold' });
  assert.deepEqual(created.domains.map((domain) => domain.domain), [`acme-${tag}.com`]);

  const fetched = await workos.organizations.getOrganization(created.id);
  assert.equal(fetched.id, created.id);
  assert.equal(wireTimestamp(fetched.updatedAt), wireTimestamp(created.updatedAt));
  assert.ok(wireTimestamp(created.createdAt) <= wireTimestamp(created.updatedAt));
  assert.equal((await workos.organizations.getOrganizationByExternalId(`ext-${tag}`)).id, created.id);

  const updated = await workos.organizations.updateOrganization({
    organization: created.id,
    name: `Acme Inc ${tag}`,
    metadata: { tier: 'platinum' },
  });
  assert.equal(updated.name, `Acme Inc ${tag}`);
  assert.deepEqual(updated.metadata, { tier: 'platinum' });
  assert.equal(updated.externalId, `ext-${tag}`);

  await workos.organizations.deleteOrganization(created.id);
  await rejection(workos.organizations.getOrganization(created.id), NotFoundException);
});

test('listOrganizations pages and auto-paginates', async () => {
  const tag = uniqueTag();
  const ids = new Set();
  for (let index = 0; index < 7; index++) {
    ids.add((await workos.organizations.createOrganization({ name: `Paged ${tag} ${index}` })).id);
  }
  const firstPage = await workos.organizations.listOrganizations({ limit: 5 });
  assert.equal(firstPage.data.length, 5);
  assert.ok(firstPage.listMetadata.after);

  const all = await (await workos.organizations.listOrganizations()).autoPagination();
  const seen = all.map((organization) => organization.id);
  assert.equal(seen.length, new Set(seen).size, 'no organization appears twice');
  for (const id of ids) assert.ok(seen.includes(id), `${id} is listed`);
});

test('errors surface as the SDK typed exceptions', async () => {
  const tag = uniqueTag();
  await rejection(workos.organizations.createOrganization({ name: '   ' }), UnprocessableEntityException);
  await workos.organizations.createOrganization({ name: 'Once', externalId: `dup-${tag}` });
  const conflict = await rejection(
    workos.organizations.createOrganization({ name: 'Twice', externalId: `dup-${tag}` }),
    ConflictException,
  );
  assert.equal(conflict.status, 409);
  const missing = await rejection(workos.organizations.getOrganization(UNKNOWN_ORGANIZATION), NotFoundException);
  assert.equal(missing.status, 404);
});

test('a wrong key raises UnauthorizedException', async () => {
  const error = await rejection(client(`sk_test_${'0'.repeat(40)}`).organizations.listOrganizations(), UnauthorizedException);
  assert.equal(error.status, 401);
  assert.ok(error.requestID, 'the SDK picks up X-Request-ID');
});
