//! Event-time grains ("15m", "1h", "1d") and bucketing.
//!
//! Buckets are aligned to the Unix epoch in UTC: a `1d` bucket starts at midnight UTC, a `1h`
//! bucket on the hour. Weeks (any whole number of weeks) start on Monday, as ISO weeks do in
//! DuckDB's `time_bucket` and pandas: they are aligned to Monday 2000-01-03, DuckDB's origin, so
//! `2w` buckets match DuckDB's too. Bucket starts are reported in microseconds since the epoch.
//! A grain may carry a time zone (see `zone`): its buckets are then cut on that zone's clock.

use crate::arrow::array::{Array, ArrayRef, AsArray};
use crate::arrow::datatypes::DataType;

use crate::error::{Error, Result};
use crate::time::zone::{Span, Zone, ZoneId};
use crate::time::{civil_from_days, days_from_civil, units_per_second, DAY_MICROS};

const WEEK_SECONDS: i64 = 7 * 86_400;
/// Monday 2000-01-03 00:00 UTC.
const MONDAY_ORIGIN_SECONDS: i64 = 946_857_600;

/// A bucket width: whole seconds, or (`months` > 0) calendar months, quarters or years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grain {
    /// The width of a fixed grain; for a calendar grain, its shortest bucket (28 days a month).
    pub seconds: i64,
    /// Calendar months per bucket (0: a fixed grain).
    pub months: i64,
    /// The zone whose clock cuts the buckets (UTC by default).
    pub zone: ZoneId,
}

/// Months since 2000-01 (DuckDB's origin for month buckets) of the month holding `micros`.
fn month_index(micros: i64) -> i64 {
    let (y, m, _) = civil_from_days(micros.div_euclid(DAY_MICROS));
    (y - 2000) * 12 + (m - 1)
}

/// The start, in microseconds, of month `index` (months since 2000-01).
fn month_start(index: i64) -> i64 {
    let y = 2000 + index.div_euclid(12);
    let m = index.rem_euclid(12) + 1;
    days_from_civil(y, m, 1).saturating_mul(DAY_MICROS)
}

