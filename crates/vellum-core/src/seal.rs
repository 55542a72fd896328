//! Sealed parties: how an event's leaf commits to personal data it may later have to forget
//! (`docs/log-format.md` §9, `docs/retention.md` § Erasure).
//!
//! From format `vellum.audit_log_event.v2` on, the leaf does not hold a party's personal fields
//! (for the actor: id, name, metadata, the context's location and user agent, and a legacy
//! event's latitude and longitude; for a target: id, name, metadata). It holds a *seal* instead:
//! `base64(SHA-256(JCS(disclosure)))`, where the disclosure is an object of those fields plus
//! `salt`, 16 random bytes (base64) drawn at ingest for that one party of that one event. The
//! salt makes the seal hiding: without it, a seal says nothing about the values, not even whether
//! two events name the same person.
//!
//! The store keeps the values and the salt, so the event verifies as any other: recompute the
//! seals from what is shown, then the leaf. Erasing a party deletes its values and its salt and
//! keeps its seal: the leaf, every proof and every other field of the event still verify, and
//! nothing left can be linked back to the person.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use crate::event::{Actor, Context, EventInput, Metadata, Target};
use crate::merkle::Hash;

/// The length of a party's salt, in bytes.
pub const SALT_LEN: usize = 16;

/// A party's salt.
pub type Salt = [u8; SALT_LEN];

/// What the store keeps of one sealed party.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seal {
    /// The party is intact: its values are stored, and this salt seals them.
    Salt(Salt),
    /// The party was erased: only its seal is left.
    Erased(Hash),
}

impl Seal {
    /// Whether the party was erased.
    pub fn is_erased(&self) -> bool {
        matches!(self, Self::Erased(_))
    }

    /// The salt, for a party that was not erased.
    pub fn salt(&self) -> Option<&Salt> {
        match self {
            Self::Salt(salt) => Some(salt),
            Self::Erased(_) => None,
        }
    }
}

/// The seals of an event's parties: the actor's, then one per target, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seals {
    /// The actor's (it carries the context's and the legacy location fields too).
    pub actor: Seal,
    /// One per target.
    pub targets: Vec<Seal>,
}

impl Seals {
    /// Fresh seals for an event with `targets` targets, from random bytes the caller drew
    /// (`SALT_LEN` per party, the actor's first).
    pub fn from_random(random: &[u8], targets: usize) -> Self {
        let mut salts = random.chunks_exact(SALT_LEN).map(|chunk| {
            let mut salt = [0u8; SALT_LEN];
            salt.copy_from_slice(chunk);
            Seal::Salt(salt)
        });
        let actor = salts.next().expect("random bytes for the actor");
        let targets: Vec<Seal> = salts.take(targets).collect();
        assert_eq!(
            targets.len() + 1,
            random.len() / SALT_LEN,
            "random bytes for every party"
        );
        Self { actor, targets }
    }

    /// The actor's seal over the event's current values.
    pub fn actor_seal(&self, input: &EventInput) -> Hash {
        match &self.actor {
            Seal::Salt(salt) => sha256(&actor_disclosure(input, salt)),
            Seal::Erased(seal) => *seal,
        }
    }

    /// The seal of target `index` over its current values (`None` past the last target).
    pub fn target_seal(&self, index: usize, target: &Target) -> Option<Hash> {
        Some(match self.targets.get(index)? {
            Seal::Salt(salt) => sha256(&target_disclosure(target, salt)),
            Seal::Erased(seal) => *seal,
        })
    }

    /// Whether any party was erased.
    pub fn any_erased(&self) -> bool {
        self.actor.is_erased() || self.targets.iter().any(Seal::is_erased)
    }
}

fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

/// A seal as the leaf and the verifiers write it.
pub fn seal_text(seal: &Hash) -> String {
    BASE64.encode(seal)
}

/// A salt as disclosures write it.
pub fn salt_text(salt: &Salt) -> String {
    BASE64.encode(salt)
}

fn push_string(buffer: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *buffer, text).expect("writing a string to memory cannot fail");
}

fn push_member(buffer: &mut Vec<u8>, name: &str, text: &str) {
    buffer.push(b',');
    push_string(buffer, name);
    buffer.push(b':');
    push_string(buffer, text);
}

fn push_metadata(buffer: &mut Vec<u8>, metadata: Option<&Metadata>) {
    if let Some(metadata) = metadata {
        buffer.extend_from_slice(b",\"metadata\":");
        crate::canonical::write_metadata_json(buffer, metadata);
    }
}

