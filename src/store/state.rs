//! What the writer remembers about one (site, UTC day) while it writes:
//! which visitor hashes and page-view ids it has numbered, each visitor's
//! current visit, each page view's largest engaged time, and the block
//! that new events are appended to.
//!
//! None of this is stored as such: it is exactly what replaying the day's
//! stored events through [`DayState::step`] produces, so after a restart
//! (or anything else that invalidates memory) the writer rebuilds it from
//! the day's blocks ([`DayState::load`]). That keeps visitor hashes out of
//! every table but the events themselves, and each commit small.
//!
//! `step` is also the single definition of how events turn into roll-up
//! changes ([`Sink`]); the live writer passes a sink that collects them,
//! a replay one that drops them. What a visit is (start, entry, exit,
//! bounce, dwell) it takes from the visit engine ([`super::visits`]),
//! which the filtered scan runs too.

use super::ids::{DayNumber, StringId};
use rustc_hash::FxHashMap as HashMap;

use redb::ReadableTable;

use crate::model::{EventKind, ENGAGED_SERVER_TIMED};

use super::codec::{decode_block, Block, BlockBuilder, BlockPlace, Cols, RawEvent};
use super::rollup::Dimension;
use super::schema::{hour_of, BlockKey};
use super::visits::{self, Dwell, Visit, VisitEvent};
use super::StoreError;

/// Hourly total fields, in [`super::rollup::Totals`] order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TotalField {
    Pageviews = 0,
    Visits = 1,
    Visitors = 2,
    Bounces = 3,
    DwellSum = 4,
    DwellPageviews = 5,
    Downloads = 6,
    Outbound = 7,
    Searches = 8,
}

/// Dimension counter fields, in [`super::rollup::Counters`] order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CounterField {
    Pageviews = 0,
    Visits = 1,
    Events = 2,
}

/// What a roll-up change is about, in terms of raw dictionary ids; the
/// writer expands groups into dimension values when it applies them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Group {
    /// A dimension whose value is the raw string itself (page, title,
    /// entry/exit page, download, outbound, search term).
    Text(Dimension),
    /// Referrer host, referrer type and search engine of a raw referrer.
    Referrer,
    /// `utm_*` of a raw campaign.
    Campaign,
    /// Device type, brand, model, OS (+version), browser (+version),
    /// engine of a raw device classification.
    Device,
    /// One row per plugin bit; the "raw id" is the bit set.
    Plugins,
}

/// Receives roll-up changes from [`DayState::step`].
pub(crate) trait Sink {
    fn total(&mut self, hour: i64, field: TotalField, by: i64);
    /// `raw` is the stored number of the value's raw-dictionary id (for
    /// [`Group::Plugins`], the plugin bit set); 0 means an empty value,
    /// which is not counted.
    fn dim(&mut self, group: Group, local_day: DayNumber, raw: u32, field: CounterField, by: i64);
}

/// A sink that forgets everything (replays).
pub(crate) struct NoSink;

impl Sink for NoSink {
    fn total(&mut self, _: i64, _: TotalField, _: i64) {}
    fn dim(&mut self, _: Group, _: DayNumber, _: u32, _: CounterField, _: i64) {}
}

/// One event as the state machine sees it: strings already interned.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InternedEvent {
    pub ts_ms: i64,
    pub kind: EventKind,
    pub visitor_hash: u64,
    pub pageview_id: u64,
    pub url: StringId,
    pub title: StringId,
    pub referrer: StringId,
    pub campaign: StringId,
    pub target: StringId,
    pub search_term: StringId,
    pub engaged_ms: u32,
    pub device: StringId,
    pub plugins: u16,
}

impl InternedEvent {
    /// The event as a block stores it, once the day state has numbered it
    /// (`step`): the writer stores this, a replay hands it to the scan.
    pub(crate) fn stored(
        &self,
        step: &Step,
        search_results: Option<u32>,
        custom: super::codec::CustomRef,
    ) -> RawEvent {
        RawEvent {
            ts_ms: self.ts_ms,
            kind: self.kind,
            visitor: step.visitor,
            pageview: step.pageview,
            url: self.url,
            title: self.title,
            referrer: self.referrer,
            campaign: self.campaign,
            target: self.target,
            search_term: self.search_term,
            // 0: not reported; n + 1: n results
            search_results: search_results.map_or(0, |n| u64::from(n) + 1),
            engaged_ms: step.engaged_ms,
            device: self.device,
            plugins: self.plugins,
            // addresses live in their own column, never in the visit data
            ip: 0,
            custom,
        }
    }

