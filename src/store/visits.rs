//! The visit engine: how one visitor's events make visits. Every place
//! that counts visits runs it: the writer, which turns each step into
//! roll-up changes as events arrive (`super::state`), and the filtered
//! scan and the goal counts, which count visits from raw events
//! (`super::scan`, `super::conversions`; both follow visits across days
//! with [`VisitSlots`]). So a visit, its entry and exit page, whether it
//! bounced, and how long its pages were read are defined here once.
//!
//! The rules: a visit is a visitor's run of events with gaps shorter than
//! [`VISIT_TIMEOUT_MS`]; a ping (heartbeat) never starts one; the visit's
//! referrer and campaign are those of its first event; its entry page is
//! the URL of its first page view, its exit page that of its last; it
//! bounced while it has at most one page view. A page view's dwell is the
//! largest engaged time reported for it.
//!
//! The engine holds no state of its own: the caller keeps each visitor's
//! [`Visit`] wherever it numbers visitors, hands it to [`advance`] with the
//! next event, and reads what happened from the returned [`VisitStep`]
//! (the shape of a search engine feeding several outputs: one engine, and
//! each caller is the sink for what it needs).

use rustc_hash::FxHashMap;

use super::ids::StringId;
use super::StoreError;
use crate::model::EventKind;

use super::rollup::VISIT_TIMEOUT_MS;

/// A visit as far as it has gone; its pages, referrer and campaign as
/// raw-dictionary ids (none: not known).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Visit {
    pub start_ts: i64,
    pub last_ts: i64,
    pub pageviews: u32,
    pub entry: StringId,
    pub exit: StringId,
    pub referrer: StringId,
    pub campaign: StringId,
}

impl Visit {
    /// True while at most one page was viewed.
    pub(crate) fn bounced(&self) -> bool {
        self.pageviews <= 1
    }
}

/// What the engine needs of an event.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VisitEvent {
    pub ts_ms: i64,
    pub kind: EventKind,
    pub url: StringId,
    pub referrer: StringId,
    pub campaign: StringId,
}

/// What one event did to its visitor's visit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VisitStep {
    /// The visitor's previous visit, over because the event came after the
    /// timeout (the caller closes it).
    pub ended: Option<Visit>,
    /// The event started a new visit.
    pub started: bool,
    /// For a page view inside a visit: its number in the visit (1 = the
    /// entry page, 2 = the page view that ends the bounce); 0 otherwise.
    pub pageview_number: u32,
    /// For a page view that moved the exit page: the exit page before it.
    pub exit_moved_from: Option<StringId>,
}

/// Moves `visit` (the visitor's current visit, if any) on by `e`. After
/// the call `visit` is the visit `e` belongs to, or `None` for a ping
/// outside any visit.
pub(crate) fn advance(visit: &mut Option<Visit>, e: &VisitEvent) -> VisitStep {
    let mut step = VisitStep::default();
    let live = matches!(visit, Some(v) if e.ts_ms - v.last_ts < VISIT_TIMEOUT_MS);
    if !live {
        step.ended = visit.take();
        if e.kind != EventKind::Ping {
            *visit = Some(Visit {
                start_ts: e.ts_ms,
                last_ts: e.ts_ms,
                pageviews: 0,
                entry: StringId::NONE,
                exit: StringId::NONE,
                referrer: e.referrer,
                campaign: e.campaign,
            });
            step.started = true;
        }
    }
    let Some(v) = visit.as_mut() else {
        return step;
    };
    v.last_ts = v.last_ts.max(e.ts_ms);
    if e.kind == EventKind::PageView {
        v.pageviews = v.pageviews.saturating_add(1);
        step.pageview_number = v.pageviews;
        if v.pageviews == 1 {
            v.entry = e.url;
        }
        if v.exit != e.url {
            step.exit_moved_from = Some(std::mem::replace(&mut v.exit, e.url));
        }
    }
    step
}

/// A visit a scan follows: the engine's [`Visit`] and whatever the scan
/// counts along with it.
pub(crate) trait FollowedVisit {
    fn core(&self) -> &Visit;
    fn core_mut(&mut self) -> &mut Visit;
}

/// Every visitor's running visit while a scan reads days in order: the
/// current day's visits by visitor number, and the visits still live at
/// the end of the previous day (they go on only if the same visitor hash
/// comes back within the timeout, which the daily salt makes rare). The
/// goal counts and the filtered scan both follow visits with it; each
/// passes `finish` for what it does with a visit that is over.
pub(crate) struct VisitSlots<V> {
    slots: Vec<Option<V>>,
    carried: FxHashMap<u64, V>,
}

impl<V> Default for VisitSlots<V> {
    fn default() -> Self {
        VisitSlots {
            slots: Vec::new(),
            carried: FxHashMap::default(),
        }
    }
}

