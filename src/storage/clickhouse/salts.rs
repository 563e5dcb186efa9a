//! The daily visitor salt shared by every collector on one ClickHouse
//! database, so that a visitor whose hits a load balancer spreads over
//! several collectors counts once per day.
//!
//! Table `salts` (`schema.rs`, version 3): one row per candidate offered
//! for a UTC day, with `offered`, the time the receiving server took it
//! (`DEFAULT now()`), in a partition of its own per day. On a cluster it is
//! replicated to every server of every shard.
//!
//! How collectors agree, without a lock ClickHouse 18.16 could offer: a
//! collector that needs day D's salt looks for candidates of D and, when
//! there are none, offers a random one of its own. Either way it then
//! waits [`SETTLE`] (so the servers' clock is in a later second than any
//! candidate it saw or offered), waits until no offer of a salt is running
//! on any server (`system.processes`), and reads the winner: the candidate
//! offered first (smallest `offered`, ties broken by the smaller salt),
//! read on every server of the cluster (through `remote()`, skipping
//! servers that do not answer), so replication lag cannot hide a candidate
//! held by a server that answers. Why this settles on one salt: a
//! candidate is stamped when its server receives it; one received before
//! the moment nothing was running has been written by then and is read;
//! one received after it is stamped in a later second than every
//! candidate read, so it never wins (servers' clocks are assumed to agree
//! within a second). An offer received but slow to be written (a busy
//! ZooKeeper) is waited for, not overtaken: without that wait two
//! collectors did take different salts under load. What remains (a server
//! holding the earliest candidate that did not answer a read) is healed by
//! every collector reading the winner again each minute
//! (`SaltKeeper::recheck`) and switching to it.
//!
//! Forgetting: partitions of days before yesterday are dropped with
//! `ALTER TABLE … DROP PARTITION` (on a cluster the replicated table
//! passes the drop to every replica through its replication log; the call
//! waits for all active ones, `replication_alter_partitions_sync = 2`),
//! then every server is asked whether an active part of such a day is
//! left. Dropped and merged-away parts stay on disk as inactive parts for
//! the server's `merge_tree.old_parts_lifetime` (480 s by default).
//!
//! A salt goes to ClickHouse only as insert data in the request body
//! (never in the statement text, which ClickHouse logs) and comes back
//! only in answers; neither is logged here. The hex text of an answer is
//! wiped once parsed.

use std::sync::Arc;
use std::time::Duration;

use zeroize::{Zeroize, Zeroizing};

use super::http::{Client, HttpError};
use super::schema::Layout;
use crate::privacy::visitor::{Salt, SaltError, SaltExchange, SALT_LEN};

/// How long a collector that offered a candidate waits before it reads
/// the winner: long enough for a concurrent offer to land, and a second,
/// so a candidate that arrives after the read carries a later `offered`.
pub const SETTLE: Duration = Duration::from_millis(1100);

/// The longest a collector waits for other collectors' offers to finish.
const OFFERS_WAIT: Duration = Duration::from_secs(30);

/// The salts table of one database, reached through the collector's
/// client.
pub struct ClickHouseSalts {
    client: Arc<Client>,
    layout: Layout,
}

fn exchange_error(e: HttpError) -> SaltError {
    SaltError::Exchange(e.to_string())
}

/// `'YYYY-MM-DD'` of a day number (days since the Unix epoch).
fn day_literal(day: i64) -> Result<String, SaltError> {
    let date = chrono::DateTime::from_timestamp(day.saturating_mul(86_400), 0)
        .ok_or_else(|| SaltError::Exchange(format!("day {day} is out of range")))?
        .date_naive();
    Ok(format!("'{}'", date.format("%Y-%m-%d")))
}

/// A salt from its hex text.
fn parse_salt(hex: &str) -> Option<Salt> {
    if hex.len() != 2 * SALT_LEN {
        return None;
    }
    let mut salt = Zeroizing::new([0u8; SALT_LEN]);
    for (i, byte) in salt.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(salt)
}

impl ClickHouseSalts {
    pub fn new(client: Arc<Client>, layout: Layout) -> ClickHouseSalts {
        ClickHouseSalts { client, layout }
    }

