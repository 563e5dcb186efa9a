//! The ClickHouse backend behind the [`Storage`] boundary, for sites that
//! outgrow one machine: any number of collectors write raw events into a
//! ClickHouse server or cluster (sharded and replicated), the retention
//! sweep drops whole day partitions on every replica and the audit log
//! lives in ClickHouse too, so every collector appends to and reads the
//! same log. The daily visitor salt is shared through ClickHouse as well
//! (`salts.rs`), so a visitor counts once per day whichever collectors
//! its hits reach.
//!
//! What this backend keeps: raw events (`schema.rs`) for
//! `retention.raw_days`, and no string dictionary (strings live in the
//! rows and go with their day). Roll-ups are replayed from raw events when
//! reports ask; before the sweep deletes raw rows of a day it stores that
//! day's roll-ups, free text cut, in the `rollups` table (`history.rs`),
//! which reports read for those days from then on.
//!
//! Reports: every read (`hourly_totals`, `ranked`, `filtered`,
//! `conversions`) streams the site's raw events of the range from
//! ClickHouse one UTC day at a time, in receipt order (`ts_ms`, then the
//! collector's `seq`), and replays them through the embedded engine's own
//! day state, visit engine and scan (`crate::store::replay`). Every answer
//! is therefore the one the embedded store gives for the same events,
//! down to visits, bounces and dwell; no SQL re-implements a visit. A
//! filtered read costs the events of its range (plus a day before), as
//! it does in the embedded store. Unfiltered reads (hourly totals,
//! breakdowns) sum per-day roll-ups, and the collector keeps those of
//! closed days in memory (`report_cache.rs`) for as long as ClickHouse's
//! fingerprint of their rows stays the same, so they replay only the
//! days that changed, plus today. Days the sweep stored roll-ups of
//! answer from those, so unfiltered reports reach back as far as
//! `retention.rollup_days`, as on the embedded store.
//!
//! Not built (answers [`StorageError::Internal`], so the HTTP layer logs
//! it and answers 500): the free-text count behind
//! `retention.free_text_min_visitors` (`common_free_text`); the
//! configuration refuses that setting at start.

pub mod history;
pub mod http;
pub mod report_cache;
pub mod rows;
pub mod salts;
pub mod schema;
pub mod settings;
pub mod spool;
pub mod writer;

use crate::store::ids::DayNumber;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use crate::model::Event;

use self::http::{Client, HttpError};
use self::report_cache::{Fingerprint, ReportCache};
use self::schema::{Layout, MigrationError};
use self::settings::ClickHouseConfig;
use self::spool::{Spool, SpoolError};
use self::writer::{Writer, WriterSettings};
use crate::store::replay::{DayRollups, Replay, ReplayEvent, RollupCache};
use crate::store::StoreError;

use super::{
    ConversionQuery, Conversions, Dimension, ExpiryPlan, FilteredAnswer, FilteredQuery,
    FreeTextExpiry, FreeTextRowFact, FreeTextVetted, KeptRollups, PendingAck, Ranked, RollupExpiry,
    Storage, StorageError, StoredEventFact, Totals, VacuumReport,
};

pub use self::settings::PASSWORD_ENV;

/// Why the backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("config key `{0}`: {1}")]
    Config(String, String),
    #[error("ClickHouse schema: {0}")]
    Schema(#[from] MigrationError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("ClickHouse client: {0}")]
    Client(#[from] HttpError),
    #[error("cannot start the ClickHouse writer: {0}")]
    Thread(std::io::Error),
}

impl From<HttpError> for StorageError {
    fn from(e: HttpError) -> Self {
        if e.is_transient() {
            StorageError::Unavailable(e.to_string())
        } else {
            StorageError::Internal(e.to_string())
        }
    }
}

/// Everything the backend needs to start.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    pub config: ClickHouseConfig,
    /// Where the spool goes when `clickhouse.spool_dir` is empty.
    pub data_dir: std::path::PathBuf,
    pub queue_capacity: usize,
    /// Time zone per site (its local days in breakdowns); UTC otherwise.
    pub site_timezones: HashMap<String, chrono_tz::Tz>,
    /// The writer's bound for pings it times itself
    /// (`server.max_engaged_seconds`), applied as reports replay them.
    pub max_engaged_ms: u32,
    /// `retention.raw_days`: how long free text may be held, also in the
    /// report cache.
    pub raw_days: u32,
}

/// A collector's connection to ClickHouse and its write path.
pub struct ClickHouseStorage {
    client: Arc<Client>,
    layout: Layout,
    writer: Writer,
    timeout: Duration,
    site_timezones: HashMap<String, chrono_tz::Tz>,
    max_engaged_ms: u32,
    raw_days: u32,
    report_cache: Arc<ReportCache>,
}

fn not_built(what: &str) -> StorageError {
    StorageError::Internal(format!(
        "{what} is not available with store.backend = \"clickhouse\" yet"
    ))
}

/// Parses a one-number answer.
fn number(answer: &str) -> Result<u64, StorageError> {
    answer.trim().parse().map_err(|_| {
        StorageError::Internal(format!("unexpected answer from ClickHouse: {answer:?}"))
    })
}

/// A string literal for SQL (quotes and backslashes escaped).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn day_literal(day: NaiveDate) -> String {
    format!("'{}'", day.format("%Y-%m-%d"))
}

