//! Goal conversions and funnel progress from raw events, computed by the
//! visit engine ([`super::visits`]) the roll-ups and the filtered scan
//! use, so a visit means the same everywhere.
//!
//! A visit is judged as a whole once it is over:
//! - it is one of the visits counted when any of its events passes every
//!   filter (the filtered scan's rule, with entry and exit page final);
//! - it converted a goal when one of its events meets the goal's
//!   condition (a page view whose path matches the pattern, or a custom
//!   event of that name with those property values); the goal's revenue
//!   is the sum over those events;
//! - it reached funnel step `n` when steps `1..=n` happened in this order
//!   within it (each step after the one before).
//!
//! The work is split in two. Everything that depends on one event alone
//! is decided where its day is decoded, on several threads at once
//! ([`super::scan::days_in_parallel`]): whether it passes the filters on
//! the event itself (page, device, ...), and which goals and funnel steps
//! it meets, each decided once per distinct dictionary id (page URL, or
//! event name and properties) and kept as bit sets. The one thread that
//! follows visits across days then only folds those bits into a few words
//! per running visit: it holds no events, and applies the filters on the
//! visit (referrer, campaign, entry and exit page) once per visit when it
//! ends. Conditions on strings are never decided per event.

use super::ids::StringId;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::goals::{url_path, Condition};
use crate::model::EventKind;
use crate::storage::{ConversionQuery, Conversions, GoalCount};
use crate::store::replay::DaySource;
use crate::store::scan::{
    cols_for, day_workers, days_in_parallel, key_of_core, visit_order, IdCache, Values,
};
use crate::store::schema::MS_PER_DAY;
use crate::store::visits::{self, FollowedVisit, VisitEvent, VisitSlots};
use crate::store::{Col, Cols, DayEvents, Dimension, RawEvent, Store, StoreError};

/// True for dimensions whose value is the visit's (the same for all its
/// events); the others are each event's own.
fn is_visit_level(dim: Dimension) -> bool {
    matches!(
        dim,
        Dimension::EntryPage
            | Dimension::ExitPage
            | Dimension::Referrer
            | Dimension::ReferrerType
            | Dimension::SearchEngine
            | Dimension::UtmSource
            | Dimension::UtmMedium
            | Dimension::UtmCampaign
    )
}

/// What the visit-following thread needs of one event.
#[derive(Clone, Copy, Debug)]
struct PreparedEvent {
    ts_ms: i64,
    /// The visitor's number within its day.
    visitor: u32,
    kind: EventKind,
    url: StringId,
    referrer: StringId,
    campaign: StringId,
    /// The event passes every filter on the event itself.
    passes: bool,
    /// Funnel steps it meets (bit `n`: step `n`).
    steps: u8,
    /// 0: it meets no goal; otherwise 1 + its number in the day's
    /// [`PreparedDay::goal_hits`].
    goal_hit: u32,
}

/// One day's events, each visitor's in time order (see
/// [`visit_order`]), prepared on a decode thread.
struct PreparedDay {
    day: chrono::NaiveDate,
    visitor_hashes: Vec<u64>,
    events: Vec<PreparedEvent>,
    /// Per event that meets a goal: its revenue in hundredths, then the
    /// goals it meets as a bit set of `goal_words` words.
    goal_hits: Vec<u64>,
}

/// Which goals and funnel steps one kind of event meets, packed in a
/// word so that judging an event is one load from the cache of its page
/// or custom event (the judging of a day's 100,000 events was mostly
/// waiting for memory when it took a verdict's index there and the
/// verdict from a second table): bit [`VERDICT_KNOWN`] says the entry is
/// decided, the low 8 bits are the funnel steps met (bit `n`: step `n`),
/// the bits from 8 on the number of the goals met in
/// [`DayJudge::goal_sets`] (0: none).
type Verdict = u32;

const VERDICT_KNOWN: Verdict = 1 << 31;

