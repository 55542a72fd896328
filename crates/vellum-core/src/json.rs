//! JSON as a client wrote it, for the rules that must judge the text itself: numbers.
//!
//! A JSON parser that reads numbers into `f64` changes some of them silently
//! (`123456789012345678901234567890` becomes `1.2345678901234568e29`, `0.10000000000000000001`
//! becomes `0.1`), after which no rule can tell. So values that may hold numbers (metadata, the
//! legacy flat body) are kept as their exact text in a [`RawObject`], and every number is
//! checked by the one rule, [`exact_number`], before it is stored:
//!
//! - a number whose value is an integer must lie within ±2^53 (±9,007,199,254,740,992), where
//!   an IEEE 754 double (JavaScript's numbers, and the canonical encoding's) holds every integer;
//! - any other number must be exactly the decimal that its nearest double prints as (`0.1`,
//!   `1.5e-7`; not `0.10000000000000000001`, not `1e-400`, not `1e400`).
//!
//! So an accepted number reads back with the same value it was sent with, in any language.
//! Anything else is refused; clients send such values as strings.

use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

/// The largest integer magnitude accepted: 2^53. Every integer up to it is exactly a double.
pub const MAX_EXACT_INTEGER: u64 = 1 << 53;

/// A JSON object whose member values are kept as the exact text that was sent. A repeated
/// member name keeps the last value, at the first one's position (as serde_json's maps do).
#[derive(Clone, Debug, Default)]
pub struct RawObject(Vec<(String, Box<RawValue>)>);

impl RawObject {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of a member, if present.
    pub fn get(&self, name: &str) -> Option<&RawValue> {
        self.0
            .iter()
            .find(|(member, _)| member == name)
            .map(|(_, value)| &**value)
    }

    /// Builds an object from members in order; a repeated name keeps its first position and its
    /// last value. Linear in the number of members, however many repeat.
    fn from_members(members: impl IntoIterator<Item = (String, Box<RawValue>)>) -> Self {
        let mut entries: Vec<(String, Box<RawValue>)> = Vec::new();
        let mut positions: HashMap<String, usize> = HashMap::new();
        for (name, value) in members {
            match positions.get(&name) {
                Some(&position) => entries[position].1 = value,
                None => {
                    positions.insert(name.clone(), entries.len());
                    entries.push((name, value));
                }
            }
        }
        Self(entries)
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The members in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.0.iter().map(|(name, value)| (name.as_str(), &**value))
    }
}

fn raw(value: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("a JSON value always serialises")
}

/// For callers that hold parsed values (the original spelling of their numbers is gone; each is
/// judged as serde_json prints it).
impl From<&Map<String, Value>> for RawObject {
    fn from(map: &Map<String, Value>) -> Self {
        map.iter().map(|(name, value)| (name.clone(), value.clone())).collect()
    }
}

impl FromIterator<(String, Value)> for RawObject {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(members: I) -> Self {
        Self::from_members(members.into_iter().map(|(name, value)| (name, raw(&value))))
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = RawObject;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push(member);
                }
                Ok(RawObject::from_members(members))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// What a raw value is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawKind<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written.
    Number(&'a str),
    /// A string, decoded.
    String(String),
    /// A list.
    Array,
    /// An object.
    Object,
}

/// Tells what a raw value is (by its first character: the text is valid JSON).
pub fn kind(value: &RawValue) -> RawKind<'_> {
    let text = value.get().trim();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str(text).map_or(RawKind::Null, RawKind::String),
        Some(b't') => RawKind::Bool(true),
        Some(b'f') => RawKind::Bool(false),
        Some(b'[') => RawKind::Array,
        Some(b'{') => RawKind::Object,
        Some(b'-' | b'0'..=b'9') => RawKind::Number(text),
        _ => RawKind::Null,
    }
}

