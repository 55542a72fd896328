//! The rules of the operator sign-in throttle: failed sign-ins per (email, client address) and
//! per client address, slowed down and then refused for a while.
//!
//! The records live in the store, shared by every node that uses it, so that an attacker spread
//! over many nodes gets no more attempts than against one. The store loads the records of an
//! attempt's keys under a lock, hands them to [`begin`] or [`finish`], and writes back what they
//! leave (`None`: nothing to remember, the record is deleted).
//!
//! An attempt is reserved before its password is checked and settled after, so that attempts
//! sent at once are counted as if sent one after another: while failures are still free, at
//! most the remaining number are checked at once; after that, one at a time, each only once the
//! lockout of the previous one has passed. A reservation whose node died before settling it
//! lapses after [`IN_FLIGHT_LIMIT_MILLIS`].

use sha2::{Digest, Sha256};

use crate::Timestamp;
use crate::operator::Email;

/// Failed sign-ins of one email from one address before further attempts are refused.
pub const FREE_FAILURES: u32 = 5;
/// Failed sign-ins of one address, across emails, before further attempts are refused (slows
/// password spraying: a few guesses at many accounts).
pub const FREE_FAILURES_PER_ADDRESS: u32 = 30;
/// The first lockout; each further failure doubles it, up to [`MAX_LOCKOUT_MILLIS`].
pub const FIRST_LOCKOUT_MILLIS: i64 = 30_000;
/// The longest lockout.
pub const MAX_LOCKOUT_MILLIS: i64 = 15 * 60 * 1000;
/// Failures older than this are forgotten; so are records idle for this long.
pub const FAILURE_WINDOW_MILLIS: i64 = 15 * 60 * 1000;
/// How long a reserved attempt holds its place if it is never settled (its node died).
pub const IN_FLIGHT_LIMIT_MILLIS: i64 = 60 * 1000;
/// Records a store keeps at most; beyond that it drops the least recently used ones, so that an
/// attacker sending endless distinct emails or addresses cannot grow it without bound.
pub const MAX_RECORDS: u64 = 10_000;

/// What a record counts: one email from one address, or one address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ThrottleKey {
    /// One email (parsed: bounded and case-folded) from one client address.
    EmailFromAddress(Email, String),
    /// One client address, across emails.
    Address(String),
}

impl ThrottleKey {
    /// The failures this key may have before it is locked out.
    pub fn free_failures(&self) -> u32 {
        match self {
            Self::EmailFromAddress(..) => FREE_FAILURES,
            Self::Address(_) => FREE_FAILURES_PER_ADDRESS,
        }
    }

    /// The key as stored: the first 16 bytes of a SHA-256 of its kind and parts, so that the
    /// store holds neither the emails people tried nor their addresses, and every key has one
    /// fixed size.
    pub fn digest(&self) -> [u8; 16] {
        let mut hasher = Sha256::new();
        match self {
            Self::EmailFromAddress(email, address) => {
                hasher.update(b"vellum sign-in email\0");
                hasher.update(email.as_str().as_bytes());
                hasher.update(b"\0");
                hasher.update(address.as_bytes());
            }
            Self::Address(address) => {
                hasher.update(b"vellum sign-in address\0");
                hasher.update(address.as_bytes());
            }
        }
        let digest = hasher.finalize();
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        key
    }
}

/// What the store remembers of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureRecord {
    /// Failed attempts within the window.
    pub count: u32,
    /// Attempts reserved and not yet settled.
    pub in_flight: u32,
    /// Until when those reservations hold.
    pub in_flight_until: Timestamp,
    /// The last attempt or failure.
    pub last: Timestamp,
    /// Refused until then.
    pub locked_until: Option<Timestamp>,
}

impl FailureRecord {
    fn fresh(now: Timestamp) -> Self {
        Self {
            count: 0,
            in_flight: 0,
            in_flight_until: now,
            last: now,
            locked_until: None,
        }
    }

    fn in_flight_at(&self, now: Timestamp) -> u32 {
        if self.in_flight_until > now { self.in_flight } else { 0 }
    }

    fn is_idle(&self, now: Timestamp) -> bool {
        self.in_flight_at(now) == 0 && self.locked_until.is_none_or(|until| until <= now)
    }

    fn is_empty(&self, now: Timestamp) -> bool {
        self.count == 0 && self.is_idle(now)
    }
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The password was wrong, the email unknown, or the client went away while it was checked.
    Failed,
    /// The operator signed in.
    Succeeded,
    /// The password was never checked (the checkers were busy): it counts for nothing.
    NotChecked,
}

/// One step of an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Reserve an attempt under every key, or refuse it.
    Begin,
    /// Settle an attempt reserved by [`Step::Begin`].
    Finish(Outcome),
}

/// Seconds to wait before trying again.
pub type RetryAfterSeconds = u64;