impl<V: FollowedVisit> VisitSlots<V> {
    /// Starts a day whose visitors are `hashes` (by number): carried
    /// visits whose visitor is back go on, the others are over.
    pub(crate) fn begin_day(
        &mut self,
        hashes: &[u64],
        mut finish: impl FnMut(V) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.slots.clear();
        self.slots.resize_with(hashes.len(), || None);
        if !self.carried.is_empty() {
            for (i, h) in hashes.iter().enumerate() {
                if let Some(v) = self.carried.remove(h) {
                    self.slots[i] = Some(v);
                }
            }
            for (_, v) in self.carried.drain() {
                finish(v)?;
            }
        }
        Ok(())
    }

    /// Moves visitor `n`'s visit on by `e`: a visit that timed out goes
    /// to `finish`, a new one is made by `start`. Returns what the event
    /// did and the visit it belongs to (none for a ping outside a visit).
    pub(crate) fn advance(
        &mut self,
        n: usize,
        e: &VisitEvent,
        start: impl FnOnce(Visit) -> V,
        finish: impl FnOnce(V) -> Result<(), StoreError>,
    ) -> Result<(VisitStep, Option<&mut V>), StoreError> {
        let slot = &mut self.slots[n];
        let mut core = slot.as_ref().map(|v| *v.core());
        let moved = advance(&mut core, e);
        if moved.ended.is_some() {
            if let Some(v) = slot.take() {
                finish(v)?;
            }
        }
        if moved.started {
            *slot = core.map(start);
        }
        let visit = match (slot.as_mut(), core) {
            (Some(v), Some(core)) => {
                *v.core_mut() = core;
                Some(v)
            }
            _ => None,
        };
        Ok((moved, visit))
    }

    /// Ends the day: visits that cannot go on past `day_end` go to
    /// `finish`, the others wait for the next day.
    pub(crate) fn end_day(
        &mut self,
        hashes: &[u64],
        day_end: i64,
        mut finish: impl FnMut(V) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Some(v) = slot.take() {
                if day_end - v.core().last_ts >= VISIT_TIMEOUT_MS {
                    finish(v)?;
                } else {
                    self.carried.insert(hashes[i], v);
                }
            }
        }
        Ok(())
    }

    /// The visits still running at the end of the range, all over now.
    pub(crate) fn finish_all(
        &mut self,
        mut finish: impl FnMut(V) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for (_, v) in self.carried.drain() {
            finish(v)?;
        }
        Ok(())
    }
}

/// Dwell of one page view: the largest engaged time reported for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Dwell {
    pub max_engaged_ms: u32,
}

impl Dwell {
    /// Takes a report of `engaged_ms`; returns how much it adds to the
    /// dwell sum and whether it is the page view's first measured dwell
    /// (`None` when it adds nothing).
    pub(crate) fn report(&mut self, engaged_ms: u32) -> Option<(u32, bool)> {
        let before = self.max_engaged_ms;
        if engaged_ms > before {
            self.max_engaged_ms = engaged_ms;
            Some((engaged_ms - before, before == 0))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> StringId {
        StringId::from_stored(n)
    }

    fn ev(ts_ms: i64, kind: EventKind, url: u32) -> VisitEvent {
        VisitEvent {
            ts_ms,
            kind,
            url: id(url),
            referrer: id(7),
            campaign: StringId::NONE,
        }
    }

    #[test]
    fn a_visit_starts_bounces_moves_its_exit_and_times_out() {
        let mut v = None;
        let ping = advance(&mut v, &ev(0, EventKind::Ping, 0));
        assert_eq!((ping.started, v), (false, None), "a ping starts no visit");
        let first = advance(&mut v, &ev(1_000, EventKind::PageView, 1));
        assert!(first.started);
        assert_eq!(first.pageview_number, 1);
        assert!(v.is_some_and(|v| v.bounced() && v.entry == id(1) && v.referrer == id(7)));
        let second = advance(&mut v, &ev(2_000, EventKind::PageView, 2));
        assert_eq!(
            (second.pageview_number, second.exit_moved_from),
            (2, Some(id(1)))
        );
        assert!(v.is_some_and(|v| !v.bounced() && v.entry == id(1) && v.exit == id(2)));
        let later = advance(
            &mut v,
            &ev(2_000 + VISIT_TIMEOUT_MS, EventKind::Download, 0),
        );
        assert!(later.started);
        assert_eq!(later.ended.map(|v| v.pageviews), Some(2));
        assert_eq!(v.map(|v| v.pageviews), Some(0));
    }

    #[test]
    fn dwell_counts_the_largest_report_once() {
        let mut d = Dwell::default();
        assert_eq!(d.report(5_000), Some((5_000, true)));
        assert_eq!(d.report(3_000), None);
        assert_eq!(d.report(8_000), Some((3_000, false)));
    }
}
