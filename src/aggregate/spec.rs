//! What a metric is, as the user defined it (`AggSpec`), and the names of its phases in a
//! recompute's profile.

use serde::{Deserialize, Serialize};

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
