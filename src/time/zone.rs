//! Time zones for buckets: a view with `tz = "Europe/Berlin"` cuts days, weeks, months, quarters
//! and years at that zone's midnights, with its daylight-saving rules.
//!
//! Invariants:
//! - Bucket keys stay instants (microseconds since the epoch, UTC): a zoned bucket's key is the
//!   instant its local start happens. Rows, roll-ups and ranges compare instants, as for UTC views.
//! - A bucket of whole days (`d`, `w`, `mo`, `q`, `y`) starts at the first instant of its local
//!   day: on a day that begins twice (a fall-back at midnight) the earlier one, on a day whose
//!   midnight is skipped (a spring-forward at midnight) the instant the clock jumps to.
//! - A bucket shorter than a day (or not a whole number of days) follows the local clock: it
//!   starts at the latest instant, not after the event, at which the clock showed its local
//!   start. The two 02:00 hours of a fall-back night are two hourly buckets; a bucket whose local
//!   start the clock skips starts when the clock jumps. For widths up to an hour in zones whose
//!   offsets are whole hours apart this is DuckDB's `time_bucket(width, ts, zone)`; DuckDB
//!   counts longer fixed widths (2h, 3h, ...) from one origin instant, so its summer buckets
//!   start an hour off the local clock, and lamina's do not (they tile local days).
//! - Times beyond the years the rules cover (-9999..=9999) are bucketed in UTC.
//! - The zone rules are the tz database built into lamina (jiff's bundle), never the machine's:
//!   every process and every dask worker buckets the same rows the same way. Names are kept in
//!   the database's spelling (results are labelled with them).
//!
//! Zones are interned: a [`ZoneId`] is a small copyable handle, so a `Grain` stays `Copy`.

use std::sync::{Arc, OnceLock, RwLock};

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::error::{Error, Result};

/// A handle to an interned zone; `ZoneId::UTC` (no zone) buckets in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ZoneId(u32);

/// One zone's rules.
#[derive(Debug)]
pub struct Zone {
    pub name: String,
    tz: TimeZone,
}

fn registry() -> &'static RwLock<Vec<Arc<Zone>>> {
    static ZONES: OnceLock<RwLock<Vec<Arc<Zone>>>> = OnceLock::new();
    ZONES.get_or_init(|| RwLock::new(Vec::new()))
}

impl ZoneId {
    pub const UTC: ZoneId = ZoneId(0);

    /// The zone named `name` (an IANA name such as `"Europe/Berlin"` or `"America/New_York"`).
    pub fn get(name: &str) -> Result<ZoneId> {
        let unknown = || {
            Error::invalid(format!(
                "unknown time zone {name:?}: give an IANA name such as \"Europe/Berlin\", \
                 \"America/New_York\" or \"UTC\""
            ))
        };
        if name.is_empty() || name.len() > 64 {
            return Err(unknown());
        }
        {
            let zones = registry().read().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = zones.iter().position(|z| z.name == name) {
                return Ok(ZoneId(i as u32 + 1));
            }
        }
        let tz = jiff::tz::db().get(name).map_err(|_| unknown())?;
        // The database matches names without regard to case; results are labelled with the
        // name, which Arrow and pandas must read back: only the database's spelling is kept.
        if let Some(canonical) = tz.iana_name().filter(|c| *c != name) {
            return Err(Error::invalid(format!(
                "time zone {name:?} is spelled {canonical:?} in the tz database: use that"
            )));
        }
        let mut zones = registry().write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = zones.iter().position(|z| z.name == name) {
            return Ok(ZoneId(i as u32 + 1));
        }
        zones.push(Arc::new(Zone {
            name: name.to_string(),
            tz,
        }));
        Ok(ZoneId(zones.len() as u32))
    }

    /// The zone's rules (None for UTC).
    pub fn zone(self) -> Option<Arc<Zone>> {
        if self.0 == 0 {
            return None;
        }
        let zones = registry().read().unwrap_or_else(|e| e.into_inner());
        zones.get(self.0 as usize - 1).cloned()
    }

    pub fn is_utc(self) -> bool {
        self.0 == 0
    }
}

fn out_of_range(micros: i64) -> Error {
    Error::schema(format!(
        "time {} is outside the years -9999..=9999 that zoned buckets cover",
        crate::time::format_micros(micros)
    ))
}

/// A run of instants `[lo, hi)` over which the zone's offset is `offset` microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub lo: i64,
    pub hi: i64,
    pub offset: i64,
}

impl Span {
    #[inline]
    pub fn holds(&self, t: i64) -> bool {
        self.lo <= t && t < self.hi
    }
}

impl Zone {
    /// Whether the zone's rules cover the instant `micros` (the years -9999..=9999).
    pub fn covers(&self, micros: i64) -> bool {
        Timestamp::from_microsecond(micros).is_ok()
    }