impl ClickHouseStorage {
    /// Connects, creates or migrates the schema, opens the spool and starts
    /// the writer, which replays whatever the spool holds.
    pub fn open(options: &OpenOptions) -> Result<ClickHouseStorage, OpenError> {
        let config = &options.config;
        config
            .validate()
            .map_err(|(key, problem)| OpenError::Config(key, problem))?;
        let password = config
            .password()
            .map_err(|(key, problem)| OpenError::Config(key, problem))?;
        let timeout = Duration::from_secs(config.request_timeout_secs);
        let client = Arc::new(Client::new(
            config.urls.clone(),
            config.user.clone(),
            password,
            timeout,
        )?);
        let layout = Layout {
            database: config.database.clone(),
            cluster: config.cluster.clone(),
        };
        schema::migrate(&client, &layout, crate::clock::now().timestamp_millis())?;
        let spool_dir = if config.spool_dir.as_os_str().is_empty() {
            options.data_dir.join("clickhouse-spool")
        } else {
            config.spool_dir.clone()
        };
        let spool = Arc::new(Spool::open(
            &spool_dir,
            config.spool_max_mb.saturating_mul(1024 * 1024),
        )?);
        let (batches, bytes) = spool.backlog();
        if batches > 0 {
            tracing::info!(batches, bytes, "replaying the ClickHouse spool");
        }
        let writer = Writer::spawn(
            client.clone(),
            layout.clone(),
            spool,
            WriterSettings {
                batch_rows: config.batch_rows,
                flush: Duration::from_millis(config.flush_ms),
                queue_capacity: options.queue_capacity,
            },
        )
        .map_err(OpenError::Thread)?;
        Ok(ClickHouseStorage {
            client,
            layout,
            writer,
            timeout,
            site_timezones: options.site_timezones.clone(),
            max_engaged_ms: options.max_engaged_ms,
            raw_days: options.raw_days,
            report_cache: Arc::new(ReportCache::new(
                usize::try_from(config.report_cache_mb.saturating_mul(1024 * 1024))
                    .unwrap_or(usize::MAX),
            )),
        })
    }

    /// The collector's cache of closed days' roll-ups.
    pub fn report_cache(&self) -> &ReportCache {
        &self.report_cache
    }

