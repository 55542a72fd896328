//! Deterministic, realistic events.
//!
//! Event number `n` always has the same content: everything is drawn from a splitmix64 stream
//! seeded by a constant and `n`, so any event can be made on its own, in any order, on any
//! thread, and two runs store the same events. What the events look like:
//!
//! - 10 organizations of skewed sizes (the largest receives 59% of events). Requests go to one
//!   organization each; request `k` (an event, or a batch) goes to organization [`ORGANIZATION_CYCLE`]`[k % 1000]`,
//!   a smooth weighted round-robin, so the shares hold exactly over every 1,000 requests and
//!   request 0 goes to the largest.
//! - 20 actions of skewed popularity, each with a schema naming its target types and JSON Schemas
//!   for the actor's and the event's metadata.
//! - 5,000 actors with names, of skewed popularity (the 1% most active do about a fifth of
//!   everything), each with a usual address and browser; administrators carry a metadata role.
//! - 1 to 3 targets per event, of five types; nine target ids in ten are unique, the rest come
//!   from a pool of 2,000 per type.
//! - `occurred_at` 5 ms apart from 2026-01-01T00:00:00Z, with up to 4 ms of jitter, so it
//!   increases with `n`.
//! - About 480 bytes of compact JSON per event. Event `n` with `n % 1,000,000 == 500` carries
//!   [`RARE_TOKEN`] in a metadata value (in the fill, it lands in the largest organization).

use serde::Serialize;
use serde_json::{Value, json};
use vellum_core::Timestamp;
use vellum_core::event::{RawEvent, RawParty};
use vellum_core::json::RawObject;

/// The text only about one event in a million holds, for the search measurement.
pub const RARE_TOKEN: &str = "zqxrarez";

/// The events that carry [`RARE_TOKEN`]: those with `n % RARE_EVERY == RARE_AT`.
const RARE_EVERY: u64 = 1_000_000;
const RARE_AT: u64 = 500;

const SEED: u64 = 0x5645_4c4c_554d_4245;

/// 2026-01-01T00:00:00.000Z.
const START_MILLIS: i64 = 1_767_225_600_000;
const MILLIS_APART: i64 = 5;

/// The share of events, per thousand, of each organization; the first is the largest.
pub const ORGANIZATION_WEIGHTS: [u32; 10] = [590, 150, 80, 50, 40, 30, 25, 15, 12, 8];
/// How many organizations there are.
pub const ORGANIZATIONS: usize = ORGANIZATION_WEIGHTS.len();
/// How many requests one turn of the organization cycle covers.
pub const ORGANIZATION_CYCLE: usize = 1000;

/// How many actors there are.
pub const ACTORS: usize = 5000;
/// How many ids of each target type are shared by many events.
const SHARED_TARGET_IDS: u64 = 2000;

/// One kind of event: its name, the target types its schema allows, how common it is.
struct ActionSpec {
    name: &'static str,
    targets: &'static [&'static str],
    weight: u64,
}

const ACTIONS: [ActionSpec; 20] = [
    action("user.signed_in", &["user"], 300),
    action("document.viewed", &["document", "team"], 200),
    action("document.updated", &["document", "team"], 120),
    action("user.signed_out", &["user"], 80),
    action("document.created", &["document", "team"], 60),
    action("document.shared", &["document", "user", "team"], 40),
    action("invoice.viewed", &["invoice", "team"], 30),
    action("team.member_added", &["team", "user"], 25),
    action("document.deleted", &["document", "team"], 20),
    action("user.updated", &["user"], 20),
    action("invoice.created", &["invoice", "team"], 15),
    action("invoice.paid", &["invoice", "team"], 15),
    action("api_key.created", &["api_key", "user"], 10),
    action("team.member_removed", &["team", "user"], 10),
    action("user.password_changed", &["user"], 10),
    action("user.mfa_enabled", &["user"], 8),
    action("team.created", &["team", "user"], 6),
    action("api_key.revoked", &["api_key", "user"], 5),
    action("user.invited", &["user", "team"], 5),
    action("team.deleted", &["team", "user"], 3),
];

