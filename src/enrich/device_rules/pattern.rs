//! One DeviceDetector regex, matched the way DeviceDetector matches it, and
//! ordered lists of them that find the first rule matching a user agent.
//!
//! DeviceDetector (PHP, PCRE) wraps every rule as
//! `/(?:^|[^A-Z0-9_-]|[^A-Z0-9-]_|sprd-|MZ-)(?:RULE)/i`: a rule must start
//! the user agent or follow a character that is not part of a word,
//! matching is case-insensitive (ASCII), and `$1`..`$3` (written `\g<1>`
//! in the packaged files) take the rule's own groups.
//!
//! Engines: `regex-automata` (byte regexes, ASCII classes, no Unicode
//! tables: fast to build and to run) takes every rule it can parse. PCRE
//! constructs it does not have, lookarounds and possessive quantifiers
//! (about 180 of the 20,000 rules), go to PCRE2 itself (the engine
//! DeviceDetector runs on, through PHP), in the same mode: caseless, on
//! bytes, ASCII classes. Both engines prefer alternatives left to right,
//! so groups capture the same text. PCRE2 holds each such rule as one
//! compiled program of a few KB; `fancy-regex`, used before, built a
//! Unicode `meta::Regex` for every plain piece of a rule, ~80 MB and
//! ~1.6 s for these 180 rules, the largest brand alternations among them.
//!
//! First-match lists: trying thousands of rules one by one would cost
//! milliseconds per user agent. Each rule's literal prefixes (or suffixes)
//! are extracted once with `regex-syntax`; one Aho-Corasick scan of the
//! user agent then names the few rules that can match and where, and only
//! those are tried, in file order. Rules without usable literals always
//! run. The prefilter is sound: a case-insensitive match implies that a
//! case variant of one of the case-sensitive literals occurs, and
//! lookarounds (zero width) are dropped before extraction, which only
//! widens the literal set.
//!
//! A list's rules with prefix literals (almost all) share one automaton
//! (`RuleSet`): one multi-pattern Thompson NFA, each rule a pattern
//! without DeviceDetector's boundary (checked in code) and without groups,
//! searched by a lazy DFA anchored at the rule's pattern and at a position
//! the prefilter named. It says whether the rule matches there; when the
//! rule's templates do not use its groups, that is the answer. Otherwise
//! (groups, or lookarounds that the automaton left out) the rule's own
//! engine runs, built when first needed: a bare Thompson NFA run by the
//! bounded backtracker (the PikeVM when a large NFA meets a long user
//! agent), anchored where the boundary may start, with one scratch cache
//! per thread shared by every rule. One NFA per rule, as before, cost
//! about 1.7 KB each beside its states (20,000 rules), and a backtracker
//! set up its scratch space for every try; a lazy DFA's states are shared
//! by every try of every user agent.
//!
//! Rules searched unanchored (no prefix literal, and the helper patterns)
//! have a `meta::Regex` of their own, whose prefilter and lazy DFA make a
//! miss cheap where a backtracker would try every start position; its
//! lazy DFA cache is bounded ([`META_DFA_CACHE`]).
//!
//! Automata are built on first use (or ahead of it, see
//! [`super::compile_in_background`]), so start-up pays only for loading
//! the rules.

use std::cell::RefCell;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex_automata::hybrid;
use regex_automata::nfa::thompson::backtrack::{self, BoundedBacktracker};
use regex_automata::nfa::thompson::pikevm::PikeVM;
use regex_automata::nfa::thompson::{self, NFA};
use regex_automata::util::pool::Pool;
use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::util::syntax;
use regex_automata::{meta, Anchored, Input, PatternID};

use super::raw::{self, Literals};

/// DeviceDetector's left boundary for every rule.
const BOUNDARY: &str = r"(?:^|[^A-Z0-9_-]|[^A-Z0-9-]_|sprd-|MZ-)";

/// Groups a template can reference (`$1`..`$3`, as DeviceDetector).
pub const GROUPS: usize = 3;

/// The text of groups 1..=3 of a match; a group that did not take part is
/// empty, as in PHP's `preg_match` result.
#[derive(Debug, Default, Clone)]
pub struct Groups<'h> {
    pub groups: [&'h str; GROUPS],
}

