//! What a metric is, as the user defined it (`AggSpec`): its one parser (the JSON form a view
//! persists, and the call form `"sum(amount)"` of view files), the table of aggregates every
//! front end lists, the result columns each adds, and the names of its phases in a recompute's
//! profile.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

use crate::aggregate::AggPlan;
use crate::arrow::datatypes::DataType;

/// An aggregate of a view, as the user defined it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "agg", rename_all = "snake_case")]
pub enum AggSpec {
    /// Rows (no column), or non-null values of a column.
    Count {
        column: Option<String>,
    },
    Sum {
        column: String,
    },
    Min {
        column: String,
    },
    Max {
        column: String,
    },
    Mean {
        column: String,
    },
    CountDistinct {
        column: String,
    },
    /// The `q` quantile (linear interpolation, as DuckDB `quantile_cont`).
    Quantile {
        column: String,
        q: f64,
    },
    /// The `k` most frequent values of a dimension-type column.
    TopK {
        column: String,
        k: u32,
    },
}

impl AggSpec {
    pub fn column(&self) -> Option<&str> {
        match self {
            AggSpec::Count { column } => column.as_deref(),
            AggSpec::Sum { column }
            | AggSpec::Min { column }
            | AggSpec::Max { column }
            | AggSpec::Mean { column }
            | AggSpec::CountDistinct { column }
            | AggSpec::Quantile { column, .. }
            | AggSpec::TopK { column, .. } => Some(column),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            AggSpec::Count { .. } => "count",
            AggSpec::Sum { .. } => "sum",
            AggSpec::Min { .. } => "min",
            AggSpec::Max { .. } => "max",
            AggSpec::Mean { .. } => "mean",
            AggSpec::CountDistinct { .. } => "count_distinct",
            AggSpec::Quantile { .. } => "quantile",
            AggSpec::TopK { .. } => "top_k",
        }
    }
}

/// Every aggregate, as front ends list it: (name, its arguments after the column; whether the
/// column is optional). `avg` is accepted as another name of `mean` in the call form.
pub const AGGREGATES: [(&str, &[&str], bool); 8] = [
    ("count", &[], true),
    ("sum", &[], false),
    ("min", &[], false),
    ("max", &[], false),
    ("mean", &[], false),
    ("count_distinct", &[], false),
    ("quantile", &["q"], false),
    ("top_k", &["k"], false),
];

/// The columns a metric named `m` adds to a query's result after its own: the approximate
/// aggregates say whether a value is exact and where it came from, and bound it.
pub fn result_suffixes(spec: &AggSpec) -> &'static [&'static str] {
    match spec {
        AggSpec::CountDistinct { .. } | AggSpec::Quantile { .. } => {
            &["_exact", "_source", "_lower", "_upper"]
        }
        AggSpec::TopK { .. } => &["_exact", "_source"],
        _ => &[],
    }
}

/// The most values a `top_k` metric may list.
pub const MAX_TOP_K: u32 = 10_000;

impl AggSpec {
    /// What is wrong with the aggregate's own parameters, if anything (`q` of a quantile in
    /// [0, 1], `k` of a top-k in 1..=`MAX_TOP_K`); the checks that need a schema are the view's.
    pub fn parameter_problem(&self) -> Option<String> {
        match self {
            AggSpec::Quantile { q, .. } if !(0.0..=1.0).contains(q) => {
                Some(format!("q must be in [0, 1], got {q}"))
            }
            AggSpec::TopK { k, .. } if !(1..=MAX_TOP_K).contains(k) => {
                Some(format!("k must be in 1..={MAX_TOP_K}, got {k}"))
            }
            _ => None,
        }
    }

