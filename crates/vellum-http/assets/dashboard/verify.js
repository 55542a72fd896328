// In-browser verification of one event against the organization's verifiable log
// (docs/log-format.md), with WebCrypto only: nothing here trusts the server's word that an event
// is intact, only the log's public key.
//
// Steps for an event at position i:
//   1. fetch the latest checkpoint (a C2SP signed note) and the log's public key; check the
//      note's Ed25519 signature, and that its origin names the event's organization;
//   2. fetch the log entry i and check that its canonical bytes are exactly the event shown
//      (the envelope is rebuilt from the event and encoded with RFC 8785 JCS);
//   3. leaf = SHA-256(0x00 || canonical bytes);
//   4. fetch the inclusion proof of the event in the tree of the checkpoint's size and compute
//      the root (RFC 9162 §2.1.3.2), node = SHA-256(0x01 || left || right);
//   5. the computed root must equal the signed root.
//
// The pure parts are exported so they can be tested on their own (tests/browser/verify.test.mjs).

/** The canonical encoding's format tag (docs/log-format.md §2). */
export const EVENT_FORMAT = 'vellum.audit_log_event.v1';
/** The format tag of events whose parties are sealed (§8b): the leaf holds each party's seal. */
export const SEALED_EVENT_FORMAT = 'vellum.audit_log_event.v2';
/** The format tag of the records Vellum writes itself: purges, legal holds (§8). */
export const RECORD_FORMAT = 'vellum.log_record.v1';
/** The signature algorithm byte of Ed25519 in C2SP signed notes. */
const ED25519_ALGORITHM = 0x01;
/** The em dash that starts each signature line of a signed note. */
const SIGNATURE_PREFIX = '\u2014 ';

/** A verification that did not hold; `message` says why, for people. */
export class VerificationError extends Error {
  constructor(message) {
    super(message);
    this.name = 'VerificationError';
  }
}

// ---------------------------------------------------------------------------------------------
// Bytes

export function utf8(text) {
  return new TextEncoder().encode(text);
}

export function base64ToBytes(text) {
  if (typeof text !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw new VerificationError('a value is not valid base64');
  }
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index += 1) bytes[index] = binary.charCodeAt(index);
  return bytes;
}

export function bytesToBase64(bytes) {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export function bytesToHex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

export function concatBytes(...parts) {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let index = 0; index < a.length; index += 1) difference |= a[index] ^ b[index];
  return difference === 0;
}

function defaultSubtle() {
  return globalThis.crypto && globalThis.crypto.subtle ? globalThis.crypto.subtle : null;
}

async function sha256(subtle, bytes) {
  return new Uint8Array(await subtle.digest('SHA-256', bytes));
}

// ---------------------------------------------------------------------------------------------
// Merkle tree (RFC 9162 §2.1)

/** SHA-256(0x00 || canonical bytes). */
export async function leafHash(canonical, subtle = defaultSubtle()) {
  return sha256(subtle, concatBytes(Uint8Array.of(0x00), canonical));
}

/** SHA-256(0x01 || left || right). */
export async function nodeHash(left, right, subtle = defaultSubtle()) {
  return sha256(subtle, concatBytes(Uint8Array.of(0x01), left, right));
}

/**
 * Computes the root that an inclusion proof (RFC 6962 audit path, leaf side first) yields for
 * the leaf at `index` in a tree of `size` leaves, by RFC 9162 §2.1.3.2. Throws a
 * VerificationError when the proof cannot be one for that position (wrong length, index out of
 * range).
 */
