//! Human units in the config: durations ("250ms", "30s", "10m", "1h30m", "1d")
//! and byte sizes ("512", "1KiB", "256MiB", "10MB").

use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::env;

/// Whole seconds, rounded up: how `Retry-After` and the `RateLimit` header's
/// `t` state a duration (never promising a retry too early).
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A duration written like `"30s"` (`${ENV}` expanded first), for serde.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let text = env::expand(&text, env::process).map_err(de::Error::custom)?;
        parse_duration(&text).map(Dur).map_err(de::Error::custom)
    }
}

/// A byte size: `"256MiB"` (`${ENV}` expanded first) or a plain integer of
/// bytes, for serde.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a size such as \"256MiB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                let v = env::expand(v, env::process).map_err(E::custom)?;
                parse_size(&v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

/// Why a duration or a size could not be read; each message says how to
/// write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Nothing written.
    #[error("empty duration; write it like \"30s\", \"10m\" or \"1h\"")]
    EmptyDuration,
    /// A part without its number.
    #[error("invalid duration {text:?}: expected a number at {at:?}")]
    MissingNumber {
        /// The duration.
        text: String,
        /// Where the number is missing.
        at: String,
    },
    /// A number without its unit.
    #[error("invalid duration {0:?}: missing unit (ms, s, m, h or d)")]
    MissingUnit(String),
    /// A unit Rampart does not know.
    #[error("invalid duration {text:?}: unknown unit {unit:?} (use us, ms, s, m, h or d)")]
    UnknownDurationUnit {
        /// The duration.
        text: String,
        /// The unit.
        unit: String,
    },
    /// A size that does not start with a number.
    #[error("invalid size {0:?}: write it like \"1KiB\", \"256MiB\" or a number of bytes")]
    NotASize(String),
    /// A size unit Rampart does not know.
    #[error("invalid size {text:?}: unknown unit {unit:?} (use B, KB, MB, GB, KiB, MiB or GiB)")]
    UnknownSizeUnit {
        /// The size.
        text: String,
        /// The unit.
        unit: String,
    },
    /// A number beyond what fits.
    #[error("invalid {what} {text:?}: too large")]
    TooLarge {
        /// `duration` or `size`.
        what: &'static str,
        /// The text.
        text: String,
    },
}

/// Parses a duration written as one or more `<number><unit>` parts
/// (`ms`, `s`, `m`, `h`, `d`), for example `"1h30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(UnitError::EmptyDuration);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(UnitError::MissingNumber {
                text: text.to_string(),
                at: rest.to_string(),
            });
        }
        let number: u64 = rest[..digits].parse().map_err(|_| UnitError::TooLarge {
            what: "duration",
            text: text.to_string(),
        })?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "us" | "µs" => Duration::from_micros(number),
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "d" => Duration::from_secs(number.saturating_mul(86_400)),
            "" => return Err(UnitError::MissingUnit(text.to_string())),
            other => {
                return Err(UnitError::UnknownDurationUnit {
                    text: text.to_string(),
                    unit: other.to_string(),
                })
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Writes a duration the way the config reads it (`"1m"`, `"5m"`, `"1h"`, `"90s"`).
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_millis() != 0 || secs == 0 {
        format!("{}ms", d.as_millis())
    } else if secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// Parses a byte size: a plain number of bytes, or a number with a unit
/// (`B`, `KB`, `MB`, `GB` are powers of 1000; `KiB`, `MiB`, `GiB` powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let too_large = || UnitError::TooLarge {
        what: "size",
        text: text.to_string(),
    };
    if digits == 0 {
        return Err(UnitError::NotASize(text.to_string()));
    }
    let number: u64 = text[..digits].parse().map_err(|_| too_large())?;
    let multiplier: u64 = match text[digits..].trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(UnitError::UnknownSizeUnit {
                text: text.to_string(),
                unit: other.to_string(),
            })
        }
    };
    number.checked_mul(multiplier).ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1ms500µs"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("30")
            .unwrap_err()
            .to_string()
            .contains("missing unit"));
        assert!(parse_duration("3x")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert!(parse_size("1 potato").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999GiB").is_err());
    }
}