impl Grain {
    /// Parse `"<n><unit>"` with unit one of `s`, `m`, `h`, `d`, `w`, or the calendar units
    /// `mo` (months), `q` (quarters) and `y` (years) (n >= 1).
    pub fn parse(text: &str) -> Result<Grain> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: i64 = if num.is_empty() {
            1
        } else {
            num.parse().map_err(|_| bad(text))?
        };
        let months = match unit {
            "mo" => Some(1),
            "q" => Some(3),
            "y" => Some(12),
            _ => None,
        };
        if let Some(per) = months {
            if !(1..=12_000).contains(&n) {
                return Err(bad(text));
            }
            return Ok(Grain {
                seconds: 28 * 86_400 * n * per,
                months: n * per,
                zone: ZoneId::UTC,
            });
        }
        let per = match unit {
            "s" => 1,
            "m" | "min" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(bad(text)),
        };
        if !(1..=10_000_000).contains(&n) {
            return Err(bad(text));
        }
        Ok(Grain {
            seconds: n * per,
            months: 0,
            zone: ZoneId::UTC,
        })
    }

    /// The grain with buckets cut on `zone`'s clock.
    pub fn with_zone(self, zone: ZoneId) -> Grain {
        Grain { zone, ..self }
    }

    /// Whether buckets are shorter than a day or not a whole number of days: in a zone they are
    /// floored with each event's own offset, not at the zone's midnights.
    pub fn is_sub_day(&self) -> bool {
        !self.is_calendar() && self.seconds % 86_400 != 0
    }

    /// The distance below which two bucket starts of this grain are never found (the grouping's
    /// dense path divides by it): zoned buckets are not all one width, so none is promised.
    pub fn min_step_micros(&self) -> i64 {
        if self.zone.is_utc() {
            self.micros()
        } else {
            1
        }
    }

    /// The width of a fixed grain; for a calendar grain, its shortest bucket (distinct buckets
    /// are always at least this far apart).
    pub fn micros(&self) -> i64 {
        self.seconds * 1_000_000
    }

    /// Whether buckets are calendar months (months, quarters, years).
    pub fn is_calendar(&self) -> bool {
        self.months > 0
    }

    /// Whether buckets are whole weeks (aligned to a Monday).
    pub fn is_weekly(&self) -> bool {
        !self.is_calendar() && self.seconds % WEEK_SECONDS == 0
    }

    /// The start of the bucket after the one starting at `start`.
    pub fn end_of(&self, start: i64) -> i64 {
        if let Some(z) = self.zone.zone().filter(|_| !self.is_sub_day()) {
            let local = z.offset(start).ok().and_then(|o| start.checked_add(o));
            if let Some(end) = local.and_then(|l| {
                z.instant_of_local(self.naive_end_of(self.floor_naive(l)))
                    .ok()
            }) {
                return end;
            }
        }
        self.naive_end_of(start)
    }

    /// `end_of` on a clock without transitions (UTC, or a zone's wall clock).
    fn naive_end_of(&self, start: i64) -> i64 {
        if self.is_calendar() {
            month_start(month_index(start) + self.months)
        } else {
            start.saturating_add(self.micros())
        }
    }

    /// Whether every bucket of `self` lies within one bucket of `coarser` (so a query can roll
    /// `self`'s buckets up into `coarser`'s).
    pub fn nests_in(&self, coarser: &Grain) -> bool {
        if self.zone != coarser.zone {
            return false;
        }
        match (self.is_calendar(), coarser.is_calendar()) {
            (false, false) => {
                coarser.seconds % self.seconds == 0
                    && (coarser.origin_seconds() - self.origin_seconds()) % self.seconds == 0
            }
            // Months start at midnight: fixed buckets that tile a day nest in them.
            (false, true) => 86_400 % self.seconds == 0,
            (true, true) => coarser.months % self.months == 0,
            (true, false) => false,
        }
    }

    /// The start of one bucket, in seconds since the epoch: Monday 2000-01-03 for weeks, the
    /// epoch otherwise.
    pub fn origin_seconds(&self) -> i64 {
        if self.is_weekly() {
            MONDAY_ORIGIN_SECONDS
        } else {
            0
        }
    }

    /// The canonical text of the grain ("90m" stays "90m", "60m" becomes "1h", "12mo" "1y").
    pub fn text(&self) -> String {
        if self.is_calendar() {
            let m = self.months;
            return if m % 12 == 0 {
                format!("{}y", m / 12)
            } else if m % 3 == 0 {
                format!("{}q", m / 3)
            } else {
                format!("{m}mo")
            };
        }
        let s = self.seconds;
        for (unit, per) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
            if s % per == 0 {
                return format!("{}{unit}", s / per);
            }
        }
        format!("{s}s")
    }

    /// Start of the bucket holding `micros`, in microseconds. (A zoned grain, for a time outside
    /// the years its rules cover, floors it as UTC: `bucket_column` refuses such rows.)
    #[inline]
    pub fn floor_micros(&self, micros: i64) -> i64 {
        match self.zone.zone() {
            None => self.floor_naive(micros),
            Some(z) => self
                .floor_zoned(&z, micros)
                .unwrap_or_else(|_| self.floor_naive(micros)),
        }
    }

    fn floor_zoned(&self, z: &Zone, micros: i64) -> Result<i64> {
        if !z.covers(micros) {
            return Ok(self.floor_naive(micros));
        }
        let span = z.span(micros)?;
        Ok(self
            .zoned_floor(z, micros, &span, &mut |at| z.span(at))?
            .start)
    }

    /// The bucket of `t` (an instant the zone's rules cover, inside `span`) on `z`'s clock, with
    /// the instants around `t` that share it. `before(at)` gives the span holding `at`.
    ///
    /// Day-long and longer buckets start at the first instant of their local start day. Shorter
    /// ones start at the latest instant, not after `t`, at which the clock shows their local
    /// start: the two 01:00-02:00 hours of a fall-back night are two buckets, and a bucket whose
    /// local start the clock skips starts when the clock jumps.
    fn zoned_floor(
        &self,
        z: &Zone,
        t: i64,
        span: &Span,
        before: &mut dyn FnMut(i64) -> Result<Span>,
    ) -> Result<ZonedBucket> {
        let o = span.offset;
        let local = t
            .checked_add(o)
            .ok_or_else(|| Error::schema("event time out of range"))?;
        let floor = self.floor_naive(local);
        let end = self.naive_end_of(floor);
        if !self.is_sub_day() {
            let start = z.instant_of_local(floor)?;
            let next = z.instant_of_local(end)?;
            return Ok(ZonedBucket {
                start,
                lo: start,
                hi: next,
            });
        }
        // Instants of this span whose local time lies in [floor, end).
        let lo = floor.saturating_sub(o).max(span.lo);
        let hi = end.saturating_sub(o).min(span.hi);
        let mine = floor.saturating_sub(o);
        let start = if mine >= span.lo {
            mine
        } else {
            // The local start lies before this span began: in the previous span if its clock
            // showed it, else the bucket starts with this span (the clock jumped over it).
            let prev = before(span.lo - 1)?;
            let theirs = floor.saturating_sub(prev.offset);
            if theirs >= prev.lo && theirs < span.lo {
                theirs
            } else {
                span.lo
            }
        };
        Ok(ZonedBucket { start, lo, hi })
    }

    /// Start of the bucket holding `micros` on a clock without transitions.
    #[inline]
    pub(crate) fn floor_naive(&self, micros: i64) -> i64 {
        if self.is_calendar() {
            return month_start(month_index(micros).div_euclid(self.months) * self.months);
        }
        let g = self.micros() as i128;
        let o = self.origin_seconds() as i128 * 1_000_000;
        let b = (micros as i128 - o).div_euclid(g) * g + o;
        // The bucket of a time within a bucket of the ends of i64: the nearest representable.
        i64::try_from(b).unwrap_or(if b < 0 { i64::MIN } else { i64::MAX })
    }
}

