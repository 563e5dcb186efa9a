//! sparsam's tables in ClickHouse and the migrations that create them.
//!
//! Tables (in `clickhouse.database`):
//! - `events`: one row per raw event, partitioned by UTC day (`day`), so
//!   retention drops whole days (servers from 2018 have no TTL). On a
//!   cluster it is a `Distributed` table over `events_local`, a
//!   `ReplicatedMergeTree` on every server, sharded by
//!   `cityHash64(site, visitor)`: a visitor hash is made with the day's
//!   salt, so one visitor's events of a day stay on one shard. On one
//!   server it is a plain `MergeTree`.
//! - `audit`: the retention audit log, small; on a cluster replicated to
//!   every server of every shard (one ZooKeeper path without `{shard}`),
//!   so any server answers the whole log: one place for a DPO to read.
//!   Records are replaced by inserting a higher `version`
//!   (`ReplacingMergeTree`; reads take the newest with `argMax`).
//! - `schema_migrations`: which migrations ran, replicated like `audit`.
//! - `salts` (version 3): the daily visitor salt shared by every
//!   collector (`salts.rs`), partitioned by UTC day so a day's salt goes
//!   with its partition; replicated like `audit`, so any server answers.
//!
//! - `rollups` (version 4): the roll-ups of days whose raw events the
//!   sweep deleted (`history.rs`), partitioned by the UTC day they were
//!   replayed from, so `retention.rollup_days` drops whole partitions. On
//!   a cluster a `Distributed` table over `rollups_local`
//!   (`ReplicatedMergeTree`), sharded by site, so one write of a site's
//!   day is one block on one shard.
//!
//! Version 2 adds to `events` what goal reports need and the ordering the
//! report replay reads rows in: `custom` (1 for a custom event), its
//! `custom_name`, `custom_props` (the declared properties as a JSON array
//! of `[key, value]` pairs) and `revenue_cents`, and `seq`, the receiving
//! collector's running number (rows of one millisecond are read in it).
//!
//! Every statement is idempotent (`IF NOT EXISTS`), so two collectors that
//! start at once both run them without harm; a migration is recorded once
//! it ran. A database migrated by a newer sparsam is refused.

use super::http::{Client, HttpError};

/// The newest schema version this build knows.
pub const LATEST_VERSION: u32 = 4;

/// Where the tables are and whether they are replicated.
#[derive(Clone, Debug)]
pub struct Layout {
    pub database: String,
    /// Empty: one server.
    pub cluster: String,
}

/// Columns of an event row as version 1 made them: what the embedded
/// store keeps of an event (its codec), plus `day` (the partition) and
/// `batch` (the insert id that makes every insert block unique, see
/// `writer.rs`); version 2 adds the custom-event columns and `seq`. The address
/// is the shortened network as `AnonIp::to_bytes` gives it, in hex.
const EVENT_COLUMNS: &str = "
    day Date,
    site String,
    ts_ms UInt64,
    kind UInt8,
    visitor UInt64,
    pageview_id UInt64,
    url String,
    title String,
    referrer_kind UInt8,
    referrer_name String,
    referrer_url String,
    utm_source String,
    utm_medium String,
    utm_campaign String,
    target String,
    search_term String,
    search_results Nullable(UInt32),
    engaged_ms UInt32,
    device_type UInt8,
    device_brand String,
    device_model String,
    os String,
    os_version String,
    browser String,
    browser_version String,
    engine String,
    engine_version String,
    plugins UInt16,
    ip String,
    batch UInt64";

/// Blocks remembered per table for insert deduplication (ClickHouse's
/// default is 100): a batch retried after many other inserts is still
/// recognised.
const DEDUP_WINDOW: u32 = 10_000;

impl Layout {
    pub fn is_cluster(&self) -> bool {
        !self.cluster.is_empty()
    }

    /// ` ON CLUSTER name` or nothing.
    pub fn on_cluster(&self) -> String {
        if self.is_cluster() {
            format!(" ON CLUSTER {}", self.cluster)
        } else {
            String::new()
        }
    }