/// A decode thread's state: its own resolver and caches.
struct DayJudge<'q> {
    values: Values<'q>,
    /// Filters on the event itself, by their index in the query.
    event_filters: Vec<usize>,
    goals: Vec<&'q Condition>,
    steps: Vec<&'q Condition>,
    goal_words: usize,
    /// The distinct sets of goals met (bit sets of `goal_words` words);
    /// the first one is empty.
    goal_sets: Vec<Vec<u64>>,
    /// Per page-URL id: its [`Verdict`] (0: not decided yet).
    pages: IdCache<Verdict>,
    /// Per (event name, properties) ids: its [`Verdict`].
    events: FxHashMap<(StringId, StringId), Verdict>,
}

impl<'q> DayJudge<'q> {
    fn verdict(
        &mut self,
        page: Option<&str>,
        event: Option<(&str, &[(String, String)])>,
    ) -> Verdict {
        let meets = |c: &Condition| match (page, event) {
            (Some(path), _) => c.matches_page(path),
            (None, Some((name, props))) => c.matches_event(name, props),
            (None, None) => false,
        };
        let mut goals = vec![0; self.goal_words];
        for (g, c) in self.goals.iter().enumerate() {
            if meets(c) {
                goals[g / 64] |= 1 << (g % 64);
            }
        }
        let mut steps = 0u8;
        for (n, c) in self.steps.iter().enumerate() {
            if meets(c) {
                steps |= 1 << n;
            }
        }
        let goal_set = if goals.iter().all(|&w| w == 0) {
            0
        } else {
            match self.goal_sets.iter().position(|set| *set == goals) {
                Some(i) => i,
                None => {
                    self.goal_sets.push(goals);
                    self.goal_sets.len() - 1
                }
            }
        };
        // at most 2^goals distinct sets, each made by a dictionary entry:
        // far fewer than 2^23
        VERDICT_KNOWN | ((goal_set as u32) << 8) | u32::from(steps)
    }

    /// The verdict for `e` (0: it can meet no condition).
    fn of(&mut self, e: &RawEvent) -> Result<Verdict, StoreError> {
        match e.kind {
            EventKind::PageView if !e.url.is_none() => {
                if let v @ VERDICT_KNOWN.. = self.pages.get(e.url.stored()) {
                    return Ok(v);
                }
                let url = self.values.res.text(e.url)?;
                let v = self.verdict(Some(url_path(&url)), None);
                self.pages.set(e.url.stored(), v);
                Ok(v)
            }
            EventKind::Custom if !e.custom.name.is_none() => {
                let key = (e.custom.name, e.custom.props);
                if let Some(&v) = self.events.get(&key) {
                    return Ok(v);
                }
                let name = self.values.res.text(key.0)?;
                let props = self.values.res.props(key.1)?;
                let v = self.verdict(None, Some((&name, &props)));
                self.events.insert(key, v);
                Ok(v)
            }
            _ => Ok(0),
        }
    }

    /// Puts each visitor's events of `day` in time order and decides what depends on
    /// each event alone.
    fn prepare(&mut self, day: DayEvents) -> Result<PreparedDay, StoreError> {
        let order = visit_order(&day);
        let indexes = (0..day.events.len()).map(|i| order.as_ref().map_or(i, |o| o[i]));
        let mut out = PreparedDay {
            day: day.day,
            visitor_hashes: day.visitor_hashes,
            events: Vec::with_capacity(day.events.len()),
            goal_hits: Vec::new(),
        };
        for i in indexes {
            let e = &day.events[i];
            let mut passes = true;
            for &f in &self.event_filters {
                let key = key_of_core(e, None, self.values.filters[f].dim);
                if !self.values.matches(f, key)? {
                    passes = false;
                    break;
                }
            }
            let verdict = self.of(e)?;
            let steps = verdict as u8;
            let goal_set = ((verdict & !VERDICT_KNOWN) >> 8) as usize;
            let mut goal_hit = 0;
            if goal_set != 0 {
                out.goal_hits.push(e.custom.revenue_cents as u64);
                out.goal_hits.extend_from_slice(&self.goal_sets[goal_set]);
                goal_hit = (out.goal_hits.len() / (1 + self.goal_words)) as u32;
            }
            out.events.push(PreparedEvent {
                ts_ms: e.ts_ms,
                visitor: e.visitor,
                kind: e.kind,
                url: e.url,
                referrer: e.referrer,
                campaign: e.campaign,
                passes,
                steps,
                goal_hit,
            });
        }
        Ok(out)
    }
}