    /// Spools what the writer gathered so far, without waiting for the
    /// flush interval.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.writer.flush()
    }

    /// Batches and bytes accepted but not yet confirmed by ClickHouse.
    pub fn backlog(&self) -> (u64, u64) {
        self.writer.backlog()
    }

    /// The daily visitor salt shared with every collector on this
    /// database (`salts.rs`).
    pub fn salt_exchange(&self) -> salts::ClickHouseSalts {
        salts::ClickHouseSalts::new(self.client.clone(), self.layout.clone())
    }

    /// Where the tables are.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn query(&self, sql: &str) -> Result<String, StorageError> {
        Ok(self.client.query(sql, &[])?)
    }

    fn count(&self, sql: &str) -> Result<u64, StorageError> {
        number(&self.query(sql)?)
    }

    /// Active parts of `day`'s partition on every replica of every shard
    /// (or on the one server), with how many servers were asked.
    fn active_parts(&self, day: NaiveDate) -> Result<(u64, usize), StorageError> {
        self.active_parts_of(self.layout.events_local(), day)
    }

    /// Active parts of `day`'s partition of `table` on every server.
    fn active_parts_of(&self, table: &str, day: NaiveDate) -> Result<(u64, usize), StorageError> {
        let filter = format!(
            "database = {} AND table = '{}' AND partition = {} AND active",
            literal(&self.layout.database),
            table,
            day_literal(day)
        );
        if !self.layout.is_cluster() {
            return Ok((
                self.count(&format!("SELECT count() FROM system.parts WHERE {filter}"))?,
                1,
            ));
        }
        let hosts = self.query(&format!(
            "SELECT host_address, port FROM system.clusters WHERE cluster = {} FORMAT TabSeparated",
            literal(&self.layout.cluster)
        ))?;
        let mut total = 0;
        let mut asked = 0;
        for line in hosts.lines().filter(|l| !l.is_empty()) {
            let (host, port) = line
                .split_once('\t')
                .ok_or_else(|| StorageError::Internal(format!("system.clusters row {line:?}")))?;
            total += self.count(&format!(
                "SELECT count() FROM remote({}, system, parts) WHERE {filter}",
                literal(&format!("{host}:{port}"))
            ))?;
            asked += 1;
        }
        if asked == 0 {
            return Err(StorageError::Internal(format!(
                "cluster {} is not in system.clusters",
                self.layout.cluster
            )));
        }
        Ok((total, asked))
    }

    /// Waits until `sql` counts 0 (a mutation's effect), up to the
    /// request timeout.
    fn wait_for_zero(&self, sql: &str) -> Result<(), StorageError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = self.count(sql)?;
            if left == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StorageError::Unavailable(format!(
                    "{left} rows still there after deleting them: {sql}"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The fingerprint of each UTC day from `first` to `last` that holds
    /// rows of `site` (one query; days without rows are left out).
    fn fingerprints(
        &self,
        site: &str,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<HashMap<NaiveDate, Fingerprint>, StorageError> {
        let answer = self.query(&format!(
            "SELECT day, count(), sum(seq), sum(batch) FROM {} WHERE site = {} \
             AND day >= {} AND day <= {} GROUP BY day FORMAT TabSeparated",
            self.layout.table("events"),
            literal(site),
            day_literal(first),
            day_literal(last)
        ))?;
        let bad = |line: &str| StorageError::Internal(format!("day fingerprint {line:?}"));
        answer
            .lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                let [day, rows, seq_sum, batch_sum] = fields[..] else {
                    return Err(bad(line));
                };
                let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| bad(line))?;
                Ok((
                    day,
                    Fingerprint {
                        rows: number(rows)?,
                        seq_sum: number(seq_sum)?,
                        batch_sum: number(batch_sum)?,
                    },
                ))
            })
            .collect()
    }

    /// A replay of `site`'s raw events of the UTC days `first..=last` for
    /// the report code: it fetches a day's rows when the replay reaches
    /// that day (days without any of the site's rows, known from one
    /// query, are not asked for). `cached`: roll-ups of closed days come
    /// from the collector's cache while their rows are unchanged.
    fn replay(
        &self,
        site: &str,
        first: NaiveDate,
        last: NaiveDate,
        cached: bool,
    ) -> Result<Replay<'static>, StorageError> {
        let now_ms = crate::clock::now().timestamp_millis();
        let free_text_from =
            rows::utc_day(now_ms.saturating_sub(i64::from(self.raw_days) * 86_400_000));
        // what the sweep would have taken out goes from memory too, even
        // when no sweep ran on this collector
        self.report_cache.forget_before(free_text_from);
        let stored = self.fingerprints(site, first, last)?;
        let read: SharedFingerprints = Arc::default();
        let day_rows = self.day_rows(site);
        let known = stored.clone();
        let read_by_fetch = read.clone();
        let fetch = move |day: NaiveDate| -> Result<Vec<ReplayEvent>, StoreError> {
            let mut fingerprint = Fingerprint::default();
            let mut out = Vec::new();
            // a day outside the range asked about is read, not assumed empty
            if known.contains_key(&day) || day < first || day > last {
                for (event, id) in day_rows(day)? {
                    fingerprint.add(id.seq, id.batch);
                    out.push(event);
                }
            }
            read_by_fetch
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(day, fingerprint);
            Ok(out)
        };
        let replay = Replay::new(self.timezone(site), self.max_engaged_ms, Box::new(fetch));
        if !cached {
            return Ok(replay);
        }
        let kept = self
            .stored_rollups(site, first, last)?
            .into_iter()
            .map(|(day, rollups)| (day, Arc::new(rollups)))
            .collect();
        Ok(replay.with_cache(Box::new(ClosedDays {
            kept,
            report: self.report_cache.begin(),
            cache: self.report_cache.clone(),
            site: site.to_owned(),
            stored,
            read,
            today: rows::utc_day(now_ms),
            free_text_from,
        })))
    }

    /// The roll-ups the sweep stored for `site`'s UTC days `first..=last`
    /// (the newest complete write of each day, see `history.rs`).
    fn stored_rollups(
        &self,
        site: &str,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<HashMap<NaiveDate, DayRollups>, StorageError> {
        let answer = self.client.query(
            &format!(
                "SELECT day, site, version, rows, kind, hour, dimension, local_day, value, counts \
                 FROM {} WHERE site = {} AND day >= {} AND day <= {} FORMAT JSONEachRow",
                self.layout.table("rollups"),
                literal(site),
                day_literal(first),
                day_literal(last)
            ),
            &[("output_format_json_quote_64bit_integers", "0")],
        )?;
        history::newest_complete(&answer).map_err(|e| StorageError::Internal(e.to_string()))
    }

    /// Versions of `site`'s stored roll-ups of `day`, each with the rows
    /// it should have and the rows it has.
    fn stored_writes(
        &self,
        site: &str,
        day: NaiveDate,
    ) -> Result<Vec<(u64, u64, u64)>, StorageError> {
        let answer = self.query(&format!(
            "SELECT version, any(rows), count() FROM {} WHERE site = {} AND day = {} \
             GROUP BY version FORMAT TabSeparated",
            self.layout.table("rollups"),
            literal(site),
            day_literal(day)
        ))?;
        answer
            .lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                let [version, want, have] = fields[..] else {
                    return Err(StorageError::Internal(format!("roll-up write {line:?}")));
                };
                Ok((number(version)?, number(want)?, number(have)?))
            })
            .collect()
    }

    /// The sites with raw rows on `day`.
    fn sites_on(&self, day: NaiveDate) -> Result<Vec<String>, StorageError> {
        let answer = self.client.query(
            &format!(
                "SELECT DISTINCT site FROM {} WHERE day = {} FORMAT JSONEachRow",
                self.layout.table("events"),
                day_literal(day)
            ),
            &[],
        )?;
        #[derive(serde::Deserialize)]
        struct Site {
            site: String,
        }
        answer
            .lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                serde_json::from_str::<Site>(line)
                    .map(|s| s.site)
                    .map_err(|e| StorageError::Internal(format!("site row from ClickHouse: {e}")))
            })
            .collect()
    }

    /// A replay of `site` that reads every day it is asked for, without
    /// the report cache (the sweep's replay of the days it stores).
    fn plain_replay(&self, site: &str) -> Replay<'static> {
        let day_rows = self.day_rows(site);
        let fetch = move |day: NaiveDate| -> Result<Vec<ReplayEvent>, StoreError> {
            Ok(day_rows(day)?.into_iter().map(|(event, _)| event).collect())
        };
        Replay::new(self.timezone(site), self.max_engaged_ms, Box::new(fetch))
    }

    /// Reads `site`'s raw rows of one UTC day in receipt order (`ts_ms`,
    /// then the collector's `seq`), each with the ids its fingerprint
    /// counts: what every replay fetches.
    fn day_rows(
        &self,
        site: &str,
    ) -> impl Fn(NaiveDate) -> Result<Vec<(ReplayEvent, rows::RowId)>, StoreError> + Send + 'static
    {
        let events = self.layout.table("events");
        let site_literal = literal(site);
        let client = self.client.clone();
        move |day| {
            let day_text = day.format("%Y-%m-%d");
            let answer = client
                .query(
                    &format!(
                        "SELECT {} FROM {events} WHERE site = {site_literal} AND day = '{day_text}' \
                         ORDER BY ts_ms, seq FORMAT JSONEachRow",
                        rows::REPLAY_COLUMNS
                    ),
                    &[("output_format_json_quote_64bit_integers", "0")],
                )
                .map_err(|e| StoreError::Replay {
                    transient: e.is_transient(),
                    message: e.to_string(),
                })?;
            answer
                .lines()
                .filter(|l| !l.is_empty())
                .map(|line| {
                    rows::parse_replay_row_with_id(line).map_err(|e| StoreError::Replay {
                        message: format!("event row of {day_text} from ClickHouse: {e}"),
                        transient: false,
                    })
                })
                .collect()
        }
    }

    /// The time zone `site`'s local days are counted in.
    fn timezone(&self, site: &str) -> chrono_tz::Tz {
        self.site_timezones
            .get(site)
            .copied()
            .unwrap_or(chrono_tz::Tz::UTC)
    }

    /// The (site, UTC day) pairs before `before` whose roll-ups are stored
    /// whole (one query, for a copy of many days).
    pub fn stored_site_days(
        &self,
        before: NaiveDate,
    ) -> Result<HashSet<(String, NaiveDate)>, StorageError> {
        let answer = self.client.query(
            &format!(
                "SELECT site, day, any(rows) AS want, count() AS have FROM {} \
                 WHERE day < {} GROUP BY site, day, version FORMAT JSONEachRow",
                self.layout.table("rollups"),
                day_literal(before)
            ),
            &[("output_format_json_quote_64bit_integers", "0")],
        )?;
        #[derive(serde::Deserialize)]
        struct Write {
            site: String,
            day: String,
            want: u64,
            have: u64,
        }
        let mut out = HashSet::new();
        for line in answer.lines().filter(|l| !l.is_empty()) {
            let w: Write = serde_json::from_str(line).map_err(|e| {
                StorageError::Internal(format!("roll-up write from ClickHouse: {e}"))
            })?;
            if w.want == w.have {
                let day = NaiveDate::parse_from_str(&w.day, "%Y-%m-%d")
                    .map_err(|_| StorageError::Internal(format!("roll-up day {:?}", w.day)))?;
                out.insert((w.site, day));
            }
        }
        Ok(out)
    }

    /// True when `site`'s roll-ups of UTC day `day` are stored whole.
    pub fn has_rollups(&self, site: &str, day: NaiveDate) -> Result<bool, StorageError> {
        Ok(self
            .stored_writes(site, day)?
            .iter()
            .any(|(_, want, have)| want == have))
    }

    /// Writes `rollups` as `site`'s roll-ups of UTC day `day` (a new
    /// version) and waits until they read back whole. Returns the rows.
    pub fn write_rollups(
        &self,
        site: &str,
        day: NaiveDate,
        rollups: &DayRollups,
    ) -> Result<u64, StorageError> {
        // ordered by time, unique across collectors in practice
        let mut random = [0u8; 2];
        getrandom::fill(&mut random).map_err(|e| StorageError::Internal(e.to_string()))?;
        let ms = u64::try_from(crate::clock::now().timestamp_millis()).unwrap_or(0);
        let version = ms * 1024 + u64::from(u16::from_le_bytes(random) & 0x3ff);
        let rows = history::to_rows(site, day, version, rollups);
        if rows.is_empty() {
            return Ok(0);
        }
        let params: &[(&str, &str)] = if self.layout.is_cluster() {
            &[("insert_distributed_sync", "1")]
        } else {
            &[]
        };
        self.client.execute(
            &format!(
                "INSERT INTO {} FORMAT JSONEachRow",
                self.layout.table("rollups")
            ),
            history::body(&rows),
            params,
        )?;
        self.count_back(site, day, version, rows.len() as u64)?;
        Ok(rows.len() as u64)
    }

    /// Calls `visit` for every stored roll-up row (of any write) whose
    /// value of a free-text dimension still carries free text, among the
    /// rows `condition` (SQL) selects.
    fn free_text_rows(
        &self,
        condition: &str,
        visit: &mut dyn FnMut(FreeTextRowFact<'_>),
    ) -> Result<(), StorageError> {
        let answer = self.client.query(
            &format!(
                "SELECT site, dimension, local_day, value FROM {} \
                 WHERE kind = 1 AND dimension IN ({}) AND {condition} FORMAT JSONEachRow",
                self.layout.table("rollups"),
                history::free_text_dimension_list()
            ),
            &[],
        )?;
        #[derive(serde::Deserialize)]
        struct Value {
            site: String,
            dimension: String,
            local_day: i32,
            value: String,
        }
        let bad = |e: String| StorageError::Internal(format!("roll-up row from ClickHouse: {e}"));
        for line in answer.lines().filter(|l| !l.is_empty()) {
            let row: Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            let dimension: Dimension = row.dimension.parse().map_err(|e| bad(format!("{e}")))?;
            // checked by the very rule the sweep cuts with
            if crate::store::rollup::without_free_text(dimension, &row.value).is_some() {
                visit(FreeTextRowFact {
                    table: "rollups",
                    site: &row.site,
                    dimension,
                    day: DayNumber::from_stored(row.local_day),
                });
            }
        }
        Ok(())
    }

    /// Waits until `site`'s write `version` of `day` reads back whole (a
    /// replica may still be fetching it), up to the request timeout.
    fn count_back(
        &self,
        site: &str,
        day: NaiveDate,
        version: u64,
        rows: u64,
    ) -> Result<(), StorageError> {
        let sql = format!(
            "SELECT count() FROM {} WHERE site = {} AND day = {} AND version = {version}",
            self.layout.table("rollups"),
            literal(site),
            day_literal(day)
        );
        let deadline = Instant::now() + self.timeout;
        loop {
            let have = self.count(&sql)?;
            if have == rows {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StorageError::Unavailable(format!(
                    "roll-ups of {site} on {day}: {have} of {rows} rows read back"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn audit_insert(&self, id: u64, json: &str) -> Result<(), StorageError> {
        // the version orders replacements of one record: the newest wins
        let version = u64::try_from(crate::clock::now().timestamp_micros()).unwrap_or(0);
        let row = serde_json::json!({"id": id, "version": version, "json": json});
        let mut body =
            serde_json::to_vec(&row).map_err(|e| StorageError::Internal(e.to_string()))?;
        body.push(b'\n');
        // an insert that arrives twice is one row: same id, same version
        self.client.execute(
            &format!(
                "INSERT INTO {} FORMAT JSONEachRow",
                self.layout.table("audit")
            ),
            body,
            &[],
        )?;
        Ok(())
    }
}

impl Drop for ClickHouseStorage {
    fn drop(&mut self) {
        self.writer.shutdown();
    }
}

impl Storage for ClickHouseStorage {
    fn submit(&self, events: Vec<Event>) -> Result<PendingAck, StorageError> {
        self.writer.submit(events)
    }

    fn is_accepting(&self) -> bool {
        self.writer.is_running()
    }

    fn drop_day(&self, day: NaiveDate) -> Result<u64, StorageError> {
        self.report_cache.forget_day(day);
        let events = self.layout.table("events");
        let n = self.count(&format!(
            "SELECT count() FROM {events} WHERE day = {}",
            day_literal(day)
        ))?;
        // waits for every replica (2), not only the one that runs it
        self.client.query(
            &format!(
                "ALTER TABLE {}{} DROP PARTITION {}",
                self.layout.table(self.layout.events_local()),
                self.layout.on_cluster(),
                day_literal(day)
            ),
            &[("replication_alter_partitions_sync", "2")],
        )?;
        let (parts, servers) = self.active_parts(day)?;
        if parts > 0 {
            return Err(StorageError::Internal(format!(
                "day {day}: {parts} parts still active after dropping the partition"
            )));
        }
        tracing::info!(day = %day, events = n, servers, "ClickHouse day partition dropped and checked gone");
        Ok(n)
    }

    fn trim_day(&self, day: NaiveDate, cutoff_ms: i64) -> Result<u64, StorageError> {
        // the sweep's cutoff: no cached day may date a counter before it
        self.report_cache.forget_before(rows::utc_day(cutoff_ms));
        let events = self.layout.table("events");
        let condition = format!(
            "day = {} AND ts_ms < {}",
            day_literal(day),
            cutoff_ms.max(0)
        );
        let n = self.count(&format!("SELECT count() FROM {events} WHERE {condition}"))?;
        if n == 0 {
            return Ok(0);
        }
        // a mutation: ClickHouse rewrites the day's parts without the rows
        self.query(&format!(
            "ALTER TABLE {}{} DELETE WHERE {condition}",
            self.layout.table(self.layout.events_local()),
            self.layout.on_cluster()
        ))?;
        self.wait_for_zero(&format!("SELECT count() FROM {events} WHERE {condition}"))?;
        Ok(n)
    }

    fn expire_strings(&self, _cutoff_ms: i64) -> Result<u64, StorageError> {
        // no dictionary: strings are in the rows and go with their day
        Ok(0)
    }

    fn expire_rollups(&self, cutoff_ms: i64, dry_run: bool) -> Result<RollupExpiry, StorageError> {
        // whole UTC days of stored roll-ups, a partition each
        let before = rows::utc_day(cutoff_ms);
        let answer = self.query(&format!(
            "SELECT day, countIf(kind = 0), countIf(kind = 1) FROM {} WHERE day < {} \
             GROUP BY day ORDER BY day FORMAT TabSeparated",
            self.layout.table("rollups"),
            day_literal(before)
        ))?;
        let mut expiry = RollupExpiry::default();
        for line in answer.lines().filter(|l| !l.is_empty()) {
            let fields: Vec<&str> = line.split('\t').collect();
            let [day, hourly, dims] = fields[..] else {
                return Err(StorageError::Internal(format!("roll-up day {line:?}")));
            };
            let day = NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .map_err(|_| StorageError::Internal(format!("roll-up day {line:?}")))?;
            expiry.hourly_rows += number(hourly)?;
            expiry.dim_rows += number(dims)?;
            if dry_run {
                continue;
            }
            self.client.query(
                &format!(
                    "ALTER TABLE {}{} DROP PARTITION {}",
                    self.layout.table(self.layout.rollups_local()),
                    self.layout.on_cluster(),
                    day_literal(day)
                ),
                &[("replication_alter_partitions_sync", "2")],
            )?;
            let (parts, servers) = self.active_parts_of(self.layout.rollups_local(), day)?;
            if parts > 0 {
                return Err(StorageError::Internal(format!(
                    "roll-ups of {day}: {parts} parts still active after dropping the partition"
                )));
            }
            tracing::info!(day = %day, servers, "ClickHouse roll-up partition dropped and checked gone");
        }
        Ok(expiry)
    }

    fn expire_free_text(
        &self,
        day: DayNumber,
        sites: BTreeSet<String>,
        _keep: HashMap<String, HashSet<String>>,
        _vetted: Option<FreeTextVetted>,
        dry_run: bool,
    ) -> Result<FreeTextExpiry, StorageError> {
        // the roll-up rows carry local days as stored numbers
        let day = day.stored();
        // Raw events go whole with their day; what is left is free text of
        // local day `day` in stored roll-ups written while that day was
        // still within retention.raw_days. Nothing is kept by visitor
        // counts: the configuration refuses free_text_min_visitors here.
        let mut expiry = FreeTextExpiry::default();
        for site in sites {
            let answer = self.query(&format!(
                "SELECT DISTINCT day FROM {} WHERE site = {} AND kind = 1 AND local_day = {day} \
                 AND dimension IN ({}) FORMAT TabSeparated",
                self.layout.table("rollups"),
                literal(&site),
                history::free_text_dimension_list()
            ))?;
            for line in answer.lines().filter(|l| !l.is_empty()) {
                let stored_day = NaiveDate::parse_from_str(line, "%Y-%m-%d")
                    .map_err(|_| StorageError::Internal(format!("roll-up day {line:?}")))?;
                let newest = self
                    .stored_rollups(&site, stored_day, stored_day)?
                    .remove(&stored_day)
                    .unwrap_or_default();
                let expired = |local_day: i32| local_day == day;
                let (cut, what) = history::cut_free_text(&newest, expired);
                expiry.add(&what);
                if dry_run {
                    continue;
                }
                if what.rows_expired > 0 {
                    self.write_rollups(&site, stored_day, &cut)?;
                }
                // the writes before (with the free text) go; a write left by
                // a sweep that stopped here goes at the next one
                let newest_version = self
                    .stored_writes(&site, stored_day)?
                    .iter()
                    .filter(|(_, want, have)| want == have)
                    .map(|(version, _, _)| *version)
                    .max();
                if let Some(version) = newest_version {
                    let condition = format!(
                        "site = {} AND day = {} AND version < {version}",
                        literal(&site),
                        day_literal(stored_day)
                    );
                    let rollups = self.layout.table("rollups");
                    if self.count(&format!("SELECT count() FROM {rollups} WHERE {condition}"))? > 0
                    {
                        self.query(&format!(
                            "ALTER TABLE {}{} DELETE WHERE {condition}",
                            self.layout.table(self.layout.rollups_local()),
                            self.layout.on_cluster()
                        ))?;
                        self.wait_for_zero(&format!(
                            "SELECT count() FROM {rollups} WHERE {condition}"
                        ))?;
                    }
                }
            }
        }
        Ok(expiry)
    }

    fn set_free_text_vetted(&self, _vetted: FreeTextVetted) -> Result<(), StorageError> {
        // nothing to vet without roll-ups (see free_text_days)
        Ok(())
    }

    fn delete_unused_rollup_values(&self) -> Result<u64, StorageError> {
        Ok(0)
    }

    fn vacuum(&self) -> Result<VacuumReport, StorageError> {
        // ClickHouse deletes dropped parts' files itself after the
        // server's merge_tree.old_parts_lifetime; the configuration refuses
        // retention.vacuum_after_sweep with this backend.
        Err(StorageError::Rejected(
            "store.backend = \"clickhouse\" has no vacuum: ClickHouse deletes dropped parts itself after merge_tree.old_parts_lifetime".into(),
        ))
    }

    fn close(&self) -> Result<(), StorageError> {
        self.writer.shutdown();
        Ok(())
    }

    fn hourly_totals(
        &self,
        site: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, Totals)>, StorageError> {
        if from_ms >= to_ms {
            return Ok(Vec::new());
        }
        // each day's roll-ups step the day before; the day after the range
        // can still change it
        let first = pred(rows::utc_day(from_ms));
        let last = succ(rows::utc_day(to_ms.saturating_sub(1)));
        Ok(self
            .replay(site, first, last, true)?
            .hourly_totals(from_ms, to_ms)?)
    }

    fn ranked(
        &self,
        site: &str,
        dim: Dimension,
        from: NaiveDate,
        to: NaiveDate,
        limit: usize,
        offset: usize,
    ) -> Result<Ranked, StorageError> {
        // as `Replay::ranked` reads them: two days either side, and the
        // day before those
        let first = pred(pred(pred(from)));
        let last = succ(succ(to));
        Ok(self
            .replay(site, first, last, true)?
            .ranked(dim, from, to, limit, offset)?)
    }

    fn filtered(&self, query: &FilteredQuery<'_>) -> Result<FilteredAnswer, StorageError> {
        let (first, last) = scan_days(query.from_ms, query.to_ms);
        Ok(crate::store::replay::filtered(
            self.replay(query.site, first, last, false)?,
            query,
        )?)
    }

    fn conversions(&self, query: &ConversionQuery<'_>) -> Result<Conversions, StorageError> {
        let (first, last) = scan_days(query.from_ms, query.to_ms);
        Ok(crate::store::replay::conversions(
            self.replay(query.site, first, last, false)?,
            query,
        )?)
    }

    fn days(&self) -> Result<Vec<(NaiveDate, u64)>, StorageError> {
        let answer = self.query(&format!(
            "SELECT day, count() FROM {} GROUP BY day ORDER BY day FORMAT TabSeparated",
            self.layout.table("events")
        ))?;
        answer
            .lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                let (day, n) = line.split_once('\t').unwrap_or((line, ""));
                let day = NaiveDate::parse_from_str(day, "%Y-%m-%d")
                    .map_err(|_| StorageError::Internal(format!("day {day:?} from ClickHouse")))?;
                Ok((day, number(n)?))
            })
            .collect()
    }

    fn event_count(&self) -> Result<u64, StorageError> {
        self.count(&format!(
            "SELECT count() FROM {}",
            self.layout.table("events")
        ))
    }

    fn oldest_event_ms(&self) -> Result<Option<i64>, StorageError> {
        let answer = self.query(&format!(
            "SELECT count(), min(ts_ms) FROM {} FORMAT TabSeparated",
            self.layout.table("events")
        ))?;
        let (n, oldest) = answer.trim().split_once('\t').unwrap_or(("0", "0"));
        if number(n)? == 0 {
            return Ok(None);
        }
        Ok(Some(i64::try_from(number(oldest)?).unwrap_or(i64::MAX)))
    }

    fn expiry_plan(&self, cutoff_ms: i64) -> Result<ExpiryPlan, StorageError> {
        let boundary = rows::utc_day(cutoff_ms);
        let whole = self
            .days()?
            .into_iter()
            .filter(|(day, _)| *day < boundary)
            .collect();
        let older = self.count(&format!(
            "SELECT count() FROM {} WHERE day = {} AND ts_ms < {}",
            self.layout.table("events"),
            day_literal(boundary),
            cutoff_ms.max(0)
        ))?;
        Ok(ExpiryPlan {
            whole,
            boundary: (older > 0).then_some((boundary, older)),
            strings: 0,
        })
    }

    fn for_each_stored_event(
        &self,
        visit: &mut dyn FnMut(StoredEventFact),
    ) -> Result<(), StorageError> {
        let answer = self.query(&format!(
            "SELECT day, site, ts_ms, ip FROM {} ORDER BY day, site, ts_ms FORMAT TabSeparated",
            self.layout.table("events")
        ))?;
        let mut seq: u32 = 0;
        let mut last: Option<(String, String)> = None;
        for line in answer.lines().filter(|l| !l.is_empty()) {
            let fields: Vec<&str> = line.split('\t').collect();
            let [day, site, ts, ip] = fields[..] else {
                visit(StoredEventFact {
                    partition: String::new(),
                    site: String::new(),
                    seq: 0,
                    ts_ms: Err(format!("row does not parse: {line:?}")),
                    ip: None,
                });
                continue;
            };
            // TabSeparated escapes tabs and backslashes in a site id
            let site = site.replace("\\t", "\t").replace("\\\\", "\\");
            let key = (day.to_string(), site.clone());
            seq = if last.as_ref() == Some(&key) {
                seq + 1
            } else {
                0
            };
            last = Some(key);
            visit(StoredEventFact {
                partition: day.to_string(),
                site,
                seq,
                ts_ms: ts
                    .parse::<i64>()
                    .map_err(|_| format!("ts_ms {ts:?} does not parse")),
                ip: rows::unhex(ip).and_then(|b| crate::privacy::StoredIp::decode(&b)),
            });
        }
        Ok(())
    }

    fn for_each_string_bound(&self, _visit: &mut dyn FnMut(i64)) -> Result<(), StorageError> {
        // no stored strings outside the rows
        Ok(())
    }

    fn free_text_vetted(&self) -> Result<Option<FreeTextVetted>, StorageError> {
        Ok(None)
    }

    fn free_text_days(
        &self,
        from_day: Option<DayNumber>,
        before_day: DayNumber,
    ) -> Result<BTreeMap<DayNumber, BTreeSet<String>>, StorageError> {
        let (from_day, before_day) = (from_day.map(DayNumber::stored), before_day.stored());
        let mut days: BTreeMap<DayNumber, BTreeSet<String>> = BTreeMap::new();
        let from = from_day.map_or(String::new(), |d| format!(" AND local_day >= {d}"));
        self.free_text_rows(&format!("local_day < {before_day}{from}"), &mut |row| {
            days.entry(row.day).or_default().insert(row.site.to_owned());
        })?;
        Ok(days)
    }

    fn common_free_text(
        &self,
        _site: &str,
        _tz: chrono_tz::Tz,
        _day: DayNumber,
        _min_visitors: u32,
    ) -> Result<HashSet<String>, StorageError> {
        Err(not_built("retention.free_text_min_visitors"))
    }

    fn for_each_free_text_row(
        &self,
        visit: &mut dyn FnMut(FreeTextRowFact<'_>),
    ) -> Result<(), StorageError> {
        self.free_text_rows("1", visit)
    }

    fn keep_rollups(
        &self,
        day: NaiveDate,
        free_text_before: i32,
    ) -> Result<KeptRollups, StorageError> {
        let mut kept = KeptRollups::default();
        for site in self.sites_on(day)? {
            // a complete write stored before (a sweep stopped before the
            // drop, or another collector's sweep) stands: nothing twice
            if self.has_rollups(&site, day)? {
                kept.sites_present += 1;
                continue;
            }
            let rollups = self.plain_replay(&site).day_rollups(day)?;
            let (rollups, cut) =
                history::cut_free_text(&rollups, |local_day| local_day < free_text_before);
            let rows = self.write_rollups(&site, day, &rollups)?;
            if rows == 0 {
                continue;
            }
            kept.sites_written += 1;
            kept.rows += rows;
            kept.free_text_cut += cut.rows_expired;
        }
        tracing::info!(
            day = %day,
            written = kept.sites_written,
            present = kept.sites_present,
            rows = kept.rows,
            "ClickHouse roll-ups of the day stored and read back"
        );
        Ok(kept)
    }

    fn oldest_rollup_day(&self) -> Result<Option<NaiveDate>, StorageError> {
        // stored roll-ups, and the raw rows reports replay into roll-ups
        let answer = self.query(&format!(
            "SELECT count(), min(hour) FROM {} WHERE kind = 0 FORMAT TabSeparated",
            self.layout.table("rollups")
        ))?;
        let (n, hour) = answer.trim().split_once('\t').unwrap_or(("0", "0"));
        let stored = (number(n)? > 0)
            .then(|| hour.parse::<i64>().ok())
            .flatten()
            .map(|h| rows::utc_day(h * 3_600_000));
        let raw = self.oldest_event_ms()?.map(rows::utc_day);
        Ok(match (stored, raw) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    fn rollup_tables(&self) -> &'static [&'static str] {
        &["rollups"]
    }

    fn audit_records(&self) -> Result<Vec<(u64, String)>, StorageError> {
        let answer = self.client.query(
            &format!(
                "SELECT id, argMax(json, version) AS json FROM {} GROUP BY id ORDER BY id FORMAT JSONEachRow",
                self.layout.table("audit")
            ),
            &[("output_format_json_quote_64bit_integers", "0")],
        )?;
        #[derive(serde::Deserialize)]
        struct Record {
            id: u64,
            json: String,
        }
        answer
            .lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                serde_json::from_str::<Record>(line)
                    .map(|r| (r.id, r.json))
                    .map_err(|e| StorageError::Internal(format!("audit row from ClickHouse: {e}")))
            })
            .collect()
    }

    fn audit_append(&self, json: &str) -> Result<u64, StorageError> {
        // Ordered by time, unique across collectors: milliseconds times
        // 1024 plus 10 random bits (below 2^53, so a JSON reader keeps it).
        let mut random = [0u8; 2];
        getrandom::fill(&mut random).map_err(|e| StorageError::Internal(e.to_string()))?;
        let ms = u64::try_from(crate::clock::now().timestamp_millis()).unwrap_or(0);
        let id = ms * 1024 + u64::from(u16::from_le_bytes(random) & 0x3ff);
        self.audit_insert(id, json)?;
        Ok(id)
    }

    fn audit_replace(&self, id: u64, json: &str) -> Result<(), StorageError> {
        self.audit_insert(id, json)
    }
}

fn pred(d: NaiveDate) -> NaiveDate {
    d.pred_opt().unwrap_or(d)
}

fn succ(d: NaiveDate) -> NaiveDate {
    d.succ_opt().unwrap_or(d)
}

/// The UTC days a scan of `[from_ms, to_ms)` reads: its own and the one
/// before (its state carried over midnight).
fn scan_days(from_ms: i64, to_ms: i64) -> (NaiveDate, NaiveDate) {
    let first = rows::utc_day(from_ms);
    let last = rows::utc_day(to_ms.saturating_sub(1)).max(first);
    (pred(first), last)
}

/// The fingerprints of the rows a replay read, per day.
type SharedFingerprints = Arc<std::sync::Mutex<HashMap<NaiveDate, Fingerprint>>>;

/// A replay's view of the report cache: a closed day answers from it when
/// ClickHouse's fingerprints of the day and the day before, asked before
/// the replay started, equal those of the rows it was replayed from.
struct ClosedDays {
    /// Roll-ups the sweep stored before deleting raw rows (`history.rs`):
    /// they answer for their days whatever raw rows are left.
    kept: HashMap<NaiveDate, Arc<DayRollups>>,
    cache: Arc<ReportCache>,
    /// When this report began (see `ReportCache::begin`).
    report: u64,
    site: String,
    /// Per day, as ClickHouse counted the rows (days without rows left out).
    stored: HashMap<NaiveDate, Fingerprint>,
    /// Per day, as this replay read the rows.
    read: SharedFingerprints,
    today: NaiveDate,
    free_text_from: NaiveDate,
}

impl RollupCache for ClosedDays {
    fn get(&mut self, day: NaiveDate) -> Option<Arc<DayRollups>> {
        if let Some(kept) = self.kept.get(&day) {
            return Some(kept.clone());
        }
        if day >= self.today {
            return None;
        }
        let of = |d: NaiveDate| self.stored.get(&d).copied().unwrap_or_default();
        self.cache.get(&self.site, day, (of(pred(day)), of(day)))
    }

    fn put(&mut self, day: NaiveDate, rollups: &Arc<DayRollups>) {
        if day >= self.today || self.kept.contains_key(&day) {
            return;
        }
        // keyed by the rows read, which may be newer than the fingerprints
        // asked for before: a kept day never stands for rows it did not see
        let key = {
            let read = self.read.lock().unwrap_or_else(|p| p.into_inner());
            match (read.get(&pred(day)), read.get(&day)) {
                (Some(before), Some(own)) => (*before, *own),
                _ => return,
            }
        };
        self.cache.put(
            &self.site,
            day,
            key,
            rollups,
            self.free_text_from,
            self.report,
        );
    }
}

/// Opens the backend from the whole configuration.
pub fn open_from_config(config: &crate::config::Config) -> Result<ClickHouseStorage, OpenError> {
    ClickHouseStorage::open(&OpenOptions {
        config: config.clickhouse.clone(),
        data_dir: config.server.data_dir.clone(),
        queue_capacity: config.store.queue_capacity,
        site_timezones: config
            .sites
            .iter()
            .map(|s| (s.id.clone(), s.tz()))
            .collect(),
        max_engaged_ms: config.server.max_engaged_seconds.saturating_mul(1000),
        raw_days: config.retention.raw_days,
    })
}