export async function rootFromInclusionProof(index, size, leaf, proof, subtle = defaultSubtle()) {
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (BigInt(index) >= BigInt(size)) {
    throw new VerificationError(`position ${index} is not in a tree of ${size} entries`);
  }
  let hash = leaf;
  for (const sibling of proof) {
    if (sn === 0n) throw new VerificationError('the inclusion proof is longer than the tree is deep');
    if (sibling.length !== 32) throw new VerificationError('the inclusion proof holds a hash that is not 32 bytes long');
    if ((fn & 1n) === 1n || fn === sn) {
      hash = await nodeHash(sibling, hash, subtle);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      hash = await nodeHash(hash, sibling, subtle);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new VerificationError('the inclusion proof is shorter than the tree is deep');
  return hash;
}

/** True when `proof` shows the leaf at `index` in the tree of `size` leaves whose root is `root`. */
export async function verifyInclusion(index, size, leaf, proof, root, subtle = defaultSubtle()) {
  try {
    return equalBytes(await rootFromInclusionProof(index, size, leaf, proof, subtle), root);
  } catch (error) {
    if (error instanceof VerificationError) return false;
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Signed notes and checkpoints (C2SP signed-note, tlog-checkpoint)

/**
 * Parses a signed note holding a checkpoint. Answers
 * `{body, origin, size, root, signatures: [{keyName, keyId, signature}]}` where `body` is the
 * signed text (everything before the blank line, with its final newline), `size` a BigInt-safe
 * Number, and `root`, `keyId` and `signature` are bytes. Throws a VerificationError when the
 * note is malformed.
 */
export function parseSignedNote(note) {
  if (typeof note !== 'string') throw new VerificationError('the checkpoint is not text');
  const split = note.indexOf('\n\n');
  if (split < 0) throw new VerificationError('the checkpoint has no blank line before its signatures');
  const body = note.slice(0, split + 1);
  const signatureText = note.slice(split + 2);
  const lines = body.split('\n');
  const origin = lines[0];
  if (!origin) throw new VerificationError('the checkpoint has no origin line');
  const sizeLine = lines[1] ?? '';
  if (!/^[0-9]+$/.test(sizeLine)) throw new VerificationError('the checkpoint has no valid tree size');
  const size = Number(sizeLine);
  if (!Number.isSafeInteger(size)) throw new VerificationError('the checkpoint tree size is out of range');
  let root;
  try {
    root = base64ToBytes(lines[2] ?? '');
  } catch {
    throw new VerificationError('the checkpoint root hash is not base64');
  }
  if (root.length !== 32) throw new VerificationError('the checkpoint root hash is not 32 bytes long');

  const signatures = [];
  for (const line of signatureText.split('\n')) {
    if (!line.startsWith(SIGNATURE_PREFIX)) continue;
    const rest = line.slice(SIGNATURE_PREFIX.length);
    const space = rest.lastIndexOf(' ');
    if (space <= 0) continue;
    let bytes;
    try {
      bytes = base64ToBytes(rest.slice(space + 1));
    } catch {
      continue;
    }
    if (bytes.length < 5) continue;
    signatures.push({ keyName: rest.slice(0, space), keyId: bytes.slice(0, 4), signature: bytes.slice(4) });
  }
  return { body, origin, size, root, signatures };
}

/** The C2SP key id: the first 4 bytes of SHA-256(key name || "\n" || 0x01 || public key). */
export async function noteKeyId(keyName, publicKey, subtle = defaultSubtle()) {
  const digest = await sha256(subtle, concatBytes(utf8(keyName), Uint8Array.of(0x0a, ED25519_ALGORITHM), publicKey));
  return digest.slice(0, 4);
}

/**
 * Checks a signed note's Ed25519 signature by the key `{keyName, publicKey}` (publicKey: 32
 * bytes) and answers the parsed checkpoint. Throws a VerificationError otherwise.
 */
export async function verifySignedNote(note, { keyName, publicKey }, subtle = defaultSubtle()) {
  const parsed = parseSignedNote(note);
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) {
    throw new VerificationError('the log public key is not a 32-byte Ed25519 key');
  }
  const keyId = await noteKeyId(keyName, publicKey, subtle);
  const candidate = parsed.signatures.find(
    (signature) => signature.keyName === keyName && equalBytes(signature.keyId, keyId),
  );
  if (!candidate) throw new VerificationError(`the checkpoint carries no signature by the log key "${keyName}"`);
  if (candidate.signature.length !== 64) throw new VerificationError('the checkpoint signature is not 64 bytes long');
  let key;
  try {
    key = await subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']);
  } catch (error) {
    throw new VerificationError(`this browser cannot check Ed25519 signatures (${error.message || error})`);
  }
  const valid = await subtle.verify({ name: 'Ed25519' }, key, candidate.signature, utf8(parsed.body));
  if (!valid) throw new VerificationError("the checkpoint signature does not verify under the log's public key");
  return parsed;
}

// ---------------------------------------------------------------------------------------------
// Canonical bytes (RFC 8785 JCS of the event envelope)

/**
 * RFC 8785 (JCS) canonical JSON: members sorted by UTF-16 code units, no white space, minimal
 * string escapes, numbers in ECMAScript's shortest round-trip form.
 */
export function canonicalize(value) {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new VerificationError('a number cannot be encoded in JSON');
      return Object.is(value, -0) ? '0' : String(value);
    case 'string':
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map(canonicalize).join(',')}]`;
      const members = Object.keys(value)
        .filter((name) => value[name] !== undefined)
        .sort()
        .map((name) => `${JSON.stringify(name)}:${canonicalize(value[name])}`);
      return `{${members.join(',')}}`;
    }
    default:
      throw new VerificationError(`a ${typeof value} cannot be encoded in JSON`);
  }
}

/**
 * Rebuilds the envelope the log commits to from the event object the read API serves: the
 * same members, without `object`, with `version` named `schema_version`, plus `format`.
 */
export function envelopeFromEvent(event, format = EVENT_FORMAT) {
  const envelope = { format };
  for (const [name, value] of Object.entries(event)) {
    if (name === 'object') continue;
    envelope[name === 'version' ? 'schema_version' : name] = value;
  }
  return envelope;
}

/** Names the top-level members in which two envelopes differ. */
function differingMembers(expected, actual) {
  const names = new Set([...Object.keys(expected), ...Object.keys(actual)]);
  return [...names].filter((name) => {
    const a = expected[name] === undefined ? undefined : canonicalize(expected[name]);
    const b = actual[name] === undefined ? undefined : canonicalize(actual[name]);
    return a !== b;
  });
}

/**
 * Checks that a log entry's canonical bytes are exactly the event shown, and answers the bytes.
 * Throws a VerificationError naming what differs otherwise.
 */
export function checkEntryMatchesEvent(entry, event) {
  if (!entry) throw new VerificationError(`the log has no entry at position ${event.log_index}`);
  if (entry.log_index !== event.log_index || entry.id !== event.id) {
    throw new VerificationError(`the log entry at position ${event.log_index} is another event (${entry.id})`);
  }
  const canonical = base64ToBytes(entry.canonical);
  let committed;
  try {
    committed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(canonical));
  } catch {
    throw new VerificationError(`the log entry at position ${event.log_index} is not canonical JSON`);
  }
  if (committed.id !== event.id) {
    throw new VerificationError(`the log entry at position ${event.log_index} commits to another event (${committed.id})`);
  }
  if (committed.log_index !== event.log_index || committed.organization_id !== event.organization_id) {
    throw new VerificationError('the log entry commits to another position or organization');
  }
  // The committed bytes say whether this is an event or one of Vellum's own records; the bytes
  // are then compared whole, so claiming the other format changes nothing.
  const expected = envelopeFromEvent(event, committed.format === RECORD_FORMAT ? RECORD_FORMAT : EVENT_FORMAT);
  if (!equalBytes(utf8(canonicalize(expected)), canonical)) {
    const members = differingMembers(expected, committed);
    throw new VerificationError(
      `the event shown differs from what the log committed to${members.length ? ` (${members.join(', ')})` : ''}`,
    );
  }
  return canonical;
}

/**
 * Rebuilds the envelope a sealed event's leaf commits to (docs/log-format.md §8b): each party's
 * seal is SHA-256 over the JCS of its values shown plus its salt (served with the log entry); an
 * erased party (`erased: true`) stands for the seal the log committed to.
 */
export async function sealedEnvelopeFromEvent(event, salts, committed, subtle = defaultSubtle()) {
  const envelope = envelopeFromEvent(event, SEALED_EVENT_FORMAT);
  delete envelope.erased_by;
  const extra = { ...(envelope.context ?? {}) };
  delete envelope.context;
  if (envelope.audit_trail) {
    const { latitude, longitude, ...rest } = envelope.audit_trail;
    if (latitude !== undefined) extra.latitude = latitude;
    if (longitude !== undefined) extra.longitude = longitude;
    envelope.audit_trail = rest;
  }
  const seal = async (party, index, partyExtra, committedParty) => {
    if (party && party.erased === true) {
      if (!committedParty || typeof committedParty.seal !== 'string') {
        throw new VerificationError('the log entry has no seal for an erased party');
      }
      return { seal: committedParty.seal, type: party.type };
    }
    const salt = Array.isArray(salts) ? salts[index] : undefined;
    if (typeof salt !== 'string') throw new VerificationError("the log entry lacks a party's salt");
    const disclosure = { ...partyExtra, salt };
    for (const name of ['id', 'name', 'metadata']) {
      if (party[name] !== undefined) disclosure[name] = party[name];
    }
    return { seal: bytesToBase64(await sha256(subtle, utf8(canonicalize(disclosure)))), type: party.type };
  };
  envelope.actor = await seal(envelope.actor, 0, extra, committed.actor);
  envelope.targets = await Promise.all(
    (envelope.targets ?? []).map((target, index) => seal(target, index + 1, {}, (committed.targets ?? [])[index])),
  );
  return envelope;
}

/**
 * Checks a log entry against the event shown, whatever its format, and answers its canonical
 * bytes. Throws a VerificationError naming what differs otherwise.
 */
export async function checkEntry(entry, event, subtle = defaultSubtle()) {
  if (entry && entry.canonical === undefined && Array.isArray(event.erased_by) && event.erased_by.length) {
    throw new VerificationError(
      'personal data was erased from this event before its parties were sealed, so its content can no longer be ' +
        'checked against its leaf; the erasure records in its log vouch for it',
    );
  }
  if (!entry || typeof entry.canonical !== 'string') return checkEntryMatchesEvent(entry, event);
  const canonical = base64ToBytes(entry.canonical);
  let committed;
  try {
    committed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(canonical));
  } catch {
    return checkEntryMatchesEvent(entry, event);
  }
  if (committed.format !== SEALED_EVENT_FORMAT) return checkEntryMatchesEvent(entry, event);
  if (entry.log_index !== event.log_index || entry.id !== event.id || committed.id !== event.id) {
    throw new VerificationError(`the log entry at position ${event.log_index} is another event (${entry.id})`);
  }
  if (committed.log_index !== event.log_index || committed.organization_id !== event.organization_id) {
    throw new VerificationError('the log entry commits to another position or organization');
  }
  const expected = await sealedEnvelopeFromEvent(event, entry.salts, committed, subtle);
  if (!equalBytes(utf8(canonicalize(expected)), canonical)) {
    const members = differingMembers(expected, committed);
    throw new VerificationError(
      `the event shown differs from what the log committed to${members.length ? ` (${members.join(', ')})` : ''}`,
    );
  }
  return canonical;
}

// ---------------------------------------------------------------------------------------------
// The whole check

/**
 * Verifies one event (as the read API serves it, with `log_index` and `organization_id`)
 * against its organization's log, fetching what it needs through `api` (the object of api.js:
 * logCheckpoint, logPublicKey, logEntries, inclusionProof).
 *
 * Answers `{verified: true, treeSize, origin, root, leafHash, keyName, verifierKey}` or
 * `{verified: false, reason}`; never throws for a failed check (only `onStep` may).
 *
 * @param {object} options
 * @param {object} options.api
 * @param {object} options.event
 * @param {SubtleCrypto} [options.subtle] defaults to the page's crypto.subtle
 * @param {(step: string) => void} [options.onStep] progress, for people
 */
export async function verifyEvent({ api, event, subtle = defaultSubtle(), onStep = () => {} }) {
  try {
    if (!subtle) {
      throw new VerificationError('this browser offers no WebCrypto on this page (it needs HTTPS or localhost)');
    }
    if (!Number.isSafeInteger(event.log_index) || event.log_index < 0) {
      throw new VerificationError('the event has no log position');
    }
    const index = event.log_index;
    onStep('Checking the signed checkpoint…');
    const [note, key] = await Promise.all([api.logCheckpoint(event.organization_id), api.logPublicKey()]);
    if (!key || key.algorithm !== 'ed25519') throw new VerificationError('the log key is not an Ed25519 key');
    const publicKey = base64ToBytes(key.public_key ?? '');
    const checkpoint = await verifySignedNote(note, { keyName: key.key_name, publicKey }, subtle);
    if (!checkpoint.origin.endsWith(`/${event.organization_id}`)) {
      throw new VerificationError(`the checkpoint is for another log (${checkpoint.origin})`);
    }
    if (index >= checkpoint.size) {
      throw new VerificationError(`the latest checkpoint (size ${checkpoint.size}) does not cover position ${index} yet`);
    }

    onStep('Checking the log entry…');
    const entries = await api.logEntries(event.organization_id, index, index + 1);
    const entry = (entries && Array.isArray(entries.data) ? entries.data : []).find((item) => item.log_index === index);
    const canonical = await checkEntry(entry, event, subtle);
    const leaf = await leafHash(canonical, subtle);

    onStep('Checking the inclusion proof…');
    const proof = await api.inclusionProof(event.organization_id, event.id, checkpoint.size);
    if (proof.leaf_index !== index || proof.tree_size !== checkpoint.size) {
      throw new VerificationError('the inclusion proof is for another position or tree size');
    }
    const hashes = (proof.hashes ?? []).map((hash) => base64ToBytes(hash));
    const root = await rootFromInclusionProof(index, checkpoint.size, leaf, hashes, subtle);
    if (!equalBytes(root, checkpoint.root)) {
      throw new VerificationError('the event does not lead to the root hash the checkpoint signs');
    }
    return {
      verified: true,
      treeSize: checkpoint.size,
      origin: checkpoint.origin,
      root: bytesToBase64(checkpoint.root),
      leafHash: bytesToHex(leaf),
      keyName: key.key_name,
      verifierKey: key.verifier_key ?? null,
    };
  } catch (error) {
    if (error instanceof VerificationError) return { verified: false, reason: error.message };
    if (error && error.name === 'ApiError') return { verified: false, reason: `the server refused a request: ${error.message}` };
    return { verified: false, reason: `the check could not finish (${(error && error.message) || error})` };
  }
}