/// A visit while its events come in: what its events said so far.
struct OpenVisit {
    core: visits::Visit,
    visitor: u64,
    /// One of its events passed every filter on the event itself.
    passes: bool,
    /// Funnel steps reached in order.
    step: u8,
    /// Goals met (bit set; empty until the first).
    goals: Vec<u64>,
    /// (goal, revenue in hundredths) of its events that met a goal with
    /// an amount.
    revenue: Vec<(usize, i64)>,
}

/// What the visits counted so far add up to.
struct Counts {
    visits: u64,
    conversions: Vec<u64>,
    visitors: Vec<FxHashSet<u64>>,
    revenue: Vec<Option<i64>>,
    funnel: Vec<u64>,
}

impl Counts {
    /// Counts the visit `v` if it passes the filters.
    fn finish(
        &mut self,
        values: &mut Values<'_>,
        visit_filters: &[usize],
        v: OpenVisit,
    ) -> Result<(), StoreError> {
        if !v.passes {
            return Ok(());
        }
        let nothing = RawEvent::default();
        for &f in visit_filters {
            let key = key_of_core(&nothing, Some(&v.core), values.filters[f].dim);
            if !values.matches(f, key)? {
                return Ok(());
            }
        }
        self.visits += 1;
        for (w, &word) in v.goals.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let g = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                self.conversions[g] += 1;
                self.visitors[g].insert(v.visitor);
            }
        }
        for (g, cents) in v.revenue {
            *self.revenue[g].get_or_insert(0) += cents;
        }
        for reached in &mut self.funnel[..usize::from(v.step)] {
            *reached += 1;
        }
        Ok(())
    }
}

/// Answers a [`ConversionQuery`] from the raw events of its range.
pub fn conversions(store: &Store, query: &ConversionQuery<'_>) -> Result<Conversions, StoreError> {
    count(query, Days::Parallel(&store.snapshot()?))
}

/// [`conversions`] over the days of any [`DaySource`] (a replay of events
/// kept elsewhere hands them out one at a time, so they are judged on the
/// calling thread).
pub(crate) fn conversions_from(
    mut source: impl DaySource,
    query: &ConversionQuery<'_>,
) -> Result<Conversions, StoreError> {
    count(query, Days::OneByOne(&mut source))
}

/// Where a count's days come from.
enum Days<'s> {
    /// A redb snapshot: days decoded and judged on several threads.
    Parallel(&'s crate::store::Snapshot),
    /// Any source, one day after the other on this thread.
    OneByOne(&'s mut dyn DaySource),
}

impl Days<'_> {
    fn resolver(&self) -> Result<crate::store::Resolver, StoreError> {
        match self {
            Days::Parallel(snap) => snap.resolver(),
            Days::OneByOne(source) => source.resolver(),
        }
    }
}

/// The columns a conversion count reads: the visit engine's, the
/// filters' and the conditions'.
fn columns_read(query: &ConversionQuery<'_>, conditions: &[&Condition]) -> Cols {
    let mut cols = Cols::NONE.with(Col::Visitor);
    if conditions.iter().any(|c| matches!(c, Condition::Page(_))) {
        cols = cols.with(Col::Url);
    }
    if conditions
        .iter()
        .any(|c| matches!(c, Condition::Event { .. }))
    {
        cols = cols
            .with(Col::EventName)
            .with(Col::EventProps)
            .with(Col::Revenue);
    }
    for f in query.filters {
        cols = cols.union(cols_for(f.dim));
    }
    cols
}

impl OpenVisit {
    /// Notes the goals an event met (`hit`: its revenue in hundredths,
    /// then the goal bit set) and the revenue it brought each of them.
    fn meet_goals(&mut self, hit: &[u64], goal_words: usize) {
        let cents = hit[0] as i64;
        let met = &hit[1..];
        if self.goals.is_empty() {
            self.goals.resize(goal_words, 0);
        }
        for (w, &word) in met.iter().enumerate() {
            self.goals[w] |= word;
            if cents != 0 {
                let mut bits = word;
                while bits != 0 {
                    self.revenue
                        .push((w * 64 + bits.trailing_zeros() as usize, cents));
                    bits &= bits - 1;
                }
            }
        }
    }
}

