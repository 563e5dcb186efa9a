//! `sparsam import`: counts page views and downloads from existing web
//! server access logs (NCSA combined / nginx default), for history from
//! before sparsam ran.
//!
//! The same privacy rules as live ingest apply, in the same order: the
//! address is shortened inside the line parser before anything else sees
//! it; URLs are stripped with the site's keep rules; bots are dropped; the
//! visitor hash uses a random salt per import and per day held only in
//! memory (never the live salt file), so imported visitors cannot be linked
//! to live ones or to another import. Lines older than the raw-data
//! retention are skipped, not stored and swept later. Events carry the time
//! of the log line. Writes go through the normal store writer, so roll-ups
//! are built as for live events. See `docs/import.md`.

pub mod combined;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use flate2::read::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::{open_store, writer_options, StartError};
use crate::config::{Config, SiteConfig};
use crate::enrich::client_hints::ClientHints;
use crate::enrich::device::{DeviceDetector, DeviceError};
use crate::enrich::referrer::{campaign_from_params, classify, truncate};
use crate::enrich::search::search_term;
use crate::model::{Event, EventKind};
use crate::privacy::{strip_url, visitor_hash};
use crate::retention::sweeper::cutoff_ms;
use crate::store::{StoreError, WriteError, Writer, WriterHandle};

use combined::{parse_line, LogLine};

/// Events handed to the writer at once.
const BATCH: usize = 1000;
/// Line numbers of malformed lines kept for the summary.
const MALFORMED_SHOWN: usize = 10;
/// Static assets: never page views.
const ASSET_EXTENSIONS: [&str; 11] = [
    "css", "js", "png", "jpg", "gif", "svg", "ico", "woff", "woff2", "map", "webp",
];
/// Extensions that are pages (besides none at all).
const PAGE_EXTENSIONS: [&str; 8] = ["html", "htm", "php", "shtml", "asp", "aspx", "jsp", "xhtml"];

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("unknown site `{0}` (not in the configuration)")]
    UnknownSite(String),
    #[error("site `{0}` has no hostname to build page URLs from")]
    NoHostname(String),
    #[error("unsupported log format `{0}` (supported: combined)")]
    Format(String),
    #[error(
        "the store {0} is open in a running sparsam server; stop the server \
         before importing (the store allows one writer)"
    )]
    InUse(String),
    #[error("cannot open the store: {0}")]
    Store(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("device detection: {0}")]
    Device(#[from] DeviceError),
    #[error("writing events: {0}")]
    Write(#[from] WriteError),
    #[error("store writer: {0}")]
    Writer(#[from] StoreError),
    #[error("random salt: {0}")]
    Random(String),
    #[error("async runtime: {0}")]
    Runtime(std::io::Error),
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub lines: u64,
    /// Events stored (page views, downloads, searches).
    pub imported: u64,
    pub pageviews: u64,
    pub downloads: u64,
    pub bots: u64,
    pub skipped_old: u64,
    /// Not a successful GET of a page or download (assets, POST, 404, …).
    pub skipped_non_page: u64,
    pub malformed: u64,
    /// `file:line` of the first malformed lines.
    pub malformed_lines: Vec<String>,
}

impl ImportReport {
    pub fn render(&self) -> String {
        let mut s = format!(
            "lines read:         {}\nimported events:    {} ({} page views, {} downloads)\nbots dropped:       {}\nskipped (too old):  {}\nskipped (not page): {}\nmalformed lines:    {}\n",
            self.lines,
            self.imported,
            self.pageviews,
            self.downloads,
            self.bots,
            self.skipped_old,
            self.skipped_non_page,
            self.malformed
        );
        if !self.malformed_lines.is_empty() {
            s.push_str(&format!(
                "first malformed:    {}\n",
                self.malformed_lines.join(", ")
            ));
        }
        s
    }
}

/// Turns parsed lines into events for one site.
struct Importer<'a> {
    config: &'a Config,
    site: &'a SiteConfig,
    host: String,
    detector: DeviceDetector,
    /// Per-import, per-day salts; memory only.
    salts: HashMap<i64, [u8; 32]>,
    cutoff_ms: i64,
    report: ImportReport,
}

enum Outcome {
    Events(Vec<Event>),
    Skipped,
}

fn extension(path: &str) -> Option<String> {
    let last = path.rsplit('/').next().unwrap_or("");
    last.rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| !e.is_empty())
}