impl<'h> Groups<'h> {
    /// Group `n` (1-based); "" when absent.
    pub fn get(&self, n: usize) -> &'h str {
        n.checked_sub(1)
            .and_then(|i| self.groups.get(i))
            .copied()
            .unwrap_or("")
    }
}

/// Lazy DFA cache bound per unanchored rule (regex-automata's default is
/// 2 MiB each for the forward and the reverse DFA).
const META_DFA_CACHE: usize = 256 * 1024;

/// Capture slots of groups 0..=3 (start and end each).
const SLOTS: usize = 2 * (GROUPS + 1);

thread_local! {
    /// The backtracker's scratch space (visited set and stack), shared by
    /// every rule on this thread: its size follows the largest search
    /// made, at most the backtracker's visited capacity (256 KiB).
    static BACKTRACK_CACHE: RefCell<Option<backtrack::Cache>> = const { RefCell::new(None) };
}

/// One rule on `regex-automata`: its NFA, searched by the bounded
/// backtracker, or by the PikeVM when NFA × haystack exceed the
/// backtracker's visited capacity. Both share the one NFA.
struct Automaton {
    backtrack: BoundedBacktracker,
    pikevm: PikeVM,
}

impl Automaton {
    fn new(pattern: &str) -> Result<Automaton, String> {
        let nfa = NFA::compiler()
            .syntax(
                syntax::Config::new()
                    .unicode(false)
                    .utf8(false)
                    .case_insensitive(true),
            )
            // byte regexes: no UTF-8 rules for empty matches
            .configure(thompson::Config::new().utf8(false))
            .build(pattern)
            .map_err(|e| e.to_string())?;
        let backtrack = BoundedBacktracker::builder()
            .build_from_nfa(nfa.clone())
            .map_err(|e| e.to_string())?;
        let pikevm = PikeVM::builder()
            .build_from_nfa(nfa)
            .map_err(|e| e.to_string())?;
        Ok(Automaton { backtrack, pikevm })
    }

    /// Searches `input`, filling `slots` (as many as given: none for a
    /// yes/no answer); true on a match.
    fn search(&self, input: &Input<'_>, slots: &mut [Option<NonMaxUsize>]) -> bool {
        let found = BACKTRACK_CACHE.with(|cell| {
            let Ok(mut guard) = cell.try_borrow_mut() else {
                return None;
            };
            let cache = guard.get_or_insert_with(|| self.backtrack.create_cache());
            cache.reset(&self.backtrack);
            self.backtrack.try_search_slots(cache, input, slots).ok()
        });
        match found {
            Some(found) => found.is_some(),
            // the haystack is too long for this NFA's backtracker
            None => {
                let mut cache = self.pikevm.create_cache();
                self.pikevm.search_slots(&mut cache, input, slots).is_some()
            }
        }
    }

    fn is_match(&self, hay: &str) -> bool {
        self.search(&Input::new(hay).earliest(true), &mut [])
    }

    /// Start of the leftmost match in `input`.
    fn find_start(&self, input: &Input<'_>) -> Option<usize> {
        let mut slots = [None; 2];
        self.search(input, &mut slots)
            .then(|| slots[0].map(NonMaxUsize::get))
            .flatten()
    }
}

/// A rule searched unanchored: a `meta::Regex` without the engines that
/// cost memory per regex and do not pay here (full DFA, one-pass DFA).
fn meta_regex(pattern: &str) -> Result<meta::Regex, String> {
    meta::Regex::builder()
        .configure(
            meta::Regex::config()
                .dfa(false)
                .onepass(false)
                .hybrid_cache_capacity(META_DFA_CACHE),
        )
        .syntax(
            syntax::Config::new()
                .unicode(false)
                .utf8(false)
                .case_insensitive(true),
        )
        .build(pattern)
        .map_err(|e| e.to_string())
}

enum Engine {
    Backtrack(Automaton),
    Meta(meta::Regex),
}

impl Engine {
    fn new(pattern: &str, anchored_only: bool) -> Result<Engine, String> {
        if anchored_only {
            Automaton::new(pattern).map(Engine::Backtrack)
        } else {
            meta_regex(pattern).map(Engine::Meta)
        }
    }

    fn is_match(&self, hay: &str) -> bool {
        match self {
            Engine::Backtrack(re) => re.is_match(hay),
            Engine::Meta(re) => re.is_match(Input::new(hay)),
        }
    }

