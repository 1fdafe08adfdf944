//! Opaque page cursors of the lists that page by a sort key (rooms and companies by name,
//! jobs by creation time): `v1:<part>:<part>:...` in unpadded URL-safe base64, the style
//! of a room's messages cursor. The last part may itself hold `:` (a name). Clients pass
//! back what they were given; anything else is a 400 naming `cursor`. [`page`] cuts a
//! list read one row long into the page and the cursor of the next.

use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

const INVALID: &str = "not a cursor this API gave out";

fn encode(parts: &[&str]) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{}", parts.join(":")))
}

/// The `n` parts of a cursor, the last one taking the rest.
fn decode(s: &str, n: usize) -> Result<Vec<String>, &'static str> {
    let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| INVALID)?;
    let text = String::from_utf8(bytes).map_err(|_| INVALID)?;
    // No name we store holds NUL, and Postgres would refuse it as a bound value.
    if text.contains('\0') {
        return Err(INVALID);
    }
    let rest = text.strip_prefix("v1:").ok_or(INVALID)?;
    let parts: Vec<String> = rest.splitn(n, ':').map(str::to_owned).collect();
    if parts.len() == n {
        Ok(parts)
    } else {
        Err(INVALID)
    }
}

macro_rules! deserialize_from_str {
    ($type:ty) => {
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// After the row with this name and numeric id, in `(name, id)` order (rooms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameIdCursor {
    pub name: String,
    pub id: i64,
}

impl NameIdCursor {
    pub fn encode(&self) -> String {
        encode(&[&self.id.to_string(), &self.name])
    }
}

impl FromStr for NameIdCursor {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts = decode(s, 2)?;
        Ok(Self {
            id: parts[0].parse().map_err(|_| INVALID)?,
            name: parts[1].clone(),
        })
    }
}
deserialize_from_str!(NameIdCursor);

/// After the row with this name and UUID, in `(name, id)` order (companies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameUuidCursor {
    pub name: String,
    pub id: Uuid,
}

impl NameUuidCursor {
    pub fn encode(&self) -> String {
        encode(&[&self.id.to_string(), &self.name])
    }
}

impl FromStr for NameUuidCursor {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts = decode(s, 2)?;
        Ok(Self {
            id: Uuid::parse_str(&parts[0]).map_err(|_| INVALID)?,
            name: parts[1].clone(),
        })
    }
}
deserialize_from_str!(NameUuidCursor);

/// After the row created at this time with this UUID, newest first (jobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeUuidCursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl TimeUuidCursor {
    pub fn encode(&self) -> String {
        encode(&[
            &self.at.timestamp_micros().to_string(),
            &self.id.to_string(),
        ])
    }
}

impl FromStr for TimeUuidCursor {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts = decode(s, 2)?;
        Ok(Self {
            at: parts[0]
                .parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_micros)
                .filter(|at| (1..=9999).contains(&at.year()))
                .ok_or(INVALID)?,
            id: Uuid::parse_str(&parts[1]).map_err(|_| INVALID)?,
        })
    }
}
deserialize_from_str!(TimeUuidCursor);

/// A time a cursor carries, as micros; refused when Postgres could not hold it (a forged
/// cursor must be a 400, not a 500).
fn cursor_time(part: &str) -> Result<DateTime<Utc>, &'static str> {
    part.parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .filter(|at| (1..=9999).contains(&at.year()))
        .ok_or(INVALID)
}

/// After the row with this time and numeric id, newest first (a room's files by upload
/// time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeIdCursor {
    pub at: DateTime<Utc>,
    pub id: i64,
}

impl TimeIdCursor {
    pub fn encode(&self) -> String {
        encode(&[
            &self.at.timestamp_micros().to_string(),
            &self.id.to_string(),
        ])
    }
}

impl FromStr for TimeIdCursor {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts = decode(s, 2)?;
        Ok(Self {
            at: cursor_time(&parts[0])?,
            id: parts[1].parse().map_err(|_| INVALID)?,
        })
    }
}
deserialize_from_str!(TimeIdCursor);

/// After this task in one of the two orders tasks are listed in: `newest` (by id, newest
/// first; `deadline` is not used) or `deadline` (earliest deadline first, tasks without
/// one last, then by id). The order is part of the cursor, so that a page of one order is
/// never continued in the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskCursor {
    pub by_deadline: bool,
    pub deadline: Option<DateTime<Utc>>,
    pub task_id: i64,
}

impl TaskCursor {
    pub fn encode(&self) -> String {
        let order = if self.by_deadline {
            "deadline"
        } else {
            "newest"
        };
        let deadline = self
            .deadline
            .map_or_else(|| "-".to_owned(), |at| at.timestamp_micros().to_string());
        encode(&[order, &deadline, &self.task_id.to_string()])
    }
}

