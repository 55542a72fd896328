// The official WorkOS Node SDK against a running Vellum: audit logs.
//
// Covers every audit-log method the SDK exposes except exports (exports.test.mjs): createSchema,
// listSchemas (with auto-pagination), createEvent (with and without `version` and idempotency
// keys), and the retention get/update, plus the typed exception each refusal surfaces as.
// Every test works in its own organization and its own actions (suffixed with a random tag).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  BadRequestException,
  ConflictException,
  NotFoundException,
  UnprocessableEntityException,
  UpdateAuditLogsRetentionRetentionPeriod,
} from '@workos-inc/node';

import { UNKNOWN_ORGANIZATION, client, storedEvents, uniqueTag, rejection, wireTimestamp } from './helpers.mjs';

const workos = client();

/** A fresh organization and a function naming actions unique to this test. */
async function setUp() {
  const tag = uniqueTag();
  const organization = await workos.organizations.createOrganization({ name: `Audit ${tag}` });
  return { organization, action: (name) => `${name}.${tag}` };
}

/** Version 1 of the schema the event tests use: document targets, typed metadata. */
function createDocumentSchema(action) {
  return workos.auditLogs.createSchema({
    action,
    targets: [{ type: 'document', metadata: { sensitivity: 'string' } }],
    actor: { metadata: { role: 'string' } },
    metadata: { words: 'number', draft: 'boolean' },
  });
}

function event(action, { targetType = 'document', version, occurredAt, metadata, targetMetadata, actorMetadata } = {}) {
  return {
    action,
    version,
    occurredAt: occurredAt ?? new Date(),
    actor: { id: 'user_01', type: 'user', name: 'Jane Doe', metadata: actorMetadata ?? { role: 'admin' } },
    targets: [{ id: 'doc_01', type: targetType, name: 'Q3 plan', metadata: targetMetadata }],
    context: { location: '203.0.113.7', userAgent: 'Mozilla/5.0' },
    metadata,
  };
}

describe('schemas', () => {
  test('createSchema returns each new version', async () => {
    const { action } = await setUp();
    const first = await createDocumentSchema(action('document.updated'));
    assert.equal(first.object, 'audit_log_schema');
    assert.equal(first.version, 1);
    assert.deepEqual(first.targets, [{ type: 'document', metadata: { sensitivity: 'string' } }]);
    assert.deepEqual(first.actor, { metadata: { role: 'string' } });
    assert.deepEqual(first.metadata, { words: 'number', draft: 'boolean' });
    wireTimestamp(first.createdAt);

    const second = await workos.auditLogs.createSchema({
      action: action('document.updated'),
      targets: [{ type: 'document' }, { type: 'folder' }],
    });
    assert.equal(second.version, 2);
    assert.deepEqual(second.targets, [
      { type: 'document', metadata: undefined },
      { type: 'folder', metadata: undefined },
    ]);
    // The SDK always sends an actor metadata schema, empty when none is given.
    assert.deepEqual(second.actor, { metadata: {} });
    assert.equal(second.metadata, undefined);

    const other = await workos.auditLogs.createSchema({ action: action('document.deleted'), targets: [{ type: 'document' }] });
    assert.equal(other.version, 1, 'versions are counted per action');
  });

  test('listSchemas pages newest first and auto-paginates over more than one page', async () => {
    const { action } = await setUp();
    const name = action('report.exported');
    // autoPagination() fetches pages of 100 (and returns only the first page when a limit is
    // given), so crossing a page boundary takes more than 100 versions.
    const total = 105;
    for (let index = 0; index < total; index++) {
      const created = await workos.auditLogs.createSchema({ action: name, targets: [{ type: `report_${index}` }] });
      assert.equal(created.version, index + 1);
    }
    const descending = Array.from({ length: total }, (_, index) => total - index);

    const firstPage = await workos.auditLogs.listSchemas(name, { limit: 5 });
    assert.deepEqual(firstPage.data.map((schema) => schema.version), [105, 104, 103, 102, 101]);
    assert.ok(firstPage.listMetadata.after, 'a cursor to the next page');

    const paged = [];
    let page = firstPage;
    for (;;) {
      paged.push(...page.data.map((schema) => schema.version));
      if (!page.listMetadata.after) break;
      page = await workos.auditLogs.listSchemas(name, { limit: 5, after: page.listMetadata.after });
    }
    assert.deepEqual(paged, descending, 'following the cursors 5 by 5 reaches every version once');

    const all = await (await workos.auditLogs.listSchemas(name)).autoPagination();
    assert.deepEqual(all.map((schema) => schema.version), descending);
    assert.ok(all.every((schema) => schema.object === 'audit_log_schema'));
    assert.deepEqual(all.at(-1).targets, [{ type: 'report_0', metadata: undefined }]);

    const ascending = await (await workos.auditLogs.listSchemas(name, { order: 'asc' })).autoPagination();
    assert.deepEqual(ascending.map((schema) => schema.version), [...descending].reverse());
  });

  test('invalid schemas raise UnprocessableEntityException and store nothing', async () => {
    const { action } = await setUp();
    const name = action('broken.schema');
    let error = await rejection(workos.auditLogs.createSchema({ action: name, targets: [] }), UnprocessableEntityException);
    assert.equal(error.status, 422);
    assert.equal(error.code, 'validation_failed');
    assert.match(error.message, /required/);

    error = await rejection(
      workos.auditLogs.createSchema({ action: name, targets: [{ type: 'document', metadata: { size: 'not-a-type' } }] }),
      UnprocessableEntityException,
    );
    assert.match(error.message, /invalid_schema/);

    error = await rejection(workos.auditLogs.listSchemas(name), NotFoundException);
    assert.equal(error.status, 404);
  });
});