const fn action(name: &'static str, targets: &'static [&'static str], weight: u64) -> ActionSpec {
    ActionSpec { name, targets, weight }
}

#[rustfmt::skip]
const FIRST_NAMES: [&str; 50] = [
    "Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Ava", "Elijah", "Sophia", "Lucas",
    "Isabella", "Mateo", "Mia", "Levi", "Charlotte", "Asher", "Harper", "James", "Luna", "Leo",
    "Evelyn", "Ethan", "Aria", "Henry", "Ella", "Kai", "Nora", "Aiden", "Hazel", "Wei",
    "Zoe", "Arjun", "Layla", "Kenji", "Priya", "Omar", "Ines", "Jonas", "Sofia", "Tariq",
    "Freya", "Diego", "Aisha", "Mikael", "Yuki", "Chloe", "Ravi", "Elena", "Tomas", "Nadia",
];

#[rustfmt::skip]
const LAST_NAMES: [&str; 100] = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes",
    "Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper",
    "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson",
    "Watson", "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes",
    "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez",
];

const USER_AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "workos-node/7.31.0 node/22.11.0",
];

#[rustfmt::skip]
const DOCUMENT_WORDS: [&str; 16] = [
    "Quarterly", "Roadmap", "Budget", "Onboarding", "Security", "Pricing", "Hiring", "Incident", "Design", "Launch",
    "Vendor", "Compliance", "Retention", "Migration", "Board", "Customer",
];
const DOCUMENT_KINDS: [&str; 8] = [
    "plan",
    "review",
    "notes",
    "draft",
    "report",
    "checklist",
    "proposal",
    "summary",
];
#[rustfmt::skip]
const TEAM_NAMES: [&str; 12] = [
    "Engineering", "Sales", "Finance", "Support", "Marketing", "Legal", "Design", "Platform", "Data", "Security",
    "People", "Operations",
];
const SOURCES: [&str; 3] = ["web", "api", "mobile"];

/// A splitmix64 stream: small, fast and good enough to draw test data.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A stream starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        let wide = u128::from(self.next_u64()) * u128::from(bound);
        u64::try_from(wide >> 64).unwrap_or(0)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        // 53 random bits, exactly representable.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// 64 bits derived from two numbers.
fn hash(a: u64, b: u64) -> u64 {
    SplitMix64::new(SEED ^ a.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ b).next_u64()
}

/// `length` (at most 26) characters of Crockford base32, like a ULID, from 128 bits.
fn base32_id(high: u64, low: u64, length: u32) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let value = (u128::from(high) << 64) | u128::from(low);
    (0..length.min(26))
        .rev()
        .map(|index| {
            let digit = usize::try_from((value >> (index * 5)) & 31).unwrap_or(0);
            char::from(ALPHABET[digit])
        })
        .collect()
}

/// An event as a client sends it (the `event` member of `POST /audit_logs/events`).
#[derive(Clone, Debug, Serialize)]
pub struct GeneratedEvent {
    /// The action.
    pub action: &'static str,
    /// When it happened, as sent.
    pub occurred_at: String,
    /// Who did it.
    pub actor: Party,
    /// What it was done to.
    pub targets: Vec<Party>,
    /// From where.
    pub context: Context,
    /// Facts about the event.
    pub metadata: EventMetadata,
}

/// An actor or a target.
#[derive(Clone, Debug, Serialize)]
pub struct Party {
    /// Its id.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Its name, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The actor's metadata, for administrators (targets have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ActorMetadata>,
}

/// The metadata of an actor (only administrators have any).
#[derive(Clone, Debug, Serialize)]
pub struct ActorMetadata {
    /// `admin`.
    pub role: &'static str,
}

/// Where the event happened.
#[derive(Clone, Debug, Serialize)]
pub struct Context {
    /// An IPv4 address.
    pub location: String,
    /// A browser or SDK.
    pub user_agent: &'static str,
}