/// The widest grain a view may be defined with (10,000 years): a bucket of any accepted time
/// then starts and ends within int64 microseconds.
pub const MAX_GRAIN_SECONDS: i64 = 10_000 * 366 * 86_400;

impl Grain {
    /// Refuse grains wider than `MAX_GRAIN_SECONDS` (checked when a view is defined; a stored
    /// definition with a wider grain still loads).
    pub fn check_width(&self, text: &str) -> Result<()> {
        if self.seconds > MAX_GRAIN_SECONDS || self.months > 12 * 10_000 {
            return Err(Error::invalid(format!(
                "grain {text:?} is wider than 10,000 years, the widest lamina buckets"
            )));
        }
        Ok(())
    }
}

/// Midnight (UTC) of a date32 value, in microseconds.
fn date_micros(days: i32) -> Result<i64> {
    (days as i64).checked_mul(DAY_MICROS).ok_or_else(|| {
        Error::schema(format!(
            "date {days} (days from 1970-01-01) is outside the range lamina buckets (about 292,000 years)"
        ))
    })
}

fn bad(text: &str) -> Error {
    Error::invalid(format!(
        "bad grain {text:?}: expected a whole number and a unit, like \"30s\", \"15m\", \"1h\", \"1d\", \"1w\", \"1mo\", \"1q\" or \"1y\""
    ))
}

/// The bucket start of `t` (in 1/per_s seconds) in i128, for times where i64 would overflow.
#[cold]
fn wide_bucket(t: i64, grain: Grain, per_s: i64) -> Result<i64> {
    let g = grain.seconds as i128 * per_s as i128;
    let o = grain.origin_seconds() as i128 * per_s as i128;
    let b = (t as i128 - o).div_euclid(g) * g + o;
    i64::try_from(b * 1_000_000 / per_s as i128).map_err(|_| out_of_range(t, per_s))
}

fn out_of_range(t: i64, per_s: i64) -> Error {
    Error::schema(format!(
        "event time {t} (in units of 1/{per_s} s) is outside the range lamina buckets (about 290,000 years either side of 1970)"
    ))
}