    /// The call form of view files: `"count()"`, `"count(*)"`, `"sum(amount)"`,
    /// `"quantile(latency, 0.95)"`, `"top_k(page, 10)"` (names may be quoted; `avg` is `mean`).
    /// `where_` names the metric in messages.
    pub fn parse_call(text: &str, where_: &str) -> Result<AggSpec> {
        let bad = || {
            Error::invalid(format!(
                "{where_}: expected an aggregate like \"count()\", \"sum(amount)\", \"count_distinct(user_id)\" or \"quantile(latency, 0.95)\", got {text:?}"
            ))
        };
        let t = text.trim();
        let open = t.find('(').ok_or_else(bad)?;
        let inner = t[open + 1..].strip_suffix(')').ok_or_else(bad)?;
        let name = t[..open].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad());
        }
        let args: Vec<String> = if inner.trim().is_empty() {
            Vec::new()
        } else {
            inner
                .split(',')
                .map(|a| {
                    a.trim()
                        .trim_matches(|c| matches!(c, '"' | '\'' | '`'))
                        .to_string()
                })
                .collect()
        };
        let name = if name == "avg" { "mean" } else { name };
        let Some((_, params, optional)) = AGGREGATES.iter().find(|(n, _, _)| *n == name) else {
            let names: Vec<&str> = AGGREGATES.iter().map(|a| a.0).collect();
            return Err(Error::invalid(format!(
                "{where_}: unknown aggregate '{name}' (use {})",
                names.join(", ")
            )));
        };
        if args.len() > 1 + params.len() {
            return Err(Error::invalid(format!(
                "{where_}: {name}() takes {} argument{}, got {text:?}",
                1 + params.len(),
                if params.is_empty() { "" } else { "s" }
            )));
        }
        let column = args.first().filter(|c| !c.is_empty() && *c != "*").cloned();
        let column = match (column, optional) {
            (c, true) => return Ok(AggSpec::Count { column: c }),
            (Some(c), false) => c,
            (None, false) => {
                return Err(Error::invalid(format!(
                    "{where_}: {name}() needs a column, like {name}(amount)"
                )))
            }
        };
        let arg = || {
            let what = if name == "quantile" {
                "q, like quantile(latency, 0.95)"
            } else {
                "k, like top_k(page, 10)"
            };
            args.get(1).ok_or_else(|| {
                Error::invalid(format!("{where_}: {name}() needs a column and {what}"))
            })
        };
        let bad_arg =
            |a: &str, p: &str| Error::invalid(format!("{where_}: {name}(): bad {p} {a:?}"));
        let spec = match name {
            "sum" => AggSpec::Sum { column },
            "min" => AggSpec::Min { column },
            "max" => AggSpec::Max { column },
            "mean" => AggSpec::Mean { column },
            "count_distinct" => AggSpec::CountDistinct { column },
            "quantile" => {
                let a = arg()?;
                let q: f64 = a.parse().map_err(|_| bad_arg(a, "q"))?;
                AggSpec::Quantile { column, q }
            }
            _ => {
                let a = arg()?;
                let k: u32 = a.parse().map_err(|_| bad_arg(a, "k"))?;
                AggSpec::TopK { column, k }
            }
        };
        match spec.parameter_problem() {
            Some(why) => Err(Error::invalid(format!("{where_}: {name}(): {why}"))),
            None => Ok(spec),
        }
    }
}

/// The phase name of a metric's fold (metrics of one family share a line).
pub fn metric_phase(m: &AggPlan) -> &'static str {
    let float = matches!(
        m.input,
        Some(DataType::Float64 | DataType::Float32 | DataType::Float16)
    );
    match (&m.spec, float) {
        (AggSpec::Count { .. }, _) => "fold count",
        (AggSpec::Sum { .. }, false) => "fold int sum",
        (AggSpec::Sum { .. }, true) => "fold float sum",
        (AggSpec::Min { .. } | AggSpec::Max { .. }, false) => "fold int min/max",
        (AggSpec::Min { .. } | AggSpec::Max { .. }, true) => "fold float min/max",
        (AggSpec::Mean { .. }, _) => "fold mean",
        (AggSpec::CountDistinct { .. }, _) => "fold distinct",
        (AggSpec::Quantile { .. }, _) => "fold quantile",
        (AggSpec::TopK { .. }, _) => "fold top_k",
    }
}

/// The phase name of building a metric's persisted columns at publish.
pub fn state_phase(m: &AggPlan) -> &'static str {
    match metric_phase(m) {
        "fold count" => "state: count",
        "fold int sum" => "state: int sum",
        "fold float sum" => "state: float sum",
        "fold int min/max" => "state: int min/max",
        "fold float min/max" => "state: float min/max",
        "fold mean" => "state: mean",
        "fold distinct" => "state: distinct",
        "fold quantile" => "state: quantile",
        _ => "state: top_k",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_form_parses_every_aggregate() {
        let p = |t: &str| AggSpec::parse_call(t, "m").unwrap();
        assert_eq!(p("count()"), AggSpec::Count { column: None });
        assert_eq!(p(" count(*) "), AggSpec::Count { column: None });
        assert_eq!(
            p("count(`user`)"),
            AggSpec::Count {
                column: Some("user".into())
            }
        );
        assert_eq!(p("avg(x)"), AggSpec::Mean { column: "x".into() });
        assert_eq!(
            p("quantile(\"lat\", 0.95)"),
            AggSpec::Quantile {
                column: "lat".into(),
                q: 0.95
            }
        );
        assert_eq!(
            p("top_k(page, 10)"),
            AggSpec::TopK {
                column: "page".into(),
                k: 10
            }
        );
        for (name, params, optional) in AGGREGATES {
            let mut call = vec!["c".to_string()];
            call.extend(params.iter().map(|_| "1".to_string()));
            let spec = p(&format!("{name}({})", call.join(", ")));
            assert_eq!(spec.name(), name);
            assert_eq!(spec.column(), Some("c"));
            if !optional {
                assert!(AggSpec::parse_call(&format!("{name}()"), "m").is_err());
            }
        }
        for bad in [
            "sum",
            "sum(a",
            "median(x)",
            "sum(a, b)",
            "quantile(x)",
            "top_k(x, -1)",
            "(x)",
        ] {
            let e = AggSpec::parse_call(bad, "view v: metric m").unwrap_err();
            assert!(e.message.starts_with("view v: metric m: "), "{bad}: {e}");
        }
    }
}