    fn search(&self, input: &Input<'_>, slots: &mut [Option<NonMaxUsize>]) -> bool {
        match self {
            Engine::Backtrack(re) => re.search(input, slots),
            Engine::Meta(re) => re.search_slots(input, slots).is_some(),
        }
    }

    fn find_start(&self, input: &Input<'_>) -> Option<usize> {
        match self {
            Engine::Backtrack(re) => re.find_start(input),
            Engine::Meta(re) => re.find(input.clone()).map(|m| m.start()),
        }
    }
}

/// A PCRE2 regex as DeviceDetector's PHP compiles its rules (`/i`, no
/// `u`): caseless in ASCII, matching bytes.
fn lookaround_regex(pattern: &str) -> Result<pcre2::bytes::Regex, pcre2::Error> {
    pcre2::bytes::RegexBuilder::new()
        .caseless(true)
        .build(pattern)
}

/// Whether PCRE2 takes `rule` (the constructs the automata do not have).
pub fn lookaround_parse(rule: &str) -> bool {
    lookaround_regex(rule).is_ok()
}

enum Compiled {
    Automata(Engine),
    /// A backtracking regex, behind a quick check: the rule without its
    /// lookarounds, on the automata, matches wherever the rule does, so the
    /// slow engine runs only where the quick one matched, and from there.
    Lookaround {
        superset: Option<Engine>,
        pcre: pcre2::bytes::Regex,
    },
    /// Neither engine takes it; it never matches (counted at load time).
    Broken,
}

/// One rule regex, compiled on first use.
pub struct Pattern {
    source: Box<str>,
    /// Wrap with DeviceDetector's boundary (rules) or use as is (helpers
    /// that DeviceDetector also runs unwrapped).
    bounded: bool,
    /// Only searched at a given start (its list's prefilter names the
    /// positions): a backtracker suffices.
    anchored_only: bool,
    /// Whether the rule's templates use its groups: when they do not, its
    /// list's shared automaton alone decides, and this rule's own engine is
    /// never built.
    groups_used: bool,
    compiled: OnceLock<Compiled>,
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

impl Pattern {
    /// A rule, wrapped in DeviceDetector's boundary.
    pub fn rule(source: &str) -> Pattern {
        Pattern {
            source: source.into(),
            bounded: true,
            anchored_only: false,
            groups_used: true,
            compiled: OnceLock::new(),
        }
    }

    /// A pattern used as written (still case-insensitive).
    pub fn plain(source: &str) -> Pattern {
        Pattern {
            source: source.into(),
            bounded: false,
            anchored_only: false,
            groups_used: true,
            compiled: OnceLock::new(),
        }
    }

    /// Marks a rule whose templates use none of its groups (`$1`..`$3`):
    /// a match alone is its answer.
    pub fn without_groups(mut self) -> Pattern {
        self.groups_used = false;
        self
    }

    /// Whether this rule's own engine has been built (for measurements).
    pub fn is_compiled(&self) -> bool {
        self.compiled.get().is_some()
    }

    /// The rule as written in its file.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn full(&self) -> String {
        if self.bounded {
            format!("{BOUNDARY}(?:{})", self.source)
        } else {
            self.source.to_string()
        }
    }

    fn compiled(&self) -> &Compiled {
        self.compiled.get_or_init(|| {
            let full = self.full();
            if let Ok(re) = Engine::new(&full, self.anchored_only) {
                return Compiled::Automata(re);
            }
            match lookaround_regex(&full) {
                Ok(pcre) => {
                    let stripped = raw::without_lookarounds(&self.source);
                    let superset = if self.bounded {
                        format!("{BOUNDARY}(?:{stripped})")
                    } else {
                        stripped
                    };
                    Compiled::Lookaround {
                        superset: Engine::new(&superset, self.anchored_only).ok(),
                        pcre,
                    }
                }
                Err(e) => {
                    tracing::warn!(rule = %self.source, error = %e, "device rule does not compile; it never matches");
                    Compiled::Broken
                }
            }
        })
    }

    /// Compiles now; false when neither engine takes the pattern.
    pub fn compile(&self) -> bool {
        !matches!(self.compiled(), Compiled::Broken)
    }