/// Follows every visitor's visits through the judged days, in day order,
/// and counts each visit once it is over.
struct VisitFollower<'f> {
    values: Values<'f>,
    visit_filters: Vec<usize>,
    counts: Counts,
    funnel_steps: usize,
    goal_words: usize,
    /// End of the queried range: visits still running then are over.
    to_ms: i64,
    visits: VisitSlots<OpenVisit>,
}

impl FollowedVisit for OpenVisit {
    fn core(&self) -> &visits::Visit {
        &self.core
    }
    fn core_mut(&mut self) -> &mut visits::Visit {
        &mut self.core
    }
}

impl VisitFollower<'_> {
    fn day(&mut self, day: PreparedDay) -> Result<(), StoreError> {
        let (counts, values, filters) = (&mut self.counts, &mut self.values, &self.visit_filters);
        self.visits
            .begin_day(&day.visitor_hashes, |v| counts.finish(values, filters, v))?;
        for e in &day.events {
            self.event(&day, e)?;
        }
        let day_end = (crate::store::schema::day_start_ms(day.day) + MS_PER_DAY).min(self.to_ms);
        let (counts, values, filters) = (&mut self.counts, &mut self.values, &self.visit_filters);
        self.visits.end_day(&day.visitor_hashes, day_end, |v| {
            counts.finish(values, filters, v)
        })
    }

    /// One event of `day`: moves its visitor's visit on (ending and
    /// counting the previous one when it timed out) and notes what the
    /// event met.
    fn event(&mut self, day: &PreparedDay, e: &PreparedEvent) -> Result<(), StoreError> {
        let n = e.visitor as usize;
        let visitor = *day
            .visitor_hashes
            .get(n)
            .ok_or_else(|| StoreError::Decode("event refers to an unknown visitor".into()))?;
        let (counts, values, filters) = (&mut self.counts, &mut self.values, &self.visit_filters);
        let (_, visit) = self.visits.advance(
            n,
            &VisitEvent {
                ts_ms: e.ts_ms,
                kind: e.kind,
                url: e.url,
                referrer: e.referrer,
                campaign: e.campaign,
            },
            |core| OpenVisit {
                core,
                visitor,
                passes: false,
                step: 0,
                goals: Vec::new(),
                revenue: Vec::new(),
            },
            |v| counts.finish(values, filters, v),
        )?;
        let Some(v) = visit else {
            return Ok(());
        };
        v.passes |= e.passes;
        if usize::from(v.step) < self.funnel_steps && e.steps & (1 << v.step) != 0 {
            v.step += 1;
        }
        if e.goal_hit != 0 {
            let at = (e.goal_hit as usize - 1) * (1 + self.goal_words);
            v.meet_goals(
                &day.goal_hits[at..at + 1 + self.goal_words],
                self.goal_words,
            );
        }
        Ok(())
    }

    /// Counts the visits still running at the end of the range.
    fn finish(mut self) -> Result<Counts, StoreError> {
        let (counts, values, filters) = (&mut self.counts, &mut self.values, &self.visit_filters);
        self.visits
            .finish_all(|v| counts.finish(values, filters, v))?;
        Ok(self.counts)
    }
}