describe('events', () => {
  test('an event is validated against the latest or the named version', async () => {
    const { organization, action } = await setUp();
    const name = action('document.moved');
    await createDocumentSchema(name);
    await workos.auditLogs.createSchema({ action: name, targets: [{ type: 'folder' }] });

    assert.equal(await workos.auditLogs.createEvent(organization.id, event(name, { targetType: 'folder' })), undefined);
    await workos.auditLogs.createEvent(
      organization.id,
      event(name, {
        version: 1,
        occurredAt: new Date(Date.now() - 60_000),
        metadata: { words: 1200, draft: false },
        targetMetadata: { sensitivity: 'internal' },
      }),
    );

    let error = await rejection(workos.auditLogs.createEvent(organization.id, event(name)), BadRequestException);
    assert.equal(error.status, 400);
    assert.equal(error.code, 'invalid_audit_log_event');
    assert.equal(error.errors[0].instancePath, '/targets/0/type');
    error = await rejection(
      workos.auditLogs.createEvent(organization.id, event(name, { targetType: 'folder', version: 1 })),
      BadRequestException,
    );
    assert.equal(error.errors[0].instancePath, '/targets/0/type');

    const stored = await storedEvents(organization.id, name);
    assert.deepEqual(
      stored.map((entry) => [entry.version, entry.targets[0].type]),
      [
        [2, 'folder'],
        [1, 'document'],
      ],
    );
    const [latest, named] = stored;
    assert.equal(latest.object, 'audit_log_event');
    assert.ok(latest.id.startsWith('audit_log_event_'));
    assert.equal(latest.organization_id, organization.id);
    assert.deepEqual(latest.actor, { id: 'user_01', type: 'user', name: 'Jane Doe', metadata: { role: 'admin' } });
    assert.deepEqual(latest.context, { location: '203.0.113.7', user_agent: 'Mozilla/5.0' });
    assert.equal(latest.metadata, undefined);
    assert.deepEqual(named.metadata, { words: 1200, draft: false });
    assert.deepEqual(named.targets, [{ id: 'doc_01', type: 'document', name: 'Q3 plan', metadata: { sensitivity: 'internal' } }]);
  });

  test('occurredAt Dates are stored to the millisecond', async () => {
    const { organization, action } = await setUp();
    const name = action('user.signed_in');
    await createDocumentSchema(name);
    const dates = [
      new Date('2024-03-01T12:00:00.123Z'),
      new Date('2024-03-02T09:15:00+05:30'),
      new Date(Date.UTC(2024, 2, 3, 23, 59, 59, 999)),
    ];
    for (const occurredAt of dates) {
      await workos.auditLogs.createEvent(organization.id, event(name, { occurredAt }));
    }
    const stored = await storedEvents(organization.id, name);
    assert.deepEqual(
      stored.map((entry) => entry.occurred_at),
      ['2024-03-03T23:59:59.999Z', '2024-03-02T03:45:00.000Z', '2024-03-01T12:00:00.123Z'],
      'newest occurred_at first',
    );
    assert.ok(stored.every((entry) => entry.version === 1 && entry.received_at.endsWith('Z')));
  });

  test('an idempotency key stores the event once', async () => {
    const { organization, action } = await setUp();
    const name = action('document.shared');
    await createDocumentSchema(name);
    const idempotencyKey = `idem-${randomUUID()}`;
    const theEvent = event(name, { metadata: { words: 10 } });

    await workos.auditLogs.createEvent(organization.id, theEvent, { idempotencyKey });
    await workos.auditLogs.createEvent(organization.id, theEvent, { idempotencyKey });
    assert.equal((await storedEvents(organization.id, name)).length, 1, 'the replay stored nothing new');

    const error = await rejection(
      workos.auditLogs.createEvent(organization.id, { ...theEvent, metadata: { words: 11 } }, { idempotencyKey }),
      ConflictException,
    );
    assert.equal(error.status, 409);
    assert.equal(error.code, 'idempotency_key_reused');
    assert.equal((await storedEvents(organization.id, name)).length, 1);

    // Without a key of the caller's, the SDK sends a fresh one each time: each call stores.
    await workos.auditLogs.createEvent(organization.id, theEvent);
    await workos.auditLogs.createEvent(organization.id, theEvent);
    assert.equal((await storedEvents(organization.id, name)).length, 3);
  });

  test('refused events raise the typed exceptions and store nothing', async () => {
    const { organization, action } = await setUp();
    const name = action('document.viewed');
    const undefinedAction = action('never.defined');
    await createDocumentSchema(name);

    const badRequest = async (theEvent, instancePath) => {
      const error = await rejection(workos.auditLogs.createEvent(organization.id, theEvent), BadRequestException);
      assert.equal(error.status, 400);
      assert.equal(error.code, 'invalid_audit_log_event');
      assert.equal(error.message, 'Invalid Audit Log event.');
      assert.ok(
        error.errors.some((entry) => entry.instancePath === instancePath),
        `${instancePath} in ${JSON.stringify(error.errors)}`,
      );
    };
    await badRequest(event(undefinedAction), '/action');
    await badRequest(event(name, { version: 7 }), '/version');
    await badRequest(event(name, { targetType: 'spreadsheet' }), '/targets/0/type');
    await badRequest(event(name, { metadata: { words: 'many' } }), '/metadata/words');
    await badRequest(event(name, { targetMetadata: { sensitivity: 3 } }), '/targets/0/metadata/sensitivity');
    await badRequest(event(name, { actorMetadata: { role: true } }), '/actor/metadata/role');

    let error = await rejection(
      workos.auditLogs.createEvent(organization.id, event(name, { metadata: { nested: { a: 1 } } })),
      UnprocessableEntityException,
    );
    assert.equal(error.status, 422);
    assert.equal(error.code, 'validation_failed');
    assert.match(error.message, /invalid_type/);
    const tooMany = Object.fromEntries(Array.from({ length: 51 }, (_, index) => [`key_${index}`, index]));
    error = await rejection(
      workos.auditLogs.createEvent(organization.id, event(name, { metadata: tooMany })),
      UnprocessableEntityException,
    );
    assert.match(error.message, /too_many_keys/);

    error = await rejection(workos.auditLogs.createEvent(UNKNOWN_ORGANIZATION, event(name)), NotFoundException);
    assert.equal(error.status, 404);
    assert.ok(error.message.includes(UNKNOWN_ORGANIZATION), error.message);

    assert.deepEqual(await storedEvents(organization.id, name), []);
    assert.deepEqual(await storedEvents(organization.id, undefinedAction), []);
  });
});