/// Applies `step` to the records of `keys` (`records[i]` belongs to `keys[i]`).
pub fn apply(
    step: Step,
    keys: &[ThrottleKey],
    records: &mut [Option<FailureRecord>],
    now: Timestamp,
) -> Result<(), RetryAfterSeconds> {
    match step {
        Step::Begin => begin(keys, records, now),
        Step::Finish(outcome) => {
            finish(keys, records, outcome, now);
            Ok(())
        }
    }
}

/// Reserves one attempt under every key, or returns the seconds to wait before trying again
/// (and changes nothing).
pub fn begin(
    keys: &[ThrottleKey],
    records: &mut [Option<FailureRecord>],
    now: Timestamp,
) -> Result<(), RetryAfterSeconds> {
    for (key, slot) in keys.iter().zip(records.iter_mut()) {
        let Some(record) = slot else { continue };
        if millis_between(record.last, now) >= FAILURE_WINDOW_MILLIS && record.is_idle(now) {
            *slot = None;
            continue;
        }
        if let Some(until) = record.locked_until.filter(|until| *until > now) {
            return Err(seconds_until(now, until));
        }
        let free = key.free_failures();
        let in_flight = record.in_flight_at(now);
        let allowed = if record.count < free {
            record.count + in_flight < free
        } else {
            in_flight == 0
        };
        if !allowed {
            return Err(1);
        }
    }
    let in_flight_until = add_millis(now, IN_FLIGHT_LIMIT_MILLIS);
    for slot in records.iter_mut().take(keys.len()) {
        let record = slot.get_or_insert_with(|| FailureRecord::fresh(now));
        record.in_flight = record.in_flight_at(now) + 1;
        record.in_flight_until = in_flight_until;
        record.last = now;
    }
    Ok(())
}

/// Settles an attempt reserved by [`begin`].
pub fn finish(keys: &[ThrottleKey], records: &mut [Option<FailureRecord>], outcome: Outcome, now: Timestamp) {
    for (key, slot) in keys.iter().zip(records.iter_mut()) {
        let Some(record) = slot else { continue };
        record.in_flight = record.in_flight_at(now).saturating_sub(1);
        match outcome {
            Outcome::NotChecked => {}
            // A success clears its own email's record, but not its address's: one valid account
            // must not reset the spraying budget of the address it signs in from.
            Outcome::Succeeded => {
                if matches!(key, ThrottleKey::EmailFromAddress(..)) {
                    record.count = 0;
                    record.locked_until = None;
                }
            }
            Outcome::Failed => {
                record.count = record.count.saturating_add(1);
                record.last = now;
                let free = key.free_failures();
                if record.count >= free {
                    let doublings = (record.count - free).min(10);
                    let lockout = FIRST_LOCKOUT_MILLIS
                        .saturating_mul(1 << doublings)
                        .min(MAX_LOCKOUT_MILLIS);
                    record.locked_until = Some(add_millis(now, lockout));
                }
            }
        }
        if record.is_empty(now) {
            *slot = None;
        }
    }
}

/// Whether a stored record can be forgotten at `now`: idle, and its last attempt outside the
/// window. Stores delete such records as they go.
pub fn is_stale(record: &FailureRecord, now: Timestamp) -> bool {
    record.is_idle(now) && millis_between(record.last, now) >= FAILURE_WINDOW_MILLIS
}

/// Seconds `key`'s record says to wait at `now`, if it is locked out.
pub fn locked_for(record: Option<&FailureRecord>, now: Timestamp) -> Option<RetryAfterSeconds> {
    let until = record?.locked_until?;
    (until > now).then(|| seconds_until(now, until))
}

fn millis_between(earlier: Timestamp, later: Timestamp) -> i64 {
    later.unix_millis().saturating_sub(earlier.unix_millis())
}

fn seconds_until(now: Timestamp, until: Timestamp) -> RetryAfterSeconds {
    let millis = u64::try_from(millis_between(now, until)).unwrap_or(0);
    millis.div_ceil(1000).max(1)
}