/// The metadata of an event.
#[derive(Clone, Debug, Serialize)]
pub struct EventMetadata {
    /// The request that caused it.
    pub request_id: String,
    /// `web`, `api` or `mobile`.
    pub source: &'static str,
    /// How long the action took, for some events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u32>,
    /// Free text, on the rare events only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An actor: everything about it that does not change from event to event.
#[derive(Clone, Debug)]
struct Actor {
    id: String,
    name: String,
    admin: bool,
    home: String,
    user_agent: &'static str,
}

/// Makes events by number.
#[derive(Debug)]
pub struct Generator {
    actors: Vec<Actor>,
    cycle: Vec<usize>,
    action_total: u64,
}

impl Default for Generator {
    fn default() -> Self {
        Self::new()
    }
}

impl Generator {
    /// The generator (every instance makes the same events).
    pub fn new() -> Self {
        let actors = (0..ACTORS)
            .map(|index| {
                let seed = hash(0xAC7, index as u64);
                let mut draw = SplitMix64::new(seed);
                Actor {
                    id: format!("user_{}", base32_id(draw.next_u64() >> 2, draw.next_u64(), 26)),
                    name: format!(
                        "{} {}",
                        FIRST_NAMES[index % FIRST_NAMES.len()],
                        LAST_NAMES[(index / FIRST_NAMES.len()) % LAST_NAMES.len()]
                    ),
                    admin: index % 10 == 0,
                    home: ipv4(&mut draw),
                    user_agent: USER_AGENTS[usize::try_from(draw.below(USER_AGENTS.len() as u64)).unwrap_or(0)],
                }
            })
            .collect();
        Self {
            actors,
            cycle: organization_cycle(),
            action_total: ACTIONS.iter().map(|action| action.weight).sum(),
        }
    }

    /// The organization (index into [`ORGANIZATION_WEIGHTS`]) that request `k` goes to.
    pub fn organization_of_request(&self, request: u64) -> usize {
        self.cycle[usize::try_from(request % ORGANIZATION_CYCLE as u64).unwrap_or(0)]
    }

    /// Event number `n`.
    pub fn event(&self, n: u64) -> GeneratedEvent {
        let mut draw = SplitMix64::new(hash(0xE7E, n));
        let action = self.action(&mut draw);
        // Skewed popularity: the cube of a uniform number favours low indexes.
        let actor_index = ((draw.unit().powi(3) * ACTORS as f64) as usize).min(ACTORS - 1);
        let actor = &self.actors[actor_index];
        let millis = START_MILLIS
            + i64::try_from(n).unwrap_or(i64::MAX / 8) * MILLIS_APART
            + i64::try_from(draw.below(MILLIS_APART as u64)).unwrap_or(0);
        let occurred_at = Timestamp::from_unix_millis(millis)
            .map(Timestamp::to_wire)
            .unwrap_or_default();
        let count = match draw.below(100) {
            0..55 => 1,
            55..88 => 2,
            _ => 3,
        };
        let targets = (0..count)
            .map(|index| {
                let kind = action.targets[index % action.targets.len()];
                self.target(kind, n, index as u64, &mut draw)
            })
            .collect();
        let location = if draw.below(100) < 85 {
            actor.home.clone()
        } else {
            ipv4(&mut draw)
        };
        let user_agent = if draw.below(100) < 90 {
            actor.user_agent
        } else {
            USER_AGENTS[usize::try_from(draw.below(USER_AGENTS.len() as u64)).unwrap_or(0)]
        };
        let request_id = format!("req_{:016x}", draw.next_u64());
        let source = match draw.below(10) {
            0..7 => SOURCES[0],
            7..9 => SOURCES[1],
            _ => SOURCES[2],
        };
        let duration_ms = (draw.below(2) == 0).then(|| u32::try_from(1 + draw.below(1999)).unwrap_or(1));
        let note = (n % RARE_EVERY == RARE_AT).then(|| format!("flagged for manual review {RARE_TOKEN} by policy"));
        GeneratedEvent {
            action: action.name,
            occurred_at,
            actor: Party {
                id: actor.id.clone(),
                kind: "user",
                name: Some(actor.name.clone()),
                metadata: actor.admin.then_some(ActorMetadata { role: "admin" }),
            },
            targets,
            context: Context { location, user_agent },
            metadata: EventMetadata {
                request_id,
                source,
                duration_ms,
                note,
            },
        }
    }