    /// The engine that runs this pattern (compiling it now if needed), for
    /// measurements.
    pub fn engine_name(&self) -> &'static str {
        match self.compiled() {
            Compiled::Automata(Engine::Backtrack(_)) => "NFA, bounded backtracker",
            Compiled::Automata(Engine::Meta(_)) => "meta regex, lazy DFA",
            Compiled::Lookaround { .. } => "PCRE2, lookaround rules",
            Compiled::Broken => "does not compile",
        }
    }

    /// True when the pattern matches somewhere in `hay`.
    pub fn is_match(&self, hay: &str) -> bool {
        match self.compiled() {
            Compiled::Automata(re) => re.is_match(hay),
            Compiled::Lookaround { .. } => self.captures(hay).is_some(),
            Compiled::Broken => false,
        }
    }

    /// Groups 1..=3 of the leftmost match, or `None`.
    pub fn captures<'h>(&self, hay: &'h str) -> Option<Groups<'h>> {
        self.captures_from(hay, None)
    }

    /// Groups of the match that starts exactly at `start` (the boundary
    /// included), or `None`.
    pub fn captures_at<'h>(&self, hay: &'h str, start: usize) -> Option<Groups<'h>> {
        self.captures_from(hay, Some(start))
    }

    fn captures_from<'h>(&self, hay: &'h str, anchor: Option<usize>) -> Option<Groups<'h>> {
        let input = |re_hay: &'h str| match anchor {
            Some(at) => Input::new(re_hay).range(at..).anchored(Anchored::Yes),
            None => Input::new(re_hay),
        };
        let mut out = Groups::default();
        match self.compiled() {
            Compiled::Automata(re) => {
                let mut slots = [None; SLOTS];
                if !re.search(&input(hay), &mut slots) {
                    return None;
                }
                for (group, text) in out.groups.iter_mut().enumerate() {
                    let (start, end) = (slots[2 * group + 2], slots[2 * group + 3]);
                    if let (Some(start), Some(end)) = (start, end) {
                        *text = hay.get(start.get()..end.get()).unwrap_or("");
                    }
                }
            }
            Compiled::Lookaround { superset, pcre } => {
                let from = match (superset, anchor) {
                    (Some(quick), _) => quick.find_start(&input(hay))?,
                    (None, Some(at)) => at,
                    (None, None) => 0,
                };
                let mut locations = pcre.capture_locations();
                // an error (PCRE2's match limit) counts as no match
                let found = pcre
                    .captures_read_at(&mut locations, hay.as_bytes(), from)
                    .ok()??;
                if anchor.is_some_and(|at| found.start() != at) {
                    return None;
                }
                for (i, slot) in out.groups.iter_mut().enumerate() {
                    if let Some((start, end)) = locations.get(i + 1) {
                        *slot = hay.get(start..end).unwrap_or("");
                    }
                }
            }
            Compiled::Broken => return None,
        }
        Some(out)
    }
}

/// Whether DeviceDetector's boundary can end at `at`, so that a rule may
/// start there: at the start of the user agent, after a character that is
/// not `[A-Z0-9_-]`, after `x_` where `x` is not `[A-Z0-9-]`, or after
/// `sprd-` or `MZ-` (case-insensitive, as the wrapped rule).
fn boundary_ends_at(hay: &[u8], at: usize) -> bool {
    let Some(before) = at.checked_sub(1).map(|i| hay[i]) else {
        return true;
    };
    if !(before.is_ascii_alphanumeric() || before == b'_' || before == b'-') {
        return true;
    }
    if before == b'_' && at >= 2 && !(hay[at - 2].is_ascii_alphanumeric() || hay[at - 2] == b'-') {
        return true;
    }
    let ends_with =
        |word: &[u8]| at >= word.len() && hay[at - word.len()..at].eq_ignore_ascii_case(word);
    ends_with(b"sprd-") || ends_with(b"mz-")
}

/// Lazy DFA cache bound of a list's shared automaton (per thread), or
/// what the lazy DFA needs at the least for the automaton's size if that
/// is more. Lists tried for every user agent need room for the states that
/// common user agents visit (with too little, the cache is cleared and
/// rebuilt over and over); see [`FirstMatch::with_dfa_cache`] for lists
/// tried rarely.
pub const SET_DFA_CACHE: usize = 512 * 1024;

type SetCacheFn = Box<
    dyn Fn() -> hybrid::dfa::Cache
        + Send
        + Sync
        + std::panic::UnwindSafe
        + std::panic::RefUnwindSafe,