/// Why a number is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberError {
    /// An integer beyond ±2^53.
    IntegerTooLarge,
    /// A number no double holds exactly (too precise, too small or too large), or not a JSON
    /// number at all.
    Inexact,
}

impl fmt::Display for NumberError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::IntegerTooLarge => {
                "integers are at most 2^53 (9007199254740992) in magnitude; send larger ones as strings"
            }
            Self::Inexact => {
                "this number would change when read back (a double cannot hold it exactly); send it as a string"
            }
        })
    }
}

/// A decimal number as `digits × 10^exponent`: `digits` without leading or trailing zeros
/// (empty for zero, whose sign is dropped).
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
}

impl Decimal {
    /// Reads JSON's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let mut position = 0;
        let negative = bytes.first() == Some(&b'-');
        if negative {
            position += 1;
        }
        let integer_start = position;
        while bytes.get(position).is_some_and(u8::is_ascii_digit) {
            position += 1;
        }
        let integer = &bytes[integer_start..position];
        if integer.is_empty() || (integer.len() > 1 && integer[0] == b'0') {
            return None;
        }
        let mut fraction: &[u8] = &[];
        if bytes.get(position) == Some(&b'.') {
            let start = position + 1;
            position = start;
            while bytes.get(position).is_some_and(u8::is_ascii_digit) {
                position += 1;
            }
            fraction = &bytes[start..position];
            if fraction.is_empty() {
                return None;
            }
        }
        let mut written_exponent: i64 = 0;
        if matches!(bytes.get(position), Some(b'e' | b'E')) {
            position += 1;
            let exponent_negative = match bytes.get(position) {
                Some(b'-') => {
                    position += 1;
                    true
                }
                Some(b'+') => {
                    position += 1;
                    false
                }
                _ => false,
            };
            let start = position;
            while bytes.get(position).is_some_and(u8::is_ascii_digit) {
                // Saturates: a huge exponent stays huge (and is refused), it never wraps.
                written_exponent = written_exponent
                    .saturating_mul(10)
                    .saturating_add(i64::from(bytes[position] - b'0'));
                position += 1;
            }
            if position == start {
                return None;
            }
            if exponent_negative {
                written_exponent = -written_exponent;
            }
        }
        if position != bytes.len() {
            return None;
        }
        let mut digits: Vec<u8> = integer.iter().chain(fraction).map(|digit| digit - b'0').collect();
        let fraction_len = i64::try_from(fraction.len()).unwrap_or(i64::MAX);
        let mut exponent = written_exponent.saturating_sub(fraction_len);
        while digits.last() == Some(&0) {
            digits.pop();
            exponent = exponent.saturating_add(1);
        }
        let leading_zeros = digits.iter().take_while(|digit| **digit == 0).count();
        digits.drain(..leading_zeros);
        if digits.is_empty() {
            return Some(Self {
                negative: false,
                digits,
                exponent: 0,
            });
        }
        Some(Self {
            negative,
            digits,
            exponent,
        })
    }

    /// True when the value is an integer beyond ±2^53.
    fn is_integer_beyond_limit(&self) -> bool {
        if self.digits.is_empty() || self.exponent < 0 {
            return false;
        }
        let length = i64::try_from(self.digits.len())
            .unwrap_or(i64::MAX)
            .saturating_add(self.exponent);
        const LIMIT: &[u8] = b"9007199254740992";
        let limit_len = i64::try_from(LIMIT.len()).unwrap_or(i64::MAX);
        match length.cmp(&limit_len) {
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal => {
                let mut written: Vec<u8> = self.digits.iter().map(|digit| digit + b'0').collect();
                written.resize(LIMIT.len(), b'0');
                written.as_slice() > LIMIT
            }
        }
    }
}

