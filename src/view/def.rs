//! View definitions: one definition drives the batch, speed and serving layers.

use serde::{Deserialize, Serialize};

use crate::aggregate::AggSpec;
use crate::error::{Error, Result};
use crate::master::schema::{ColumnClass, StoreSchema};
use crate::time::zone::ZoneId;
use crate::view::grain::Grain;

/// A filter value: JSON scalar (string, integer, boolean or null).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
}

/// A filter on one column: the value is in a set, is not in a set, or lies in a range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Predicate {
    In(Vec<Scalar>),
    /// Not null and not in the set (as SQL's `<>` and `NOT IN`: a null never passes).
    NotIn(Vec<Scalar>),
    Range {
        #[serde(default)]
        ge: Option<Scalar>,
        #[serde(default)]
        gt: Option<Scalar>,
        #[serde(default)]
        le: Option<Scalar>,
        #[serde(default)]
        lt: Option<Scalar>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    pub column: String,
    pub predicate: Predicate,
}

/// The definition of a view, as persisted (the fingerprint is computed from it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewDef {
    pub name: String,
    pub time: String,
    pub grain: String,
    #[serde(default)]
    pub by: Vec<String>,
    pub metrics: Vec<(String, AggSpec)>,
    #[serde(default, rename = "where")]
    pub filter: Vec<Filter>,
    /// HyperLogLog precision for distinct-count sketches.
    #[serde(default = "default_precision")]
    pub precision: u8,
    /// The IANA time zone whose clock cuts the buckets (None: UTC). Absent from the persisted
    /// form of a UTC view, so fingerprints of views defined before zones existed are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// Coarser shapes the batch layer computes exactly in the same pass, and queries of that
    /// shape are answered from (see `Rollup`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollups: Vec<Rollup>,
}

/// A declared roll-up: the view at a coarser grain over a subset of its dimensions. Without one,
/// a roll-up merges the view's groups at query time, and a distinct count, quantile or top-k
/// merged from several groups is approximate; with one, the batch layer keeps that shape's
/// exact answer, and only groups the speed layer adds to are approximate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    pub grain: String,
    #[serde(default)]
    pub by: Vec<String>,
}

/// The most roll-ups a view may declare.
pub const MAX_ROLLUPS: usize = 16;

fn default_precision() -> u8 {
    crate::aggregate::sketch::DEFAULT_PRECISION
}

/// The longest view name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

impl ViewDef {
    pub fn from_json(text: &str) -> Result<ViewDef> {
        serde_json::from_str(text).map_err(|e| Error::invalid(format!("bad view definition: {e}")))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The columns of a query's result, in order: `bucket`, the dimensions, then each metric
    /// followed by the columns it adds (see `aggregate::result_suffixes`).
    pub fn result_columns(&self) -> Vec<String> {
        let mut out = vec!["bucket".to_string()];
        out.extend(self.by.iter().cloned());
        for (m, spec) in &self.metrics {
            out.push(m.clone());
            out.extend(
                crate::aggregate::result_suffixes(spec)
                    .iter()
                    .map(|s| format!("{m}{s}")),
            );
        }
        out
    }

    pub fn grain(&self) -> Result<Grain> {
        let g = Grain::parse(&self.grain)?;
        Ok(match &self.tz {
            None => g,
            Some(name) => g.with_zone(
                ZoneId::get(name)
                    .map_err(|e| Error::invalid(format!("view {:?}: {e}", self.name)))?,
            ),
        })
    }

    /// A stable 16-hex-digit fingerprint of everything that affects the results (not the name).
    pub fn fingerprint(&self) -> String {
        let mut canon = self.clone();
        canon.name = String::new();
        if let Ok(g) = self.grain() {
            canon.grain = g.text();
        }
        let mut text = serde_json::to_string(&canon).unwrap_or_default();
        if self.grain().is_ok_and(|g| g.is_weekly()) {
            // Weeks became Monday-aligned: a weekly view persisted before is recomputed, never
            // mixed with buckets of the old alignment.
            text.insert_str(0, "weeks-from-monday/");
        }
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
    }

    /// The checks that need no schema: the name and the grain.
    pub fn check_name(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(Error::invalid("a view needs a non-empty name"));
        }
        if self.name.chars().count() > MAX_NAME_CHARS {
            return Err(Error::invalid(format!(
                "view name {:?}... is {} characters long; at most {MAX_NAME_CHARS} are allowed",
                self.name.chars().take(20).collect::<String>(),
                self.name.chars().count()
            )));
        }
        if self.name.chars().any(|c| c.is_control()) {
            return Err(Error::invalid(format!(
                "view name {:?} holds control characters",
                self.name
            )));
        }
        self.grain()?;
        Ok(())
    }