describe('retention', () => {
  test('getOrganizationAuditLogsRetention and updateOrganizationAuditLogsRetention', async () => {
    const { organization } = await setUp();
    const id = organization.id;
    assert.deepEqual(await workos.auditLogs.getOrganizationAuditLogsRetention({ id }), { retentionPeriodInDays: null });

    assert.deepEqual(await workos.auditLogs.updateOrganizationAuditLogsRetention({ id, retentionPeriod: '1_YEAR' }), {
      retentionPeriodInDays: 365,
    });
    assert.deepEqual(await workos.auditLogs.getOrganizationAuditLogsRetention({ id }), { retentionPeriodInDays: 365 });

    const updated = await workos.auditLogs.updateOrganizationAuditLogsRetention({
      id,
      retentionPeriod: UpdateAuditLogsRetentionRetentionPeriod.Value3Months,
    });
    assert.equal(updated.retentionPeriodInDays, 90);
    assert.equal((await workos.auditLogs.getOrganizationAuditLogsRetention({ id })).retentionPeriodInDays, 90);
  });

  test('invalid periods and unknown organizations raise the typed exceptions', async () => {
    const { organization } = await setUp();
    const id = organization.id;
    const error = await rejection(
      workos.auditLogs.updateOrganizationAuditLogsRetention({ id, retentionPeriod: '13_YEARS' }),
      UnprocessableEntityException,
    );
    assert.equal(error.code, 'validation_failed');
    assert.equal((await workos.auditLogs.getOrganizationAuditLogsRetention({ id })).retentionPeriodInDays, null);

    await rejection(workos.auditLogs.getOrganizationAuditLogsRetention({ id: UNKNOWN_ORGANIZATION }), NotFoundException);
    await rejection(
      workos.auditLogs.updateOrganizationAuditLogsRetention({ id: UNKNOWN_ORGANIZATION, retentionPeriod: '1_YEAR' }),
      NotFoundException,
    );
  });
});