/// A timestamp column's raw values (any unit) and its units per second.
fn raw_times(col: &ArrayRef) -> Result<(&[i64], i64)> {
    use crate::arrow::datatypes::{
        TimeUnit, TimestampMicrosecondType as Us, TimestampMillisecondType as Ms,
        TimestampNanosecondType as Ns, TimestampSecondType as S,
    };
    let values = match col.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => col.as_primitive::<S>().values(),
        DataType::Timestamp(TimeUnit::Millisecond, _) => col.as_primitive::<Ms>().values(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => col.as_primitive::<Us>().values(),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => col.as_primitive::<Ns>().values(),
        other => {
            return Err(Error::schema(format!(
                "time column has type {other}, not a timestamp or a date"
            )))
        }
    };
    Ok((values, units_per_second(col.data_type())))
}

/// A raw time in units of 1/`per_s` s as microseconds (nanoseconds round down); None if it does
/// not fit.
#[inline]
fn to_micros(t: i64, per_s: i64) -> Option<i64> {
    if per_s >= 1_000_000 {
        Some(t.div_euclid(per_s / 1_000_000))
    } else {
        t.checked_mul(1_000_000 / per_s)
    }
}

/// Bucket starts (microseconds since the epoch, UTC) for a timestamp column of any unit.
/// Rows with a null time get `None` in the validity (the caller skips them).
pub fn bucket_column(col: &ArrayRef, grain: Grain) -> Result<Vec<i64>> {
    if let Some(zone) = grain.zone.zone() {
        return zoned_buckets(col, grain, &zone);
    }
    if let DataType::Date32 = col.data_type() {
        // A date is its midnight (UTC).
        let days = col.as_primitive::<crate::arrow::datatypes::Date32Type>();
        return days
            .values()
            .iter()
            .map(|&d| date_micros(d).map(|m| grain.floor_naive(m)))
            .collect();
    }
    let (values, per_s) = raw_times(col)?;
    if grain.is_calendar() {
        return values
            .iter()
            .map(|&t| {
                to_micros(t, per_s)
                    .map(|m| grain.floor_micros(m))
                    .ok_or_else(|| out_of_range(t, per_s))
            })
            .collect();
    }
    // Floor division in i64 (times before 1970 round down too). Near the ends of the int64
    // range (an ns time in 1677 or 2262) the floor may not fit: those rows take the exact i128
    // path, so a bucket never wraps around; the common path costs one division per row.
    let g = grain.seconds.saturating_mul(per_s);
    let o = grain.origin_seconds() * per_s;
    let mut out = Vec::with_capacity(values.len());
    for &t in values.iter() {
        let floor = t
            .checked_sub(o)
            .and_then(|x| x.div_euclid(g).checked_mul(g))
            .and_then(|b| b.checked_add(o));
        let micros = match floor {
            Some(b) if per_s >= 1_000_000 => Some(b / (per_s / 1_000_000)),
            Some(b) => b.checked_mul(1_000_000 / per_s),
            None => None,
        };
        out.push(match micros {
            Some(m) => m,
            None => wide_bucket(t, grain, per_s)?,
        });
    }
    Ok(out)
}

/// Event times as microseconds since the epoch (UTC); a date is the instant its day starts in
/// `zone`. Null slots hold 0 (the caller skips them).
fn instants(col: &ArrayRef, zone: &Zone) -> Result<Vec<i64>> {
    if let DataType::Date32 = col.data_type() {
        let days = col.as_primitive::<crate::arrow::datatypes::Date32Type>();
        let mut memo: hashbrown::HashMap<i32, i64> = hashbrown::HashMap::new();
        let mut out = Vec::with_capacity(days.len());
        for (i, &d) in days.values().iter().enumerate() {
            if days.is_null(i) {
                out.push(0);
                continue;
            }
            let t = match memo.get(&d) {
                Some(&t) => t,
                None => {
                    // Beyond the zone's years, the date's UTC midnight (bucketed in UTC).
                    let midnight = date_micros(d)?;
                    let t = zone.instant_of_local(midnight).unwrap_or(midnight);
                    memo.insert(d, t);
                    t
                }
            };
            out.push(t);
        }
        return Ok(out);
    }
    let (values, per_s) = raw_times(col)?;
    values
        .iter()
        .map(|&t| to_micros(t, per_s).ok_or_else(|| out_of_range(t, per_s)))
        .collect()
}