    /// `database.table`.
    pub fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.database)
    }

    /// The table that holds a server's own part of the events (the one to
    /// drop partitions of and to look for in `system.parts`).
    pub fn events_local(&self) -> &'static str {
        if self.is_cluster() {
            "events_local"
        } else {
            "events"
        }
    }

    /// The table that holds a server's own part of the stored roll-ups.
    pub fn rollups_local(&self) -> &'static str {
        if self.is_cluster() {
            "rollups_local"
        } else {
            "rollups"
        }
    }

    /// The roll-ups of days whose raw events are gone (`history.rs`).
    fn rollup_tables(&self) -> Vec<String> {
        let db = &self.database;
        let columns = super::history::COLUMNS;
        let order = "ORDER BY (site, day, version, kind, dimension, local_day, value, hour)";
        if self.is_cluster() {
            vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {db}.rollups_local{on} ({columns}) \
                     ENGINE = ReplicatedMergeTree('/clickhouse/tables/{{shard}}/{db}/rollups_local', '{{replica}}') \
                     PARTITION BY day {order}",
                    on = self.on_cluster()
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {db}.rollups{on} AS {db}.rollups_local \
                     ENGINE = Distributed({cluster}, {db}, rollups_local, cityHash64(site))",
                    on = self.on_cluster(),
                    cluster = self.cluster
                ),
            ]
        } else {
            vec![format!(
                "CREATE TABLE IF NOT EXISTS {db}.rollups ({columns}) \
                 ENGINE = MergeTree PARTITION BY day {order}"
            )]
        }
    }

    /// A table every server holds whole: replicated to every server of
    /// the cluster, or plain on one server.
    fn everywhere(&self, name: &str, engine: &str, columns: &str, order: &str) -> String {
        let db = &self.database;
        let engine = if self.is_cluster() {
            let args = if engine == "ReplacingMergeTree" {
                ", version"
            } else {
                ""
            };
            format!(
                "Replicated{engine}('/clickhouse/tables/all/{db}/{name}', '{{shard}}_{{replica}}'{args})"
            )
        } else if engine == "ReplacingMergeTree" {
            "ReplacingMergeTree(version)".into()
        } else {
            engine.into()
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.{name}{} ({columns}) ENGINE = {engine} ORDER BY {order}",
            self.on_cluster()
        )
    }

    /// The shared visitor salts: candidates offered per UTC day, with the
    /// time the receiving server took each (the earliest wins, see
    /// `salts.rs`). A partition per day, dropped whole when the day is
    /// older than yesterday.
    fn salts_table(&self) -> String {
        let db = &self.database;
        let engine = if self.is_cluster() {
            format!(
                "ReplicatedMergeTree('/clickhouse/tables/all/{db}/salts', '{{shard}}_{{replica}}')"
            )
        } else {
            "MergeTree".into()
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.salts{on} \
             (day Date, offered DateTime DEFAULT now(), salt String) \
             ENGINE = {engine} PARTITION BY day ORDER BY (day, offered, salt)",
            on = self.on_cluster()
        )
    }

    /// Statements that create the database and the migrations table.
    fn bootstrap(&self) -> Vec<String> {
        vec![
            format!(
                "CREATE DATABASE IF NOT EXISTS {}{}",
                self.database,
                self.on_cluster()
            ),
            self.everywhere(
                "schema_migrations",
                "MergeTree",
                "version UInt32, applied_ms UInt64",
                "version",
            ),
        ]
    }

    /// The `Distributed` table over every server's `events_local`.
    fn distributed_events(&self) -> String {
        let db = &self.database;
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.events{on} AS {db}.events_local \
             ENGINE = Distributed({cluster}, {db}, events_local, cityHash64(site, visitor))",
            on = self.on_cluster(),
            cluster = self.cluster
        )
    }

    /// Statements of migration `version`.
    fn migration(&self, version: u32) -> Vec<String> {
        let db = &self.database;
        match version {
            1 => {
                let mut statements = Vec::new();
                if self.is_cluster() {
                    statements.push(format!(
                        "CREATE TABLE IF NOT EXISTS {db}.events_local{on} ({EVENT_COLUMNS}) \
                         ENGINE = ReplicatedMergeTree('/clickhouse/tables/{{shard}}/{db}/events_local', '{{replica}}') \
                         PARTITION BY day ORDER BY (site, day, visitor, ts_ms) \
                         SETTINGS replicated_deduplication_window = {DEDUP_WINDOW}",
                        on = self.on_cluster()
                    ));
                    statements.push(self.distributed_events());
                } else {
                    statements.push(format!(
                        "CREATE TABLE IF NOT EXISTS {db}.events ({EVENT_COLUMNS}) \
                         ENGINE = MergeTree PARTITION BY day ORDER BY (site, day, visitor, ts_ms)"
                    ));
                }
                statements.push(self.everywhere(
                    "audit",
                    "ReplacingMergeTree",
                    "id UInt64, version UInt64, json String",
                    "id",
                ));
                statements
            }
            3 => vec![self.salts_table()],
            4 => self.rollup_tables(),
            _ => Vec::new(),
        }
    }
}

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("database {database} was migrated to schema version {found} by a newer sparsam; this one knows up to {LATEST_VERSION}")]
    TooNew { database: String, found: u32 },
    #[error("unexpected answer from ClickHouse: {0:?}")]
    Answer(String),
}

