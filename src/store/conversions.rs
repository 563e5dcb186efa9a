//! Goal conversions and funnel progress from raw events, computed by the
//! visit engine ([`super::visits`]) the roll-ups and the filtered scan
//! use, so a visit means the same everywhere.
//!
//! Each visit's events are held until the visit is over; then the visit is
//! judged as a whole:
//! - it is one of the visits counted when any of its events passes every
//!   filter (the filtered scan's rule, with entry and exit page final);
//! - it converted a goal when one of its events meets the goal's
//!   condition (a page view whose path matches the pattern, or a custom
//!   event of that name with those property values); the goal's revenue
//!   is the sum over those events;
//! - it reached funnel step `n` when steps `1..=n` happened in this order
//!   within it (each step after the one before).
//!
//! Conditions are decided once per distinct dictionary id (page URL, or
//! event name and properties), never per event.

use std::ops::ControlFlow;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::goals::{url_path, Condition};
use crate::model::EventKind;
use crate::storage::{ConversionQuery, Conversions, GoalCount};
use crate::store::replay::DaySource;
use crate::store::rollup::VISIT_TIMEOUT_MS;
use crate::store::scan::{cols_for, key_of_core, Values};
use crate::store::schema::MS_PER_DAY;
use crate::store::visits::{self, VisitEvent};
use crate::store::{Col, Cols, RawEvent, Store, StoreError};

/// A visit while its events come in.
struct HeldVisit {
    core: visits::Visit,
    visitor: u64,
    events: Vec<RawEvent>,
}

/// Which conditions (goals first, then funnel steps) an event meets,
/// decided once per page URL or per (event name, properties).
struct Verdicts<'q> {
    conditions: Vec<&'q Condition>,
    pages: FxHashMap<u32, Vec<bool>>,
    events: FxHashMap<(u32, u32), Vec<bool>>,
}

impl Verdicts<'_> {
    fn of(&mut self, values: &mut Values<'_>, e: &RawEvent) -> Result<Option<&[bool]>, StoreError> {
        match e.kind {
            EventKind::PageView if e.url != 0 => {
                if !self.pages.contains_key(&e.url) {
                    let url = values.res.text(e.url)?;
                    let path = url_path(&url);
                    let v = self
                        .conditions
                        .iter()
                        .map(|c| c.matches_page(path))
                        .collect();
                    self.pages.insert(e.url, v);
                }
                Ok(self.pages.get(&e.url).map(Vec::as_slice))
            }
            EventKind::Custom if e.custom.name != 0 => {
                let key = (e.custom.name, e.custom.props);
                if !self.events.contains_key(&key) {
                    let name = values.res.text(key.0)?;
                    let props = values.res.props(key.1)?;
                    let v = self
                        .conditions
                        .iter()
                        .map(|c| c.matches_event(&name, &props))
                        .collect();
                    self.events.insert(key, v);
                }
                Ok(self.events.get(&key).map(Vec::as_slice))
            }
            _ => Ok(None),
        }
    }
}

struct Counts {
    visits: u64,
    goals: Vec<(u64, FxHashSet<u64>, i64, bool)>,
    funnel: Vec<u64>,
}

/// Answers a [`ConversionQuery`] from the raw events of its range.
pub fn conversions(store: &Store, query: &ConversionQuery<'_>) -> Result<Conversions, StoreError> {
    conversions_from(store.snapshot()?, query)
}