    fn action(&self, draw: &mut SplitMix64) -> &'static ActionSpec {
        let mut pick = draw.below(self.action_total);
        for action in &ACTIONS {
            if pick < action.weight {
                return action;
            }
            pick -= action.weight;
        }
        &ACTIONS[0]
    }

    fn target(&self, kind: &'static str, n: u64, index: u64, draw: &mut SplitMix64) -> Party {
        let shared = draw.below(10) == 0;
        let key = if shared {
            hash(kind.len() as u64, draw.below(SHARED_TARGET_IDS))
        } else {
            hash(n, index)
        };
        let id = match kind {
            // Users are the actors: another user is named by the actor's id form.
            "user" if shared => self.actors[usize::try_from(key % ACTORS as u64).unwrap_or(0)]
                .id
                .clone(),
            _ => format!("{kind}_{}", base32_id(key >> 2, hash(key, 1), 16)),
        };
        let name = match kind {
            "document" => Some(format!(
                "{} {} {}",
                DOCUMENT_WORDS[usize::try_from(key % 16).unwrap_or(0)],
                DOCUMENT_KINDS[usize::try_from((key >> 8) % 8).unwrap_or(0)],
                (key >> 16) % 100
            )),
            "team" => Some(TEAM_NAMES[usize::try_from(key % 12).unwrap_or(0)].to_owned()),
            _ => None,
        };
        Party {
            id,
            kind,
            name,
            metadata: None,
        }
    }

    /// Event `n`'s compact JSON, as it is sent.
    pub fn event_json(&self, n: u64) -> Vec<u8> {
        serde_json::to_vec(&self.event(n)).unwrap_or_default()
    }

    /// The mean size of the events' compact JSON, over `sample` events spread over `0..events`.
    pub fn mean_event_json_bytes(&self, events: u64, sample: u64) -> f64 {
        let sample = sample.clamp(1, events.max(1));
        let total: usize = (0..sample)
            .map(|index| self.event_json(index * events.max(1) / sample).len())
            .sum();
        total as f64 / sample as f64
    }
}

fn ipv4(draw: &mut SplitMix64) -> String {
    format!(
        "{}.{}.{}.{}",
        1 + draw.below(223),
        draw.below(256),
        draw.below(256),
        1 + draw.below(254)
    )
}

/// The smooth weighted round-robin order of organizations over one cycle: each appears as
/// often as its weight, evenly spread, the largest first.
fn organization_cycle() -> Vec<usize> {
    let total: i64 = ORGANIZATION_WEIGHTS.iter().map(|&weight| i64::from(weight)).sum();
    let mut current = [0i64; ORGANIZATIONS];
    (0..ORGANIZATION_CYCLE)
        .map(|_| {
            for (credit, &weight) in current.iter_mut().zip(&ORGANIZATION_WEIGHTS) {
                *credit += i64::from(weight);
            }
            let mut chosen = 0;
            for (index, &credit) in current.iter().enumerate() {
                if credit > current[chosen] {
                    chosen = index;
                }
            }
            current[chosen] -= total;
            chosen
        })
        .collect()
}

/// The name and external id of organization `index`.
pub fn organization_names(index: usize) -> (String, String) {
    (
        format!("Bench organization {}", index + 1),
        format!("vellum-bench-{}", index + 1),
    )
}

