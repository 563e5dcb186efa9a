//! Compact binary encodings for the store: varints, event blocks, and the
//! tuples that the string dictionary interns.
//!
//! Raw events are not stored one row each. The writer appends them to a
//! *block* per (site, UTC day), column by column, until it holds
//! [`BLOCK_MAX_EVENTS`] events; then a new block starts. While a block
//! fills, each commit stores only the events it added, as a *tail piece*
//! (itself a small block) under a key of its own ([`TAIL_PIECE`]); the
//! block is written whole once it is full and its pieces deleted. Every string (URL, title, referrer, campaign, device
//! classification, …) is a number into the string dictionary
//! (`super::dict`), visitor hashes and page-view ids are numbered per
//! (site, day) in order of first appearance and stored in full only once.
//! A typical page view takes about 25 bytes instead of a 300-byte row, and
//! a filtered report decodes only the columns it needs.
//!
//! Custom events (declared per site, `crate::goals`) keep their name, their
//! properties and their revenue in three columns of their own that only
//! custom events write to; the name and the properties are dictionary
//! entries like every other visitor text, so they expire with their last
//! use. Version 2 blocks, written before those columns existed, are read
//! as they are (they hold no custom events).
//!
//! Everything read back from disk is checked: a truncated value, an unknown
//! version or enum tag, a reference to a visitor or page view not yet
//! introduced, or trailing bytes is a [`StoreError::Decode`], never a panic.
//! Addresses come back as [`StoredIp`], not `AnonIp`: an `AnonIp` can only
//! be made by truncating a full address, so the store cannot rebuild one.

use super::ids::StringId;
use std::collections::HashMap;

use crate::model::{Campaign, Device, DeviceType, EventKind, Referrer, ReferrerType};
use crate::privacy::StoredIp;

use super::StoreError;

/// Version byte at the start of every block written now.
pub const BLOCK_VERSION: u8 = 3;

/// The block version before custom events, still read: its blocks have
/// the first [`V2_COLS`] columns only.
pub const BLOCK_VERSION_V2: u8 = 2;
const V2_COLS: usize = 18;

/// Events in a full block (about 30 KB), written once when it fills; the
/// commits before write it in tail pieces.
pub const BLOCK_MAX_EVENTS: usize = 1024;

/// Column bytes at which a block is closed even before it holds
/// [`BLOCK_MAX_EVENTS`]: redb gives a large value a power-of-two number of
/// pages, so a block just over 32 KiB would take 64 KiB.
pub const BLOCK_MAX_BYTES: usize = 32 * 1024 - 512;

/// Low bits of a stored kind byte that hold the [`EventKind`]; the next
/// four say which of the sparse columns (target, search term, search
/// results, engaged time) hold a value for the event: most events have
/// none of them, and then they take no byte at all.
const KIND_BITS: u32 = 3;

/// Bits of [`StoredEvent::seq`] that hold the position inside a block.
pub const SEQ_INDEX_BITS: u32 = 11;

/// Key bit of a *tail piece*: the events one commit added to the block
/// still filling, stored under a key of their own so that a commit writes
/// only its new events, not the whole block again. The rest of the key
/// is the position of the piece's first event within its (site, UTC day):
/// block number and index, as in [`StoredEvent::seq`]. Whole blocks have
/// the bit clear and their number as key, so in key order all whole
/// blocks come first, then the pieces of the one block that is still
/// filling, in the order they were written: the order of the events.
/// When that block fills, it is written whole under its number and its
/// pieces are deleted, in the same transaction.
pub const TAIL_PIECE: u32 = 1 << 31;

/// Highest block number whose tail can be held in pieces (the position
/// must fit beside [`TAIL_PIECE`]); a later block is rewritten whole on
/// every commit, as every block was before pieces.
pub const MAX_PIECED_BLOCK: u32 = (TAIL_PIECE >> SEQ_INDEX_BITS) - 1;

/// Where a stored value of an event table belongs: its block number and
/// the index within that block of its first event (0 for a whole block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockPlace {
    pub block: u32,
    pub first_index: u32,
    /// True for a tail piece, false for a block stored whole (full, or
    /// still filling when written by a release before pieces or rewritten
    /// by a sweep).
    pub piece: bool,
}

impl BlockPlace {
    /// The place a key of an event table stands for.
    pub fn of_key(key: u32) -> BlockPlace {
        if key & TAIL_PIECE == 0 {
            BlockPlace {
                block: key,
                first_index: 0,
                piece: false,
            }
        } else {
            let position = key & !TAIL_PIECE;
            BlockPlace {
                block: position >> SEQ_INDEX_BITS,
                first_index: position & ((1 << SEQ_INDEX_BITS) - 1),
                piece: true,
            }
        }
    }

    /// The key of a tail piece of `block` starting at `first_index`, or
    /// `None` when the block number is past [`MAX_PIECED_BLOCK`].
    pub fn piece_key(block: u32, first_index: u32) -> Option<u32> {
        (block <= MAX_PIECED_BLOCK && first_index < (1 << SEQ_INDEX_BITS))
            .then_some(TAIL_PIECE | (block << SEQ_INDEX_BITS) | first_index)
    }

