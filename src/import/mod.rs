//! `sparsam import`: counts page views and downloads from existing web
//! server access logs (NCSA combined / nginx default), for history from
//! before sparsam ran.
//!
//! Each line becomes a `Hit` and goes through the live ingest pipeline
//! (`Pipeline::process_with`), so imported and live hits get the same URL
//! stripping, bot detection, device, referrer, campaign and search-term
//! enrichment. The address is shortened inside the line parser, before
//! anything else sees it. The import's own checks come first: only
//! successful GETs of pages and downloads count; lines older than the
//! raw-data retention are skipped (they would be swept at once), and lines
//! dated after now are skipped and reported like malformed ones. Events
//! carry the time of the log line. The visitor hash uses a random salt per
//! import and per day held only in memory (never the live salt file), so
//! imported visitors cannot be linked to live ones or to another import.
//! Writes go through the normal store writer, so roll-ups are built as for
//! live events. See `docs/import.md`.

pub mod combined;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};

use chrono::Utc;
use flate2::read::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::{open_storage, StartError};
use crate::config::{Config, SiteConfig};
use crate::enrich::client_hints::ClientHints;
use crate::enrich::device::{DeviceDetector, DeviceError};
use crate::enrich::referrer::truncate;
use crate::ingest::{Hit, Pipeline, PipelineError, Processed, RequestMeta};
use crate::model::{Event, EventKind};
use crate::privacy::url_strip::drop_path_parameters;
use crate::privacy::visitor::Salt;
use crate::retention::sweeper::cutoff_ms;
use crate::storage::{Storage, StorageError};

use combined::{parse_line, LogLine};

/// Events handed to the writer at once.
const BATCH: usize = 1000;
/// Line numbers of malformed lines kept for the summary.
const MALFORMED_SHOWN: usize = 10;
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
    Write(#[from] StorageError),
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
    /// Lines whose referrer is on the referrer-spam list.
    pub referrer_spam: u64,
    pub skipped_old: u64,
    /// Not a successful GET of a page or download (assets, POST, 404, …).
    pub skipped_non_page: u64,
    /// Unreadable lines, and lines the pipeline refused (e.g. too long).
    pub malformed: u64,
    /// `file:line (why)` of the first malformed lines.
    pub malformed_lines: Vec<String>,
    /// Lines dated after the time of the import: skipped.
    pub future: u64,
    /// `file:line` of the first future-dated lines.
    pub future_lines: Vec<String>,
}