fn add_millis(at: Timestamp, millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(at.unix_millis().saturating_add(millis)).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_800_000_000_000 + seconds * 1000).unwrap()
    }

    fn email_key(email: &str) -> ThrottleKey {
        ThrottleKey::EmailFromAddress(Email::parse(email).unwrap(), "192.0.2.1".into())
    }

    /// One key's records as a store would keep them.
    #[derive(Default)]
    struct Records(std::collections::HashMap<[u8; 16], FailureRecord>);

    impl Records {
        fn step(&mut self, keys: &[ThrottleKey], step: Step, now: Timestamp) -> Result<(), u64> {
            let mut slots: Vec<_> = keys.iter().map(|key| self.0.get(&key.digest()).copied()).collect();
            let verdict = apply(step, keys, &mut slots, now);
            for (key, slot) in keys.iter().zip(slots) {
                match slot {
                    Some(record) => self.0.insert(key.digest(), record),
                    None => self.0.remove(&key.digest()),
                };
            }
            verdict
        }

        fn fail(&mut self, keys: &[ThrottleKey], now: Timestamp) {
            self.step(keys, Step::Begin, now).unwrap();
            self.step(keys, Step::Finish(Outcome::Failed), now).unwrap();
        }

        fn locked_for(&self, key: &ThrottleKey, now: Timestamp) -> Option<u64> {
            locked_for(self.0.get(&key.digest()), now)
        }
    }

    #[test]
    fn lockout_starts_after_the_free_failures_and_grows() {
        let mut records = Records::default();
        let a = [email_key("a@example.com")];
        for _ in 0..FREE_FAILURES - 1 {
            records.fail(&a, at(0));
            assert_eq!(records.locked_for(&a[0], at(0)), None);
        }
        records.fail(&a, at(0));
        assert_eq!(records.locked_for(&a[0], at(0)), Some(30));
        assert_eq!(records.step(&a, Step::Begin, at(0)), Err(30));
        assert_eq!(
            records.step(&[email_key("b@example.com")], Step::Begin, at(0)),
            Ok(()),
            "other keys are not affected"
        );
        records.fail(&a, at(31));
        assert_eq!(records.locked_for(&a[0], at(31)), Some(60));
        records.step(&a, Step::Begin, at(92)).unwrap();
        records.step(&a, Step::Finish(Outcome::Succeeded), at(92)).unwrap();
        assert_eq!(records.locked_for(&a[0], at(92)), None);
        assert!(!records.0.contains_key(&a[0].digest()), "a success forgets the email");
    }

    #[test]
    fn attempts_at_once_are_counted_as_if_one_after_another() {
        let mut records = Records::default();
        let a = [email_key("a@example.com")];
        let admitted = (0..40).filter(|_| records.step(&a, Step::Begin, at(0)).is_ok()).count();
        assert_eq!(
            admitted, FREE_FAILURES as usize,
            "only the free failures are checked at once"
        );
        records.step(&a, Step::Finish(Outcome::Failed), at(0)).unwrap();
        assert_eq!(
            records.step(&a, Step::Begin, at(0)),
            Err(1),
            "four still in flight use the budget"
        );
    }

    #[test]
    fn a_reservation_never_settled_lapses() {
        let mut records = Records::default();
        let a = [email_key("a@example.com")];
        for _ in 0..FREE_FAILURES {
            records.fail(&a, at(0));
        }
        // Locked for 30 s; then one attempt is reserved and its node dies.
        records.step(&a, Step::Begin, at(31)).unwrap();
        assert_eq!(records.step(&a, Step::Begin, at(40)), Err(1), "one at a time now");
        let lapsed = at(31 + IN_FLIGHT_LIMIT_MILLIS / 1000);
        assert_eq!(
            records.step(&a, Step::Begin, lapsed),
            Ok(()),
            "the dead reservation lapsed"
        );
    }

    #[test]
    fn the_address_budget_spans_emails_and_survives_a_success() {
        let mut records = Records::default();
        let address = ThrottleKey::Address("192.0.2.1".into());
        for index in 0..FREE_FAILURES_PER_ADDRESS {
            let keys = [address.clone(), email_key(&format!("user{index}@example.com"))];
            records.step(&keys, Step::Begin, at(0)).unwrap();
            let outcome = if index == 3 {
                Outcome::Succeeded
            } else {
                Outcome::Failed
            };
            records.step(&keys, Step::Finish(outcome), at(0)).unwrap();
        }
        let keys = [address, email_key("fresh@example.com")];
        assert!(
            records.step(&keys, Step::Begin, at(0)).is_ok(),
            "one success among the failures leaves one free"
        );
        records.step(&keys, Step::Finish(Outcome::Failed), at(0)).unwrap();
        assert!(records.step(&keys, Step::Begin, at(0)).is_err());
    }

    #[test]
    fn a_refused_begin_changes_nothing_and_old_failures_are_forgotten() {
        let mut records = Records::default();
        let keys = [ThrottleKey::Address("192.0.2.9".into()), email_key("a@example.com")];
        for _ in 0..FREE_FAILURES {
            records.fail(&keys, at(0));
        }
        let before: Vec<_> = keys.iter().map(|key| records.0.get(&key.digest()).copied()).collect();
        assert!(records.step(&keys, Step::Begin, at(1)).is_err());
        let after: Vec<_> = keys.iter().map(|key| records.0.get(&key.digest()).copied()).collect();
        assert_eq!(before, after);
        let record = records.0[&keys[0].digest()];
        assert!(!is_stale(&record, at(60)));
        let window = FAILURE_WINDOW_MILLIS / 1000;
        assert!(is_stale(&record, at(window)));
        assert_eq!(records.step(&keys, Step::Begin, at(window)), Ok(()));
        assert_eq!(
            records.0[&keys[1].digest()].count,
            0,
            "the window's failures are forgotten"
        );
    }

    #[test]
    fn keys_are_fixed_size_and_distinct_by_kind() {
        let address = ThrottleKey::Address("192.0.2.1".into());
        assert_ne!(address.digest(), email_key("a@example.com").digest());
        assert_ne!(email_key("a@example.com").digest(), email_key("b@example.com").digest());
        assert_eq!(email_key("A@Example.com").digest(), email_key("a@example.com").digest());
    }
}
