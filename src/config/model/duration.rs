//! A duration as written in the document: a number of seconds or a string such as
//! `"10s"`. Kept unparsed so that `compile` reports a bad value with its path next to
//! every other error instead of stopping deserialisation at the first one.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A number (seconds, may be fractional) or a string with a unit (`"500ms"`, `"2m"`).
#[derive(Debug, Clone, PartialEq)]
pub enum DurationValue {
    Seconds(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = DurationValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration: seconds as a number, or a string such as \"10s\" or \"500ms\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        // Precision loss above 2^53 seconds is irrelevant: such values are rejected later.
        Ok(DurationValue::Seconds(v as f64))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(DurationValue::Seconds(v as f64))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(DurationValue::Seconds(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(DurationValue::Text(v.to_owned()))
    }
}