impl Importer<'_> {
    fn salt(&mut self, day: i64) -> Result<[u8; 32], ImportError> {
        if let Some(s) = self.salts.get(&day) {
            return Ok(*s);
        }
        let mut salt = [0u8; 32];
        getrandom::fill(&mut salt).map_err(|e| ImportError::Random(e.to_string()))?;
        self.salts.insert(day, salt);
        Ok(salt)
    }

    fn malformed(&mut self, at: String) {
        self.report.malformed += 1;
        if self.report.malformed_lines.len() < MALFORMED_SHOWN {
            self.report.malformed_lines.push(at);
        }
    }

    fn line(&mut self, raw: &str, at: impl FnOnce() -> String) -> Result<Outcome, ImportError> {
        self.report.lines += 1;
        let masks = self.config.privacy.masks();
        let line: LogLine = match parse_line(raw, &masks) {
            Ok(l) => l,
            Err(_) => {
                self.malformed(at());
                return Ok(Outcome::Skipped);
            }
        };
        let Some((method, target)) = line.request.as_ref() else {
            self.report.skipped_non_page += 1;
            return Ok(Outcome::Skipped);
        };
        if method != "GET" || !(200..400).contains(&line.status) {
            self.report.skipped_non_page += 1;
            return Ok(Outcome::Skipped);
        }
        // Absolute-form targets (proxies) are reduced to their path.
        let target = match target.find("://") {
            Some(i) => match target[i + 3..].find('/') {
                Some(j) => &target[i + 3 + j..],
                None => "/",
            },
            None => target.as_str(),
        };
        if !target.starts_with('/') {
            self.malformed(at());
            return Ok(Outcome::Skipped);
        }
        let path = target.split(['?', '#']).next().unwrap_or("/");
        let kind = match extension(path) {
            _ if self.site.is_download(path) => EventKind::Download,
            None => EventKind::PageView,
            Some(e) if PAGE_EXTENSIONS.contains(&e.as_str()) => EventKind::PageView,
            Some(e) if ASSET_EXTENSIONS.contains(&e.as_str()) => {
                self.report.skipped_non_page += 1;
                return Ok(Outcome::Skipped);
            }
            Some(_) => {
                self.report.skipped_non_page += 1;
                return Ok(Outcome::Skipped);
            }
        };

        let ts = line.time.with_timezone(&Utc);
        let ts_ms = ts.timestamp_millis();
        if ts_ms < self.cutoff_ms {
            self.report.skipped_old += 1;
            return Ok(Outcome::Skipped);
        }

        let max = self.config.server.max_field_bytes;
        let user_agent = truncate(&line.user_agent, max);
        let device = self.detector.detect(&user_agent, &ClientHints::default());
        if device.bot {
            self.report.bots += 1;
            return Ok(Outcome::Skipped);
        }

        if target.len() > max {
            self.malformed(at());
            return Ok(Outcome::Skipped);
        }
        let site = self.site;
        let page = match strip_url(&format!("https://{}{target}", self.host), |p| {
            site.is_kept_param(p)
        }) {
            Ok(p) => p,
            Err(_) => {
                self.malformed(at());
                return Ok(Outcome::Skipped);
            }
        };

        let salt = self.salt(ts.timestamp().div_euclid(86_400))?;
        let visitor = visitor_hash(&salt, &site.id, &line.anon_ip, &user_agent);
        let campaign = campaign_from_params(&page.params, 200);
        let referrer_raw = line.referrer.as_deref().map(|r| truncate(r, max));
        let referrer = classify(referrer_raw.as_deref(), |h| site.allows_host(h), &campaign);
        let term = if kind == EventKind::PageView {
            search_term(&page.params, &site.search_params, max)
        } else {
            None
        };
        let event = Event {
            site: site.id.clone(),
            ts_ms,
            kind,
            visitor,
            pageview_id: 0,
            target: if kind == EventKind::Download {
                page.url.clone()
            } else {
                String::new()
            },
            url: page.url,
            title: String::new(),
            referrer,
            campaign,
            search_term: term.clone().unwrap_or_default(),
            search_results: None,
            engaged_ms: 0,
            device,
            plugins: 0,
            anon_ip: line.anon_ip,
        };
        let mut events = Vec::with_capacity(2);
        if kind == EventKind::Download {
            self.report.downloads += 1;
        } else {
            self.report.pageviews += 1;
        }
        if term.is_some() {
            let mut search = event.clone();
            search.kind = EventKind::Search;
            events.push(event);
            events.push(search);
        } else {
            events.push(event);
        }
        Ok(Outcome::Events(events))
    }
}

