// The official WorkOS Node SDK against a running Vellum: WorkOS's Events API, which Vellum does
// not serve.
//
// `workos.events.listEvents` calls `GET /events`, the path of the legacy Audit Trail list. The
// SDK always sends `events` (the event types, comma-joined) and no Audit Trail client does, so
// Vellum answers it with a 404 saying it does not serve that API, which the SDK raises as
// NotFoundException, instead of a legacy list the SDK would misread as events.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NotFoundException } from '@workos-inc/node';

import { API_KEY, BASE_URL, client, rejection, uniqueTag } from './helpers.mjs';

const workos = client();

test('events.listEvents raises NotFoundException, never a list', async () => {
  const organization = await workos.organizations.createOrganization({ name: `Events API ${uniqueTag()}` });
  // A legacy event, so that a legacy list answered to the SDK would not even be empty.
  const legacy = await fetch(`${BASE_URL}/events`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      group: organization.id,
      location: '203.0.113.7',
      action: 'document.updated',
      action_type: 'U',
      actor_name: 'Jane',
      actor_id: 'user_01',
      target_name: 'Plan',
      target_id: 'doc_01',
      occurred_at: new Date().toISOString(),
    }),
  });
  assert.equal(legacy.status, 201, await legacy.text());

  for (const options of [
    { events: ['dsync.user.created', 'dsync.user.updated'] },
    {
      events: ['authentication.sso_succeeded'],
      organizationId: organization.id,
      rangeStart: '2025-01-01T00:00:00.000Z',
      rangeEnd: '2025-12-31T00:00:00.000Z',
      limit: 5,
    },
    { events: [] },
  ]) {
    const error = await rejection(workos.events.listEvents(options), NotFoundException);
    assert.equal(error.status, 404);
    assert.equal(error.code, 'events_api_not_supported');
    assert.match(error.message, /does not serve WorkOS's Events API/);
    assert.ok(error.requestID, 'the SDK picks up X-Request-ID');
  }
});