fn count(query: &ConversionQuery<'_>, mut days: Days<'_>) -> Result<Conversions, StoreError> {
    let funnel_steps = query.funnel.map_or(&[][..], |f| &f.steps[..]);
    let goals: Vec<&Condition> = query.goals.iter().map(|g| &g.condition).collect();
    let steps: Vec<&Condition> = funnel_steps.iter().map(|(_, c)| c).collect();
    let conditions: Vec<&Condition> = goals.iter().chain(&steps).copied().collect();
    let cols = columns_read(query, &conditions);
    let (visit_filters, event_filters): (Vec<usize>, Vec<usize>) =
        (0..query.filters.len()).partition(|&i| is_visit_level(query.filters[i].dim));
    let goal_words = goals.len().div_ceil(64);
    let n_goals = goals.len();

    let mut follower = VisitFollower {
        values: Values::new(days.resolver()?, query.filters),
        visit_filters,
        counts: Counts {
            visits: 0,
            conversions: vec![0; n_goals],
            visitors: vec![FxHashSet::default(); n_goals],
            revenue: vec![None; n_goals],
            funnel: vec![0; steps.len()],
        },
        funnel_steps: steps.len(),
        goal_words,
        to_ms: query.to_ms,
        visits: VisitSlots::default(),
    };
    let judge = |resolver| DayJudge {
        values: Values::new(resolver, query.filters),
        event_filters: event_filters.clone(),
        goals: goals.clone(),
        steps: steps.clone(),
        goal_words,
        goal_sets: vec![vec![0; goal_words]],
        pages: IdCache::default(),
        events: FxHashMap::default(),
    };
    match &mut days {
        Days::Parallel(snap) => days_in_parallel(
            snap,
            (query.site, query.from_ms, query.to_ms),
            cols,
            day_workers(),
            || Ok(judge(snap.resolver()?)),
            DayJudge::prepare,
            &mut |day| follower.day(day),
        )?,
        Days::OneByOne(source) => {
            let mut one = judge(source.resolver()?);
            source.scan_days(query.site, query.from_ms, query.to_ms, cols, &mut |day| {
                follower.day(one.prepare(day)?)?;
                Ok(std::ops::ControlFlow::Continue(()))
            })?;
        }
    }
    let counts = follower.finish()?;
    Ok(Conversions {
        visits: counts.visits,
        goals: (0..n_goals)
            .map(|g| GoalCount {
                conversions: counts.conversions[g],
                visitors: counts.visitors[g].len() as u64,
                revenue_cents: counts.revenue[g],
            })
            .collect(),
        funnel: counts.funnel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goals::{CustomEvent, Funnel, Goal, PathPattern};
    use crate::model::{Device, DeviceType, Event, Referrer, ReferrerType};
    use crate::report::filter::Filter;
    use crate::store::rollup::VISIT_TIMEOUT_MS;
    use crate::store::schema::MS_PER_HOUR;
    use crate::store::{test_event, StoreOptions, Writer, WriterOptions};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    const MIN: i64 = 60_000;

    /// A small deterministic generator (xorshift).
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Visitors browsing over three UTC days: page views, pings, sign-up
    /// events with and without revenue, gaps that end visits and visits
    /// that run past midnight; device and referrer vary per event.
    fn generated_events(seed: u64) -> Vec<Event> {
        let mut rng = Rng(seed | 1);
        let start = 20_000 * MS_PER_DAY;
        let pages = [
            "https://example.org/pricing",
            "https://example.org/signup",
            "https://example.org/guide/intro",
            "https://example.org/guide/a/b",
            "https://example.org/",
            "https://example.org/about?x=1",
        ];
        let mut events = Vec::new();
        for visitor in 1..=60u64 {
            let mut ts = start + rng.below(3 * MS_PER_DAY as u64) as i64;
            for _ in 0..rng.below(25) {
                ts += match rng.below(10) {
                    0..=5 => MIN + rng.below(5 * MIN as u64) as i64,
                    6..=8 => 10 * MIN + rng.below(15 * MIN as u64) as i64,
                    _ => 31 * MIN + rng.below(3 * MS_PER_HOUR as u64) as i64,
                };
                let mut e = test_event("s", ts, visitor);
                e.url = pages[rng.below(pages.len() as u64) as usize].into();
                e.kind = match rng.below(10) {
                    0..=5 => EventKind::PageView,
                    6 | 7 => EventKind::Ping,
                    _ => EventKind::Custom,
                };
                if e.kind == EventKind::Ping {
                    e.engaged_ms = 5_000;
                }
                if e.kind == EventKind::Custom {
                    let plan = if rng.below(2) == 0 { "free" } else { "pro" };
                    e.custom = Some(CustomEvent {
                        name: if rng.below(4) == 0 { "other" } else { "signup" }.into(),
                        props: vec![("plan".into(), plan.into())],
                        revenue_cents: [0, 0, 1_250, -300][rng.below(4) as usize],
                    });
                }
                e.device = Device {
                    device_type: if rng.below(3) == 0 {
                        DeviceType::Smartphone
                    } else {
                        DeviceType::Desktop
                    },
                    browser: "Firefox".into(),
                    ..Device::default()
                };
                if rng.below(3) == 0 {
                    e.referrer = Referrer {
                        kind: ReferrerType::Search,
                        name: "Example Search".into(),
                        url: "https://search.example/".into(),
                    };
                }
                events.push(e);
            }
        }
        events.sort_by_key(|e| e.ts_ms);
        events
    }

    /// The value of `dim` a filter sees for `e` in a visit with these
    /// entry and exit pages and this first event (empty: no value).
    fn value_of(dim: Dimension, e: &Event, entry: &str, exit: &str, first: &Event) -> String {
        match dim {
            Dimension::Page => e.url.clone(),
            Dimension::EntryPage => entry.into(),
            Dimension::ExitPage => exit.into(),
            Dimension::DeviceType => e.device.device_type.as_str().into(),
            Dimension::ReferrerType if first.referrer != Referrer::default() => {
                first.referrer.kind.as_str().into()
            }
            Dimension::ReferrerType => String::new(),
            other => panic!("the reference does not know {other}"),
        }
    }

    /// Conversions counted the plain way: every visitor's events in time
    /// order, cut into visits, each visit judged from its events' strings.
    fn reference(
        events: &[Event],
        (from_ms, to_ms): (i64, i64),
        filters: &[Filter],
        goals: &[Goal],
        steps: &[(String, Condition)],
    ) -> Conversions {
        let mut by_visitor: BTreeMap<u64, Vec<&Event>> = BTreeMap::new();
        for e in events
            .iter()
            .filter(|e| e.ts_ms >= from_ms && e.ts_ms < to_ms)
        {
            by_visitor.entry(e.visitor).or_default().push(e);
        }
        let mut visits: Vec<Vec<&Event>> = Vec::new();
        for list in by_visitor.values() {
            let mut current: Option<(Vec<&Event>, i64)> = None;
            for &e in list {
                match &mut current {
                    Some((v, last)) if e.ts_ms - *last < VISIT_TIMEOUT_MS => {
                        v.push(e);
                        *last = (*last).max(e.ts_ms);
                    }
                    _ => {
                        if let Some((v, _)) = current.take() {
                            visits.push(v);
                        }
                        if e.kind != EventKind::Ping {
                            current = Some((vec![e], e.ts_ms));
                        }
                    }
                }
            }
            visits.extend(current.map(|(v, _)| v));
        }
        let mut out = Conversions {
            visits: 0,
            goals: vec![GoalCount::default(); goals.len()],
            funnel: vec![0; steps.len()],
        };
        let mut visitors: Vec<FxHashSet<u64>> = vec![FxHashSet::default(); goals.len()];
        for v in visits {
            let views: Vec<&str> = v
                .iter()
                .filter(|e| e.kind == EventKind::PageView)
                .map(|e| e.url.as_str())
                .collect();
            let (entry, exit) = (views.first().copied(), views.last().copied());
            let (entry, exit) = (entry.unwrap_or(""), exit.unwrap_or(""));
            let selected = v.iter().any(|e| {
                filters.iter().all(|f| {
                    let value = value_of(f.dim, e, entry, exit, v[0]);
                    if value.is_empty() {
                        f.matches::<&str>(&[])
                    } else {
                        f.matches(&[value])
                    }
                })
            });
            if !selected {
                continue;
            }
            out.visits += 1;
            let meets = |c: &Condition, e: &Event| match (&e.kind, &e.custom) {
                (EventKind::PageView, _) if !e.url.is_empty() => c.matches_page(url_path(&e.url)),
                (EventKind::Custom, Some(ce)) => c.matches_event(&ce.name, &ce.props),
                _ => false,
            };
            for (g, goal) in goals.iter().enumerate() {
                let hits: Vec<&&Event> = v.iter().filter(|e| meets(&goal.condition, e)).collect();
                if hits.is_empty() {
                    continue;
                }
                out.goals[g].conversions += 1;
                visitors[g].insert(v[0].visitor);
                for e in hits {
                    let cents = e.custom.as_ref().map_or(0, |c| c.revenue_cents);
                    if cents != 0 {
                        *out.goals[g].revenue_cents.get_or_insert(0) += cents;
                    }
                }
            }
            let mut step = 0;
            for e in &v {
                if step < steps.len() && meets(&steps[step].1, e) {
                    step += 1;
                }
            }
            for reached in &mut out.funnel[..step] {
                *reached += 1;
            }
        }
        for (g, seen) in visitors.into_iter().enumerate() {
            out.goals[g].visitors = seen.len() as u64;
        }
        out
    }

    /// The conversions scan (days decoded and judged on several threads,
    /// bit sets per visit) gives exactly what the plain computation gives,
    /// for every filter set, range edge and goal count tried.
    #[test]
    fn the_scan_counts_what_a_plain_computation_counts() {
        let page = |p: &str| Condition::Page(PathPattern::parse(p).unwrap());
        let event = |props: &[(&str, &str)]| Condition::Event {
            name: "signup".into(),
            props: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let three = vec![
            Goal {
                name: "Signed up".into(),
                condition: event(&[]),
            },
            Goal {
                name: "Pro".into(),
                condition: event(&[("plan", "pro")]),
            },
            Goal {
                name: "Guide".into(),
                condition: page("/guide/*"),
            },
        ];
        // more goals than one 64-bit word holds
        let many: Vec<Goal> = (0..70).map(|i| three[i % 3].clone()).collect();
        let funnel = Funnel {
            name: "Sign-up flow".into(),
            steps: vec![
                ("path:/pricing".into(), page("/pricing")),
                ("path:/signup".into(), page("/signup")),
                ("event:signup".into(), event(&[])),
            ],
        };
        let filter_sets: Vec<Vec<Filter>> = [
            &[][..],
            &["device_type==smartphone"][..],
            &["referrer_type==search"][..],
            &["referrer_type==search", "device_type==desktop"][..],
            &["exit_page==https://example.org/signup"][..],
            &["entry_page!=https://example.org/pricing", "page=~guide"][..],
        ]
        .iter()
        .map(|set| set.iter().map(|f| f.parse().unwrap()).collect())
        .collect();
        let start = 20_000 * MS_PER_DAY;
        let ranges = [
            (start - MS_PER_DAY, start + 5 * MS_PER_DAY),
            (
                start + MS_PER_DAY / 2,
                start + 2 * MS_PER_DAY + 7 * MS_PER_HOUR,
            ),
        ];
        let mut converted = 0;
        let mut finished_funnels = 0;
        // The same events stored in three orders (each batch is stored in
        // time order): all at once (a day in time order); odd visitors,
        // then even ones (a day out of time order, each visitor's events
        // in order: counted in stored order); the later half of the time
        // span first (visitors' own events out of order: sorted first).
        type Batching = fn(&[Event]) -> Vec<Vec<Event>>;
        let batchings: [Batching; 3] = [
            |events| vec![events.to_vec()],
            |events| {
                let (odd, even) = events.iter().cloned().partition(|e| e.visitor % 2 == 1);
                vec![odd, even]
            },
            |events| {
                let (early, late) = events.split_at(events.len() / 2);
                vec![late.to_vec(), early.to_vec()]
            },
        ];
        for (seed, batching) in [7, 1234]
            .into_iter()
            .flat_map(|s| batchings.map(|b| (s, b)))
        {
            let dir = tempfile::tempdir().unwrap();
            let store =
                Arc::new(Store::open(dir.path().join("db"), &StoreOptions::default()).unwrap());
            let w = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
            let events = generated_events(seed);
            for batch in batching(&events) {
                w.submit(batch).unwrap().blocking_recv().unwrap().unwrap();
            }
            w.shutdown_blocking().unwrap();
            for range in ranges {
                for filters in &filter_sets {
                    for goals in [&three, &many] {
                        let query = ConversionQuery {
                            site: "s",
                            from_ms: range.0,
                            to_ms: range.1,
                            filters,
                            goals,
                            funnel: Some(&funnel),
                        };
                        let want = reference(&events, range, filters, goals, &funnel.steps);
                        let got = conversions(&store, &query).unwrap();
                        assert_eq!(
                            got, want,
                            "seed {seed}, range {range:?}, filters {filters:?}"
                        );
                        converted += want.goals.iter().filter(|g| g.conversions > 0).count();
                        finished_funnels += want.funnel[2];
                    }
                }
            }
        }
        // the generated events exercise what is compared
        assert!(converted > 0 && finished_funnels > 0);
    }
}