/// Counts bytes read into the progress bar.
struct Counting<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// Opens a log file, decompressing gzip (detected by its magic bytes).
fn open_log(path: &Path, bar: &ProgressBar) -> Result<Box<dyn BufRead>, ImportError> {
    let read_err = |source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let mut raw = BufReader::new(Counting {
        inner: file,
        bar: bar.clone(),
    });
    let gz = raw.fill_buf().map_err(read_err)?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        Box::new(BufReader::new(MultiGzDecoder::new(raw)))
    } else {
        Box::new(raw)
    })
}

fn progress(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// `sparsam import --site ID [--format combined] FILE…`
pub fn import_command(
    config: &Config,
    site_id: &str,
    format: &str,
    files: &[PathBuf],
) -> Result<ImportReport, ImportError> {
    if format != "combined" {
        return Err(ImportError::Format(format.to_string()));
    }
    let site = config
        .site(site_id)
        .ok_or_else(|| ImportError::UnknownSite(site_id.to_string()))?;
    let host = site
        .hostnames
        .first()
        .map(|h| h.strip_prefix("*.").unwrap_or(h).to_string())
        .ok_or_else(|| ImportError::NoHostname(site.id.clone()))?;
    // Check every file before writing anything.
    let mut total = 0u64;
    for f in files {
        let meta = std::fs::metadata(f).map_err(|source| ImportError::Read {
            path: f.clone(),
            source,
        })?;
        total += meta.len();
    }

    let store = open_store(config).map_err(|e| match e {
        StartError::OpenStore {
            source: StoreError::Db(redb::Error::DatabaseAlreadyOpen),
            ..
        } => ImportError::InUse(config.store_path().display().to_string()),
        e => ImportError::Store(e.to_string()),
    })?;
    let writer = Writer::spawn(Arc::clone(&store), writer_options(config))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ImportError::Runtime)?;

    let mut importer = Importer {
        config,
        site,
        host,
        detector: DeviceDetector::try_new(config.store.ua_cache_entries)?,
        salts: HashMap::new(),
        cutoff_ms: cutoff_ms(config, Utc::now()),
        report: ImportReport::default(),
    };
    let bar = progress(total);
    let result = run(&mut importer, files, &bar, &rt, &writer);
    bar.finish_and_clear();
    // Commit what was queued even when reading failed half way.
    let closed = writer.shutdown_blocking();
    result?;
    closed?;
    // The salts go with the importer.
    let report = std::mem::take(&mut importer.report);
    drop(importer);
    Ok(report)
}

fn run(
    importer: &mut Importer<'_>,
    files: &[PathBuf],
    bar: &ProgressBar,
    rt: &tokio::runtime::Runtime,
    writer: &WriterHandle,
) -> Result<(), ImportError> {
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH + 1);
    let mut buf = Vec::new();
    for path in files {
        bar.set_message(path.display().to_string());
        let mut reader = open_log(path, bar)?;
        let mut n = 0u64;
        loop {
            buf.clear();
            let read = reader
                .read_until(b'\n', &mut buf)
                .map_err(|source| ImportError::Read {
                    path: path.clone(),
                    source,
                })?;
            if read == 0 {
                break;
            }
            n += 1;
            let text = String::from_utf8_lossy(&buf);
            if text.trim().is_empty() {
                continue;
            }
            let at = || format!("{}:{n}", path.display());
            if let Outcome::Events(events) = importer.line(&text, at)? {
                importer.report.imported += events.len() as u64;
                batch.extend(events);
                if batch.len() >= BATCH {
                    rt.block_on(writer.write(std::mem::take(&mut batch)))?;
                }
            }
        }
    }
    if !batch.is_empty() {
        rt.block_on(writer.write(batch))?;
    }
    Ok(())
}