    /// The runs of constant offset covering `[from, to]`, in order (`from <= to`, both covered).
    pub fn spans(&self, from: i64, to: i64) -> Result<Vec<Span>> {
        let mut out = vec![self.span(from)?];
        while let Some(last) = out.last().copied() {
            if last.hi > to || last.hi == i64::MAX {
                break;
            }
            out.push(self.span(last.hi)?);
        }
        Ok(out)
    }

    fn timestamp(micros: i64) -> Result<Timestamp> {
        Timestamp::from_microsecond(micros).map_err(|_| out_of_range(micros))
    }

    /// The zone's offset from UTC at the instant `micros`, in microseconds.
    pub fn offset(&self, micros: i64) -> Result<i64> {
        Ok(self.tz.to_offset(Self::timestamp(micros)?).seconds() as i64 * 1_000_000)
    }

    /// The run of instants around `micros` with the same offset (bounded by the transitions
    /// before and after it).
    pub fn span(&self, micros: i64) -> Result<Span> {
        let ts = Self::timestamp(micros)?;
        let offset = self.tz.to_offset(ts).seconds() as i64 * 1_000_000;
        let hi = self
            .tz
            .following(ts)
            .map(|t| t.timestamp().as_microsecond())
            .find(|&t| t > micros)
            .unwrap_or(i64::MAX);
        let after = Self::timestamp(micros.saturating_add(1)).unwrap_or(ts);
        let lo = self
            .tz
            .preceding(after)
            .map(|t| t.timestamp().as_microsecond())
            .find(|&t| t <= micros)
            .unwrap_or(i64::MIN);
        Ok(Span { lo, hi, offset })
    }

    /// The instant of the local (wall-clock) time `local` (microseconds since 1970-01-01 on the
    /// zone's clock): the earlier one if the clock shows it twice, the instant the clock jumps to
    /// if it skips it.
    ///
    /// A local time so close to the ends of the years -9999..=9999 that its instant falls
    /// outside them is read on UTC's clock, as buckets of such times are cut in UTC.
    pub fn instant_of_local(&self, local: i64) -> Result<i64> {
        let day = local.div_euclid(86_400_000_000);
        let tod = local.rem_euclid(86_400_000_000);
        let (y, m, d) = crate::time::civil_from_days(day);
        let civil = jiff::civil::DateTime::new(
            i16::try_from(y).map_err(|_| out_of_range(local))?,
            m as i8,
            d as i8,
            (tod / 3_600_000_000) as i8,
            (tod / 60_000_000 % 60) as i8,
            (tod / 1_000_000 % 60) as i8,
            (tod % 1_000_000 * 1_000) as i32,
        )
        .map_err(|_| out_of_range(local))?;
        Ok(self
            .tz
            .to_ambiguous_timestamp(civil)
            .compatible()
            .map(|t| t.as_microsecond())
            .unwrap_or(local))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;

    #[test]
    fn zones_are_interned_and_unknown_ones_refused() {
        let a = ZoneId::get("Europe/Berlin").unwrap();
        let b = ZoneId::get("Europe/Berlin").unwrap();
        assert_eq!(a, b);
        assert!(!a.is_utc());
        assert_ne!(a, ZoneId::get("America/New_York").unwrap());
        let e = ZoneId::get("Mars/Olympus").unwrap_err().to_string();
        assert!(e.contains("Mars/Olympus"), "{e}");
        assert!(ZoneId::get("").is_err());
        let e = ZoneId::get("europe/berlin").unwrap_err().to_string();
        assert!(e.contains("\"Europe/Berlin\""), "{e}");
    }

    #[test]
    fn berlin_offsets_spans_and_midnights() {
        let z = ZoneId::get("Europe/Berlin").unwrap().zone().unwrap();
        // 2026-03-29 01:00 UTC: clocks go from 02:00 CET to 03:00 CEST.
        let spring = 1_774_746_000_000_000;
        assert_eq!(z.offset(spring - 1).unwrap(), H);
        assert_eq!(z.offset(spring).unwrap(), 2 * H);
        let s = z.span(spring + 5 * H).unwrap();
        assert_eq!(s.lo, spring);
        assert_eq!(s.offset, 2 * H);
        assert!(s.hi > spring + 200 * 24 * H && s.holds(spring + 5 * H));
        // Local midnight of 2026-03-29 is 2026-03-28 23:00 UTC.
        let local_midnight = spring - H; // 2026-03-29 00:00 on the wall clock
        assert_eq!(z.instant_of_local(local_midnight).unwrap(), spring - 2 * H);
        // 02:30 does not exist that night: the clock jumps to 03:30 CEST (01:30 UTC).
        let gap = local_midnight + 2 * H + H / 2;
        assert_eq!(z.instant_of_local(gap).unwrap(), spring + H / 2);
    }
}