    /// Position ([`StoredEvent::seq`]) of the value's first event; the
    /// value's i-th event is at this plus i. Unchanged when the pieces of
    /// a block are written whole.
    pub fn first_seq(self) -> u32 {
        self.block.wrapping_shl(SEQ_INDEX_BITS) | self.first_index
    }
}

// ---------------------------------------------------------------- varints

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    // zig-zag, so small negative numbers stay small
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A cursor over bytes read from disk; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }

    pub(crate) fn err(&self, why: &str) -> StoreError {
        StoreError::Decode(format!("{}: {why}", self.what))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn u8(&mut self) -> Result<u8, StoreError> {
        let (&b, rest) = self
            .buf
            .split_first()
            .ok_or_else(|| self.err("truncated"))?;
        self.buf = rest;
        Ok(b)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        if self.buf.len() < N {
            return Err(self.err("truncated"));
        }
        let (head, rest) = self.buf.split_at(N);
        self.buf = rest;
        let mut a = [0u8; N];
        a.copy_from_slice(head);
        Ok(a)
    }

    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, StoreError> {
        match self.buf {
            [b, rest @ ..] if *b < 0x80 => {
                self.buf = rest;
                Ok(u64::from(*b))
            }
            [b0, b1, rest @ ..] if *b1 < 0x80 => {
                self.buf = rest;
                Ok(u64::from(b0 & 0x7f) | (u64::from(*b1) << 7))
            }
            _ => self.varint_slow(),
        }
    }

    fn varint_slow(&mut self) -> Result<u64, StoreError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let low = u64::from(b & 0x7f);
            if i == 9 && low > 1 {
                return Err(self.err("varint overflows 64 bits"));
            }
            v |= low << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    #[inline]
    pub(crate) fn ivarint(&mut self) -> Result<i64, StoreError> {
        let z = self.varint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, StoreError> {
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| self.err("value exceeds u32"))
    }

    /// A raw-dictionary id written as a varint.
    pub(crate) fn string_id(&mut self) -> Result<StringId, StoreError> {
        self.u32().map(StringId::from_stored)
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| self.err("length too large"))?;
        if self.buf.len() < len {
            return Err(self.err("truncated bytes"));
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, StoreError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.err("invalid UTF-8"))
    }

    pub(crate) fn string(&mut self) -> Result<String, StoreError> {
        self.str().map(str::to_owned)
    }

    /// The bytes not read yet.
    pub(crate) fn rest(self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn finish(self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}

// ---------------------------------------------------------------- events

/// One event as stored in a block: strings are dictionary ids (0 = empty),
/// visitor and page view are per-(site, day) numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEvent {
    pub ts_ms: i64,
    pub kind: EventKind,
    /// Number of the visitor hash within its (site, UTC day).
    pub visitor: u32,
    /// 0 = no page-view id; otherwise the number of the id within its
    /// (site, UTC day) plus one.
    pub pageview: u32,
    pub url: StringId,
    pub title: StringId,
    /// Dictionary id of the encoded [`Referrer`] (0 = direct, nothing known).
    pub referrer: StringId,
    /// Dictionary id of the encoded [`Campaign`] (0 = none).
    pub campaign: StringId,
    pub target: StringId,
    pub search_term: StringId,
    /// 0 = unknown; otherwise the number of results plus one.
    pub search_results: u64,
    pub engaged_ms: u32,
    /// Dictionary id of the encoded [`Device`] (0 = nothing detected).
    pub device: StringId,
    pub plugins: u16,
    /// Index into the block's address table.
    pub ip: u16,
    /// Name, properties and revenue of a custom event (zero otherwise).
    pub custom: CustomRef,
}

/// A custom event's columns: dictionary ids of its name and of its
/// encoded properties (0 = none), revenue in hundredths (0 = none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CustomRef {
    pub name: StringId,
    pub props: StringId,
    pub revenue_cents: i64,
}

impl Default for RawEvent {
    fn default() -> Self {
        RawEvent {
            ts_ms: 0,
            kind: EventKind::PageView,
            visitor: 0,
            pageview: 0,
            url: StringId::NONE,
            title: StringId::NONE,
            referrer: StringId::NONE,
            campaign: StringId::NONE,
            target: StringId::NONE,
            search_term: StringId::NONE,
            search_results: 0,
            engaged_ms: 0,
            device: StringId::NONE,
            plugins: 0,
            ip: 0,
            custom: CustomRef::default(),
        }
    }
}

/// An event as read back from the store, with every string resolved.
/// Like [`crate::model::Event`], except that the address is a checked
/// [`StoredIp`] and the event's position is kept in `seq`.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub site: String,
    pub ts_ms: i64,
    /// Position within its (site, UTC day): block number and index.
    pub seq: u32,
    pub kind: EventKind,
    pub visitor: u64,
    pub pageview_id: u64,
    pub url: String,
    pub title: String,
    pub referrer: Referrer,
    pub campaign: Campaign,
    pub target: String,
    pub search_term: String,
    pub search_results: Option<u32>,
    pub engaged_ms: u32,
    pub device: Device,
    pub plugins: u16,
    pub anon_ip: StoredIp,
    /// For custom events: the declared name, properties and revenue.
    pub custom: Option<crate::goals::CustomEvent>,
}