impl ImportReport {
    pub fn render(&self) -> String {
        let mut s = format!(
            "lines read:         {}\nimported events:    {} ({} page views, {} downloads)\nbots dropped:       {}\nreferrer spam:      {}\nskipped (too old):  {}\nskipped (future):   {}\nskipped (not page): {}\nmalformed lines:    {}\n",
            self.lines,
            self.imported,
            self.pageviews,
            self.downloads,
            self.bots,
            self.referrer_spam,
            self.skipped_old,
            self.future,
            self.skipped_non_page,
            self.malformed
        );
        if !self.future_lines.is_empty() {
            s.push_str(&format!(
                "first future:       {}\n",
                self.future_lines.join(", ")
            ));
        }
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
    salts: HashMap<i64, Salt>,
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
    fn malformed(&mut self, at: String, why: impl std::fmt::Display) {
        self.report.malformed += 1;
        if self.report.malformed_lines.len() < MALFORMED_SHOWN {
            self.report.malformed_lines.push(format!("{at} ({why})"));
        }
    }

    fn line(&mut self, raw: &str, at: impl FnOnce() -> String) -> Result<Outcome, ImportError> {
        self.report.lines += 1;
        let masks = self.config.privacy.masks();
        // The address is shortened inside the parser: nothing below sees it.
        let line: LogLine = match parse_line(raw, &masks) {
            Ok(l) => l,
            Err(e) => {
                self.malformed(at(), e);
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
            self.malformed(at(), "request target is not a path");
            return Ok(Outcome::Skipped);
        }
        // Path parameters (`;jsessionid=...`) would hide the extension;
        // the pipeline drops them from the stored URL as well.
        let path = drop_path_parameters(target.split(['?', '#']).next().unwrap_or("/"));
        let path = path.as_ref();
        let download = self.site.is_download(path);
        match extension(path) {
            _ if download => {}
            None => {}
            Some(e) if PAGE_EXTENSIONS.contains(&e.as_str()) => {}
            Some(_) => {
                // Static assets and anything else that is not a page.
                self.report.skipped_non_page += 1;
                return Ok(Outcome::Skipped);
            }
        }

        let ts = line.time.with_timezone(&Utc);
        let ts_ms = ts.timestamp_millis();
        if ts_ms > Utc::now().timestamp_millis() {
            self.report.future += 1;
            if self.report.future_lines.len() < MALFORMED_SHOWN {
                self.report.future_lines.push(at());
            }
            return Ok(Outcome::Skipped);
        }
        if ts_ms < self.cutoff_ms {
            self.report.skipped_old += 1;
            return Ok(Outcome::Skipped);
        }

        // The hit a browser on this page would have sent, through the same
        // pipeline as live hits, received at the time of the log line.
        let max = self.config.server.max_field_bytes.as_u64() as usize;
        let url = format!("https://{}{target}", self.host);
        let hit = Hit {
            site: self.site.id.clone(),
            kind: Some(if download {
                EventKind::Download
            } else {
                EventKind::PageView
            }),
            target: download.then(|| url.clone()),
            url,
            referrer: line.referrer.as_deref().map(|r| truncate(r, max)),
            ..Hit::default()
        };
        let meta = RequestMeta {
            anon_ip: line.anon_ip,
            user_agent: truncate(&line.user_agent, max),
            header_hints: ClientHints::default(),
        };
        let processed =
            Pipeline::process_with(self.config, &self.detector, hit, &meta, ts, &mut self.salts);
        match processed {
            Ok(Processed::Events(events)) => {
                for e in &events {
                    match e.kind {
                        EventKind::PageView => self.report.pageviews += 1,
                        EventKind::Download => self.report.downloads += 1,
                        _ => {}
                    }
                }
                Ok(Outcome::Events(events))
            }
            Ok(Processed::Bot) => {
                self.report.bots += 1;
                Ok(Outcome::Skipped)
            }
            Ok(Processed::ReferrerSpam) => {
                self.report.referrer_spam += 1;
                Ok(Outcome::Skipped)
            }
            // access logs carry no custom events
            Ok(Processed::UndeclaredEvent) => Ok(Outcome::Skipped),
            Err(PipelineError::Reject(r)) => {
                self.malformed(at(), r);
                Ok(Outcome::Skipped)
            }
            Err(PipelineError::Salt(e)) => Err(ImportError::Random(e.to_string())),
        }
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

    let storage = open_storage(config).map_err(|e| match e {
        StartError::OpenStore { source, .. } if source.is_locked() => {
            ImportError::InUse(config.store_path().display().to_string())
        }
        e => ImportError::Store(e.to_string()),
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ImportError::Runtime)?;

    let mut importer = Importer {
        config,
        site,
        host,
        detector: DeviceDetector::with_rules_dir(
            config.store.ua_cache_entries,
            config.device.rules_dir.as_deref(),
        )?,
        salts: HashMap::new(),
        cutoff_ms: cutoff_ms(config, Utc::now()),
        report: ImportReport::default(),
    };
    let bar = progress(total);
    let result = run(&mut importer, files, &bar, &rt, &*storage);
    bar.finish_and_clear();
    // Commit what was queued even when reading failed half way.
    let closed = storage.close();
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
    storage: &dyn Storage,
) -> Result<(), ImportError> {
    // Waits until the batch is durable.
    let write = |events: Vec<Event>| -> Result<(), ImportError> {
        let ack = storage.submit(events)?;
        rt.block_on(ack)
            .unwrap_or_else(|_| Err(StorageError::Internal("the writer went away".into())))?;
        Ok(())
    };
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
                    write(std::mem::take(&mut batch))?;
                }
            }
        }
    }
    if !batch.is_empty() {
        write(batch)?;
    }
    Ok(())
}