>;

/// One automaton for the rules of a list that its prefilter names at a
/// position: every such rule is a pattern of one Thompson NFA (the rule as
/// written, without DeviceDetector's boundary, which
/// [`boundary_ends_at`] checks instead, and without groups), run as a lazy
/// DFA anchored at the pattern and position the prefilter named. One
/// automaton per list instead of one per rule: a rule's NFA carried a
/// fixed cost of about 1.7 KB beside its states, and a bounded backtracker
/// set up its scratch space for every try; the lazy DFA's states are
/// shared by every rule and every user agent, so a try that fails costs a
/// few table lookups.
struct RuleSet {
    dfa: hybrid::dfa::DFA,
    caches: Pool<hybrid::dfa::Cache, SetCacheFn>,
    /// Per rule of the list: its pattern in the automaton (`u32::MAX`:
    /// not in it, tried by its own engine).
    pattern: Vec<u32>,
    /// Per rule: the automaton holds the rule without its lookarounds, so
    /// a match there must be confirmed by the rule's own engine.
    superset: Vec<bool>,
}

impl RuleSet {
    const NONE: u32 = u32::MAX;

    /// Builds the automaton over the rules marked `in_set` that the
    /// automata's parser takes; a rule with lookarounds is in it without
    /// them (a superset: where it matches, PCRE2 decides).
    fn new(patterns: &[Pattern], in_set: &[bool], cache_bound: usize) -> Option<RuleSet> {
        let mut parser = regex_syntax::ParserBuilder::new();
        parser.unicode(false).utf8(false).case_insensitive(true);
        let mut hirs = Vec::new();
        let mut pattern = vec![Self::NONE; patterns.len()];
        let mut superset = vec![false; patterns.len()];
        for (i, (p, &wanted)) in patterns.iter().zip(in_set).enumerate() {
            if !wanted {
                continue;
            }
            let hir = match parser.build().parse(&p.source) {
                Ok(hir) => hir,
                Err(_) => match parser.build().parse(&raw::without_lookarounds(&p.source)) {
                    Ok(hir) => {
                        superset[i] = true;
                        hir
                    }
                    Err(_) => continue,
                },
            };
            pattern[i] = hirs.len() as u32;
            hirs.push(hir);
        }
        if hirs.is_empty() {
            return None;
        }
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .utf8(false)
                    .which_captures(thompson::WhichCaptures::None)
                    // the brands' alternations of mobiles.yml exceed the
                    // default bound (10 MB) together
                    .nfa_size_limit(None),
            )
            .build_many_from_hir(&hirs)
            .ok()?;
        let dfa = hybrid::dfa::DFA::builder()
            .configure(
                hybrid::dfa::DFA::config()
                    .starts_for_each_pattern(true)
                    .cache_capacity(cache_bound)
                    // at least what the lazy DFA needs for the automaton's
                    // size (which grows with its NFA states)
                    .skip_cache_capacity_check(true),
            )
            .build_from_nfa(nfa)
            .ok()?;
        let for_caches = dfa.clone();
        let create: SetCacheFn = Box::new(move || for_caches.create_cache());
        Some(RuleSet {
            dfa,
            caches: Pool::new(create),
            pattern,
            superset,
        })
    }

    /// Whether rule `rule` matches starting exactly at `at` (its boundary
    /// not checked); `None` when it is not in the automaton or the lazy
    /// DFA gave up.
    fn matches_at(
        &self,
        cache: &mut hybrid::dfa::Cache,
        hay: &str,
        rule: usize,
        at: usize,
    ) -> Option<bool> {
        let pid = *self.pattern.get(rule)?;
        if pid == Self::NONE {
            return None;
        }
        let input = Input::new(hay)
            .range(at..)
            .anchored(Anchored::Pattern(PatternID::new(pid as usize).ok()?))
            .earliest(true);
        self.dfa
            .try_search_fwd(cache, &input)
            .ok()
            .map(|m| m.is_some())
    }

    fn memory_usage(&self) -> usize {
        self.dfa.get_nfa().memory_usage() + self.pattern.len() * 5
    }
}