/// The actor's disclosure, as canonical JSON (members in JCS order): `id`, `latitude`?,
/// `location`, `longitude`?, `metadata`?, `name`?, `salt`, `user_agent`?.
pub fn actor_disclosure(input: &EventInput, salt: &Salt) -> Vec<u8> {
    let (actor, context) = (&input.actor, &input.context);
    let legacy = input.audit_trail.as_ref();
    let mut buffer = Vec::with_capacity(256);
    buffer.extend_from_slice(b"{\"id\":");
    push_string(&mut buffer, &actor.id);
    if let Some(latitude) = legacy.and_then(|fields| fields.latitude.as_deref()) {
        push_member(&mut buffer, "latitude", latitude);
    }
    push_member(&mut buffer, "location", &context.location);
    if let Some(longitude) = legacy.and_then(|fields| fields.longitude.as_deref()) {
        push_member(&mut buffer, "longitude", longitude);
    }
    push_metadata(&mut buffer, actor.metadata.as_ref());
    if let Some(name) = &actor.name {
        push_member(&mut buffer, "name", name);
    }
    push_member(&mut buffer, "salt", &salt_text(salt));
    if let Some(user_agent) = &context.user_agent {
        push_member(&mut buffer, "user_agent", user_agent);
    }
    buffer.push(b'}');
    buffer
}

/// A target's disclosure, as canonical JSON: `id`, `metadata`?, `name`?, `salt`.
pub fn target_disclosure(target: &Target, salt: &Salt) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(128);
    buffer.extend_from_slice(b"{\"id\":");
    push_string(&mut buffer, &target.id);
    push_metadata(&mut buffer, target.metadata.as_ref());
    if let Some(name) = &target.name {
        push_member(&mut buffer, "name", name);
    }
    push_member(&mut buffer, "salt", &salt_text(salt));
    buffer.push(b'}');
    buffer
}

/// Whose personal data an erasure removes: every party, actor or target, whose id is one of
/// these (a person is usually an actor under one id and a target under the same one; a second
/// id covers an application that names them differently as a target).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasureSubject {
    /// The ids to erase (one or two, none empty).
    pub ids: Vec<String>,
}

impl ErasureSubject {
    /// Whether the event names the subject in any party it still holds.
    pub fn names(&self, input: &EventInput) -> bool {
        self.matches(&input.actor.id) || input.targets.iter().any(|target| self.matches(&target.id))
    }

    fn matches(&self, id: &str) -> bool {
        !id.is_empty() && self.ids.iter().any(|erased| erased == id)
    }
}

/// What an erased party's id reads: empty, which no client's id can be.
pub const ERASED_ID: &str = "";

/// Whether a party was erased (its id is [`ERASED_ID`]).
pub fn is_erased_id(id: &str) -> bool {
    id == ERASED_ID
}

/// Erases the subject's parties from an event in place, recording the erasure record's position
/// in `erased_by`. The seals of sealed parties are computed first, from the values being removed,
/// so the leaf still verifies; an event logged before seals (format v1) loses the values all the
/// same, and verifiers then take its leaf as given, on the record's word. Returns whether
/// anything was erased.
pub fn erase(event: &mut crate::Event, subject: &ErasureSubject, record_position: u64) -> bool {
    let input = &mut event.input;
    let erase_actor = subject.matches(&input.actor.id);
    let erase_targets: Vec<bool> = input.targets.iter().map(|target| subject.matches(&target.id)).collect();
    if !erase_actor && !erase_targets.contains(&true) {
        return false;
    }
    if let Some(seals) = &mut event.seals {
        if erase_actor {
            seals.actor = Seal::Erased(seals.actor_seal(input));
        }
        for (index, target) in input.targets.iter().enumerate() {
            if erase_targets[index] {
                let seal = seals.target_seal(index, target).unwrap_or([0; 32]);
                if let Some(slot) = seals.targets.get_mut(index) {
                    *slot = Seal::Erased(seal);
                }
            }
        }
    }
    if erase_actor {
        input.actor = Actor {
            id: ERASED_ID.into(),
            actor_type: std::mem::take(&mut input.actor.actor_type),
            name: None,
            metadata: None,
        };
        input.context = Context {
            location: String::new(),
            user_agent: None,
        };
        if let Some(fields) = &mut input.audit_trail {
            fields.latitude = None;
            fields.longitude = None;
        }
    }
    for (target, erased) in input.targets.iter_mut().zip(erase_targets) {
        if erased {
            *target = Target {
                id: ERASED_ID.into(),
                target_type: std::mem::take(&mut target.target_type),
                name: None,
                metadata: None,
            };
        }
    }
    if !event.erased_by.contains(&record_position) {
        event.erased_by.push(record_position);
    }
    true
}

/// Whether a disclosure (any JSON spelling of it) hashes to a seal (base64, as the leaf has it).
pub fn disclosure_matches(disclosure: &serde_json::Value, seal: &str) -> bool {
    seal_text(&sha256(&crate::canonical::canonical_json(disclosure))) == seal
}