    /// A stored event as input, with the visitor hash and page-view id its
    /// numbers stand for.
    pub(crate) fn from_raw(r: &RawEvent, visitor_hash: u64, pageview_id: u64) -> InternedEvent {
        InternedEvent {
            ts_ms: r.ts_ms,
            kind: r.kind,
            visitor_hash,
            pageview_id,
            url: r.url,
            title: r.title,
            referrer: r.referrer,
            campaign: r.campaign,
            target: r.target,
            search_term: r.search_term,
            engaged_ms: r.engaged_ms,
            device: r.device,
            plugins: r.plugins,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct PageviewInfo {
    /// When the page-view id was first seen (its page view, normally).
    pub first_ts: i64,
    pub dwell: Dwell,
}

/// How [`DayState::step`] numbered an event, for its block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step {
    pub visitor: u32,
    pub new_visitor: bool,
    /// 0 or page-view number + 1.
    pub pageview: u32,
    pub new_pageview: bool,
    /// Engaged time to store (server-timed for pings that sent none).
    pub engaged_ms: u32,
}

/// The writer's memory of one (site, UTC day).
pub(crate) struct DayState {
    visitors: HashMap<u64, u32>,
    visits: Vec<Option<Visit>>,
    pageview_ids: HashMap<u64, u32>,
    pageviews: Vec<PageviewInfo>,
    /// Block new events go to (all of its events), and its number.
    pub tail: BlockBuilder,
    pub tail_no: u32,
    /// The tail's events not stored yet: the next tail piece
    /// ([`super::codec::TAIL_PIECE`]). The ones before them are stored
    /// (see [`DayState::tail_stored`]).
    pub fresh: BlockBuilder,
    /// Index of the first event of each stored piece of the tail, so the
    /// pieces can be deleted once the block is written whole.
    pub tail_pieces: Vec<u32>,
    /// Events added since the day's count was last written.
    pub added: u64,
    /// The writer's event counter when an event last touched this day
    /// (the least recently used days are evicted first).
    pub last_use: u64,
}

impl DayState {
    pub(crate) fn empty() -> DayState {
        DayState {
            visitors: HashMap::default(),
            visits: Vec::new(),
            pageview_ids: HashMap::default(),
            pageviews: Vec::new(),
            tail: BlockBuilder::new(0, 0),
            tail_no: 0,
            fresh: BlockBuilder::new(0, 0),
            tail_pieces: Vec::new(),
            added: 0,
            last_use: 0,
        }
    }

    fn visit_of(&self, hash: u64) -> Option<Visit> {
        self.visitors
            .get(&hash)
            .and_then(|&n| self.visits.get(n as usize).copied().flatten())
    }

    fn pageview_of(&self, id: u64) -> Option<PageviewInfo> {
        self.pageview_ids
            .get(&id)
            .and_then(|&n| self.pageviews.get(n as usize).copied())
    }

    /// Applies one event: numbers its visitor and page view, moves its
    /// visit on, and reports the roll-up changes to `sink`. `prev` is the
    /// same site's previous UTC day, for visits and page views that run
    /// across midnight. `local_day` maps a timestamp to the site's day.
    pub(crate) fn step(
        &mut self,
        prev: Option<&DayState>,
        e: &InternedEvent,
        local_day: &dyn Fn(i64) -> DayNumber,
        max_engaged_ms: u32,
        sink: &mut dyn Sink,
    ) -> Step {
        let hour = hour_of(e.ts_ms);
        let local = local_day(e.ts_ms);

        // ---- numbering
        let (visitor, new_visitor) = match self.visitors.get(&e.visitor_hash) {
            Some(&n) => (n, false),
            None => {
                let n = self.visits.len() as u32;
                self.visitors.insert(e.visitor_hash, n);
                self.visits.push(None);
                (n, true)
            }
        };
        if new_visitor {
            sink.total(hour, TotalField::Visitors, 1);
        }
        let (pageview, new_pageview) = if e.pageview_id == 0 {
            (0, false)
        } else {
            match self.pageview_ids.get(&e.pageview_id) {
                Some(&n) => (n + 1, false),
                None => {
                    let n = self.pageviews.len() as u32;
                    let carried = prev.and_then(|p| p.pageview_of(e.pageview_id));
                    self.pageview_ids.insert(e.pageview_id, n);
                    self.pageviews.push(PageviewInfo {
                        first_ts: carried.map_or(e.ts_ms, |c| c.first_ts),
                        dwell: carried.map_or(Dwell::default(), |c| c.dwell),
                    });
                    (n + 1, true)
                }
            }
        };

        // ---- visit
        let mut visit =
            self.visits[visitor as usize].or_else(|| prev.and_then(|p| p.visit_of(e.visitor_hash)));
        let moved = visits::advance(
            &mut visit,
            &VisitEvent {
                ts_ms: e.ts_ms,
                kind: e.kind,
                url: e.url,
                referrer: e.referrer,
                campaign: e.campaign,
            },
        );
        if let Some(v) = &visit {
            visit_rollups(sink, v, &moved, e, hour, local, local_day);
            self.visits[visitor as usize] = Some(*v);
        }

        // ---- per kind
        let mut engaged_ms = e.engaged_ms;
        match e.kind {
            EventKind::PageView => {
                sink.total(hour, TotalField::Pageviews, 1);
                sink.dim(
                    Group::Text(Dimension::Page),
                    local,
                    e.url.stored(),
                    CounterField::Pageviews,
                    1,
                );
                sink.dim(
                    Group::Text(Dimension::Title),
                    local,
                    e.title.stored(),
                    CounterField::Pageviews,
                    1,
                );
            }
            EventKind::Ping if pageview == 0 => {
                if engaged_ms == ENGAGED_SERVER_TIMED {
                    engaged_ms = 0;
                }
            }
            EventKind::Ping => {
                let info = &mut self.pageviews[(pageview - 1) as usize];
                if engaged_ms == ENGAGED_SERVER_TIMED {
                    // a heartbeat without a measurement: the time since
                    // the page view (0 when the page view is unknown)
                    engaged_ms = u32::try_from((e.ts_ms - info.first_ts).max(0))
                        .unwrap_or(u32::MAX)
                        .min(max_engaged_ms);
                }
                if let Some((added, first)) = info.dwell.report(engaged_ms) {
                    sink.total(hour, TotalField::DwellSum, i64::from(added));
                    if first {
                        sink.total(hour, TotalField::DwellPageviews, 1);
                    }
                }
            }
            EventKind::Download => {
                sink.total(hour, TotalField::Downloads, 1);
                sink.dim(
                    Group::Text(Dimension::Download),
                    local,
                    e.target.stored(),
                    CounterField::Events,
                    1,
                );
            }
            EventKind::Outbound => {
                sink.total(hour, TotalField::Outbound, 1);
                sink.dim(
                    Group::Text(Dimension::Outbound),
                    local,
                    e.target.stored(),
                    CounterField::Events,
                    1,
                );
            }
            // custom events have no roll-up: goals and funnels are
            // counted from the raw events
            EventKind::Custom => {}
            EventKind::Search => {
                sink.total(hour, TotalField::Searches, 1);
                sink.dim(
                    Group::Text(Dimension::SearchTerm),
                    local,
                    e.search_term.stored(),
                    CounterField::Events,
                    1,
                );
            }
        }
        Step {
            visitor,
            new_visitor,
            pageview,
            new_pageview,
            engaged_ms,
        }
    }

    /// Rebuilds the state of one (site, day) from its stored blocks, in
    /// the order they were written. `blocks` is the day's event table.
    pub(crate) fn load(
        blocks: &impl ReadableTable<BlockKey<'static>, &'static [u8]>,
        site: &str,
        prev: Option<&DayState>,
        local_day: &dyn Fn(i64) -> DayNumber,
        max_engaged_ms: u32,
    ) -> Result<DayState, StoreError> {
        Self::replay(
            blocks,
            site,
            prev,
            local_day,
            max_engaged_ms,
            (u64::MAX, &mut NoSink),
        )
    }

    /// Like [`DayState::load`], reporting the roll-up changes of the
    /// day's events from position `from` on (in block order) to `sink`:
    /// what those events added to the roll-ups when they were written
    /// (the crash recovery of `super::open_rollups`).
    pub(crate) fn replay(
        blocks: &impl ReadableTable<BlockKey<'static>, &'static [u8]>,
        site: &str,
        prev: Option<&DayState>,
        local_day: &dyn Fn(i64) -> DayNumber,
        max_engaged_ms: u32,
        (from, sink): (u64, &mut dyn Sink),
    ) -> Result<DayState, StoreError> {
        let mut position = 0u64;
        let mut st = DayState::empty();
        let mut hashes: Vec<u64> = Vec::new();
        let mut pageview_ids: Vec<u64> = Vec::new();
        // the values of the block read last: one whole block, or (the
        // block still filling) what is stored whole and its pieces
        let mut last: Option<(u32, Vec<Block>, Vec<u32>)> = None;
        for row in blocks.range::<BlockKey>((site, 0)..=(site, u32::MAX))? {
            let (k, v) = row?;
            let place = BlockPlace::of_key(k.value().1);
            let no = place.block;
            let block = decode_block(v.value(), Cols::ALL)?;
            if block.first_visitor as usize != hashes.len()
                || block.first_pageview as usize != pageview_ids.len()
            {
                return Err(StoreError::Decode(format!(
                    "event block {no} of site {site:?} does not continue the numbering of the \
                     blocks before it"
                )));
            }
            hashes.extend_from_slice(&block.new_visitors);
            pageview_ids.extend_from_slice(&block.new_pageviews);
            for r in &block.events {
                let input = InternedEvent::from_raw(
                    r,
                    hashes[r.visitor as usize],
                    if r.pageview == 0 {
                        0
                    } else {
                        pageview_ids[(r.pageview - 1) as usize]
                    },
                );
                let s = if position >= from {
                    st.step(prev, &input, local_day, max_engaged_ms, sink)
                } else {
                    st.step(prev, &input, local_day, max_engaged_ms, &mut NoSink)
                };
                position += 1;
                if s.visitor != r.visitor || s.pageview != r.pageview {
                    return Err(StoreError::Decode(format!(
                        "event block {no} of site {site:?} numbers its visitors differently \
                         from a replay"
                    )));
                }
            }
            // a piece continues the block read last (or starts the next
            // one); anything else would put events out of order
            let stored_before = match &last {
                Some((n, parts, _)) if *n == no => parts.iter().map(|b| b.events.len()).sum(),
                _ => 0,
            };
            let continues = match &last {
                _ if !place.piece => last.as_ref().is_none_or(|(n, _, _)| *n < no),
                Some((n, _, _)) if *n == no => true,
                Some((n, _, _)) => *n < no,
                None => true,
            };
            if !continues || place.first_index as usize != stored_before {
                return Err(StoreError::Decode(format!(
                    "event block {no} of site {site:?}: a tail piece out of place"
                )));
            }
            match (&mut last, place.piece) {
                (Some((n, parts, pieces)), true) if *n == no => {
                    parts.push(block);
                    pieces.push(place.first_index);
                }
                (_, true) => last = Some((no, vec![block], vec![place.first_index])),
                (_, false) => last = Some((no, vec![block], Vec::new())),
            }
        }
        if let Some((no, parts, pieces)) = last {
            let mut tail = BlockBuilder::new(parts[0].first_visitor, parts[0].first_pageview);
            for part in &parts {
                tail.extend_from_block(part);
            }
            if tail.is_full() {
                if !pieces.is_empty() {
                    return Err(StoreError::Decode(format!(
                        "event block {no} of site {site:?} is full but held in pieces"
                    )));
                }
                st.tail = BlockBuilder::new(st.visits.len() as u32, st.pageviews.len() as u32);
                st.tail_no = no.checked_add(1).ok_or_else(|| {
                    StoreError::Decode(format!("site {site:?} has too many blocks in one day"))
                })?;
            } else {
                st.tail = tail;
                st.tail_no = no;
                st.tail_pieces = pieces;
            }
            st.fresh = BlockBuilder::new(st.tail.next_visitor(), st.tail.next_pageview());
        }
        Ok(st)
    }

    /// Appends an event to the tail (and to the piece not stored yet).
    /// Returns the tail when this event filled it, to be written whole
    /// (and its stored pieces deleted); a new tail then starts.
    pub(crate) fn push(
        &mut self,
        raw: &RawEvent,
        step: &Step,
        input: &InternedEvent,
        ip: &[u8],
    ) -> Option<FullBlock> {
        let new_visitor = step.new_visitor.then_some(input.visitor_hash);
        let new_pageview = step.new_pageview.then_some(input.pageview_id);
        self.tail.push(raw, new_visitor, new_pageview, ip);
        self.fresh.push(raw, new_visitor, new_pageview, ip);
        self.added += 1;
        if self.tail.is_full() {
            let (visitors, pageviews) = (self.visits.len() as u32, self.pageviews.len() as u32);
            let full = std::mem::replace(&mut self.tail, BlockBuilder::new(visitors, pageviews));
            self.fresh = BlockBuilder::new(visitors, pageviews);
            let no = self.tail_no;
            self.tail_no = self.tail_no.saturating_add(1);
            Some(FullBlock {
                no,
                block: full,
                pieces: std::mem::take(&mut self.tail_pieces),
            })
        } else {
            None
        }
    }

    /// Events at the start of the tail that are stored (as a whole block
    /// under `tail_no`, and in the pieces of `tail_pieces`): all but the
    /// fresh ones.
    pub(crate) fn tail_stored(&self) -> usize {
        self.tail.len() - self.fresh.len()
    }

    /// Marks the events of [`DayState::fresh`] stored (as a piece starting
    /// at `piece`, or with the tail written whole when `None`).
    pub(crate) fn fresh_stored(&mut self, piece: Option<u32>) {
        if let Some(first_index) = piece {
            self.tail_pieces.push(first_index);
        }
        self.fresh = BlockBuilder::new(self.tail.next_visitor(), self.tail.next_pageview());
    }
}

/// A block that filled: written whole under its number, replacing the
/// tail pieces that held its events so far.
pub(crate) struct FullBlock {
    pub no: u32,
    pub block: BlockBuilder,
    /// Index of the first event of each stored piece of the block.
    pub pieces: Vec<u32>,
}

/// The roll-up changes of one step of the visit engine: a new visit counts
/// once (and as a bounce until its second page view); a page view in a
/// visit counts for the visit's entry page, moves its exit page, and
/// counts against the visit-level dimensions. Visit-level rows are dated
/// by the visit's start, page-view rows by the event.
fn visit_rollups(
    sink: &mut dyn Sink,
    v: &Visit,
    moved: &visits::VisitStep,
    e: &InternedEvent,
    hour: i64,
    local: DayNumber,
    local_day: &dyn Fn(i64) -> DayNumber,
) {
    if moved.started {
        sink.total(hour, TotalField::Visits, 1);
        sink.total(hour, TotalField::Bounces, 1);
        visit_dims(sink, local, v, e, CounterField::Visits);
    }
    if moved.pageview_number == 0 {
        return;
    }
    let start_local = local_day(v.start_ts);
    let entry = Group::Text(Dimension::EntryPage);
    if moved.pageview_number == 1 {
        sink.dim(
            entry,
            start_local,
            v.entry.stored(),
            CounterField::Visits,
            1,
        );
    }
    if moved.pageview_number == 2 {
        sink.total(hour_of(v.start_ts), TotalField::Bounces, -1);
    }
    if let Some(old) = moved.exit_moved_from {
        let exit = Group::Text(Dimension::ExitPage);
        sink.dim(exit, start_local, old.stored(), CounterField::Visits, -1);
        sink.dim(exit, start_local, v.exit.stored(), CounterField::Visits, 1);
    }
    visit_dims(sink, local, v, e, CounterField::Pageviews);
    sink.dim(entry, local, v.entry.stored(), CounterField::Pageviews, 1);
}

/// Counts one visit or one page view against the visit-level dimensions
/// (referrer and campaign from the visit, device from the event: the same
/// user agent made the same visitor hash).
fn visit_dims(
    sink: &mut dyn Sink,
    day: DayNumber,
    s: &Visit,
    e: &InternedEvent,
    field: CounterField,
) {
    sink.dim(Group::Referrer, day, s.referrer.stored(), field, 1);
    sink.dim(Group::Campaign, day, s.campaign.stored(), field, 1);
    sink.dim(Group::Device, day, e.device.stored(), field, 1);
    sink.dim(Group::Plugins, day, u32::from(e.plugins), field, 1);
}