    /// Check the definition against the store's schema.
    pub fn validate(&self, schema: &StoreSchema) -> Result<()> {
        self.check_name()?;
        if !(crate::aggregate::sketch::MIN_PRECISION..=crate::aggregate::sketch::MAX_PRECISION)
            .contains(&self.precision)
        {
            return Err(Error::invalid(format!(
                "view {:?}: sketch precision {} is outside {}..={}",
                self.name,
                self.precision,
                crate::aggregate::sketch::MIN_PRECISION,
                crate::aggregate::sketch::MAX_PRECISION
            )));
        }
        let class = |col: &str| {
            schema.column_class(col).ok_or_else(|| {
                Error::not_found(format!(
                    "view {:?}: column {col:?} is not in the store (columns: {})",
                    self.name,
                    schema
                        .columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        };
        if !matches!(class(&self.time)?, ColumnClass::Time | ColumnClass::Date) {
            return Err(Error::schema(format!(
                "view {:?}: time column {:?} is not a timestamp or a date",
                self.name, self.time
            )));
        }
        if self.by.len() > 48 {
            return Err(Error::invalid(format!(
                "view {:?} groups by {} dimensions; at most 48 are supported",
                self.name,
                self.by.len()
            )));
        }
        let mut names: Vec<&str> = vec!["bucket"];
        for d in &self.by {
            match class(d)? {
                ColumnClass::Str | ColumnClass::Int | ColumnClass::Bool | ColumnClass::Date => {}
                other => {
                    return Err(Error::schema(format!(
                        "view {:?}: group-by column {d:?} is {other:?}; dimensions must be strings, integers, booleans or dates",
                        self.name
                    )))
                }
            }
            if names.contains(&d.as_str()) {
                return Err(Error::invalid(format!(
                    "view {:?}: {d:?} appears twice",
                    self.name
                )));
            }
            names.push(d);
        }
        if self.metrics.is_empty() {
            return Err(Error::invalid(format!(
                "view {:?} has no metrics",
                self.name
            )));
        }
        for (m, agg) in &self.metrics {
            if m.is_empty() || m.starts_with("__") {
                return Err(Error::invalid(format!(
                    "view {:?}: bad metric name {m:?}",
                    self.name
                )));
            }
            if names.contains(&m.as_str()) {
                return Err(Error::invalid(format!(
                    "view {:?}: metric name {m:?} clashes with another column of the result",
                    self.name
                )));
            }
            names.push(m);
            if let Some(why) = agg.parameter_problem() {
                return Err(Error::invalid(format!(
                    "view {:?}: {}({:?}) of metric {m:?}: {why}",
                    self.name,
                    agg.name(),
                    agg.column().unwrap_or_default()
                )));
            }
            if let Some(col) = agg.column() {
                let c = class(col)?;
                let (ok, needs) = match agg {
                    AggSpec::Count { .. } => (true, ""),
                    AggSpec::CountDistinct { .. } => (
                        matches!(
                            c,
                            ColumnClass::Str
                                | ColumnClass::Int
                                | ColumnClass::Bool
                                | ColumnClass::Time
                                | ColumnClass::Date
                        ),
                        "string, integer, boolean, timestamp or date",
                    ),
                    AggSpec::TopK { .. } => (
                        matches!(c, ColumnClass::Str | ColumnClass::Int | ColumnClass::Bool),
                        "string, integer or boolean",
                    ),
                    _ => (
                        matches!(c, ColumnClass::Int | ColumnClass::Float),
                        "numeric",
                    ),
                };
                if !ok {
                    return Err(Error::schema(format!(
                        "view {:?}: {}({col:?}) needs a {needs} column, but {col:?} is {c:?}",
                        self.name,
                        agg.name(),
                    )));
                }
            }
        }
        for (m, agg) in &self.metrics {
            let suffixes = crate::aggregate::result_suffixes(agg);
            {
                for suffix in suffixes {
                    let derived = format!("{m}{suffix}");
                    if names.contains(&derived.as_str()) {
                        return Err(Error::invalid(format!(
                            "view {:?}: {derived:?} is both a column and the bounds of {m:?}",
                            self.name
                        )));
                    }
                }
            }
        }
        for f in &self.filter {
            let c = class(&f.column)?;
            if !matches!(
                c,
                ColumnClass::Str | ColumnClass::Int | ColumnClass::Bool | ColumnClass::Date
            ) {
                return Err(Error::schema(format!(
                    "view {:?}: filters work on string, integer, boolean and date columns; {:?} is {c:?}",
                    self.name, f.column
                )));
            }
            let p = if c == ColumnClass::Date {
                normalize_dates(&self.name, &f.column, &f.predicate)?
            } else {
                f.predicate.clone()
            };
            check_predicate_types(&self.name, &f.column, c, &p)?;
        }
        self.check_rollups()?;
        Ok(())
    }

    /// Each roll-up is coarser than the view (its buckets nest), groups by some of the view's
    /// dimensions, and differs from the view and from the other roll-ups.
    fn check_rollups(&self) -> Result<()> {
        if self.rollups.len() > MAX_ROLLUPS {
            return Err(Error::invalid(format!(
                "view {:?} declares {} roll-ups; at most {MAX_ROLLUPS} are allowed",
                self.name,
                self.rollups.len()
            )));
        }
        let grain = self.grain()?;
        let mut seen: Vec<(Grain, Vec<&str>)> = Vec::new();
        for r in &self.rollups {
            let what = format!("view {:?}: roll-up ({:?}, {:?})", self.name, r.grain, r.by);
            let g = Grain::parse(&r.grain)
                .map_err(|e| Error::invalid(format!("{what}: {e}")))?
                .with_zone(grain.zone);
            if !grain.nests_in(&g) {
                return Err(Error::invalid(format!(
                    "{what}: grain {:?} is not a multiple of the view's grain {:?}",
                    r.grain,
                    grain.text()
                )));
            }
            let mut dims: Vec<&str> = Vec::new();
            for d in &r.by {
                if !self.by.contains(d) {
                    return Err(Error::invalid(format!(
                        "{what}: {d:?} is not a dimension of the view (dimensions: {:?})",
                        self.by
                    )));
                }
                if dims.contains(&d.as_str()) {
                    return Err(Error::invalid(format!("{what}: {d:?} appears twice")));
                }
                dims.push(d);
            }
            dims.sort_unstable();
            let mut all: Vec<&str> = self.by.iter().map(|d| d.as_str()).collect();
            all.sort_unstable();
            if g == grain && dims == all {
                return Err(Error::invalid(format!(
                    "{what}: that is the view's own shape"
                )));
            }
            if seen.iter().any(|(sg, sd)| *sg == g && *sd == dims) {
                return Err(Error::invalid(format!("{what} is declared twice")));
            }
            seen.push((g, dims));
        }
        Ok(())
    }
}

/// Reject filter values whose type cannot match the column (a string compared with an integer).
pub fn check_predicate_types(
    view: &str,
    column: &str,
    class: ColumnClass,
    p: &Predicate,
) -> Result<()> {
    let ok = |s: &Scalar| match s {
        Scalar::Null => true,
        Scalar::Bool(_) => class == ColumnClass::Bool,
        // Dates are compared as days since 1970-01-01 (see `normalize_dates`).
        Scalar::Int(_) => matches!(class, ColumnClass::Int | ColumnClass::Date),
        Scalar::Str(_) => class == ColumnClass::Str,
    };
    let values: Vec<&Scalar> = match p {
        Predicate::In(v) | Predicate::NotIn(v) => v.iter().collect(),
        Predicate::Range { ge, gt, le, lt } => [ge, gt, le, lt].into_iter().flatten().collect(),
    };
    for v in values {
        if !ok(v) {
            return Err(Error::invalid(format!(
                "view {view:?}: filter value {v:?} does not match the type of column {column:?} ({class:?})"
            )));
        }
    }
    Ok(())
}

/// A filter on a date column names its dates as `"YYYY-MM-DD"` text (or days since 1970-01-01):
/// the text is turned into days, the form dimension keys and stored dates compare in.
pub fn normalize_dates(view: &str, column: &str, p: &Predicate) -> Result<Predicate> {
    let day = |s: &Scalar| -> Result<Scalar> {
        match s {
            Scalar::Str(text) => crate::time::parse_date(text)
                .map(Scalar::Int)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "view {view:?}: filter value {text:?} on date column {column:?} is not a \
                         date (expected YYYY-MM-DD)"
                    ))
                }),
            other => Ok(other.clone()),
        }
    };
    let all = |v: &[Scalar]| v.iter().map(day).collect::<Result<Vec<_>>>();
    let one = |v: &Option<Scalar>| v.as_ref().map(day).transpose();
    Ok(match p {
        Predicate::In(v) => Predicate::In(all(v)?),
        Predicate::NotIn(v) => Predicate::NotIn(all(v)?),
        Predicate::Range { ge, gt, le, lt } => Predicate::Range {
            ge: one(ge)?,
            gt: one(gt)?,
            le: one(le)?,
            lt: one(lt)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str) -> ViewDef {
        ViewDef {
            name: name.into(),
            time: "ts".into(),
            grain: "1h".into(),
            by: vec![],
            metrics: vec![("n".into(), AggSpec::Count { column: None })],
            filter: vec![],
            precision: 12,
            tz: None,
            rollups: vec![],
        }
    }

    #[test]
    fn names_are_checked_and_fingerprints_ignore_them() {
        assert!(def("traffic ünïcode/☃").check_name().is_ok());
        assert!(def("").check_name().is_err());
        assert!(def(&"x".repeat(MAX_NAME_CHARS + 1)).check_name().is_err());
        assert!(def("a\0b").check_name().is_err());
        assert_eq!(def("a").fingerprint(), def("b").fingerprint());
        let mut other = def("a");
        other.grain = "60m".into();
        assert_eq!(
            def("a").fingerprint(),
            other.fingerprint(),
            "same grain, other spelling"
        );
        other.grain = "2h".into();
        assert_ne!(def("a").fingerprint(), other.fingerprint());
    }

    #[test]
    fn a_quantile_survives_the_json_round_trip_bit_for_bit() {
        // 0.36474020592546813 parsed by a best-effort float parser came back one ULP off.
        for q in [0.36474020592546813, 0.1 + 0.2, 1.0 - f64::EPSILON, 5e-324] {
            let mut d = def("v");
            d.metrics = vec![(
                "p".into(),
                AggSpec::Quantile {
                    column: "x".into(),
                    q,
                },
            )];
            let back = ViewDef::from_json(&d.to_json()).unwrap();
            assert_eq!(back, d, "{q:e}");
            assert_eq!(back.fingerprint(), d.fingerprint());
        }
    }

    #[test]
    fn result_columns_follow_the_metrics() {
        let mut d = def("v");
        d.by = vec!["country".into()];
        d.metrics = vec![
            ("n".into(), AggSpec::Count { column: None }),
            (
                "u".into(),
                AggSpec::CountDistinct {
                    column: "user".into(),
                },
            ),
            (
                "t".into(),
                AggSpec::TopK {
                    column: "page".into(),
                    k: 3,
                },
            ),
        ];
        let want = [
            "bucket", "country", "n", "u", "u_exact", "u_source", "u_lower", "u_upper", "t",
            "t_exact", "t_source",
        ];
        assert_eq!(d.result_columns(), want);
    }
}