/// Columns of a block, in the order they are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Col {
    Ts = 0,
    Kind,
    Visitor,
    NewVisitors,
    Pageview,
    NewPageviews,
    Url,
    Title,
    Referrer,
    Campaign,
    Target,
    SearchTerm,
    SearchResults,
    Engaged,
    Device,
    Plugins,
    Ip,
    Ips,
    /// Custom events only: dictionary id of the name.
    EventName,
    /// Custom events only: dictionary id of the encoded properties.
    EventProps,
    /// Custom events only: revenue in hundredths (zig-zag).
    Revenue,
}

const N_COLS: usize = 21;

/// Which columns a decode should read; the others come back as zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cols(u32);

impl Cols {
    pub const ALL: Cols = Cols((1 << N_COLS) - 1);
    pub const NONE: Cols = Cols(0);

    pub const fn with(self, c: Col) -> Cols {
        Cols(self.0 | (1 << c as usize))
    }

    /// The columns of both.
    pub const fn union(self, other: Cols) -> Cols {
        Cols(self.0 | other.0)
    }

    pub fn has(self, c: Col) -> bool {
        self.0 & (1 << c as usize) != 0
    }
}

/// Encodes events into a block. The writer keeps one per (site, day) and
/// appends to it; `encode` produces the value to store.
#[derive(Clone, Debug)]
pub struct BlockBuilder {
    count: usize,
    first_visitor: u32,
    first_pageview: u32,
    new_visitors: u32,
    new_pageviews: u32,
    last_ts: i64,
    cols: [Vec<u8>; N_COLS],
    ip_index: HashMap<Vec<u8>, u16>,
}

