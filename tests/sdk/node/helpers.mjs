import assert from 'node:assert/strict';
// Shared by the suites of this folder: the SDK client pointed at the server under test, and
// plain-HTTP reads of what the server stored (the SDK has no method to list events).
//
// The Rust tests `sdk_node` start the server and set VELLUM_BASE_URL and VELLUM_API_KEY, and
// VELLUM_NODE_SDK_VERSION to the SDK release the run must use: these files run both against
// this folder's pinned SDK and, from ../node-latest, against the newest release.

import { randomUUID } from 'node:crypto';
import { WorkOS } from '@workos-inc/node';

export const BASE_URL = process.env.VELLUM_BASE_URL;
export const API_KEY = process.env.VELLUM_API_KEY;
const SDK_VERSION = process.env.VELLUM_NODE_SDK_VERSION;
if (!BASE_URL || !API_KEY || !SDK_VERSION) {
  throw new Error(
    'VELLUM_BASE_URL, VELLUM_API_KEY and VELLUM_NODE_SDK_VERSION must be set: run these suites through `cargo test -p vellum --test api sdk_node`',
  );
}
// A run never passes against another copy of the SDK than the one it was meant to test.
const loadedVersion = new WorkOS('sk_test_version_check').version;
if (loadedVersion !== SDK_VERSION) {
  throw new Error(`expected @workos-inc/node ${SDK_VERSION}, but ${loadedVersion} was loaded`);
}

export const UNKNOWN_ORGANIZATION = 'org_01EHWNCE74X7JSDV0X3SZ3KJNY';

/** The SDK used exactly as an application would, changing only where it connects. */
export function client(apiKey = API_KEY) {
  const url = new URL(BASE_URL);
  return new WorkOS(apiKey, {
    apiHostname: url.hostname,
    port: Number(url.port),
    https: url.protocol === 'https:',
    maxRetries: 0,
  });
}

/**
 * A timestamp as the SDK hands it back, as the server's wire text: 11.x passes the wire string
 * through, 12.x turns it into a Date. The wire form is always `YYYY-MM-DDTHH:MM:SS.mmmZ`, which
 * is what Date#toISOString prints, so both versions compare through this.
 */
export function wireTimestamp(value) {
  if (Number(SDK_VERSION.split('.')[0]) >= 12) {
    assert.ok(value instanceof Date && !Number.isNaN(value.getTime()), `a valid Date: ${value}`);
    return value.toISOString();
  }
  assert.equal(typeof value, 'string', `a string: ${value}`);
  assert.match(value, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  return value;
}

/** A random suffix, so that suites sharing one server never touch each other's data. */
export function uniqueTag() {
  return randomUUID().replaceAll('-', '').slice(0, 10);
}

/** The events stored for one organization and action, newest first. */
export async function storedEvents(organizationId, action) {
  const query = new URLSearchParams([
    ['organization_id', organizationId],
    ['actions[]', action],
    ['limit', '100'],
  ]);
  const response = await fetch(`${BASE_URL}/audit_logs/events?${query}`, {
    headers: { Authorization: `Bearer ${API_KEY}`, Accept: 'application/json' },
  });
  if (!response.ok) {
    throw new Error(`GET /audit_logs/events answered ${response.status}: ${await response.text()}`);
  }
  const body = await response.json();
  if (body.object !== 'list' || body.list_metadata.after !== null) {
    throw new Error(`expected one page of events, got ${JSON.stringify(body.list_metadata)}`);
  }
  return body.data;
}

/** Asserts that `promise` rejects with an instance of `type`, and returns the exception. */
export async function rejection(promise, type) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${error?.name}: ${error?.message}`);
    return error;
  }
  assert.fail(`expected ${type.name}, but the call succeeded`);
}
