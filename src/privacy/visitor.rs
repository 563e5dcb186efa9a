//! Visitor counting without identifiers.
//!
//! A visitor is a keyed hash of (daily salt, site, anonymised address, user
//! agent). The salt is random, lives in one small file that is overwritten
//! in place when the UTC day changes, and is never written anywhere else, so
//! once a day is over nobody (the operator included) can recompute that
//! day's hashes or link a visitor across days.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::AnonIp;

#[derive(Debug, thiserror::Error)]
pub enum SaltError {
    #[error("salt file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no random source available: {0}")]
    Random(String),
}

const SALT_LEN: usize = 32;
const FILE_LEN: usize = 8 + SALT_LEN;

/// Holds today's salt; rotates and destroys it when the day changes.
pub struct SaltKeeper {
    path: PathBuf,
    current: Mutex<(i64, [u8; SALT_LEN])>,
}

impl SaltKeeper {
    /// Opens (or creates) the salt file in `dir`. A salt from an earlier
    /// day is replaced at once.
    pub fn open(dir: &Path, today: i64) -> Result<SaltKeeper, SaltError> {
        let path = dir.join("salt");
        let io = |source| SaltError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(io)?;
        let stored = (buf.len() == FILE_LEN).then(|| {
            let day = i64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
            let salt: [u8; SALT_LEN] = buf[8..].try_into().expect("32 bytes");
            (day, salt)
        });
        let current = match stored {
            Some((day, salt)) if day == today => (day, salt),
            _ => {
                let salt = new_salt()?;
                overwrite(&mut file, today, &salt).map_err(io)?;
                (today, salt)
            }
        };
        Ok(SaltKeeper {
            path,
            current: Mutex::new(current),
        })
    }

    /// The salt for `day` (days since the Unix epoch, UTC). Asking for a
    /// later day rotates: the old salt is overwritten on disk and in memory.
    /// Asking for an earlier day (a request that straddled midnight) gets
    /// today's salt: old salts are gone by design.
    pub fn salt_for(&self, day: i64) -> Result<[u8; SALT_LEN], SaltError> {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        self.rotate_locked(&mut cur, day)?;
        Ok(cur.1)
    }

    /// Rotates to `today` (days since the Unix epoch, UTC) when the current
    /// salt is from an earlier day, overwriting it on disk and in memory;
    /// returns whether it did. Called at each UTC midnight, so a quiet site
    /// does not keep yesterday's salt until its next hit.
    pub fn rotate(&self, today: i64) -> Result<bool, SaltError> {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        self.rotate_locked(&mut cur, today)
    }

    fn rotate_locked(&self, cur: &mut (i64, [u8; SALT_LEN]), day: i64) -> Result<bool, SaltError> {
        if day <= cur.0 {
            return Ok(false);
        }
        let salt = new_salt()?;
        let io = |source| SaltError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(io)?;
        overwrite(&mut file, day, &salt).map_err(io)?;
        *cur = (day, salt);
        Ok(true)
    }

    /// The UTC day the current salt belongs to.
    pub fn current_day(&self) -> i64 {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

/// Days since the Unix epoch (UTC) at `now`: the salt's day.
pub fn utc_day(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(86_400)
}

/// How long to wait from `now` until the next rotation check: until just
/// after the next UTC midnight, but never more than a minute, so a clock
/// that jumps (or a machine that was suspended) is noticed soon.
pub fn until_next_check(now: DateTime<Utc>) -> Duration {
    let next_midnight_ms = (utc_day(now) + 1) * crate::store::schema::MS_PER_DAY;
    let wait_ms = (next_midnight_ms - now.timestamp_millis()).max(0) as u64 + 10;
    Duration::from_millis(wait_ms.min(60_000))
}

pub(crate) fn new_salt() -> Result<[u8; SALT_LEN], SaltError> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| SaltError::Random(e.to_string()))?;
    Ok(salt)
}

/// Writes over the same bytes of the file (no new file, no rename), so the
/// previous salt does not survive in a second copy, and syncs.
fn overwrite(file: &mut File, day: i64, salt: &[u8; SALT_LEN]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&day.to_le_bytes())?;
    file.write_all(salt)?;
    file.set_len(FILE_LEN as u64)?;
    file.sync_all()
}