impl BlockBuilder {
    /// An empty block whose newly introduced visitors and page views will
    /// be numbered from `first_visitor` and `first_pageview`.
    pub fn new(first_visitor: u32, first_pageview: u32) -> Self {
        BlockBuilder {
            count: 0,
            first_visitor,
            first_pageview,
            new_visitors: 0,
            new_pageviews: 0,
            last_ts: 0,
            cols: Default::default(),
            ip_index: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_full(&self) -> bool {
        self.count >= BLOCK_MAX_EVENTS
            || self.cols.iter().map(Vec::len).sum::<usize>() >= BLOCK_MAX_BYTES
    }

    /// Number the next new visitor would get.
    pub fn next_visitor(&self) -> u32 {
        self.first_visitor + self.new_visitors
    }

    /// Number the next new page-view id would get.
    pub fn next_pageview(&self) -> u32 {
        self.first_pageview + self.new_pageviews
    }

    /// Appends one event. `new_visitor` is the full hash when `e.visitor`
    /// is introduced here (it must then equal [`Self::next_visitor`]);
    /// likewise `new_pageview` for `e.pageview`. `ip` is the address in
    /// [`crate::privacy::AnonIp::to_bytes`] form; `e.ip` is ignored.
    pub fn push(
        &mut self,
        e: &RawEvent,
        new_visitor: Option<u64>,
        new_pageview: Option<u64>,
        ip: &[u8],
    ) {
        debug_assert!(!self.is_full());
        put_ivarint(
            &mut self.cols[Col::Ts as usize],
            e.ts_ms.wrapping_sub(self.last_ts),
        );
        self.last_ts = e.ts_ms;
        let optional = [
            (Col::Target, u64::from(e.target)),
            (Col::SearchTerm, u64::from(e.search_term)),
            (Col::SearchResults, e.search_results),
            (Col::Engaged, u64::from(e.engaged_ms)),
        ];
        let mut kind = e.kind as u8;
        for (i, (col, v)) in optional.into_iter().enumerate() {
            if v != 0 {
                kind |= 1 << (KIND_BITS + i as u32);
                put_varint(&mut self.cols[col as usize], v);
            }
        }
        self.cols[Col::Kind as usize].push(kind);
        match new_visitor {
            Some(hash) => {
                debug_assert_eq!(e.visitor, self.next_visitor());
                self.new_visitors += 1;
                put_varint(&mut self.cols[Col::Visitor as usize], 0);
                self.cols[Col::NewVisitors as usize].extend_from_slice(&hash.to_le_bytes());
            }
            None => put_varint(
                &mut self.cols[Col::Visitor as usize],
                u64::from(e.visitor) + 1,
            ),
        }
        match (e.pageview, new_pageview) {
            (0, _) => put_varint(&mut self.cols[Col::Pageview as usize], 0),
            (_, Some(id)) => {
                debug_assert_eq!(e.pageview, self.next_pageview() + 1);
                self.new_pageviews += 1;
                put_varint(&mut self.cols[Col::Pageview as usize], 1);
                self.cols[Col::NewPageviews as usize].extend_from_slice(&id.to_le_bytes());
            }
            (n, None) => put_varint(&mut self.cols[Col::Pageview as usize], u64::from(n) + 1),
        }
        for (col, v) in [
            (Col::Url, e.url),
            (Col::Title, e.title),
            (Col::Referrer, e.referrer),
            (Col::Campaign, e.campaign),
        ] {
            put_varint(&mut self.cols[col as usize], u64::from(v));
        }
        put_varint(&mut self.cols[Col::Device as usize], u64::from(e.device));
        put_varint(&mut self.cols[Col::Plugins as usize], u64::from(e.plugins));
        let ip_idx = match self.ip_index.get(ip) {
            Some(&i) => i,
            None => {
                // at most BLOCK_MAX_EVENTS addresses, so this fits
                let i = self.ip_index.len() as u16;
                self.ip_index.insert(ip.to_vec(), i);
                put_bytes(&mut self.cols[Col::Ips as usize], ip);
                i
            }
        };
        put_varint(&mut self.cols[Col::Ip as usize], ip_idx as u64);
        if e.kind == EventKind::Custom {
            put_varint(
                &mut self.cols[Col::EventName as usize],
                u64::from(e.custom.name),
            );
            put_varint(
                &mut self.cols[Col::EventProps as usize],
                u64::from(e.custom.props),
            );
            put_ivarint(
                &mut self.cols[Col::Revenue as usize],
                e.custom.revenue_cents,
            );
        }
        self.count += 1;
    }

    /// The block's stored form.
    pub fn encode(&self) -> Vec<u8> {
        let body: usize = self.cols.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(16 + 3 * N_COLS + body);
        out.push(BLOCK_VERSION);
        put_varint(&mut out, self.count as u64);
        put_varint(&mut out, u64::from(self.first_visitor));
        put_varint(&mut out, u64::from(self.first_pageview));
        for c in &self.cols {
            put_varint(&mut out, c.len() as u64);
        }
        for c in &self.cols {
            out.extend_from_slice(c);
        }
        out
    }

    /// A builder holding `block`'s events, ready for more.
    pub fn from_block(block: &Block) -> Self {
        let mut b = BlockBuilder::new(block.first_visitor, block.first_pageview);
        b.extend_from_block(block);
        b
    }

    /// Appends the events of `block`, which continues this builder's
    /// numbering (a tail piece after the events before it), fully decoded.
    pub fn extend_from_block(&mut self, block: &Block) {
        let b = self;
        let mut nv = block.new_visitors.iter();
        let mut np = block.new_pageviews.iter();
        for e in &block.events {
            let new_v = (e.visitor == b.next_visitor())
                .then(|| nv.next().copied())
                .flatten();
            let new_p = (e.pageview != 0 && e.pageview == b.next_pageview() + 1)
                .then(|| np.next().copied())
                .flatten();
            let ip = block
                .ips
                .get(usize::from(e.ip))
                .map_or(&[][..], Vec::as_slice);
            b.push(e, new_v, new_p, ip);
        }
    }
}

/// A decoded block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Block {
    pub events: Vec<RawEvent>,
    pub first_visitor: u32,
    pub first_pageview: u32,
    /// Full hashes of the visitors introduced in this block, in number order
    /// (empty unless [`Col::NewVisitors`] was decoded).
    pub new_visitors: Vec<u64>,
    /// Page-view ids introduced in this block, in number order.
    pub new_pageviews: Vec<u64>,
    /// Address table ([`crate::privacy::AnonIp::to_bytes`] form).
    pub ips: Vec<Vec<u8>>,
}

/// Number of events in a block, from its header alone.
pub fn block_len(bytes: &[u8]) -> Result<usize, StoreError> {
    let mut r = Reader::new(bytes, "event block");
    let version = r.u8()?;
    if version != BLOCK_VERSION && version != BLOCK_VERSION_V2 {
        return Err(r.err(&format!("unknown block version {version}")));
    }
    usize::try_from(r.varint()?).map_err(|_| r.err("count too large"))
}

/// A block's header: how many events it holds and where its visitor and
/// page-view numbering starts.
struct BlockHeader {
    count: usize,
    first_visitor: u32,
    first_pageview: u32,
}

/// Reads the header and cuts the rest of the block into its columns, each
/// exactly as long as the header says.
fn split_columns(bytes: &[u8]) -> Result<(BlockHeader, [&[u8]; N_COLS]), StoreError> {
    let mut r = Reader::new(bytes, "event block");
    let version = r.u8()?;
    let stored_cols = match version {
        BLOCK_VERSION => N_COLS,
        BLOCK_VERSION_V2 => V2_COLS,
        _ => return Err(r.err(&format!("unknown block version {version}"))),
    };
    let count = r.varint()?;
    if count > BLOCK_MAX_EVENTS as u64 {
        return Err(r.err("more events than a block holds"));
    }
    let count = count as usize;
    let first_visitor = r.u32()?;
    let first_pageview = r.u32()?;
    let mut lens = [0usize; N_COLS];
    for l in lens.iter_mut().take(stored_cols) {
        *l = usize::try_from(r.varint()?).map_err(|_| r.err("column too large"))?;
    }
    let mut rest = r.buf;
    let mut col: [&[u8]; N_COLS] = [&[]; N_COLS];
    for (c, &l) in col.iter_mut().zip(&lens) {
        if rest.len() < l {
            return Err(r_err("truncated column"));
        }
        let (head, tail) = rest.split_at(l);
        *c = head;
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(r_err("trailing bytes"));
    }
    let header = BlockHeader {
        count,
        first_visitor,
        first_pageview,
    };
    Ok((header, col))
}

/// A column that was read must be used up exactly.
fn used_up(r: Reader<'_>) -> Result<(), StoreError> {
    if r.is_empty() {
        Ok(())
    } else {
        Err(r_err("column longer than its events"))
    }
}

/// Timestamps, stored as differences to the previous event's.
fn decode_timestamps(column: &[u8], events: &mut [RawEvent]) -> Result<(), StoreError> {
    let mut rd = Reader::new(column, "event block column");
    let mut ts = 0i64;
    for e in events.iter_mut() {
        ts = ts.wrapping_add(rd.ivarint()?);
        e.ts_ms = ts;
    }
    used_up(rd)
}

/// Kinds, one byte per event; its high bits say which sparse columns hold
/// a value for the event.
fn decode_kinds(kinds: &[u8], events: &mut [RawEvent]) -> Result<(), StoreError> {
    if kinds.len() != events.len() {
        return Err(r_err("kind column does not match the count"));
    }
    for (e, &k) in events.iter_mut().zip(kinds) {
        if k >> (KIND_BITS + 4) != 0 {
            return Err(r_err("unknown flags in a kind byte"));
        }
        e.kind = EventKind::from_u8(k & ((1 << KIND_BITS) - 1))
            .ok_or_else(|| r_err("unknown event kind"))?;
    }
    Ok(())
}

/// Visitor numbers: 0 introduces the next visitor (its hash in
/// `new_hashes`), n refers to visitor n - 1 seen before.
fn decode_visitors(
    column: &[u8],
    new_hashes: &[u8],
    first_visitor: u32,
    events: &mut [RawEvent],
    new_visitors: &mut Vec<u64>,
) -> Result<(), StoreError> {
    let mut rd = Reader::new(column, "event block column");
    let mut new = Reader::new(new_hashes, "event block column");
    let mut next = first_visitor;
    for e in events.iter_mut() {
        match rd.varint()? {
            0 => {
                new_visitors.push(u64::from_le_bytes(new.array::<8>()?));
                e.visitor = next;
                next = next
                    .checked_add(1)
                    .ok_or_else(|| r_err("visitor numbers overflow"))?;
            }
            n => {
                let v = u32::try_from(n - 1).map_err(|_| r_err("visitor number too large"))?;
                if v >= next {
                    return Err(r_err("reference to a visitor not yet introduced"));
                }
                e.visitor = v;
            }
        }
    }
    used_up(rd)?;
    used_up(new)
}

/// Page-view numbers: 0 is none, 1 introduces the next page view (its hash
/// in `new_hashes`), n refers to page view n - 1 seen before.
fn decode_pageviews(
    column: &[u8],
    new_hashes: &[u8],
    first_pageview: u32,
    events: &mut [RawEvent],
    new_pageviews: &mut Vec<u64>,
) -> Result<(), StoreError> {
    let mut rd = Reader::new(column, "event block column");
    let mut new = Reader::new(new_hashes, "event block column");
    let mut next = first_pageview;
    for e in events.iter_mut() {
        match rd.varint()? {
            0 => e.pageview = 0,
            1 => {
                new_pageviews.push(u64::from_le_bytes(new.array::<8>()?));
                next = next
                    .checked_add(1)
                    .ok_or_else(|| r_err("page-view numbers overflow"))?;
                e.pageview = next;
            }
            n => {
                let p = u32::try_from(n - 1).map_err(|_| r_err("page-view number too large"))?;
                if p > next {
                    return Err(r_err("reference to a page view not yet introduced"));
                }
                e.pageview = p;
            }
        }
    }
    used_up(rd)?;
    used_up(new)
}

/// The block's distinct shortened addresses, and with `Col::Ip` each
/// event's index into them.
fn decode_addresses(
    addresses: &[u8],
    indexes: Option<&[u8]>,
    block: &mut Block,
) -> Result<(), StoreError> {
    let mut ips = Reader::new(addresses, "event block column");
    while !ips.is_empty() {
        block.ips.push(ips.bytes()?.to_vec());
    }
    let Some(indexes) = indexes else {
        return Ok(());
    };
    let mut rd = Reader::new(indexes, "event block column");
    for e in block.events.iter_mut() {
        let i = rd.varint()?;
        if i >= block.ips.len() as u64 {
            return Err(r_err("address index out of range"));
        }
        e.ip = i as u16;
    }
    used_up(rd)
}

/// Decodes the columns in `cols` of a block (timestamps and kinds always).
/// Works column by column: each one is a tight loop over its own bytes.
pub fn decode_block(bytes: &[u8], cols: Cols) -> Result<Block, StoreError> {
    let mut block = Block::default();
    let (first_visitor, first_pageview) = decode_events_into(
        bytes,
        cols,
        &mut block.events,
        &mut block.new_visitors,
        &mut block.new_pageviews,
    )?;
    block.first_visitor = first_visitor;
    block.first_pageview = first_pageview;
    if cols.has(Col::Ip) || cols.has(Col::Ips) {
        let (_, col) = split_columns(bytes)?;
        let indexes = cols.has(Col::Ip).then(|| col[Col::Ip as usize]);
        decode_addresses(col[Col::Ips as usize], indexes, &mut block)?;
    }
    Ok(block)
}

/// [`decode_block`] without the address columns, appending the block's
/// events to `events` and the visitor hashes and page-view ids it
/// introduces to `new_visitors` and `new_pageviews`; returns where the
/// block's visitor and page-view numbering starts. A scan decodes a whole
/// day's blocks into one vector this way, instead of a vector per block
/// that is then copied (the copies and allocations cost a scan of 10 M
/// events a tenth of its time). On an error the vectors hold part of the
/// block.
pub fn decode_events_into(
    bytes: &[u8],
    cols: Cols,
    events: &mut Vec<RawEvent>,
    new_visitors: &mut Vec<u64>,
    new_pageviews: &mut Vec<u64>,
) -> Result<(u32, u32), StoreError> {
    let (header, col) = split_columns(bytes)?;
    let column = |c: Col| col[c as usize];
    let reader = |c: Col| Reader::new(column(c), "event block column");

    let start = events.len();
    events.resize(start + header.count, RawEvent::default());
    let ev = &mut events[start..];
    decode_timestamps(column(Col::Ts), ev)?;
    let kinds = column(Col::Kind);
    decode_kinds(kinds, ev)?;
    let present = |i: usize, bit: u32| kinds[i] & (1 << (KIND_BITS + bit)) != 0;

    if cols.has(Col::Visitor) {
        decode_visitors(
            column(Col::Visitor),
            column(Col::NewVisitors),
            header.first_visitor,
            ev,
            new_visitors,
        )?;
    }
    if cols.has(Col::Pageview) {
        decode_pageviews(
            column(Col::Pageview),
            column(Col::NewPageviews),
            header.first_pageview,
            ev,
            new_pageviews,
        )?;
    }
    macro_rules! string_column {
        ($col:expr, $field:ident) => {
            if cols.has($col) {
                let mut rd = reader($col);
                for e in ev.iter_mut() {
                    e.$field = StringId::from_stored(rd.u32()?);
                }
                used_up(rd)?;
            }
        };
    }
    string_column!(Col::Url, url);
    string_column!(Col::Title, title);
    string_column!(Col::Referrer, referrer);
    string_column!(Col::Campaign, campaign);
    string_column!(Col::Device, device);
    macro_rules! sparse_column {
        ($col:expr, $bit:expr, $field:ident, $read:expr) => {
            if cols.has($col) {
                let mut rd = reader($col);
                for (i, e) in ev.iter_mut().enumerate() {
                    if present(i, $bit) {
                        e.$field = $read(&mut rd)?;
                        // zero (or no string) is what an absent value means
                        if is_zero(&e.$field) {
                            return Err(r_err("a sparse column holds a zero"));
                        }
                    }
                }
                used_up(rd)?;
            }
        };
    }
    sparse_column!(Col::Target, 0, target, Reader::string_id);
    sparse_column!(Col::SearchTerm, 1, search_term, Reader::string_id);
    sparse_column!(Col::SearchResults, 2, search_results, |rd: &mut Reader<
        '_,
    >| {
        let n = rd.varint()?;
        if n > u64::from(u32::MAX) + 1 {
            return Err(r_err("search results exceed u32"));
        }
        Ok::<u64, StoreError>(n)
    });
    sparse_column!(Col::Engaged, 3, engaged_ms, Reader::u32);
    if cols.has(Col::Plugins) {
        let mut rd = reader(Col::Plugins);
        for e in ev.iter_mut() {
            e.plugins = u16::try_from(rd.varint()?).map_err(|_| r_err("plugins exceed u16"))?;
        }
        used_up(rd)?;
    }
    if cols.has(Col::EventName) || cols.has(Col::EventProps) || cols.has(Col::Revenue) {
        let mut names = reader(Col::EventName);
        let mut props = reader(Col::EventProps);
        let mut revenue = reader(Col::Revenue);
        for e in ev.iter_mut().filter(|e| e.kind == EventKind::Custom) {
            e.custom = CustomRef {
                name: names.string_id()?,
                props: props.string_id()?,
                revenue_cents: revenue.ivarint()?,
            };
        }
        used_up(names)?;
        used_up(props)?;
        used_up(revenue)?;
    }
    Ok((header.first_visitor, header.first_pageview))
}

fn r_err(why: &str) -> StoreError {
    StoreError::Decode(format!("event block: {why}"))
}

// ------------------------------------------------- interned tuple encodings

/// Tags that keep the dictionary's kinds of values apart, so that a URL
/// can never be read as a device classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    Text = 0,
    Device = 1,
    Referrer = 2,
    Campaign = 3,
    /// A custom event's properties.
    Props = 4,
}

