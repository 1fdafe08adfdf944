//! The instants the API accepts from clients. The database stores `timestamptz` at
//! microsecond precision between 4714 BC and 294276 AD; a time outside that range, or
//! finer than a microsecond, would pass the API and fail in the database (a 500, or a job
//! whose every delivery fails). A period a client names lies in years 1970 to 9999 (what
//! RFC 3339 writes with four digits, and before any Chatwork message) and is compared at
//! the precision it is stored at.

use chrono::{DateTime, Datelike, SubsecRound, Utc};
use serde::{Deserialize, Deserializer};

/// The first year a client may name.
pub const EARLIEST_YEAR: i32 = 1970;
/// The last year a client may name.
pub const LATEST_YEAR: i32 = 9999;

/// An RFC 3339 instant in years 1970 to 9999, cut to whole microseconds (as the database
/// would store it). The OpenAPI document states the window as the pattern
/// `^(19[7-9][0-9]|[2-9][0-9]{3})-` on a `date-time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiTime(DateTime<Utc>);

impl ApiTime {
    pub fn get(self) -> DateTime<Utc> {
        self.0
    }
}

impl TryFrom<DateTime<Utc>> for ApiTime {
    type Error = String;

    fn try_from(time: DateTime<Utc>) -> Result<Self, Self::Error> {
        if !(EARLIEST_YEAR..=LATEST_YEAR).contains(&time.year()) {
            return Err(format!(
                "must be in the years {EARLIEST_YEAR} to {LATEST_YEAR}, got {}",
                time.to_rfc3339()
            ));
        }
        Ok(Self(time.trunc_subsecs(6)))
    }
}

impl<'de> Deserialize<'de> for ApiTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let time = DateTime::<Utc>::deserialize(deserializer)?;
        Self::try_from(time).map_err(serde::de::Error::custom)
    }
}

/// Postgres's earliest `timestamptz` (4714-11-24 BC, 00:00 UTC) in microseconds since
/// the Unix epoch. Chrono's latest instant is before Postgres's latest.
pub const POSTGRES_EARLIEST_MICROS: i64 = -210_866_803_200_000_000;

/// Whether the database can store `micros` (microseconds since the Unix epoch).
pub fn storable_micros(micros: i64) -> Option<DateTime<Utc>> {
    if micros < POSTGRES_EARLIEST_MICROS {
        return None;
    }
    DateTime::from_timestamp_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ApiTime, serde_json::Error> {
        serde_json::from_value(serde_json::Value::String(s.into()))
    }

    #[test]
    fn years_outside_the_window_are_refused() {
        for bad in [
            "-005000-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "+10000-01-01T00:00:00Z",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        for good in [
            "1970-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "2025-01-01T09:00:00+09:00",
        ] {
            assert!(parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn nanoseconds_are_cut_as_the_database_cuts_them() {
        let start = parse("2025-01-01T00:00:00Z").unwrap();
        let end = parse("2025-01-01T00:00:00.000000001Z").unwrap();
        assert_eq!(start, end, "no later once stored");
        assert_eq!(
            parse("2025-01-01T00:00:00.1234569Z")
                .unwrap()
                .get()
                .timestamp_subsec_nanos(),
            123_456_000
        );
    }

    #[test]
    fn postgres_range_for_cursors() {
        assert!(storable_micros(-377_705_116_800_000_000).is_none());
        assert!(storable_micros(POSTGRES_EARLIEST_MICROS).is_some());
        assert!(storable_micros(0).is_some());
    }
}
