// Unit tests of the dashboard's in-browser log verifier (crates/vellum-http/assets/dashboard/
// verify.js), run in Node with its WebCrypto, against the log format's regression fixtures
// (crates/vellum-core/test-data/log-format/) and notes signed here with a fresh Ed25519 key.
// No server and no browser are needed.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { webcrypto } from 'node:crypto';

import {
  base64ToBytes,
  bytesToBase64,
  bytesToHex,
  canonicalize,
  checkEntry,
  checkEntryMatchesEvent,
  envelopeFromEvent,
  leafHash,
  nodeHash,
  noteKeyId,
  parseSignedNote,
  rootFromInclusionProof,
  sealedEnvelopeFromEvent,
  utf8,
  verifyEvent,
  verifyInclusion,
  verifySignedNote,
} from '../../crates/vellum-http/assets/dashboard/verify.js';

const subtle = webcrypto.subtle;
const fixtures = new URL('../../crates/vellum-core/test-data/log-format/', import.meta.url);
const expected = JSON.parse(await readFile(new URL('v1-expected.json', fixtures), 'utf8'));
const entries = expected.entries;

const hex = (text) => Uint8Array.from(text.match(/../g).map((pair) => parseInt(pair, 16)));

/** The event object as the read API serves it, rebuilt from canonical bytes (another key order). */
function apiEventFrom(canonicalText) {
  const envelope = JSON.parse(canonicalText);
  const { format, schema_version: version, ...rest } = envelope;
  assert.equal(format, 'vellum.audit_log_event.v1');
  const reversed = Object.fromEntries(Object.entries(rest).reverse());
  return { object: 'audit_log_event', ...reversed, version };
}

// An independent RFC 6962 tree, to make proofs for the verifier to check.
const largestPowerOfTwoBelow = (n) => {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
};

async function merkleRoot(leaves) {
  if (leaves.length === 0) return new Uint8Array(await subtle.digest('SHA-256', new Uint8Array()));
  if (leaves.length === 1) return leaves[0];
  const k = largestPowerOfTwoBelow(leaves.length);
  return nodeHash(await merkleRoot(leaves.slice(0, k)), await merkleRoot(leaves.slice(k)), subtle);
}

async function auditPath(index, leaves) {
  if (leaves.length <= 1) return [];
  const k = largestPowerOfTwoBelow(leaves.length);
  if (index < k) return [...(await auditPath(index, leaves.slice(0, k))), await merkleRoot(leaves.slice(k))];
  return [...(await auditPath(index - k, leaves.slice(k))), await merkleRoot(leaves.slice(0, k))];
}

async function signer(keyName = 'vellum') {
  const pair = await subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  const publicKey = new Uint8Array(await subtle.exportKey('raw', pair.publicKey));
  const keyId = await noteKeyId(keyName, publicKey, subtle);
  return {
    keyName,
    publicKey,
    keyId,
    async sign(body) {
      const signature = new Uint8Array(await subtle.sign({ name: 'Ed25519' }, pair.privateKey, utf8(body)));
      const bytes = new Uint8Array(68);
      bytes.set(keyId, 0);
      bytes.set(signature, 4);
      return `${body}\n\u2014 ${keyName} ${bytesToBase64(bytes)}\n`;
    },
  };
}

const checkpointBody = (origin, size, root) => `${origin}\n${size}\n${bytesToBase64(root)}\n`;