/// The disclosures of an event's parties, for readers who check them against the leaf's seals
/// (the NDJSON export): `{"actor": disclosure or null, "targets": [disclosure or null, …]}`, null
/// for an erased party. `None` for an event without seals.
pub fn disclosures_json(event: &crate::Event) -> Option<Vec<u8>> {
    let seals = event.seals.as_ref()?;
    let input = &event.input;
    let mut buffer = Vec::with_capacity(512);
    buffer.extend_from_slice(b"{\"actor\":");
    match &seals.actor {
        Seal::Salt(salt) => buffer.extend_from_slice(&actor_disclosure(input, salt)),
        Seal::Erased(_) => buffer.extend_from_slice(b"null"),
    }
    buffer.extend_from_slice(b",\"targets\":[");
    for (index, target) in input.targets.iter().enumerate() {
        if index > 0 {
            buffer.push(b',');
        }
        match seals.targets.get(index) {
            Some(Seal::Salt(salt)) => buffer.extend_from_slice(&target_disclosure(target, salt)),
            _ => buffer.extend_from_slice(b"null"),
        }
    }
    buffer.extend_from_slice(b"]}");
    Some(buffer)
}

/// The salts of an event's parties as served beside it (actor first; `None` for an erased
/// party), so that a reader can recompute the seals from the values it shows. `None` for an event
/// without seals.
pub fn salts_text(event: &crate::Event) -> Option<Vec<Option<String>>> {
    let seals = event.seals.as_ref()?;
    Some(
        std::iter::once(&seals.actor)
            .chain(&seals.targets)
            .map(|seal| seal.salt().map(salt_text))
            .collect(),
    )
}

/// Rebuilds the leaf envelope of a sealed (v2) event from the envelope as the read API shows it
/// (values in place, an erased party marked `"erased": true`), the salts served with it (actor
/// first) and the envelope the log committed to (whose seals stand for erased parties). The
/// caller compares its canonical bytes with the committed ones.
pub fn sealed_envelope(
    shown: &serde_json::Value,
    salts: &[Option<String>],
    committed: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    use serde_json::{Map, Value, json};
    let mut envelope = shown.as_object().ok_or("the event is not an object")?.clone();
    envelope.remove("erased_by");
    let context = envelope.remove("context").unwrap_or(Value::Null);
    let mut legacy_location = Map::new();
    if let Some(Value::Object(legacy)) = envelope.get_mut("audit_trail") {
        for name in ["latitude", "longitude"] {
            if let Some(value) = legacy.remove(name) {
                legacy_location.insert(name.into(), value);
            }
        }
    }
    let seal_of =
        |party: &Value, index: usize, extra: &Map<String, Value>, committed: &Value| -> Result<Value, String> {
            let party = party.as_object().ok_or("a party is not an object")?;
            let party_type = party.get("type").cloned().unwrap_or(Value::Null);
            if party.get("erased") == Some(&Value::Bool(true)) {
                let seal = committed
                    .get("seal")
                    .and_then(Value::as_str)
                    .ok_or("an erased party has no seal")?;
                return Ok(json!({"seal": seal, "type": party_type}));
            }
            let salt = salts.get(index).cloned().flatten().ok_or("a party's salt is missing")?;
            let mut disclosure = Map::new();
            for name in ["id", "name", "metadata"] {
                if let Some(value) = party.get(name) {
                    disclosure.insert(name.into(), value.clone());
                }
            }
            disclosure.extend(extra.clone());
            disclosure.insert("salt".into(), Value::String(salt));
            let seal = seal_text(&sha256(&crate::canonical::canonical_json(&Value::Object(disclosure))));
            Ok(json!({"seal": seal, "type": party_type}))
        };
    let mut actor_extra = legacy_location;
    if let Value::Object(context) = context {
        actor_extra.extend(context);
    }
    let actor = seal_of(
        envelope.get("actor").ok_or("the event has no actor")?,
        0,
        &actor_extra,
        &committed["actor"],
    )?;
    envelope.insert("actor".into(), actor);
    let targets = envelope
        .get("targets")
        .and_then(Value::as_array)
        .ok_or("the event has no targets")?
        .iter()
        .enumerate()
        .map(|(index, target)| seal_of(target, index + 1, &Map::new(), &committed["targets"][index]))
        .collect::<Result<Vec<_>, _>>()?;
    envelope.insert("targets".into(), Value::Array(targets));
    Ok(Value::Object(envelope))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disclosures_are_jcs_of_their_members() {
        let mut input = crate::log_record::legal_hold_input(
            "org_1",
            true,
            Some("r"),
            &crate::log_record::RecordedBy::vellum("x"),
            crate::Timestamp::from_unix_millis(1).unwrap(),
        );
        input.context.user_agent = Some("agent \u{1}é".into());
        let mut metadata = Metadata::new();
        metadata.insert("b".into(), crate::event::MetadataValue::Bool(true));
        input.actor.metadata = Some(metadata);
        input.audit_trail = Some(crate::audit_trail::AuditTrailFields {
            group: "g".into(),
            action_type: "C".into(),
            latitude: Some("1.5".into()),
            longitude: Some("-2".into()),
        });
        let salt = [7u8; SALT_LEN];
        let bytes = actor_disclosure(&input, &salt);
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(crate::canonical::canonical_json(&value), bytes);
        assert_eq!(value["salt"], salt_text(&salt));
        assert_eq!(value["latitude"], "1.5");
        let target = &input.targets[0];
        let bytes = target_disclosure(target, &salt);
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(crate::canonical::canonical_json(&value), bytes);
    }
}