/// Checks a number as written against the rule (see the module documentation) and returns it as
/// serde_json would have parsed it: an integer when written as one, a double otherwise.
pub fn exact_number(text: &str) -> Result<Number, NumberError> {
    let decimal = Decimal::parse(text).ok_or(NumberError::Inexact)?;
    if decimal.is_integer_beyond_limit() {
        return Err(NumberError::IntegerTooLarge);
    }
    let double: f64 = text.parse().map_err(|_| NumberError::Inexact)?;
    if !double.is_finite() {
        return Err(NumberError::Inexact);
    }
    // Rust prints a double's shortest round-tripping digits, as JSON encoders and the canonical
    // encoding (ECMAScript's Number::toString) do.
    let printed = Decimal::parse(&format!("{double:e}")).ok_or(NumberError::Inexact)?;
    if printed != decimal {
        return Err(NumberError::Inexact);
    }
    serde_json::from_str(text).map_err(|_| NumberError::Inexact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_up_to_two_to_the_53_are_exact() {
        for (text, expected) in [
            ("0", "0"),
            ("-0", "-0.0"),
            ("25", "25"),
            ("-4", "-4"),
            ("9007199254740992", "9007199254740992"),
            ("-9007199254740992", "-9007199254740992"),
            ("9007199254740991", "9007199254740991"),
            ("1e2", "100.0"),
            ("1.50e1", "15.0"),
            ("9.007199254740992e15", "9007199254740992.0"),
        ] {
            assert_eq!(
                exact_number(text).map(|number| number.to_string()).as_deref(),
                Ok(expected),
                "{text}"
            );
        }
    }

    #[test]
    fn integers_beyond_two_to_the_53_are_refused_however_spelled() {
        for text in [
            "9007199254740993",
            "-9007199254740993",
            "18446744073709551615",
            "123456789012345678901234567890",
            "1e20",
            "1.2345678901234568e29",
            "9007199254740994",
            "1e400",
            "-1e99999999999999999999999",
        ] {
            assert_eq!(exact_number(text), Err(NumberError::IntegerTooLarge), "{text}");
        }
    }

    #[test]
    fn other_numbers_must_read_back_exactly() {
        for text in [
            "0.1",
            "1.5",
            "1.50",
            "-0.0",
            "0.0001",
            "1.5e-7",
            "5e-324",
            "2.2250738585072014e-308",
            "0.30000000000000004",
            "4503599627370495.5",
        ] {
            assert!(exact_number(text).is_ok(), "{text}");
        }
        for text in [
            "0.10000000000000000001",
            "0.1000000000000000055511151231257827",
            "1e-400",
            "4503599627370496.5",
            "9007199254740992.5",
            "3.141592653589793238462643383279",
        ] {
            assert_eq!(exact_number(text), Err(NumberError::Inexact), "{text}");
        }
    }

    #[test]
    fn only_json_numbers_are_numbers() {
        for text in [
            "", "-", "01", "1.", ".5", "1e", "1e+", "+1", "NaN", "inf", "0x10", "1 ", " 1", "1_000",
        ] {
            assert!(exact_number(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn raw_objects_keep_the_text_and_the_last_of_repeated_names() {
        let object: RawObject =
            serde_json::from_str(r#"{"a": 1.50, "b": "x", "a": 123456789012345678901234567890, "c": [1]}"#).unwrap();
        assert_eq!(object.len(), 3);
        let names: Vec<_> = object.iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(
            kind(object.get("a").unwrap()),
            RawKind::Number("123456789012345678901234567890")
        );
        assert_eq!(kind(object.get("b").unwrap()), RawKind::String("x".into()));
        assert_eq!(kind(object.get("c").unwrap()), RawKind::Array);
        assert!(serde_json::from_str::<RawObject>("[1]").is_err());
    }

    #[test]
    fn many_members_are_read_in_linear_time() {
        let members: Vec<String> = (0..200_000).map(|index| format!("\"k{index}\": {index}")).collect();
        let started = std::time::Instant::now();
        let object: RawObject = serde_json::from_str(&format!("{{{}}}", members.join(","))).unwrap();
        assert_eq!(object.len(), 200_000);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}