/// Dictionary key of a plain string.
pub fn text_key(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + s.len());
    out.push(Tag::Text as u8);
    out.extend_from_slice(s.as_bytes());
    out
}

/// Dictionary key of a device classification.
pub fn device_key(d: &Device) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.push(Tag::Device as u8);
    out.push(d.device_type as u8);
    out.push(u8::from(d.bot));
    for s in [
        &d.brand,
        &d.model,
        &d.os,
        &d.os_version,
        &d.browser,
        &d.browser_version,
        &d.engine,
        &d.engine_version,
    ] {
        put_str(&mut out, s);
    }
    out
}

/// Dictionary key of a classified referrer.
pub fn referrer_key(r: &Referrer) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + r.name.len() + r.url.len());
    out.push(Tag::Referrer as u8);
    out.push(r.kind as u8);
    put_str(&mut out, &r.name);
    put_str(&mut out, &r.url);
    out
}

/// Dictionary key of campaign parameters.
pub fn campaign_key(c: &Campaign) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + c.source.len() + c.medium.len() + c.campaign.len());
    out.push(Tag::Campaign as u8);
    put_str(&mut out, &c.source);
    put_str(&mut out, &c.medium);
    put_str(&mut out, &c.campaign);
    out
}

/// Dictionary key of a custom event's properties (sorted by key).
pub fn props_key(props: &[(String, String)]) -> Vec<u8> {
    let mut out = vec![Tag::Props as u8];
    for (k, v) in props {
        put_str(&mut out, k);
        put_str(&mut out, v);
    }
    out
}

