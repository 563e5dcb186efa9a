//! Goal and funnel reports: the site's declared goals (or one funnel)
//! counted over the visits of a range that pass the filters
//! ([`Storage::conversions`], raw events inside retention), shaped for the
//! API and CSV.

use serde::Serialize;

use super::filter::Filter;
use super::query::ReportError;
use super::range::DayRange;
use crate::config::SiteConfig;
use crate::goals::config::{funnel, goals};
use crate::storage::{ConversionQuery, Storage};

/// One goal's row.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GoalRow {
    pub goal: String,
    /// Visits that reached the goal.
    pub conversions: u64,
    pub visitors: u64,
    /// Conversions / visits (0 without visits).
    pub conversion_rate: f64,
    /// Sum of the amounts given with the goal's events; absent when none
    /// was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub revenue: Option<f64>,
}

/// The goals report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GoalsReport {
    /// Visits of the range that pass the filters.
    pub visits: u64,
    pub rows: Vec<GoalRow>,
}

/// One funnel step's row.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FunnelStepRow {
    /// As declared: path:/pattern or event:name.
    pub step: String,
    /// Visits that reached this step after every step before it.
    pub visits: u64,
    /// Visits that reached the step before but not this one (0 for the
    /// first step).
    pub dropoff: u64,
    /// `dropoff` / visits of the step before (0 for the first step).
    pub dropoff_rate: f64,
}

/// The funnel report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FunnelReport {
    /// The funnel's name (`None`: the site declares no funnel).
    pub funnel: Option<String>,
    /// Visits of the range that pass the filters.
    pub visits: u64,
    /// Visits that reached the first step.
    pub entered: u64,
    /// Visits that reached the last step.
    pub completed: u64,
    /// completed / entered (0 when none entered).
    pub completion_rate: f64,
    pub steps: Vec<FunnelStepRow>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn bounds(range: &DayRange) -> (i64, i64) {
    (
        range.start_utc.timestamp_millis(),
        range.end_utc.timestamp_millis(),
    )
}

/// Every declared goal of `site` over `range`.
pub fn goals_report(
    store: &dyn Storage,
    site: &SiteConfig,
    range: &DayRange,
    filters: &[Filter],
) -> Result<GoalsReport, ReportError> {
    let goals = goals(&site.goals);
    let (from_ms, to_ms) = bounds(range);
    let answer = store.conversions(&ConversionQuery {
        site: &site.id,
        from_ms,
        to_ms,
        filters,
        goals: &goals,
        funnel: None,
    })?;
    if answer.goals.len() != goals.len() {
        return Err(ReportError::Internal(format!(
            "the store counted {} goals of {}",
            answer.goals.len(),
            goals.len()
        )));
    }
    let rows = goals
        .iter()
        .zip(&answer.goals)
        .map(|(g, c)| GoalRow {
            goal: g.name.clone(),
            conversions: c.conversions,
            visitors: c.visitors,
            conversion_rate: ratio(c.conversions, answer.visits),
            revenue: c.revenue_cents.map(|cents| cents as f64 / 100.0),
        })
        .collect();
    Ok(GoalsReport {
        visits: answer.visits,
        rows,
    })
}

/// The funnel `name` of `site` (without a name its first declared one)
/// over `range`; a site without funnels gets no steps.
pub fn funnel_report(
    store: &dyn Storage,
    site: &SiteConfig,
    name: Option<&str>,
    range: &DayRange,
    filters: &[Filter],
) -> Result<FunnelReport, ReportError> {
    let name = match name {
        Some(n) => Some(n),
        None => site.funnels.first().map(|f| f.name.as_str()),
    };
    let found = name.and_then(|n| funnel(&site.funnels, n));
    if name.is_some() && found.is_none() {
        let known: Vec<&str> = site.funnels.iter().map(|f| f.name.as_str()).collect();
        return Err(ReportError::Invalid(if known.is_empty() {
            "this site declares no funnels ([[sites.funnels]] in the configuration)".into()
        } else {
            format!("unknown funnel; this site's funnels: {}", known.join(", "))
        }));
    }
    let (from_ms, to_ms) = bounds(range);
    let answer = store.conversions(&ConversionQuery {
        site: &site.id,
        from_ms,
        to_ms,
        filters,
        goals: &[],
        funnel: found.as_ref(),
    })?;
    let steps_declared = found.as_ref().map_or(&[][..], |f| &f.steps[..]);
    if answer.funnel.len() != steps_declared.len() {
        return Err(ReportError::Internal(format!(
            "the store counted {} funnel steps of {}",
            answer.funnel.len(),
            steps_declared.len()
        )));
    }
    let mut steps = Vec::with_capacity(steps_declared.len());
    let mut before = None;
    for ((step, _), &visits) in steps_declared.iter().zip(&answer.funnel) {
        let dropoff = before.map_or(0, |b: u64| b.saturating_sub(visits));
        steps.push(FunnelStepRow {
            step: step.clone(),
            visits,
            dropoff,
            dropoff_rate: before.map_or(0.0, |b| ratio(dropoff, b)),
        });
        before = Some(visits);
    }
    let entered = answer.funnel.first().copied().unwrap_or(0);
    let completed = answer.funnel.last().copied().unwrap_or(0);
    Ok(FunnelReport {
        funnel: found.map(|f| f.name),
        visits: answer.visits,
        entered,
        completed,
        completion_rate: ratio(completed, entered),
        steps,
    })
}