describe('canonical bytes', () => {
  test('JCS re-encodes every fixture to its exact canonical bytes', () => {
    for (const entry of entries) {
      assert.equal(canonicalize(JSON.parse(entry.canonical)), entry.canonical);
    }
  });

  test('the envelope rebuilt from the API event object is the canonical bytes', () => {
    for (const entry of entries) {
      assert.equal(canonicalize(envelopeFromEvent(apiEventFrom(entry.canonical))), entry.canonical);
    }
  });

  test('sealed (v2) envelopes are rebuilt from the event shown and its salts, erased parties from their seals', async () => {
    // The v2 fixtures are the v1 events sealed with the salts the Rust test draws: byte i of the
    // event's salts is i % 251, 16 bytes per party, the actor's first.
    const sealed = JSON.parse(await readFile(new URL('v2-expected.json', fixtures), 'utf8')).entries;
    for (const [index, entry] of entries.entries()) {
      const event = apiEventFrom(entry.canonical);
      const parties = 1 + event.targets.length;
      const bytes = Uint8Array.from({ length: parties * 16 }, (_, i) => i % 251);
      const salts = Array.from({ length: parties }, (_, party) => bytesToBase64(bytes.slice(party * 16, party * 16 + 16)));
      const committedText = sealed[index].canonical;
      const committed = JSON.parse(committedText);
      assert.equal(canonicalize(await sealedEnvelopeFromEvent(event, salts, committed, subtle)), committedText);
      const served = { log_index: event.log_index, id: event.id, canonical: bytesToBase64(utf8(committedText)), salts };
      assert.equal(new TextDecoder().decode(await checkEntry(served, event, subtle)), committedText);
      // An erased actor shows no values; its seal stands for them.
      const erased = structuredClone(event);
      erased.actor = { id: '', type: event.actor.type, erased: true };
      erased.context = { location: '' };
      erased.erased_by = [99];
      await checkEntry({ ...served, salts: [null, ...salts.slice(1)] }, erased, subtle);
      // A value changed in what is shown is caught.
      const altered = structuredClone(event);
      altered.actor.id = `${altered.actor.id}x`;
      await assert.rejects(checkEntry(served, altered, subtle), /differs from what the log committed to \(actor\)/);
    }
  });

  test('numbers take their shortest ECMAScript form and keys sort by UTF-16 code units', () => {
    assert.equal(canonicalize({ b: 1.5, a: 1e2, c: -0, d: [true, null, 'x'] }), '{"a":100,"b":1.5,"c":0,"d":[true,null,"x"]}');
    assert.equal(canonicalize({ '\u{1F600}': 1, '\uFFFF': 2 }), '{"\u{1F600}":1,"\uFFFF":2}');
    assert.equal(canonicalize('tab\there "q" \\ \u0001 \u2028'), '"tab\\there \\"q\\" \\\\ \\u0001 \u2028"');
  });
});

describe('leaves and inclusion proofs', () => {
  test('leaf hashes match the fixtures', async () => {
    for (const entry of entries) {
      assert.equal(bytesToHex(await leafHash(utf8(entry.canonical), subtle)), entry.leaf_hash);
    }
  });

  test('every leaf of every prefix verifies against the fixture roots', async () => {
    const leaves = entries.map((entry) => hex(entry.leaf_hash));
    for (let size = 1; size <= leaves.length; size += 1) {
      const root = hex(entries[size - 1].root_after);
      assert.deepEqual(await merkleRoot(leaves.slice(0, size)), root, `root of ${size}`);
      for (let index = 0; index < size; index += 1) {
        const proof = await auditPath(index, leaves.slice(0, size));
        assert.deepEqual(await rootFromInclusionProof(index, size, leaves[index], proof, subtle), root);
        assert.equal(await verifyInclusion(index, size, leaves[index], proof, root, subtle), true);
      }
    }
  });

  test('larger trees: every position of trees of 1 to 17 leaves', async () => {
    const leaves = [];
    for (let index = 0; index < 17; index += 1) leaves.push(await leafHash(utf8(`entry ${index}`), subtle));
    for (let size = 1; size <= leaves.length; size += 1) {
      const root = await merkleRoot(leaves.slice(0, size));
      for (let index = 0; index < size; index += 1) {
        const proof = await auditPath(index, leaves.slice(0, size));
        assert.equal(await verifyInclusion(index, size, leaves[index], proof, root, subtle), true, `${index} of ${size}`);
      }
    }
  });

  test('a wrong leaf, position, size or proof does not verify', async () => {
    const leaves = entries.map((entry) => hex(entry.leaf_hash));
    const root = hex(entries[2].root_after);
    const proof = await auditPath(1, leaves);
    assert.equal(await verifyInclusion(1, 3, leaves[0], proof, root, subtle), false, 'another leaf');
    assert.equal(await verifyInclusion(0, 3, leaves[1], proof, root, subtle), false, 'another position');
    const lastProof = await auditPath(2, leaves);
    assert.equal(await verifyInclusion(2, 3, leaves[2], lastProof, root, subtle), true);
    assert.equal(await verifyInclusion(2, 4, leaves[2], lastProof, root, subtle), false, 'another size');
    assert.equal(await verifyInclusion(1, 3, leaves[1], proof.slice(1), root, subtle), false, 'a short proof');
    assert.equal(await verifyInclusion(1, 3, leaves[1], [...proof, leaves[2]], root, subtle), false, 'a long proof');
    assert.equal(await verifyInclusion(3, 3, leaves[1], proof, root, subtle), false, 'out of range');
    const altered = proof.map((hash) => hash.slice());
    altered[0][0] ^= 1;
    assert.equal(await verifyInclusion(1, 3, leaves[1], altered, root, subtle), false, 'an altered hash');
  });
});