/// A dictionary value, decoded by its tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interned {
    Text(String),
    Device(Device),
    Referrer(Referrer),
    Campaign(Campaign),
    Props(Vec<(String, String)>),
}

/// Decodes a dictionary key made by one of the `*_key` functions.
pub fn decode_interned(bytes: &[u8]) -> Result<Interned, StoreError> {
    let mut r = Reader::new(bytes, "interned value");
    let tag = r.u8()?;
    let v = match tag {
        t if t == Tag::Text as u8 => {
            let s = std::str::from_utf8(r.buf).map_err(|_| r.err("invalid UTF-8"))?;
            return Ok(Interned::Text(s.to_owned()));
        }
        t if t == Tag::Device as u8 => {
            let device_type =
                DeviceType::from_u8(r.u8()?).ok_or_else(|| r.err("unknown device type"))?;
            let bot = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(r.err("bad bool")),
            };
            Interned::Device(Device {
                device_type,
                bot,
                brand: r.string()?,
                model: r.string()?,
                os: r.string()?,
                os_version: r.string()?,
                browser: r.string()?,
                browser_version: r.string()?,
                engine: r.string()?,
                engine_version: r.string()?,
            })
        }
        t if t == Tag::Referrer as u8 => {
            let kind =
                ReferrerType::from_u8(r.u8()?).ok_or_else(|| r.err("unknown referrer type"))?;
            Interned::Referrer(Referrer {
                kind,
                name: r.string()?,
                url: r.string()?,
            })
        }
        t if t == Tag::Campaign as u8 => Interned::Campaign(Campaign {
            source: r.string()?,
            medium: r.string()?,
            campaign: r.string()?,
        }),
        t if t == Tag::Props as u8 => {
            let mut props = Vec::new();
            while !r.is_empty() {
                props.push((r.string()?, r.string()?));
            }
            Interned::Props(props)
        }
        other => return Err(r.err(&format!("unknown tag {other}"))),
    };
    r.finish()?;
    Ok(v)
}