/// The visitor hash: keyed BLAKE3 over site, anonymised address and user
/// agent. Truncated to 64 bits: enough to count, too little to be an id
/// worth anything outside its day.
pub fn visitor_hash(salt: &[u8; SALT_LEN], site: &str, ip: &AnonIp, user_agent: &str) -> u64 {
    let mut h = blake3::Hasher::new_keyed(salt);
    h.update(&(site.len() as u32).to_le_bytes());
    h.update(site.as_bytes());
    let ip = ip.to_bytes();
    h.update(&(ip.len() as u32).to_le_bytes());
    h.update(&ip);
    h.update(user_agent.as_bytes());
    let out = h.finalize();
    u64::from_le_bytes(out.as_bytes()[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::IpMasks;

    fn ip(s: &str) -> AnonIp {
        AnonIp::truncate(s.parse().unwrap(), &IpMasks::DEFAULT)
    }

    #[test]
    fn same_inputs_same_day_same_hash_and_salt_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let k = SaltKeeper::open(dir.path(), 100).unwrap();
        let s = k.salt_for(100).unwrap();
        let a = visitor_hash(&s, "site", &ip("1.2.3.4"), "UA");
        let b = visitor_hash(&s, "site", &ip("1.2.9.9"), "UA");
        assert_eq!(a, b, "addresses in the same /16 are one visitor");
        drop(k);
        let k2 = SaltKeeper::open(dir.path(), 100).unwrap();
        assert_eq!(k2.salt_for(100).unwrap(), s);
    }

    #[test]
    fn rotation_destroys_old_salt_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let k = SaltKeeper::open(dir.path(), 100).unwrap();
        let old = k.salt_for(100).unwrap();
        let new = k.salt_for(101).unwrap();
        assert_ne!(old, new);
        let bytes = std::fs::read(dir.path().join("salt")).unwrap();
        assert_eq!(bytes.len(), FILE_LEN);
        assert!(
            !bytes.windows(SALT_LEN).any(|w| w == old),
            "old salt still on disk"
        );
        // An earlier day never brings the old salt back.
        assert_eq!(k.salt_for(100).unwrap(), new);
        // A restart on a later day replaces a stale file at once.
        drop(k);
        let k3 = SaltKeeper::open(dir.path(), 105).unwrap();
        assert_ne!(k3.salt_for(105).unwrap(), new);
    }

    #[test]
    fn rotate_replaces_an_old_day_only() {
        let dir = tempfile::tempdir().unwrap();
        let k = SaltKeeper::open(dir.path(), 200).unwrap();
        let first = std::fs::read(dir.path().join("salt")).unwrap();
        assert!(!k.rotate(200).unwrap(), "same day: kept");
        assert!(!k.rotate(199).unwrap(), "earlier day: kept");
        assert_eq!(std::fs::read(dir.path().join("salt")).unwrap(), first);

        assert!(k.rotate(201).unwrap(), "next day: rotated without any hit");
        let bytes = std::fs::read(dir.path().join("salt")).unwrap();
        assert_eq!(i64::from_le_bytes(bytes[..8].try_into().unwrap()), 201);
        assert!(
            !bytes.windows(SALT_LEN).any(|w| w == &first[8..]),
            "yesterday's salt destroyed"
        );
        assert_eq!(k.current_day(), 201);
        assert_eq!(k.salt_for(201).unwrap()[..], bytes[8..]);
    }

    #[test]
    fn checks_are_at_most_a_minute_apart_and_hit_midnight() {
        use chrono::TimeZone;
        let at = |h, m, s| Utc.with_ymd_and_hms(2026, 3, 1, h, m, s).unwrap();
        assert_eq!(until_next_check(at(12, 0, 0)), Duration::from_secs(60));
        assert_eq!(
            until_next_check(at(23, 59, 30)),
            Duration::from_millis(30_010),
            "wakes just after midnight"
        );
        let after = at(23, 59, 30) + until_next_check(at(23, 59, 30));
        assert_eq!(utc_day(after), utc_day(at(23, 59, 30)) + 1);
        assert_eq!(utc_day(at(0, 0, 0)), 20_513);
    }

    #[test]
    fn different_sites_and_salts_give_different_hashes() {
        let s1 = [1u8; 32];
        let s2 = [2u8; 32];
        let i = ip("1.2.3.4");
        assert_ne!(
            visitor_hash(&s1, "a", &i, "UA"),
            visitor_hash(&s1, "b", &i, "UA")
        );
        assert_ne!(
            visitor_hash(&s1, "a", &i, "UA"),
            visitor_hash(&s2, "a", &i, "UA")
        );
    }
}