describe('signed checkpoints', () => {
  test('a note signed with Ed25519 parses and verifies', async () => {
    const key = await signer('vellum');
    const root = hex(entries[2].root_after);
    const note = await key.sign(checkpointBody('vellum/org_01EHWNCE74X7JSDV0X3SZ3KJNY', 3, root));
    const parsed = parseSignedNote(note);
    assert.equal(parsed.origin, 'vellum/org_01EHWNCE74X7JSDV0X3SZ3KJNY');
    assert.equal(parsed.size, 3);
    assert.deepEqual(parsed.root, root);
    assert.equal(parsed.body, `vellum/org_01EHWNCE74X7JSDV0X3SZ3KJNY\n3\n${bytesToBase64(root)}\n`);
    assert.equal(parsed.signatures.length, 1);
    const checkpoint = await verifySignedNote(note, key, subtle);
    assert.equal(checkpoint.size, 3);
  });

  test('the key id is the C2SP one, as the server publishes it in its verifier key', async () => {
    // A verifier key served by a real Vellum server: name + hex key id + base64(0x01 || key).
    const verifierKey = 'vellum+5d9ad493+AZfBpiu8mZWnBTPiDHSIjUJh/P7RPQq9ZICpE0eDSPaA';
    const [name, id, ...rest] = verifierKey.split('+');
    const encoded = rest.join('+');
    const publicKey = base64ToBytes(encoded).slice(1);
    assert.equal(bytesToHex(await noteKeyId(name, publicKey, subtle)), id);
  });

  test('a note signed by that server verifies under its public key', async () => {
    // Captured from a `vellum serve` (log name "vellum"): its checkpoint of a one-event log and
    // the public key /audit_logs/log/public_key published with it.
    const note =
      'vellum/org_01M8XVFMVW21EPK1RH8VFS3JQ3\n1\nzrLuCRhI9lpo5vwKlZLqo9BIfPyuq80Ebums6tqUjyY=\n\n' +
      '\u2014 vellum XZrUk4t4haVQj3vu2l/PkUuFpYIb6bqul+OOEI6CZUws64k++zEYkCQRHSBqG7mazQPZrJnwV/SMNyaM59bYj6JkGQ8=\n';
    const publicKey = base64ToBytes('l8GmK7yZlacFM+IMdIiNQmH8/tE9Cr1kgKkTR4NI9oA=');
    const checkpoint = await verifySignedNote(note, { keyName: 'vellum', publicKey }, subtle);
    assert.equal(checkpoint.size, 1);
    await assert.rejects(verifySignedNote(note.replace('\n1\n', '\n2\n'), { keyName: 'vellum', publicKey }, subtle), /does not verify/);
  });

  test('tampering, another key or a malformed note is refused', async () => {
    const key = await signer('vellum');
    const other = await signer('vellum');
    const root = hex(entries[2].root_after);
    const note = await key.sign(checkpointBody('vellum/org_x', 3, root));
    await assert.rejects(verifySignedNote(note.replace('\n3\n', '\n4\n'), key, subtle), /does not verify/);
    await assert.rejects(verifySignedNote(note, other, subtle), /no signature by the log key/);
    await assert.rejects(verifySignedNote(note, { ...key, keyName: 'another' }, subtle), /no signature by the log key "another"/);
    assert.throws(() => parseSignedNote('vellum/org_x\n3\n'), /no blank line/);
    assert.throws(() => parseSignedNote('vellum/org_x\nthree\nAAAA\n\n'), /tree size/);
    assert.throws(() => parseSignedNote('vellum/org_x\n3\nAAAA\n\n'), /32 bytes/);
  });
});