/// The applied schema version (0: none).
pub fn current_version(client: &Client, layout: &Layout) -> Result<u32, MigrationError> {
    let answer = client.query(
        &format!(
            "SELECT max(version) FROM {}",
            layout.table("schema_migrations")
        ),
        &[],
    )?;
    answer
        .trim()
        .parse()
        .map_err(|_| MigrationError::Answer(answer))
}

/// Creates or migrates the schema to [`LATEST_VERSION`]; returns the
/// version found before.
pub fn migrate(client: &Client, layout: &Layout, now_ms: i64) -> Result<u32, MigrationError> {
    for statement in layout.bootstrap() {
        client.query(&statement, &[])?;
    }
    let found = current_version(client, layout)?;
    if found > LATEST_VERSION {
        return Err(MigrationError::TooNew {
            database: layout.database.clone(),
            found,
        });
    }
    for version in found + 1..=LATEST_VERSION {
        for statement in layout.migration(version) {
            client.query(&statement, &[])?;
        }
        if version == 2 {
            // custom events (goals and funnels count them) and the
            // receipt order of one millisecond's events
            add_columns(client, layout, layout.events_local(), VERSION_2_COLUMNS)?;
            if layout.is_cluster() {
                // 18.16 refuses ALTER ON CLUSTER of a Distributed table over
                // replicated shards; it holds no rows (inserts are
                // synchronous), so it is made again with the new columns
                let columns = table_columns(client, layout, "events")?;
                if VERSION_2_COLUMNS
                    .iter()
                    .any(|(name, _)| !columns.iter().any(|c| c == name))
                {
                    client.query(
                        &format!(
                            "DROP TABLE IF EXISTS {}{}",
                            layout.table("events"),
                            layout.on_cluster()
                        ),
                        &[],
                    )?;
                    client.query(&layout.distributed_events(), &[])?;
                }
            }
        }
        client.query(
            &format!(
                "INSERT INTO {} (version, applied_ms) VALUES ({version}, {})",
                layout.table("schema_migrations"),
                now_ms.max(0)
            ),
            &[],
        )?;
        tracing::info!(version, database = %layout.database, "ClickHouse schema migrated");
    }
    Ok(found)
}

/// Columns version 2 adds to the event tables.
const VERSION_2_COLUMNS: &[(&str, &str)] = &[
    ("custom", "UInt8 DEFAULT 0"),
    ("custom_name", "String DEFAULT ''"),
    ("custom_props", "String DEFAULT ''"),
    ("revenue_cents", "Int64 DEFAULT 0"),
    ("seq", "UInt64 DEFAULT 0"),
];

/// Adds the `columns` that `table` lacks. Servers from 2018 know no
/// `ADD COLUMN IF NOT EXISTS`, so the table's columns are looked up first;
/// when another collector added them in between and the `ALTER` fails, it
/// is enough that they are all there afterwards.
fn add_columns(
    client: &Client,
    layout: &Layout,
    table: &str,
    columns: &[(&str, &str)],
) -> Result<(), MigrationError> {
    let missing = |client: &Client| -> Result<Vec<(&str, &str)>, MigrationError> {
        let present = table_columns(client, layout, table)?;
        Ok(columns
            .iter()
            .filter(|(name, _)| !present.iter().any(|p| p == name))
            .copied()
            .collect())
    };
    let todo = missing(client)?;
    if todo.is_empty() {
        return Ok(());
    }
    let adds: Vec<String> = todo
        .iter()
        .map(|(name, ty)| format!("ADD COLUMN {name} {ty}"))
        .collect();
    let alter = format!(
        "ALTER TABLE {}.{table}{} {}",
        layout.database,
        layout.on_cluster(),
        adds.join(", ")
    );
    if let Err(e) = client.query(&alter, &[]) {
        if !missing(client)?.is_empty() {
            return Err(e.into());
        }
    }
    Ok(())
}

/// The column names of `table` on the server asked.
fn table_columns(
    client: &Client,
    layout: &Layout,
    table: &str,
) -> Result<Vec<String>, MigrationError> {
    let present = client.query(
        &format!(
            "SELECT name FROM system.columns WHERE database = '{}' AND table = '{table}' \
             FORMAT TabSeparated",
            layout.database
        ),
        &[],
    )?;
    Ok(present.lines().map(str::to_owned).collect())
}