/// A zoned bucket: its start, and the instants `[lo, hi)` around the time it was found for that
/// share it.
#[derive(Debug, Clone, Copy)]
struct ZonedBucket {
    start: i64,
    lo: i64,
    hi: i64,
}

/// Bucket starts of a grain cut on `zone`'s clock. The zone's offsets over the column's time range
/// are listed once (binary-searched per row), and buckets hold runs of rows, so most rows cost a
/// range check. Times beyond the years the zone's rules cover (-9999..=9999) are bucketed in UTC,
/// as `Grain::floor_micros` does. A null slot gets a placeholder (the caller skips it).
fn zoned_buckets(col: &ArrayRef, grain: Grain, zone: &Zone) -> Result<Vec<i64>> {
    let times = instants(col, zone)?;
    let valid = |i: usize| col.is_valid(i) && zone.covers(times[i]);
    let (mut first, mut last_t) = (i64::MAX, i64::MIN);
    for (i, &t) in times.iter().enumerate() {
        if valid(i) {
            first = first.min(t);
            last_t = last_t.max(t);
        }
    }
    let spans = if first <= last_t {
        zone.spans(first, last_t)?
    } else {
        Vec::new()
    };
    let find = |t: i64| -> Option<usize> {
        let i = spans.partition_point(|s| s.lo <= t);
        (i > 0 && spans[i - 1].holds(t)).then(|| i - 1)
    };
    let mut days: hashbrown::HashMap<i64, ZonedBucket> = hashbrown::HashMap::new();
    let mut last = ZonedBucket {
        start: 0,
        lo: 1,
        hi: 0,
    };
    let mut out = Vec::with_capacity(times.len());
    for (i, &t) in times.iter().enumerate() {
        if last.lo <= t && t < last.hi {
            out.push(last.start);
            continue;
        }
        if !col.is_valid(i) {
            out.push(0);
            continue;
        }
        let Some(k) = find(t).filter(|_| zone.covers(t)) else {
            out.push(grain.floor_naive(t));
            continue;
        };
        let span = spans[k];
        let mut before = |at: i64| match k.checked_sub(1).map(|p| spans[p]) {
            Some(p) if p.holds(at) => Ok(p),
            _ => zone.span(at),
        };
        let found = if grain.is_sub_day() {
            grain.zoned_floor(zone, t, &span, &mut before)
        } else {
            // Whole days: one resolution per local day, whatever the order of the rows.
            let local = t.saturating_add(span.offset);
            let key = grain.floor_naive(local);
            match days.get(&key) {
                Some(b) => Ok(*b),
                None => grain.zoned_floor(zone, t, &span, &mut before).inspect(|b| {
                    days.insert(key, *b);
                }),
            }
        };
        last = match found {
            Ok(b) => b,
            // A local time the zone's rules cannot place (at the ends of their years): UTC.
            Err(_) => {
                out.push(grain.floor_naive(t));
                continue;
            }
        };
        out.push(last.start);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrow::array::{TimestampNanosecondArray, TimestampSecondArray};
    use crate::time::format_micros;
    use std::sync::Arc;

    #[test]
    fn weeks_start_on_monday() {
        let w = Grain::parse("1w").unwrap();
        // Thursday 1970-01-01 falls in the week of Monday 1969-12-29.
        assert_eq!(w.floor_micros(0), -3 * 86_400_000_000);
        // Monday 2026-03-02 00:00 starts its own week; Sunday 2026-03-08 23:59 is in it.
        let monday = 1_772_409_600_000_000i64;
        assert_eq!(format_micros(monday), "2026-03-02 00:00:00");
        assert_eq!(w.floor_micros(monday), monday);
        assert_eq!(w.floor_micros(monday + 7 * 86_400_000_000 - 1), monday);
        let col: ArrayRef = Arc::new(TimestampSecondArray::from(vec![monday / 1_000_000 - 1]));
        assert_eq!(
            bucket_column(&col, w).unwrap(),
            vec![monday - 7 * 86_400_000_000]
        );
        // Days stay aligned to the epoch.
        assert_eq!(Grain::parse("1d").unwrap().floor_micros(monday + 5), monday);
    }

    #[test]
    fn calendar_buckets_follow_the_civil_calendar() {
        let at = |y: i64, m: i64, d: i64| days_from_civil(y, m, d) * DAY_MICROS;
        let mo = Grain::parse("1mo").unwrap();
        let q = Grain::parse("1q").unwrap();
        let y = Grain::parse("1y").unwrap();
        let t = at(2024, 2, 29) + 5 * 3_600_000_000; // a leap day
        assert_eq!(mo.floor_micros(t), at(2024, 2, 1));
        assert_eq!(mo.end_of(at(2024, 2, 1)), at(2024, 3, 1));
        assert_eq!(q.floor_micros(t), at(2024, 1, 1));
        assert_eq!(q.floor_micros(at(2024, 12, 31)), at(2024, 10, 1));
        assert_eq!(y.floor_micros(t), at(2024, 1, 1));
        assert_eq!(y.end_of(at(2024, 1, 1)), at(2025, 1, 1));
        assert_eq!(mo.floor_micros(-1), at(1969, 12, 1));
        let col: ArrayRef = Arc::new(TimestampSecondArray::from(vec![t / 1_000_000]));
        assert_eq!(bucket_column(&col, q).unwrap(), vec![at(2024, 1, 1)]);
        // What nests in what.
        let day = Grain::parse("1d").unwrap();
        let week = Grain::parse("1w").unwrap();
        assert!(day.nests_in(&mo) && mo.nests_in(&q) && q.nests_in(&y) && mo.nests_in(&y));
        assert!(!week.nests_in(&mo) && !q.nests_in(&mo) && !mo.nests_in(&day));
        assert!(!Grain::parse("7h").unwrap().nests_in(&week)); // Monday origin not on a 7h edge
        assert!(Grain::parse("2mo").unwrap().nests_in(&y));
        assert!(week.nests_in(&Grain::parse("2w").unwrap()));
        assert!(week.nests_in(&Grain::parse("4w").unwrap()));
        assert!(day.nests_in(&week) && !week.nests_in(&day));
        assert!(!Grain::parse("5mo").unwrap().nests_in(&y));
    }

    #[test]
    fn parse_and_canonical_text() {
        assert_eq!(Grain::parse("60m").unwrap().text(), "1h");
        assert_eq!(Grain::parse("90m").unwrap().text(), "90m");
        assert!(Grain::parse("0h").is_err());
        assert!(Grain::parse("1x").is_err());
        assert_eq!(Grain::parse("12mo").unwrap().text(), "1y");
        assert_eq!(Grain::parse("3mo").unwrap().text(), "1q");
        assert_eq!(Grain::parse("2mo").unwrap().text(), "2mo");
        assert!(Grain::parse("0mo").is_err());
    }

    #[test]
    fn buckets_at_both_ends_of_int64_nanoseconds_do_not_wrap() {
        let col: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![i64::MIN, i64::MAX, -1]));
        let day = Grain::parse("1d").unwrap();
        let b = bucket_column(&col, day).unwrap();
        let day_us = 86_400_000_000i64;
        assert!(
            b[0] <= i64::MIN / 1000 && b[0] > i64::MIN / 1000 - day_us,
            "{}",
            b[0]
        );
        assert!(
            b[1] <= i64::MAX / 1000 && b[1] > i64::MAX / 1000 - day_us,
            "{}",
            b[1]
        );
        assert_eq!(b[2], -day_us, "floor, not truncation, before 1970");
    }

    #[test]
    fn seconds_beyond_microseconds_are_an_error_not_a_wrong_bucket() {
        let col: ArrayRef = Arc::new(TimestampSecondArray::from(vec![i64::MAX / 10]));
        let e = bucket_column(&col, Grain::parse("1h").unwrap()).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Schema);
    }
}
