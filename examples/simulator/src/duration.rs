//! Durations in scenario files: `"90s"`, `"6m"`, `"14h"`, `"2d"`, combinations such as
//! `"12h50m"` (parsed by `humantime`), or a plain number of seconds.

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
    /// Parses the text form: a whole number of seconds, or `humantime`'s units (`s`, `m`, `h`,
    /// `d`, and their long forms, combined as in `"12h50m"` or `"1h 30m"`), in whole seconds.
    pub fn parse(text: &str) -> Result<Duration, DurationError> {
        let s = text.trim();
        if s.starts_with('-') {
            return Err(DurationError::Negative(text.to_owned()));
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(Duration).map_err(|_| DurationError::Overflow(text.to_owned()));
        }
        match humantime::parse_duration(s) {
            Ok(d) if d.subsec_nanos() == 0 => Ok(Duration(d.as_secs())),
            Ok(_) => Err(DurationError::Malformed(text.to_owned())),
            Err(humantime::DurationError::NumberOverflow) => {
                Err(DurationError::Overflow(text.to_owned()))
            }
            Err(_) => Err(DurationError::Malformed(text.to_owned())),
        }
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
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"90s\", \"12h50m\" or a whole number of seconds")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Duration, E> {
                u64::try_from(n)
                    .map(Duration)
                    .map_err(|_| E::custom(DurationError::Negative(n.to_string())))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Duration, E> {
                Ok(Duration(n))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "`{n}`: a duration is a whole number of seconds or a text such as \"90s\" or \"12h50m\""
                )))
            }
            fn visit_str<E: serde::de::Error>(self, t: &str) -> Result<Duration, E> {
                Duration::parse(t).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
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
            ("1.5h", 5400),
            ("1h 30m", 5400),
        ] {
            assert_eq!(Duration::parse(text), Ok(Duration(secs)), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_why() {
        assert!(matches!(Duration::parse("-5h"), Err(DurationError::Negative(_))));
        for bad in ["", "h", "5x", "5h3", "1.5s", "five", "500ms"] {
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