/// True for a column's zero value (0, or no string).
fn is_zero<V: Default + PartialEq>(v: &V) -> bool {
    *v == V::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> StringId {
        StringId::from_stored(n)
    }

    fn ev(ts: i64, kind: EventKind, visitor: u32, pageview: u32, url: u32) -> RawEvent {
        RawEvent {
            ts_ms: ts,
            kind,
            visitor,
            pageview,
            url: id(url),
            title: id(url + 1),
            referrer: id(3),
            campaign: StringId::NONE,
            target: StringId::NONE,
            search_term: StringId::NONE,
            search_results: 0,
            engaged_ms: 0,
            device: id(7),
            plugins: 0b10_0000_0001,
            ip: 0,
            custom: CustomRef::default(),
        }
    }

    const V4: &[u8] = &[4, 16, 181, 153];
    const V6: &[u8] = &[6, 32, 0x20, 0x01, 0x0d, 0xb8];

    fn sample() -> (BlockBuilder, Vec<RawEvent>) {
        let mut b = BlockBuilder::new(5, 9);
        let mut out = Vec::new();
        // visitor 5 is new, then 2 (from an earlier block), then 5 again
        let mut e = ev(1_700_000_000_000, EventKind::PageView, 5, 10, 100);
        b.push(&e, Some(0xdead_beef), Some(0x1234), V4);
        e.ip = 0;
        out.push(e);
        let mut e = ev(1_700_000_000_500, EventKind::Ping, 2, 3, 0);
        e.engaged_ms = u32::MAX;
        b.push(&e, None, None, V6);
        e.ip = 1;
        out.push(e);
        let mut e = ev(1_699_999_999_000, EventKind::Search, 5, 0, 100);
        e.search_term = id(42);
        e.search_results = u64::from(u32::MAX) + 1;
        b.push(&e, None, None, V4);
        e.ip = 0;
        out.push(e);
        let mut e = ev(1_700_000_001_000, EventKind::Custom, 5, 0, 100);
        e.custom = CustomRef {
            name: id(77),
            props: id(78),
            revenue_cents: -990,
        };
        b.push(&e, None, None, V4);
        e.ip = 0;
        out.push(e);
        (b, out)
    }

    #[test]
    fn blocks_round_trip_every_column() {
        let (b, events) = sample();
        let bytes = b.encode();
        assert_eq!(block_len(&bytes).unwrap(), 4);
        let d = decode_block(&bytes, Cols::ALL).unwrap();
        assert_eq!(d.events, events);
        assert_eq!(d.new_visitors, vec![0xdead_beef]);
        assert_eq!(d.new_pageviews, vec![0x1234]);
        assert_eq!(d.ips, vec![V4.to_vec(), V6.to_vec()]);
        // a builder rebuilt from the block encodes the same bytes
        assert_eq!(BlockBuilder::from_block(&d).encode(), bytes);
    }

    #[test]
    fn partial_decodes_leave_other_columns_zero() {
        let (b, events) = sample();
        let d = decode_block(&b.encode(), Cols::NONE.with(Col::Url)).unwrap();
        assert_eq!(d.events.len(), 4);
        for (got, want) in d.events.iter().zip(&events) {
            assert_eq!(
                (got.ts_ms, got.kind, got.url),
                (want.ts_ms, want.kind, want.url)
            );
            assert_eq!(
                (got.device, got.visitor, got.title),
                (StringId::NONE, 0, StringId::NONE)
            );
        }
    }

    #[test]
    fn version_2_blocks_are_still_read() {
        // a version 2 block: the same header, 18 column lengths
        let mut b = BlockBuilder::new(0, 0);
        b.push(&ev(1, EventKind::PageView, 0, 0, 5), Some(9), None, V4);
        let v3 = b.encode();
        let d3 = decode_block(&v3, Cols::ALL).unwrap();
        let mut v2 = vec![BLOCK_VERSION_V2];
        let mut r = Reader::new(&v3[1..], "t");
        for _ in 0..3 {
            put_varint(&mut v2, r.varint().unwrap());
        }
        let mut lens = Vec::new();
        for _ in 0..N_COLS {
            lens.push(r.varint().unwrap());
        }
        assert_eq!(&lens[V2_COLS..], &[0, 0, 0]);
        for l in &lens[..V2_COLS] {
            put_varint(&mut v2, *l);
        }
        v2.extend_from_slice(r.rest());
        assert_eq!(block_len(&v2).unwrap(), 1);
        assert_eq!(decode_block(&v2, Cols::ALL).unwrap(), d3);
        assert!(decode_block(&[9, 0], Cols::ALL).is_err());
    }

    #[test]
    fn props_round_trip() {
        let props = vec![
            ("plan".to_string(), "pro".to_string()),
            ("via".to_string(), String::new()),
        ];
        assert_eq!(
            decode_interned(&props_key(&props)).unwrap(),
            Interned::Props(props)
        );
    }

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        let (b, _) = sample();
        let bytes = b.encode();
        for n in 0..bytes.len() {
            assert!(decode_block(&bytes[..n], Cols::ALL).is_err(), "prefix {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_block(&longer, Cols::ALL).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let (b, _) = sample();
        let good = b.encode();
        for round in 0..3000 {
            let mut buf = good.clone();
            // flip a few bytes of a valid block, or make random bytes
            if round % 3 == 0 {
                buf = (0..(round % 200))
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                if let Some(b) = buf.first_mut() {
                    *b = BLOCK_VERSION;
                }
            } else {
                for _ in 0..3 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = (x as usize) % buf.len();
                    buf[i] = (x >> 32) as u8;
                }
            }
            let _ = decode_block(&buf, Cols::ALL);
            let _ = decode_block(&buf, Cols::NONE.with(Col::Device));
        }
    }

    #[test]
    fn references_to_unknown_visitors_are_refused() {
        let mut b = BlockBuilder::new(0, 0);
        b.push(&ev(1, EventKind::PageView, 3, 0, 1), None, None, V4);
        let err = decode_block(&b.encode(), Cols::ALL).unwrap_err();
        assert!(err.to_string().contains("not yet introduced"), "{err}");
    }

    #[test]
    fn tuples_round_trip_and_kinds_stay_apart() {
        let d = Device {
            device_type: DeviceType::Tablet,
            brand: "Samsung".into(),
            model: "SM-X200".into(),
            os: "Android".into(),
            os_version: "14".into(),
            browser: "Chrome".into(),
            browser_version: "131.0".into(),
            engine: "Blink".into(),
            engine_version: "131".into(),
            bot: false,
        };
        assert_eq!(
            decode_interned(&device_key(&d)).unwrap(),
            Interned::Device(d)
        );
        let r = Referrer {
            kind: ReferrerType::Search,
            name: "Google".into(),
            url: "https://www.google.de/".into(),
        };
        assert_eq!(
            decode_interned(&referrer_key(&r)).unwrap(),
            Interned::Referrer(r)
        );
        let c = Campaign {
            source: "newsletter".into(),
            medium: String::new(),
            campaign: "frühling".into(),
        };
        assert_eq!(
            decode_interned(&campaign_key(&c)).unwrap(),
            Interned::Campaign(c)
        );
        assert_eq!(
            decode_interned(&text_key("Grüße")).unwrap(),
            Interned::Text("Grüße".into())
        );
        assert_ne!(text_key("x"), campaign_key(&Campaign::default()));
        assert!(decode_interned(&[9, 1, 2]).is_err());
        assert!(decode_interned(&[Tag::Text as u8, 0xff]).is_err());
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [
            0u64,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader::new(&out, "t");
            assert_eq!(r.varint().unwrap(), v);
            r.finish().unwrap();
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -1_700_000_000_000] {
            let mut out = Vec::new();
            put_ivarint(&mut out, v);
            let mut r = Reader::new(&out, "t");
            assert_eq!(r.ivarint().unwrap(), v);
        }
        let mut r = Reader::new(&[0x80; 11], "t");
        assert!(r.varint().is_err());
    }
}
