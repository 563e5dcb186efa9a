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
//! (about 180 of the 20,000 rules), go to `fancy-regex`, a backtracking
//! engine that delegates the plain parts of a pattern to the same
//! automata. Both engines prefer alternatives left to right, as PCRE does,
//! so groups capture the same text.
//!
//! A rule that is only ever searched at positions the literal prefilter
//! named (anchored) is a bare Thompson NFA run by the bounded backtracker
//! (the PikeVM when a large NFA meets a long user agent), not a
//! `meta::Regex`: a meta regex also builds a reverse NFA, a literal
//! prefilter and a lazy DFA with its own cache per regex, which for
//! 20,000 rules came to ~375 MB compiled and ~620 MB once the caches had
//! grown, against ~35 MB for the NFAs alone. The backtracker's scratch
//! space is one cache per thread, shared by every rule (its cache is not
//! tied to one regex). Rules searched unanchored (no prefix literal, and
//! the helper patterns) keep a `meta::Regex`, whose prefilter and lazy DFA
//! make a miss cheap where a backtracker would try every start position;
//! its lazy DFA cache is bounded ([`META_DFA_CACHE`]).
//!
//! First-match lists: trying thousands of rules one by one would cost
//! milliseconds per user agent. Each rule's literal prefixes (or suffixes)
//! are extracted once with `regex-syntax`; one Aho-Corasick scan of the
//! user agent then names the few rules that can match, and only those run,
//! in file order. Rules without usable literals always run. The prefilter
//! is sound: a case-insensitive match implies that a case variant of one
//! of the case-sensitive literals occurs, and lookarounds (zero width) are
//! dropped before extraction, which only widens the literal set.
//!
//! Each regex is compiled on first use, so start-up pays only for parsing
//! the rule files and extracting literals.

use std::cell::RefCell;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex_automata::nfa::thompson::backtrack::{self, BoundedBacktracker};
use regex_automata::nfa::thompson::pikevm::PikeVM;
use regex_automata::nfa::thompson::{self, NFA};
use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::util::syntax;
use regex_automata::{meta, Anchored, Input};
use regex_syntax::hir::literal::{ExtractKind, Extractor};

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

enum Compiled {
    Automata(Engine),
    /// A backtracking regex, behind a quick check: the rule without its
    /// lookarounds, on the automata, matches wherever the rule does, so the
    /// slow engine runs only where the quick one matched, and from there.
    Fancy {
        superset: Option<Engine>,
        fancy: fancy_regex::Regex,
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
            compiled: OnceLock::new(),
        }
    }

    /// A pattern used as written (still case-insensitive).
    pub fn plain(source: &str) -> Pattern {
        Pattern {
            source: source.into(),
            bounded: false,
            anchored_only: false,
            compiled: OnceLock::new(),
        }
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
            match fancy_regex::RegexBuilder::new(&format!("(?i){full}"))
                .backtrack_limit(100_000)
                .build()
            {
                Ok(fancy) => {
                    let stripped = without_lookarounds(&self.source);
                    let superset = if self.bounded {
                        format!("{BOUNDARY}(?:{stripped})")
                    } else {
                        stripped
                    };
                    Compiled::Fancy {
                        superset: Engine::new(&superset, self.anchored_only).ok(),
                        fancy,
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
            Compiled::Fancy { .. } => "fancy-regex, lookaround rules",
            Compiled::Broken => "does not compile",
        }
    }

    /// True when the pattern matches somewhere in `hay`.
    pub fn is_match(&self, hay: &str) -> bool {
        match self.compiled() {
            Compiled::Automata(re) => re.is_match(hay),
            Compiled::Fancy { .. } => self.captures(hay).is_some(),
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
            Compiled::Fancy { superset, fancy } => {
                let from = match (superset, anchor) {
                    (Some(quick), _) => quick.find_start(&input(hay))?,
                    (None, Some(at)) => at,
                    (None, None) => 0,
                };
                let caps = fancy.captures_from_pos(hay, from).ok()??;
                if anchor.is_some_and(|at| caps.get(0).is_some_and(|m| m.start() != at)) {
                    return None;
                }
                for (i, slot) in out.groups.iter_mut().enumerate() {
                    if let Some(m) = caps.get(i + 1) {
                        *slot = m.as_str();
                    }
                }
            }
            Compiled::Broken => return None,
        }
        Some(out)
    }
}

/// Removes zero-width lookaround groups (`(?=`, `(?!`, `(?<=`, `(?<!`) so
/// that `regex-syntax` can parse the rest for literal extraction. The
/// result matches a superset of the original, which keeps the prefilter
/// sound.
fn without_lookarounds(re: &str) -> String {
    let b = re.as_bytes();
    let mut out = String::with_capacity(re.len());
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            let len = 1 + re[i + 1..].chars().next().map_or(0, char::len_utf8);
            out.push_str(&re[i..i + len]);
            i += len;
            continue;
        }
        if in_class {
            in_class = c != b']';
        } else if c == b'[' {
            in_class = true;
            // a `]` right after `[` or `[^` is a literal
            out.push('[');
            i += 1;
            if b.get(i) == Some(&b'^') {
                out.push('^');
                i += 1;
            }
            if b.get(i) == Some(&b']') {
                out.push(']');
                i += 1;
            }
            continue;
        } else if c == b'('
            && (re[i..].starts_with("(?=")
                || re[i..].starts_with("(?!")
                || re[i..].starts_with("(?<=")
                || re[i..].starts_with("(?<!"))
        {
            i = skip_group(b, i);
            continue;
        }
        let len = re[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&re[i..i + len]);
        i += len;
    }
    out
}