describe('verifyEvent, end to end against a fake server', () => {
  const organizationId = 'org_01EHWNCE74X7JSDV0X3SZ3KJNY';

  async function fakeServer({ tamperCanonical = false, tamperProof = false, keyForNote = null } = {}) {
    const key = await signer('vellum');
    const leaves = entries.map((entry) => hex(entry.leaf_hash));
    const root = await merkleRoot(leaves);
    const noteKey = keyForNote ?? key;
    const note = await noteKey.sign(checkpointBody(`vellum/${organizationId}`, leaves.length, root));
    return {
      logCheckpoint: async (org) => {
        assert.equal(org, organizationId);
        return note;
      },
      logPublicKey: async () => ({ algorithm: 'ed25519', key_name: key.keyName, public_key: bytesToBase64(key.publicKey) }),
      logEntries: async (org, start, end) => {
        assert.equal(end, start + 1);
        const entry = entries[start];
        let canonical = entry.canonical;
        if (tamperCanonical) canonical = canonical.replace('"action":"invoice.paid"', '"action":"invoice.void"');
        const event = apiEventFrom(entry.canonical);
        return { object: 'list', tree_size: entries.length, data: [{ log_index: start, id: event.id, canonical: bytesToBase64(utf8(canonical)), event }] };
      },
      inclusionProof: async (org, eventId, treeSize) => {
        const index = entries.findIndex((entry) => JSON.parse(entry.canonical).id === eventId);
        let hashes = (await auditPath(index, leaves.slice(0, treeSize))).map(bytesToBase64);
        if (tamperProof) hashes = hashes.slice(1);
        return { leaf_index: index, tree_size: treeSize, hashes };
      },
    };
  }

  test('an intact event is verified', async () => {
    const api = await fakeServer();
    for (const entry of entries) {
      const result = await verifyEvent({ api, event: apiEventFrom(entry.canonical), subtle });
      assert.equal(result.verified, true, result.reason);
      assert.equal(result.treeSize, 3);
      assert.equal(result.leafHash, entry.leaf_hash);
    }
  });

  test('an event shown differently from what the log committed to is not verified', async () => {
    const api = await fakeServer();
    const event = apiEventFrom(entries[1].canonical);
    event.actor = { ...event.actor, id: 'someone_else' };
    const result = await verifyEvent({ api, event, subtle });
    assert.equal(result.verified, false);
    assert.match(result.reason, /differs from what the log committed to \(actor\)/);
  });

  test('altered canonical bytes are caught before hashing', async () => {
    const api = await fakeServer({ tamperCanonical: true });
    const result = await verifyEvent({ api, event: apiEventFrom(entries[1].canonical), subtle });
    assert.equal(result.verified, false);
    assert.match(result.reason, /differs from what the log committed to \(action\)/);
  });

  test('an event rewritten together with its log entry does not lead to the signed root', async () => {
    const api = await fakeServer({ tamperCanonical: true });
    const event = apiEventFrom(entries[1].canonical);
    event.action = 'invoice.void';
    const result = await verifyEvent({ api, event, subtle });
    assert.equal(result.verified, false);
    assert.match(result.reason, /does not lead to the root hash the checkpoint signs/);
  });

  test('a bad proof or a checkpoint signed by another key is not verified', async () => {
    const badProof = await fakeServer({ tamperProof: true });
    const first = await verifyEvent({ api: badProof, event: apiEventFrom(entries[0].canonical), subtle });
    assert.equal(first.verified, false);
    assert.match(first.reason, /inclusion proof/);
    const foreign = await fakeServer({ keyForNote: await signer('vellum') });
    const second = await verifyEvent({ api: foreign, event: apiEventFrom(entries[0].canonical), subtle });
    assert.equal(second.verified, false);
    assert.match(second.reason, /no signature by the log key/);
  });

  test('without WebCrypto the reason says so', async () => {
    const api = await fakeServer();
    const result = await verifyEvent({ api, event: apiEventFrom(entries[0].canonical), subtle: null });
    assert.equal(result.verified, false);
    assert.match(result.reason, /WebCrypto/);
  });

  test('checkEntryMatchesEvent names another event at the position', () => {
    const event = apiEventFrom(entries[0].canonical);
    const other = apiEventFrom(entries[1].canonical);
    assert.throws(
      () => checkEntryMatchesEvent({ log_index: 0, id: other.id, canonical: bytesToBase64(utf8(entries[1].canonical)) }, event),
      /another event/,
    );
  });
});
