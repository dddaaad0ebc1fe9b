//! Durations in scenario files: `"90s"`, `"6m"`, `"14h"`, `"2d"`, combinations such as
//! `"12h50m"`, or a plain number of seconds.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A non-negative duration in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub u64);

/// Why a duration does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// A minus sign.
    #[error("`{0}`: negative durations are not allowed")]
    Negative(String),
    /// Anything else.
    #[error("`{0}`: expected a number of seconds or numbers with units s, m, h, d (e.g. \"90s\", \"12h50m\")")]
    Malformed(String),
    /// Too large.
    #[error("`{0}`: too large")]
    Overflow(String),
}

impl Duration {
    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Duration, DurationError> {
        let s = text.trim();
        if s.starts_with('-') {
            return Err(DurationError::Negative(text.to_owned()));
        }
        if s.is_empty() {
            return Err(DurationError::Malformed(text.to_owned()));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(Duration).map_err(|_| DurationError::Overflow(text.to_owned()));
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return Err(DurationError::Malformed(text.to_owned())),
            };
            if digits.is_empty() {
                return Err(DurationError::Malformed(text.to_owned()));
            }
            let n: u64 = digits.parse().map_err(|_| DurationError::Overflow(text.to_owned()))?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| DurationError::Overflow(text.to_owned()))?;
            digits.clear();
        }
        if !digits.is_empty() {
            return Err(DurationError::Malformed(text.to_owned()));
        }
        Ok(Duration(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, rest) = (self.0 / 86_400, self.0 % 86_400);
        let (h, rest) = (rest / 3600, rest % 3600);
        let (m, s) = (rest / 60, rest % 60);
        let mut any = false;
        for (n, u) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
            if n > 0 {
                write!(f, "{n}{u}")?;
                any = true;
            }
        }
        if !any {
            f.write_str("0s")?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) if n < 0 => {
                Err(serde::de::Error::custom(DurationError::Negative(n.to_string())))
            }
            Raw::Int(n) => Ok(Duration(n.unsigned_abs())),
            Raw::Text(t) => Duration::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_combinations_parse() {
        for (text, secs) in [
            ("90s", 90),
            ("6m", 360),
            ("14h", 50_400),
            ("2d", 172_800),
            ("12h50m", 46_200),
            ("45", 45),
        ] {
            assert_eq!(Duration::parse(text), Ok(Duration(secs)), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_why() {
        assert!(matches!(Duration::parse("-5h"), Err(DurationError::Negative(_))));
        for bad in ["", "h", "5x", "5h3", "1.5h", "five"] {
            assert!(matches!(Duration::parse(bad), Err(DurationError::Malformed(_))), "{bad}");
        }
        assert!(matches!(
            Duration::parse("99999999999999999999d"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn display_round_trips() {
        for secs in [0, 59, 3600, 46_200, 183_723] {
            let d = Duration(secs);
            assert_eq!(Duration::parse(&d.to_string()), Ok(d));
        }
    }
}
