// The official WorkOS Node SDK against a running Vellum: exports.
//
// createExport with every filter the SDK sends (actions, actorNames, actorIds, targets and the
// range), getExport polled until ready, and the CSV behind its `url` checked to hold exactly the
// matching events; refusals surface as the SDK's typed exceptions.

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NotFoundException } from '@workos-inc/node';

import { UNKNOWN_ORGANIZATION, client, rejection, storedEvents, uniqueTag, wireTimestamp } from './helpers.mjs';

const workos = client();
const START = new Date('2026-04-01T00:00:00.000Z');
const day = (n) => new Date(START.getTime() + n * 86_400_000);

/** RFC 4180 rows (quoted fields may hold commas, quotes and line breaks). */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let index = 0; index < text.length; index++) {
    const character = text[index];
    if (quoted) {
      if (character === '"' && text[index + 1] === '"') {
        field += '"';
        index++;
      } else if (character === '"') {
        quoted = false;
      } else {
        field += character;
      }
    } else if (character === '"') {
      quoted = true;
    } else if (character === ',') {
      row.push(field);
      field = '';
    } else if (character === '\n') {
      row.push(field.replace(/\r$/, ''));
      rows.push(row);
      row = [];
      field = '';
    } else {
      field += character;
    }
  }
  const [header, ...records] = rows;
  return records.map((record) => Object.fromEntries(header.map((name, column) => [name, record[column]])));
}

describe('exports', () => {
  const fixture = {};

  before(async () => {
    const tag = uniqueTag();
    fixture.organization = await workos.organizations.createOrganization({ name: `Exports ${tag}` });
    fixture.signedIn = `user.signed_in.${tag}`;
    fixture.viewed = `doc.viewed.${tag}`;
    await workos.auditLogs.createSchema({ action: fixture.signedIn, targets: [{ type: 'team' }] });
    await workos.auditLogs.createSchema({ action: fixture.viewed, targets: [{ type: 'doc' }, { type: 'team' }] });
    const specs = [
      [fixture.signedIn, 'user_a', 'Ada', ['team'], 0],
      [fixture.viewed, 'user_b', 'Bea', ['doc', 'team'], 1],
      [fixture.signedIn, 'user_b', 'Bea', ['team'], 2],
      [fixture.viewed, 'user_c', '+Cy', ['doc'], 3],
    ];
    for (const [action, actorId, actorName, targetTypes, n] of specs) {
      await workos.auditLogs.createEvent(fixture.organization.id, {
        action,
        occurredAt: day(n),
        actor: { id: actorId, type: 'user', name: actorName },
        targets: targetTypes.map((type) => ({ id: `${type}_${n}`, type })),
        context: { location: '203.0.113.7' },
      });
    }
    const stored = [
      ...(await storedEvents(fixture.organization.id, fixture.signedIn)),
      ...(await storedEvents(fixture.organization.id, fixture.viewed)),
    ].sort((a, b) => a.occurred_at.localeCompare(b.occurred_at));
    fixture.ids = stored.map((event) => event.id);
    assert.equal(fixture.ids.length, 4);
  });

  async function exportRows(filters) {
    const created = await workos.auditLogs.createExport({
      organizationId: fixture.organization.id,
      rangeStart: START,
      rangeEnd: day(30),
      ...filters,
    });
    assert.equal(created.object, 'audit_log_export');
    assert.match(created.id, /^audit_log_export_/);
    assert.equal(created.url, null);
    let current = created;
    const deadline = Date.now() + 60_000;
    while (current.state === 'pending') {
      assert.ok(Date.now() < deadline, 'the export stayed pending');
      await new Promise((resolve) => setTimeout(resolve, 50));
      current = await workos.auditLogs.getExport(created.id);
    }
    assert.equal(current.state, 'ready');
    assert.equal(wireTimestamp(current.createdAt), wireTimestamp(created.createdAt));
    assert.ok(wireTimestamp(current.updatedAt) >= wireTimestamp(current.createdAt));
    const response = await fetch(current.url);
    assert.equal(response.status, 200);
    return parseCsv(await response.text());
  }

  async function expect(indexes, filters = {}) {
    const rows = await exportRows(filters);
    assert.deepEqual(
      rows.map((row) => row.id),
      indexes.map((index) => fixture.ids[index]),
      JSON.stringify(filters),
    );
    return rows;
  }

  test('every filter selects exactly the matching events', async () => {
    await expect([0, 1, 2, 3]);
    await expect([1, 2], { rangeStart: day(1), rangeEnd: day(3) });
    await expect([0, 2], { actions: [fixture.signedIn] });
    await expect([1, 2], { actorNames: ['Bea'] });
    await expect([1, 2, 3], { actorIds: ['user_b', 'user_c'] });
    await expect([1, 3], { targets: ['doc'] });
    await expect([1], { actions: [fixture.viewed], actorNames: ['Bea'], actorIds: ['user_b'], targets: ['team'] });
  });

  test('the CSV carries each event and neutralises formulas', async () => {
    const [row] = await expect([3], { actorIds: ['user_c'] });
    assert.equal(row.organization_id, fixture.organization.id);
    assert.equal(row.action, fixture.viewed);
    assert.equal(row.occurred_at, '2026-04-04T00:00:00.000Z');
    assert.equal(row.actor_name, "'+Cy");
    assert.equal(row.target_type_1, 'doc');
  });

  test('refusals surface as the typed exceptions', async () => {
    await assert.rejects(
      workos.auditLogs.createExport({ organizationId: fixture.organization.id, rangeStart: day(2), rangeEnd: START }),
      (error) => error.status === 400 && /Invalid date range/.test(error.message),
    );
    await assert.rejects(
      workos.auditLogs.createExport({
        organizationId: fixture.organization.id,
        rangeStart: START,
        rangeEnd: day(30),
        actions: ['nothing.matches'],
      }),
      (error) => error.status === 400 && /No audit log events found/.test(error.message),
    );
    await rejection(
      workos.auditLogs.createExport({ organizationId: UNKNOWN_ORGANIZATION, rangeStart: START, rangeEnd: day(30) }),
      NotFoundException,
    );
    await rejection(workos.auditLogs.getExport('audit_log_export_01EHWNCE74X7JSDV0X3SZ3KJNY'), NotFoundException);
  });
});