/// Every action with the body of `POST /audit_logs/actions/{action}/schemas` that defines it.
pub fn action_schemas() -> Vec<(&'static str, Value)> {
    ACTIONS
        .iter()
        .map(|action| {
            let targets: Vec<Value> = action.targets.iter().map(|kind| json!({"type": kind})).collect();
            let body = json!({
                "targets": targets,
                "actor": {"metadata": {
                    "type": "object",
                    "properties": {"role": {"enum": ["admin", "member"]}},
                }},
                "metadata": {
                    "type": "object",
                    "properties": {
                        "request_id": {"type": "string"},
                        "source": {"enum": SOURCES},
                        "duration_ms": {"type": "integer", "minimum": 0},
                        "note": {"type": "string"},
                    },
                    "required": ["request_id", "source"],
                },
            });
            (action.name, body)
        })
        .collect()
}

impl GeneratedEvent {
    /// The event as the HTTP layer reads it, before the shape checks
    /// (`vellum_core::event::validate_event`).
    pub fn raw(&self) -> RawEvent {
        let party = |party: &Party| RawParty {
            id: Some(party.id.clone()),
            party_type: Some(party.kind.to_owned()),
            name: party.name.clone(),
            metadata: party.metadata.as_ref().map(raw_object),
        };
        RawEvent {
            action: Some(self.action.to_owned()),
            occurred_at: Some(self.occurred_at.clone()),
            version: None,
            actor: Some(party(&self.actor)),
            targets: Some(self.targets.iter().map(party).collect()),
            context: Some((
                Some(self.context.location.clone()),
                Some(self.context.user_agent.to_owned()),
            )),
            metadata: Some(raw_object(&self.metadata)),
        }
    }
}

/// A metadata struct as the JSON object it is sent as.
fn raw_object(value: &impl Serialize) -> RawObject {
    match serde_json::to_value(value) {
        Ok(Value::Object(members)) => RawObject::from(&members),
        _ => RawObject::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_number_makes_the_same_event() {
        let (first, second) = (Generator::new(), Generator::new());
        for n in [0, 1, 499, 500, 1_000_500, 9_999_999] {
            assert_eq!(first.event_json(n), second.event_json(n));
        }
        assert_ne!(first.event_json(1), first.event_json(2));
    }

    #[test]
    fn the_largest_organization_gets_59_percent_and_request_0() {
        let generator = Generator::new();
        let largest = (0..ORGANIZATION_CYCLE as u64)
            .filter(|&request| generator.organization_of_request(request) == 0)
            .count();
        assert_eq!(largest, 590);
        assert_eq!(generator.organization_of_request(0), 0);
        assert_eq!(generator.organization_of_request(1000), 0);
    }

    #[test]
    fn events_are_about_480_bytes_and_valid() {
        let generator = Generator::new();
        let mean = generator.mean_event_json_bytes(1_000_000, 2000);
        assert!((440.0..=520.0).contains(&mean), "mean event JSON is {mean} bytes");
        for n in 0..2000 {
            let mut errors = vellum_core::ValidationErrors::new();
            let valid = vellum_core::event::validate_event(generator.event(n).raw(), "event", &mut errors);
            assert!(valid.is_some(), "event {n}: {errors:?}");
        }
    }

    #[test]
    fn occurred_at_increases_with_the_event_number() {
        let generator = Generator::new();
        let times: Vec<String> = (0..1000).map(|n| generator.event(n).occurred_at).collect();
        assert!(times.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(times[0].len(), "2026-01-01T00:00:00.000Z".len());
    }

    #[test]
    fn the_rare_token_is_rare() {
        let generator = Generator::new();
        let json = String::from_utf8(generator.event_json(500)).expect("utf-8");
        assert!(json.contains(RARE_TOKEN));
        let others = (0..5000).filter(|&n| n != 500).map(|n| generator.event_json(n));
        assert!(
            others
                .into_iter()
                .all(|json| !String::from_utf8_lossy(&json).contains(RARE_TOKEN))
        );
    }
}