    /// Where to read from: `remote('host:port', …)` of every server of the
    /// cluster, or the table itself on one server.
    fn sources(&self, database: &str, table: &str) -> Result<Vec<String>, HttpError> {
        if !self.layout.is_cluster() {
            return Ok(vec![format!("{database}.{table}")]);
        }
        let hosts = self.client.query(
            &format!(
                "SELECT host_address, port FROM system.clusters WHERE cluster = '{}' \
                 FORMAT TabSeparated",
                self.layout.cluster
            ),
            &[],
        )?;
        Ok(hosts
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(host, port)| format!("remote('{host}:{port}', {database}, {table})"))
            .collect())
    }

    /// Runs `sql_for(source)` on every source; answers of the servers
    /// that answered, and how many did not. A server that cannot be
    /// reached is skipped; a statement it refuses is an error.
    fn on_every_server(
        &self,
        database: &str,
        table: &str,
        sql_for: impl Fn(&str) -> String,
    ) -> Result<(Vec<Zeroizing<String>>, usize), SaltError> {
        let sources = self.sources(database, table).map_err(exchange_error)?;
        let mut answers = Vec::new();
        let mut silent = 0;
        for source in &sources {
            match self.client.query(&sql_for(source), &[]) {
                Ok(answer) => answers.push(Zeroizing::new(answer)),
                Err(e) if e.is_transient() => silent += 1,
                Err(e) => return Err(exchange_error(e)),
            }
        }
        if answers.is_empty() {
            return Err(SaltError::Exchange(format!(
                "none of {} ClickHouse servers answered",
                sources.len()
            )));
        }
        Ok((answers, silent))
    }

    /// The winning candidate of `day` as far as the answering servers
    /// know: the earliest offered, then the smallest.
    fn winner(&self, day: i64) -> Result<Option<Salt>, SaltError> {
        let day = day_literal(day)?;
        let (answers, _) = self.on_every_server(&self.layout.database, "salts", |source| {
            format!(
                "SELECT toUInt32(offered), salt FROM {source} WHERE day = {day} \
                 ORDER BY offered, salt LIMIT 1 FORMAT TabSeparated"
            )
        })?;
        let mut best: Option<(u32, Salt)> = None;
        for answer in &answers {
            let Some(line) = answer.lines().next().filter(|l| !l.is_empty()) else {
                continue;
            };
            let parsed = line.split_once('\t').and_then(|(offered, hex)| {
                Some((offered.parse::<u32>().ok()?, parse_salt(hex.trim())?))
            });
            let Some((offered, salt)) = parsed else {
                return Err(SaltError::Exchange(
                    "a row of the salts table does not parse".into(),
                ));
            };
            let better = match &best {
                None => true,
                Some((o, s)) => (offered, &salt[..]) < (*o, &s[..]),
            };
            if better {
                best = Some((offered, salt));
            }
        }
        Ok(best.map(|(_, salt)| salt))
    }

    /// Offers `candidate` for `day`: the salt goes in the request body,
    /// never in the statement.
    fn offer(&self, day: i64, candidate: &[u8; SALT_LEN]) -> Result<(), SaltError> {
        let day = day_literal(day)?;
        let mut row = Zeroizing::new(String::with_capacity(16 + 2 * SALT_LEN));
        row.push_str(day.trim_matches('\''));
        row.push('\t');
        for byte in candidate {
            row.push_str(&format!("{byte:02x}"));
        }
        row.push('\n');
        let mut body = row.as_bytes().to_vec();
        let sent = self.client.execute(
            &format!(
                "INSERT INTO {} (day, salt) FORMAT TabSeparated",
                self.layout.table("salts")
            ),
            body.clone(),
            &[],
        );
        body.zeroize();
        sent.map(drop).map_err(exchange_error)
    }

    /// Days (`YYYY-MM-DD`) before `day` that still have an active part on
    /// an answering server, and how many servers did not answer.
    fn days_before(&self, day: &str) -> Result<(Vec<String>, usize), SaltError> {
        let filter = format!(
            "database = '{}' AND table = 'salts' AND active AND partition < {day}",
            self.layout.database
        );
        let (answers, silent) = self.on_every_server("system", "parts", |source| {
            format!("SELECT DISTINCT partition FROM {source} WHERE {filter} FORMAT TabSeparated")
        })?;
        let mut days: Vec<String> = answers
            .iter()
            .flat_map(|a| a.lines().map(str::to_owned).collect::<Vec<_>>())
            .filter(|l| !l.is_empty())
            .collect();
        days.sort();
        days.dedup();
        Ok((days, silent))
    }

    /// Offers of a salt still running on the answering servers (their
    /// statement starts with the insert; this query's own text does not).
    fn offers_running(&self) -> Result<u64, SaltError> {
        let pattern = format!("INSERT INTO {}%", self.layout.table("salts"));
        let (answers, _) = self.on_every_server("system", "processes", |source| {
            format!("SELECT count() FROM {source} WHERE query LIKE '{pattern}'")
        })?;
        answers.iter().try_fold(0u64, |sum, a| {
            a.trim()
                .parse::<u64>()
                .map(|n| sum + n)
                .map_err(|_| SaltError::Exchange(format!("not a count: {:?}", a.as_str())))
        })
    }
}

impl SaltExchange for ClickHouseSalts {
    fn agree(&self, day: i64, candidate: &[u8; SALT_LEN]) -> Result<Salt, SaltError> {
        if self.winner(day)?.is_none() {
            self.offer(day, candidate)?;
        }
        // Every candidate this collector has seen or offered was stamped
        // before now; after the wait the servers' clock is in a later
        // second, and once no offer is running anywhere, every candidate
        // still to come is stamped later than any of them and cannot win.
        // An offer received but not yet written is stamped at receipt, so
        // it is waited for rather than taken as late.
        std::thread::sleep(SETTLE);
        let deadline = std::time::Instant::now() + OFFERS_WAIT;
        while self.offers_running()? > 0 {
            if std::time::Instant::now() >= deadline {
                return Err(SaltError::Exchange(
                    "offers of a visitor salt are still running".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.winner(day)?
            .ok_or_else(|| SaltError::Exchange("the salt just offered cannot be read back".into()))
    }

    fn forget_before(&self, day: i64) -> Result<(), SaltError> {
        let before = day_literal(day)?;
        let (days, _) = self.days_before(&before)?;
        if days.is_empty() {
            return Ok(());
        }
        for old in &days {
            // a replicated table passes the drop to its other replicas
            self.client
                .query(
                    &format!(
                        "ALTER TABLE {} DROP PARTITION '{old}'",
                        self.layout.table("salts")
                    ),
                    &[("replication_alter_partitions_sync", "2")],
                )
                .map_err(exchange_error)?;
        }
        let (left, silent) = self.days_before(&before)?;
        if !left.is_empty() {
            return Err(SaltError::Exchange(format!(
                "visitor salts of {left:?} still have active parts after dropping them"
            )));
        }
        tracing::info!(
            days = ?days,
            servers_not_answering = silent,
            "shared visitor salts older than yesterday dropped and checked gone"
        );
        Ok(())
    }
}