/// [`conversions`] over the days of any [`DaySource`] (a snapshot of the
/// store, or a replay of events kept elsewhere).
pub(crate) fn conversions_from(
    mut snap: impl DaySource,
    query: &ConversionQuery<'_>,
) -> Result<Conversions, StoreError> {
    let mut cols = Cols::NONE
        .with(Col::Visitor)
        .with(Col::Url)
        .with(Col::Referrer)
        .with(Col::Campaign)
        .with(Col::EventName)
        .with(Col::EventProps)
        .with(Col::Revenue);
    for f in query.filters {
        cols = cols.union(cols_for(f.dim));
    }
    let mut values = Values::new(snap.resolver()?, query.filters);
    let funnel_steps = query.funnel.map_or(&[][..], |f| &f.steps[..]);
    let mut verdicts = Verdicts {
        conditions: query
            .goals
            .iter()
            .map(|g| &g.condition)
            .chain(funnel_steps.iter().map(|(_, c)| c))
            .collect(),
        pages: FxHashMap::default(),
        events: FxHashMap::default(),
    };
    let mut counts = Counts {
        visits: 0,
        goals: (0..query.goals.len())
            .map(|_| (0, FxHashSet::default(), 0, false))
            .collect(),
        funnel: vec![0; funnel_steps.len()],
    };
    let n_goals = query.goals.len();
    let mut finish = |values: &mut Values<'_>,
                      verdicts: &mut Verdicts<'_>,
                      v: HeldVisit|
     -> Result<(), StoreError> {
        let mut selected = values.filters.is_empty();
        for e in &v.events {
            if selected {
                break;
            }
            let mut all = true;
            for i in 0..values.filters.len() {
                let key = key_of_core(e, Some(&v.core), values.filters[i].dim);
                if !values.matches(i, key)? {
                    all = false;
                    break;
                }
            }
            selected = all;
        }
        if !selected {
            return Ok(());
        }
        counts.visits += 1;
        let mut step = 0;
        let mut reached = vec![false; n_goals];
        for e in &v.events {
            let Some(met) = verdicts.of(values, e)? else {
                continue;
            };
            for (g, hit) in met[..n_goals].iter().enumerate() {
                if *hit {
                    reached[g] = true;
                    counts.goals[g].2 += e.custom.revenue_cents;
                    counts.goals[g].3 |= e.custom.revenue_cents != 0;
                }
            }
            if step < funnel_steps.len() && met[n_goals + step] {
                step += 1;
            }
        }
        for (g, hit) in reached.into_iter().enumerate() {
            if hit {
                counts.goals[g].0 += 1;
                counts.goals[g].1.insert(v.visitor);
            }
        }
        for reached in &mut counts.funnel[..step] {
            *reached += 1;
        }
        Ok(())
    };

    let mut slots: Vec<Option<HeldVisit>> = Vec::new();
    let mut carried: FxHashMap<u64, HeldVisit> = FxHashMap::default();
    let to_ms = query.to_ms;
    snap.scan_days(query.site, query.from_ms, to_ms, cols, &mut |day| {
        slots.clear();
        slots.resize_with(day.visitor_hashes.len(), || None);
        if !carried.is_empty() {
            for (i, h) in day.visitor_hashes.iter().enumerate() {
                if let Some(v) = carried.remove(h) {
                    slots[i] = Some(v);
                }
            }
            for (_, v) in carried.drain() {
                finish(&mut values, &mut verdicts, v)?;
            }
        }
        let mut order: Vec<usize> = (0..day.events.len()).collect();
        order.sort_by_key(|&i| (day.events[i].ts_ms, day.seqs[i]));
        for i in order {
            let raw = day.events[i];
            let n = raw.visitor as usize;
            let visitor = *day
                .visitor_hashes
                .get(n)
                .ok_or_else(|| StoreError::Decode("event refers to an unknown visitor".into()))?;
            let slot = &mut slots[n];
            let mut core = slot.as_ref().map(|v| v.core);
            let moved = visits::advance(
                &mut core,
                &VisitEvent {
                    ts_ms: raw.ts_ms,
                    kind: raw.kind,
                    url: raw.url,
                    referrer: raw.referrer,
                    campaign: raw.campaign,
                },
            );
            if moved.ended.is_some() {
                if let Some(v) = slot.take() {
                    finish(&mut values, &mut verdicts, v)?;
                }
            }
            if moved.started {
                *slot = core.map(|core| HeldVisit {
                    core,
                    visitor,
                    events: Vec::new(),
                });
            }
            if let (Some(v), Some(core)) = (slot.as_mut(), core) {
                v.core = core;
                v.events.push(raw);
            }
        }
        let day_end = (crate::store::schema::day_start_ms(day.day) + MS_PER_DAY).min(to_ms);
        for (i, slot) in slots.iter_mut().enumerate() {
            if let Some(v) = slot.take() {
                if day_end - v.core.last_ts >= VISIT_TIMEOUT_MS {
                    finish(&mut values, &mut verdicts, v)?;
                } else {
                    carried.insert(day.visitor_hashes[i], v);
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    })?;
    for (_, v) in carried.drain() {
        finish(&mut values, &mut verdicts, v)?;
    }
    Ok(Conversions {
        visits: counts.visits,
        goals: counts
            .goals
            .into_iter()
            .map(|(conversions, visitors, revenue, has_revenue)| GoalCount {
                conversions,
                visitors: visitors.len() as u64,
                revenue_cents: has_revenue.then_some(revenue),
            })
            .collect(),
        funnel: counts.funnel,
    })
}