/// Rules in file order; finds the first one that matches.
pub struct FirstMatch {
    patterns: Vec<Pattern>,
    /// Literals of all rules; pattern `k` of the automaton belongs to the
    /// rules `owners[k]`.
    prefilter: Option<AhoCorasick>,
    owners: Vec<Vec<u32>>,
    /// Per rule: its literals are prefixes, so a match can only start at
    /// (or, with the boundary, just before) one of their occurrences.
    prefix: Vec<bool>,
    /// Rules without literals: always tried.
    always: Vec<u32>,
    /// The prefix rules' shared automaton, built on first use (`None`
    /// inside when no rule is in it).
    set: OnceLock<Option<RuleSet>>,
    /// Its lazy DFA's cache bound.
    dfa_cache: usize,
}

impl std::fmt::Debug for FirstMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstMatch")
            .field("rules", &self.patterns.len())
            .field("always_tried", &self.always.len())
            .finish()
    }
}

/// Lengths of DeviceDetector's boundary alternatives before a rule:
/// `^` / nothing (0), one character (1), `x_` (2), `MZ-` (3), `sprd-` (5).
const BOUNDARY_WIDTHS: [usize; 5] = [0, 1, 2, 3, 5];

/// What the automata and engines of a list hold (for measurements).
#[derive(Debug, Default, Clone, Copy)]
pub struct ListMemory {
    /// Rules in the list's shared automaton.
    pub in_set: usize,
    /// Rules with an engine of their own built (lookaround rules, rules
    /// searched anywhere, and rules whose groups were needed).
    pub own_engines: usize,
    /// Heap of the shared automaton's NFA (its lazy DFA caches aside).
    pub set_bytes: usize,
    /// Heap of the literal prefilter.
    pub prefilter_bytes: usize,
}

impl FirstMatch {
    /// Builds the list and its prefilter (the regexes compile on first use).
    pub fn new(patterns: Vec<Pattern>) -> FirstMatch {
        Self::with_literals(patterns.into_iter().map(|p| (p, None)).collect())
    }

    /// Builds the list and its prefilter from patterns whose literals may
    /// already be known (`Some`, from the compact form); the others'
    /// literals are extracted now.
    pub fn with_literals(rules: Vec<(Pattern, Option<Literals>)>) -> FirstMatch {
        let mut literal_index: rustc_hash::FxHashMap<String, usize> = Default::default();
        let mut literals: Vec<String> = Vec::new();
        let mut owners: Vec<Vec<u32>> = Vec::new();
        let mut prefix = vec![false; rules.len()];
        let mut always = Vec::new();
        let mut patterns = Vec::with_capacity(rules.len());
        for (i, (p, known)) in rules.into_iter().enumerate() {
            let rule = i as u32;
            let found = if p.bounded {
                known.unwrap_or_else(|| raw::required_literals(&p.source))
            } else {
                None
            };
            patterns.push(p);
            match found {
                Some((is_prefix, lits)) => {
                    prefix[i] = is_prefix;
                    for lit in lits {
                        let k = *literal_index.entry(lit.clone()).or_insert_with(|| {
                            literals.push(lit);
                            owners.push(Vec::new());
                            owners.len() - 1
                        });
                        owners[k].push(rule);
                    }
                }
                None => always.push(rule),
            }
        }
        let prefilter = (!literals.is_empty())
            .then(|| {
                AhoCorasickBuilder::new()
                    // a contiguous NFA: the automatic choice takes a DFA
                    // for small literal sets, which for ~1,900 brands'
                    // model tables costs tens of MB
                    .kind(Some(AhoCorasickKind::ContiguousNFA))
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    // states near the root are dense by default (a
                    // transition for every byte class): ~9 KB per
                    // automaton, 13 MB over ~1,500 model tables
                    .dense_depth(0)
                    .build(&literals)
                    .ok()
            })
            .flatten();
        if prefilter.is_none() && !literals.is_empty() {
            // cannot happen for these sizes; stay correct if it does
            always = (0..patterns.len() as u32).collect();
            prefix = vec![false; patterns.len()];
        }
        for (pattern, is_prefix) in patterns.iter_mut().zip(&prefix) {
            pattern.anchored_only = *is_prefix;
        }
        owners.iter_mut().for_each(|o| o.shrink_to_fit());
        FirstMatch {
            patterns,
            prefilter,
            owners,
            prefix,
            always,
            set: OnceLock::new(),
            dfa_cache: SET_DFA_CACHE,
        }
    }