/// The index just past the group that opens at `start`.
fn skip_group(b: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    let mut in_class = false;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'(' if !in_class => depth += 1,
            b')' if !in_class => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// Literals (lower-case) one of which every match of `rule` starts with
/// (`Prefix`) or ends with (`Suffix`), or `None` when the rule has no such
/// set of manageable size.
fn required_literals(rule: &str) -> Option<(bool, Vec<String>)> {
    let cleaned = without_lookarounds(rule);
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(&cleaned)
        .ok()?;
    for (is_prefix, kind) in [(true, ExtractKind::Prefix), (false, ExtractKind::Suffix)] {
        let mut extractor = Extractor::new();
        extractor.kind(kind).limit_total(512);
        let seq = extractor.extract(&hir);
        let Some(lits) = seq.literals() else {
            continue;
        };
        // very short literals would name the rule for almost every UA
        if lits.is_empty() || lits.iter().any(|l| l.as_bytes().len() < 2) {
            continue;
        }
        let mut out: Vec<String> = lits
            .iter()
            .map(|l| String::from_utf8_lossy(l.as_bytes()).to_ascii_lowercase())
            .collect();
        out.sort();
        out.dedup();
        return Some((is_prefix, out));
    }
    None
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

impl FirstMatch {
    /// Builds the list and its prefilter (the regexes compile on first use).
    pub fn new(patterns: Vec<Pattern>) -> FirstMatch {
        let mut literal_index: rustc_hash::FxHashMap<String, usize> = Default::default();
        let mut literals: Vec<String> = Vec::new();
        let mut owners: Vec<Vec<u32>> = Vec::new();
        let mut prefix = vec![false; patterns.len()];
        let mut always = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            let rule = i as u32;
            let found = if p.bounded {
                required_literals(&p.source)
            } else {
                None
            };
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
                    .build(&literals)
                    .ok()
            })
            .flatten();
        if prefilter.is_none() && !literals.is_empty() {
            // cannot happen for these sizes; stay correct if it does
            always = (0..patterns.len() as u32).collect();
            prefix = vec![false; patterns.len()];
        }
        let mut patterns = patterns;
        for (pattern, is_prefix) in patterns.iter_mut().zip(&prefix) {
            pattern.anchored_only = *is_prefix;
        }
        FirstMatch {
            patterns,
            prefilter,
            owners,
            prefix,
            always,
        }
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

    /// Compiles every rule now; returns how many do not compile.
    pub fn compile_all(&self) -> usize {
        self.patterns.iter().filter(|p| !p.compile()).count()
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

    #[test]
    fn lookaround_removal_keeps_the_rest() {
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
