//! Time arithmetic shared by every layer: timestamp units, the proleptic Gregorian calendar,
//! the range of times a store accepts, formatting for messages, and time zones (`zone`).
//!
//! Everything here is plain integer arithmetic on microseconds since 1970-01-01 UTC (or on the
//! units of a timestamp type); it knows nothing of stores, views or buckets.

use crate::arrow::datatypes::{DataType, TimeUnit};

pub mod zone;

/// Microseconds in a day.
pub const DAY_MICROS: i64 = 86_400_000_000;

/// Units per second of a timestamp type.
pub fn units_per_second(dt: &DataType) -> i64 {
    match dt {
        DataType::Timestamp(TimeUnit::Second, _) => 1,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000_000,
        _ => 1_000_000_000,
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub const fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil (year, month, day) of a day since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (None if it is not a valid date).
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(-9999..=9999).contains(&y) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // 2026-02-30 is not a date: it would come back as another day.
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

/// The most days from 1970-01-01 a date may lie for its midnight to fit in int64 microseconds
/// (about 292,000 years).
pub const MAX_DATE_DAYS: i64 = i64::MAX / DAY_MICROS;

/// The first instant of the year -99,999 (proleptic Gregorian), in microseconds: the earliest
/// time an append accepts in any timestamp or date column.
pub const MIN_TIME_US: i64 = days_from_civil(-99_999, 1, 1) * DAY_MICROS;
/// The last microsecond of the year 99,999: the latest time an append accepts.
pub const MAX_TIME_US: i64 = days_from_civil(100_000, 1, 1) * DAY_MICROS - 1;

/// `micros` since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC; fractions of a second shown only
/// when present), for messages.
pub fn format_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (the proleptic Gregorian calendar).
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        tod / 3_600,
        tod / 60 % 60,
        tod % 60
    );
    if frac != 0 {
        out.push_str(&format!(".{frac:06}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_as_civil_dates() {
        assert_eq!(format_micros(0), "1970-01-01 00:00:00");
        assert_eq!(format_micros(951_782_400_000_000), "2000-02-29 00:00:00");
        assert_eq!(
            format_micros(1_767_236_400_250_000),
            "2026-01-01 03:00:00.250000"
        );
        assert_eq!(format_micros(-1_000_000), "1969-12-31 23:59:59");
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000i64, -1, 0, 59, 11_016, 20_513, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(parse_date("2024-02-29"), Some(days_from_civil(2024, 2, 29)));
        assert_eq!(parse_date("2026-02-30"), None);
    }
}