    /// Bounds the shared automaton's lazy DFA cache (per thread) to
    /// `bytes`, or the least it needs.
    pub fn with_dfa_cache(mut self, bytes: usize) -> FirstMatch {
        self.dfa_cache = bytes;
        self
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Rules tried for every user agent (no usable literals).
    pub fn always_tried(&self) -> usize {
        self.always.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    fn set(&self) -> Option<&RuleSet> {
        self.set
            .get_or_init(|| {
                // a rule with prefix literals, bounded: searched only where
                // the prefilter names it
                let in_set: Vec<bool> = self
                    .patterns
                    .iter()
                    .zip(&self.prefix)
                    .map(|(p, &is_prefix)| is_prefix && p.bounded)
                    .collect();
                RuleSet::new(&self.patterns, &in_set, self.dfa_cache)
            })
            .as_ref()
    }

    /// Rules that may match `hay`, ascending, each with the positions its
    /// literals occur at (`u32::MAX`: anywhere).
    fn candidates(&self, hay: &str) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = self.always.iter().map(|&r| (r, u32::MAX)).collect();
        if let Some(ac) = &self.prefilter {
            for m in ac.find_overlapping_iter(hay) {
                let at = m.start() as u32;
                for &rule in &self.owners[m.pattern().as_usize()] {
                    let at = if self.prefix[rule as usize] {
                        at
                    } else {
                        u32::MAX
                    };
                    out.push((rule, at));
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// How many rules may match `hay` (for measurements).
    pub fn candidate_count(&self, hay: &str) -> usize {
        let mut rules: Vec<u32> = self.candidates(hay).into_iter().map(|c| c.0).collect();
        rules.dedup();
        rules.len()
    }

    /// Index and groups of the first rule (in file order) that matches:
    /// the leftmost match of that rule, as PCRE finds it.
    pub fn first<'h>(&self, hay: &'h str) -> Option<(usize, Groups<'h>)> {
        let candidates = self.candidates(hay);
        if candidates.is_empty() {
            return None;
        }
        let set = self.set();
        let mut cache = set.map(|s| s.caches.get());
        let mut starts: Vec<usize> = Vec::new();
        for group in candidates.chunk_by(|a, b| a.0 == b.0) {
            let rule = group[0].0 as usize;
            let pattern = &self.patterns[rule];
            if group[0].1 == u32::MAX {
                if let Some(g) = pattern.captures(hay) {
                    return Some((rule, g));
                }
                continue;
            }
            if let (Some(set), Some(cache)) = (set, cache.as_mut()) {
                // the shared automaton says whether the rule matches at one
                // of the positions; only a match that needs its groups
                // runs the rule's own engine
                let mut verdict = Some(false);
                for &(_, at) in group {
                    let at = at as usize;
                    if !boundary_ends_at(hay.as_bytes(), at) {
                        continue;
                    }
                    match set.matches_at(cache, hay, rule, at) {
                        Some(false) => {}
                        found => {
                            verdict = found;
                            break;
                        }
                    }
                }
                match verdict {
                    Some(false) => continue,
                    Some(true) if !pattern.groups_used && !set.superset[rule] => {
                        return Some((rule, Groups::default()));
                    }
                    // groups needed, lookarounds to check, or not in the
                    // automaton: its own engine
                    _ => {}
                }
            }
            // A match starts where the boundary starts, which is one of the
            // boundary's widths before an occurrence of a prefix literal;
            // trying those starts left to right finds the leftmost match.
            starts.clear();
            for &(_, at) in group {
                let at = at as usize;
                starts.extend(BOUNDARY_WIDTHS.iter().filter_map(|w| at.checked_sub(*w)));
            }
            starts.sort_unstable();
            starts.dedup();
            for &s in &starts {
                if let Some(g) = pattern.captures_at(hay, s) {
                    return Some((rule, g));
                }
            }
        }
        None
    }

    /// Builds the list's automata now: the shared one, and the own engines
    /// of rules outside it (lookaround rules, rules searched anywhere);
    /// returns how many rules do not compile. Engines for groups are built
    /// when a rule that needs them first matches.
    pub fn compile_all(&self) -> usize {
        let set = self.set();
        self.patterns
            .iter()
            .enumerate()
            .filter(|(i, _)| set.is_none_or(|s| s.pattern[*i] == RuleSet::NONE))
            .filter(|(_, p)| !p.compile())
            .count()
    }

    /// What this list holds now (for measurements).
    pub fn memory(&self) -> ListMemory {
        let set = self.set.get().and_then(Option::as_ref);
        ListMemory {
            in_set: set.map_or(0, |s| {
                s.pattern.iter().filter(|&&p| p != RuleSet::NONE).count()
            }),
            own_engines: self.patterns.iter().filter(|p| p.is_compiled()).count(),
            set_bytes: set.map_or(0, RuleSet::memory_usage),
            prefilter_bytes: self.prefilter.as_ref().map_or(0, AhoCorasick::memory_usage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_like_device_detector() {
        let p = Pattern::rule("Nexus 5");
        assert!(p.is_match("Linux; Nexus 5 Build"));
        assert!(p.is_match("nexus 5"));
        assert!(!p.is_match("XNexus 5"));
        assert!(p.is_match("sprd-Nexus 5"));
        assert!(p.is_match("a _Nexus 5"));
        assert!(!p.is_match("a-Nexus 5"));
    }

    #[test]
    fn groups_and_lookarounds() {
        let p = Pattern::rule(r"Chrome/(\d+)\.(\d+)");
        let g = p.captures("Mozilla Chrome/120.1").unwrap();
        assert_eq!((g.get(1), g.get(2), g.get(3)), ("120", "1", ""));
        let p = Pattern::rule(r"(?<!like )Gecko(?!/)");
        assert!(p.is_match("x Gecko)"));
        assert!(!p.is_match("like Gecko)"));
        assert!(!p.is_match("x Gecko/2010"));
    }

    #[test]
    fn first_match_keeps_file_order_and_skips_by_literal() {
        let list = FirstMatch::new(vec![
            Pattern::rule("Pixel ([0-9])"),
            Pattern::rule("Linux"),
            Pattern::rule(r"(?!x)[a-z]+/(\d)"),
        ]);
        assert_eq!(list.first("Linux; Pixel 8").unwrap().0, 0);
        assert_eq!(list.first("Linux; Pix").unwrap().0, 1);
        assert_eq!(list.first("foo/3").unwrap().0, 2);
        assert!(list.first("XY").is_none());
    }

    /// The shared automaton with the boundary checked in code decides as
    /// each rule's own wrapped regex does, at every boundary alternative.
    #[test]
    fn shared_automaton_agrees_with_each_rules_own_regex() {
        let sources = ["Foo", r"Foo ?(\d)", r"^Bar", r"Baz$", r"Qu\b", "xy(?:a|b)z"];
        let list = FirstMatch::new(
            sources
                .iter()
                .map(|s| Pattern::rule(s).without_groups())
                .collect(),
        );
        let own: Vec<Pattern> = sources.iter().map(|s| Pattern::rule(s)).collect();
        let mut tried = 0;
        for before in [
            "", "a", "A", "0", "-", "_", " ", ";", "a_", "-_", "__", " _", "sprd-", "SPRD-",
            "xsprd-", "MZ-", "mz-", "amz-", "ab", "\u{e9}",
        ] {
            for rule in ["Foo", "foo 7", "Bar", "Baz", "Qu", "Qux", "xyaz", "xycz"] {
                for after in ["", " end"] {
                    let hay = format!("{before}{rule}{after}");
                    let want = own.iter().position(|p| p.is_match(&hay));
                    let got = list.first(&hay).map(|(i, _)| i);
                    assert_eq!(got, want, "{hay:?}");
                    tried += usize::from(want.is_some());
                }
            }
        }
        assert!(tried > 20, "too few matches to say anything: {tried}");
    }

    #[test]
    fn lookaround_removal_keeps_the_rest() {
        use raw::{required_literals, without_lookarounds};
        assert_eq!(without_lookarounds(r"a(?!b(c))d"), "ad");
        assert_eq!(without_lookarounds(r"a(?<!x)[(]b"), "a[(]b");
        assert_eq!(without_lookarounds(r"\(?=x"), r"\(?=x");
        assert_eq!(
            required_literals("(?:Foo|Bar)baz"),
            Some((true, vec!["barbaz".into(), "foobaz".into()]))
        );
        assert_eq!(required_literals("[a-z]+x"), None);
    }
}