impl FromStr for TaskCursor {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts = decode(s, 3)?;
        let by_deadline = match parts[0].as_str() {
            "deadline" => true,
            "newest" => false,
            _ => return Err(INVALID),
        };
        let deadline = match parts[1].as_str() {
            "-" => None,
            micros => Some(cursor_time(micros)?),
        };
        Ok(Self {
            by_deadline,
            deadline,
            task_id: parts[2].parse().map_err(|_| INVALID)?,
        })
    }
}
deserialize_from_str!(TaskCursor);

/// A page of `rows` read with `LIMIT limit + 1`: the extra row, when it came, says another
/// page follows without a count. Answers the first `limit` rows and, when more followed,
/// the cursor after the last of them (`cursor_of` that row).
pub(crate) fn page<T>(
    mut rows: Vec<T>,
    limit: i64,
    cursor_of: impl FnOnce(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let next = rows.last().map(cursor_of);
    (rows, next)
}

/// `text` as a `LIKE` pattern that matches it anywhere, its own `%`, `_` and `\` taken
/// literally.
pub(crate) fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// A name search: 1 to 200 characters once trimmed (a blank one means no search).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameSearch(pub String);

impl<'de> Deserialize<'de> for NameSearch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        let text = raw.trim();
        if text.chars().count() > 200 {
            return Err(serde::de::Error::custom("must be at most 200 characters"));
        }
        Ok(Self(text.to_owned()))
    }
}

impl NameSearch {
    /// The `LIKE` pattern, `None` for a blank search.
    pub fn pattern(search: Option<&NameSearch>) -> Option<String> {
        search
            .filter(|s| !s.0.is_empty())
            .map(|s| contains_pattern(&s.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_holding_nul_or_a_time_postgres_cannot_store_are_refused() {
        let nul = NameIdCursor {
            name: "a\0b".into(),
            id: 1,
        };
        assert!(nul.encode().parse::<NameIdCursor>().is_err());
        for micros in [i64::MIN, -62_135_596_800_000_001, 253_402_300_800_000_000] {
            let cursor = URL_SAFE_NO_PAD.encode(format!("v1:{micros}:{}", Uuid::nil()));
            assert!(cursor.parse::<TimeUuidCursor>().is_err(), "{micros}");
        }
        let now = TimeUuidCursor {
            at: DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap(),
            id: Uuid::nil(),
        };
        assert_eq!(now.encode().parse::<TimeUuidCursor>(), Ok(now));
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let room = NameIdCursor {
            name: "a:b 会議".into(),
            id: 42,
        };
        assert_eq!(room.encode().parse::<NameIdCursor>().unwrap(), room);
        let company = NameUuidCursor {
            name: "ACME".into(),
            id: Uuid::new_v4(),
        };
        assert_eq!(company.encode().parse::<NameUuidCursor>().unwrap(), company);
        let job = TimeUuidCursor {
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(job.encode().parse::<TimeUuidCursor>().unwrap(), job);
        for bad in [
            "",
            "!!",
            &URL_SAFE_NO_PAD.encode("v2:1:x"),
            &URL_SAFE_NO_PAD.encode("v1:x:y"),
        ] {
            assert!(bad.parse::<NameIdCursor>().is_err(), "{bad}");
            assert!(bad.parse::<NameUuidCursor>().is_err(), "{bad}");
            assert!(bad.parse::<TimeUuidCursor>().is_err(), "{bad}");
        }
    }

    #[test]
    fn task_and_file_cursors_round_trip_and_reject_garbage() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        for cursor in [
            TaskCursor {
                by_deadline: true,
                deadline: Some(at),
                task_id: 7,
            },
            TaskCursor {
                by_deadline: true,
                deadline: None,
                task_id: 8,
            },
            TaskCursor {
                by_deadline: false,
                deadline: None,
                task_id: 9,
            },
        ] {
            assert_eq!(cursor.encode().parse::<TaskCursor>(), Ok(cursor));
        }
        let file = TimeIdCursor { at, id: 42 };
        assert_eq!(file.encode().parse::<TimeIdCursor>(), Ok(file));
        for bad in [
            URL_SAFE_NO_PAD.encode("v1:soonest:-:1"),
            URL_SAFE_NO_PAD.encode("v1:deadline:x:1"),
            URL_SAFE_NO_PAD.encode("v1:deadline:-:x"),
            URL_SAFE_NO_PAD.encode(format!("v1:deadline:{}:1", i64::MIN)),
        ] {
            assert!(bad.parse::<TaskCursor>().is_err(), "{bad}");
        }
        assert!(
            URL_SAFE_NO_PAD
                .encode("v1:x:1")
                .parse::<TimeIdCursor>()
                .is_err()
        );
    }

    #[test]
    fn a_page_is_cut_at_the_limit_with_a_cursor_only_when_more_followed() {
        let cursor = |n: &i32| format!("after {n}");
        assert_eq!(
            page(vec![1, 2, 3], 2, cursor),
            (vec![1, 2], Some("after 2".into()))
        );
        assert_eq!(page(vec![1, 2], 2, cursor), (vec![1, 2], None));
        assert_eq!(page(Vec::<i32>::new(), 2, cursor), (vec![], None));
    }

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
