//! Visitor counting without identifiers.
//!
//! A visitor is a keyed hash of (daily salt, site, anonymised address, user
//! agent); a page-view id made in the page is stored only as a keyed hash
//! with the same salt. The salt is random and lives in one small file
//! (mode 0600) that is replaced when the UTC day changes, and in one
//! place in memory that is wiped when it is replaced; it is never written
//! anywhere else, so once a day is over nobody (the operator included) can
//! recompute that day's hashes or link a visitor across days.
//!
//! The file is replaced atomically: the new salt goes to a temporary file
//! that is synced, the old file's bytes are overwritten with zeros and
//! synced, then the temporary file is renamed over it and the directory
//! synced. A crash at any point leaves either a whole salt or none (and
//! none means a fresh one at the next start), never a torn mix. A
//! rotation that fails (disk full, no randomness) fails closed: the old
//! salt is wiped in memory and on disk anyway, no hit is counted (the
//! pipeline answers 500, logged) and every later call tries again.
//!
//! The file also holds the salt's day. A clock that goes backwards (at run
//! time or between two starts) never returns to an older day: the newer
//! salt is kept until the clock passes its day, so a destroyed salt cannot
//! come back and no salt is made twice for one day.
//!
//! Several collectors behind a load balancer must hash a visitor alike, so
//! with a shared store the keeper keeps no file: it gets each day's salt
//! from a [`SaltExchange`] (the ClickHouse backend's `salts` table), which
//! settles on one salt per day for every collector. The keeper then holds
//! the salt in memory only and wipes it there at rotation; the exchange
//! deletes shared salts older than yesterday. While the exchange cannot be
//! reached at rotation, the keeper hashes with a salt of its own drawn for
//! the day (a visitor may then count once per collector) and switches to
//! the shared one as soon as the exchange answers.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use zeroize::{Zeroize, Zeroizing};

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
    /// The last rotation failed and the old salt was destroyed: nothing is
    /// counted until a new salt is written (retried on every call).
    #[error("no visitor salt in force: the last rotation failed")]
    Unavailable,
    /// The shared salt store did not answer or answered nonsense.
    #[error("shared visitor salt: {0}")]
    Exchange(String),
}

/// Where collectors that share a store agree on each UTC day's salt.
///
/// Implementations never log a salt and keep no copy of it beyond the
/// call (the keeper holds the one copy in memory).
pub trait SaltExchange: Send + Sync {
    /// The salt every collector uses for `day` (days since the Unix epoch,
    /// UTC). When none is agreed yet, `candidate` is offered; the answer
    /// is whichever salt the exchange settled on, which need not be it.
    fn agree(&self, day: i64, candidate: &[u8; SALT_LEN]) -> Result<Salt, SaltError>;

    /// Deletes every shared salt of a day before `day`, everywhere the
    /// store keeps a copy, and checks they are gone.
    fn forget_before(&self, day: i64) -> Result<(), SaltError>;
}

pub const SALT_LEN: usize = 32;
const FILE_LEN: usize = 8 + SALT_LEN;
const FILE_NAME: &str = "salt";
const TEMP_NAME: &str = "salt.new";

/// A salt held outside the keeper (a log import's): wiped from memory
/// when dropped.
pub type Salt = Zeroizing<[u8; SALT_LEN]>;

/// Where the pipeline gets the salt of a UTC day from. The salt is lent
/// to `use_salt` by reference, so no copy of it is left behind in memory.
pub trait DaySalts {
    fn with_salt(
        &mut self,
        day: i64,
        use_salt: &mut dyn FnMut(&[u8; SALT_LEN]),
    ) -> Result<(), SaltError>;
}

/// The live salt file's keeper (see [`SaltKeeper::salt_for`] for days
/// other than the current one).
impl DaySalts for &SaltKeeper {
    fn with_salt(
        &mut self,
        day: i64,
        use_salt: &mut dyn FnMut(&[u8; SALT_LEN]),
    ) -> Result<(), SaltError> {
        let mut cur = self.lock();
        self.rotate_locked(&mut cur, day)?;
        use_salt(cur.salt_in_force()?);
        Ok(())
    }
}

/// Salts that live in memory only, one per day, made on first use (a log
/// import's); wiped when the map is dropped.
impl DaySalts for std::collections::HashMap<i64, Salt> {
    fn with_salt(
        &mut self,
        day: i64,
        use_salt: &mut dyn FnMut(&[u8; SALT_LEN]),
    ) -> Result<(), SaltError> {
        let salt = match self.entry(day) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(new_salt()?),
        };
        use_salt(salt);
        Ok(())
    }
}

/// The salt in force and its UTC day (days since the Unix epoch).
struct DaySalt {
    day: i64,
    salt: Salt,
    /// A shared keeper's salt drawn locally because the exchange could not
    /// be reached: replaced by the agreed one at the next successful check.
    provisional: bool,
}

impl DaySalt {
    /// The salt, unless it is all zeros: the state before the first salt
    /// and after a failed rotation, which must never key a hash.
    fn salt_in_force(&self) -> Result<&[u8; SALT_LEN], SaltError> {
        if self.salt.iter().all(|&b| b == 0) {
            return Err(SaltError::Unavailable);
        }
        Ok(&self.salt)
    }
}

/// Holds today's salt; rotates and destroys it when the day changes.
pub struct SaltKeeper {
    /// The salt file's folder (a shared keeper writes no file there).
    dir: PathBuf,
    /// Set: the salt is agreed with other collectors through a shared
    /// store and lives in memory only.
    exchange: Option<std::sync::Arc<dyn SaltExchange>>,
    /// Boxed so the salt has one fixed place in memory for its lifetime
    /// (wiped there on rotation) instead of moving with the keeper.
    current: Mutex<Box<DaySalt>>,
}

impl SaltKeeper {
    /// Opens (or creates) the salt file in `dir`. A salt from an earlier
    /// day is replaced at once; a salt from a later day than `today` (the
    /// clock went back) is kept with its day.
    pub fn open(dir: &Path, today: i64) -> Result<SaltKeeper, SaltError> {
        let keeper = SaltKeeper::empty(dir, None);
        // a temporary file left by a crash mid-rotation holds a salt that
        // was never used: destroy it
        let temp = keeper.dir().join(TEMP_NAME);
        if temp.exists() {
            wipe_file(&temp).map_err(|source| SaltError::Io {
                path: temp.clone(),
                source,
            })?;
            std::fs::remove_file(&temp).map_err(|source| SaltError::Io { path: temp, source })?;
        }
        let path = keeper.path();
        let mut buf = Zeroizing::new(Vec::with_capacity(FILE_LEN));
        match File::open(&path) {
            Ok(mut file) => {
                let io = |source| SaltError::Io {
                    path: path.clone(),
                    source,
                };
                file.read_to_end(&mut buf).map_err(io)?;
                // a file written by an older version may be readable by others
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    file.set_permissions(std::fs::Permissions::from_mode(0o600))
                        .map_err(io)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(SaltError::Io { path, source }),
        }
        {
            let mut cur = keeper.lock();
            if buf.len() == FILE_LEN && buf[8..].iter().any(|&b| b != 0) {
                cur.day = i64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
                cur.salt.copy_from_slice(&buf[8..]);
                if cur.day > today {
                    tracing::warn!(
                        salt_day = cur.day,
                        clock_day = today,
                        "the clock is behind the visitor salt's day; keeping the newer salt"
                    );
                }
            }
            keeper.rotate_locked(&mut cur, today)?;
        }
        Ok(keeper)
    }

    /// A keeper that agrees on each day's salt with other collectors
    /// through `exchange` and keeps it in memory only. A salt file that
    /// `dir` still holds from a collector on its own store is destroyed:
    /// with a shared store no salt stays on local disk.
    pub fn shared(
        exchange: std::sync::Arc<dyn SaltExchange>,
        dir: &Path,
        today: i64,
    ) -> Result<SaltKeeper, SaltError> {
        let keeper = SaltKeeper::empty(dir, Some(exchange));
        if keeper.path().exists() || dir.join(TEMP_NAME).exists() {
            keeper.destroy_files();
            tracing::info!("destroyed the local visitor salt file: the salt is shared now");
        }
        {
            let mut cur = keeper.lock();
            keeper.rotate_locked(&mut cur, today)?;
        }
        Ok(keeper)
    }

    /// A keeper without a salt in force yet.
    fn empty(dir: &Path, exchange: Option<std::sync::Arc<dyn SaltExchange>>) -> SaltKeeper {
        SaltKeeper {
            dir: dir.to_path_buf(),
            exchange,
            current: Mutex::new(Box::new(DaySalt {
                day: i64::MIN,
                salt: Zeroizing::new([0u8; SALT_LEN]),
                provisional: false,
            })),
        }
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self) -> PathBuf {
        self.dir().join(FILE_NAME)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Box<DaySalt>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The salt for `day` (days since the Unix epoch, UTC). Asking for a
    /// later day rotates: the old salt is destroyed on disk and in memory.
    /// Asking for an earlier day (a request that straddled midnight, or a
    /// clock that went back) gets the current salt: old salts are gone by
    /// design. The copy is wiped when dropped.
    pub fn salt_for(&self, day: i64) -> Result<Salt, SaltError> {
        let mut cur = self.lock();
        self.rotate_locked(&mut cur, day)?;
        Ok(Zeroizing::new(*cur.salt_in_force()?))
    }

    /// Rotates to `today` (days since the Unix epoch, UTC) when the current
    /// salt is from an earlier day, destroying it on disk and in memory;
    /// returns whether it did. Called at each UTC midnight, so a quiet site
    /// does not keep yesterday's salt until its next hit.
    pub fn rotate(&self, today: i64) -> Result<bool, SaltError> {
        let mut cur = self.lock();
        self.rotate_locked(&mut cur, today)
    }

    /// Rotates when `day` is later than the current salt's. The new salt
    /// is drawn and written to disk before the current one is touched; if
    /// either step fails the rotation fails closed: the old salt is wiped
    /// in memory and on disk, nothing is hashed until a later call (each
    /// hit, and the midnight task every minute) manages to write a new one.
    fn rotate_locked(&self, cur: &mut DaySalt, day: i64) -> Result<bool, SaltError> {
        if day <= cur.day {
            return Ok(false);
        }
        if let Some(exchange) = &self.exchange {
            return rotate_shared(exchange.as_ref(), cur, day);
        }
        let mut fresh = Zeroizing::new([0u8; SALT_LEN]);
        let written = getrandom::fill(fresh.as_mut())
            .map_err(|e| SaltError::Random(e.to_string()))
            .and_then(|()| {
                if fresh.iter().all(|&b| b == 0) {
                    // not a salt: it would be taken for "none in force"
                    return Err(SaltError::Random(
                        "the random source gave only zeros".into(),
                    ));
                }
                self.replace_file(day, &fresh)
            });
        // the old salt is past its day either way
        cur.salt.zeroize();
        match written {
            Ok(()) => {
                cur.salt.copy_from_slice(fresh.as_ref());
                cur.day = day;
                Ok(true)
            }
            Err(error) => {
                // `cur.day` stays old, so the next call tries again
                self.destroy_files();
                tracing::error!(%error, "visitor salt rotation failed; no visits are counted until it succeeds");
                Err(error)
            }
        }
    }

    /// Whether the salt is agreed with other collectors (not in a file).
    pub fn is_shared(&self) -> bool {
        self.exchange.is_some()
    }

    /// Whether the salt in force is a shared keeper's own, drawn while the
    /// exchange could not be reached.
    pub fn is_provisional(&self) -> bool {
        self.lock().provisional
    }

    /// A shared keeper's regular check (nothing to do for a file): asks
    /// the exchange for `today`'s salt and takes it when it differs from
    /// the one in force (a provisional salt, or a candidate that reached
    /// the exchange late and won), then has the exchange delete salts
    /// older than yesterday. Returns whether the salt in force changed.
    /// The exchange is asked without holding the lock, so hits are not
    /// held up meanwhile.
    pub fn recheck(&self, today: i64) -> Result<bool, SaltError> {
        let Some(exchange) = &self.exchange else {
            return Ok(false);
        };
        let mut switched = false;
        if self.current_day() == today {
            let candidate = fresh_salt()?;
            let agreed = exchange.agree(today, &candidate)?;
            let mut cur = self.lock();
            if cur.day == today && (cur.provisional || cur.salt[..] != agreed[..]) {
                if !cur.provisional {
                    tracing::warn!(
                        "another collector's visitor salt for today won; switching to it"
                    );
                }
                cur.salt.zeroize();
                cur.salt.copy_from_slice(agreed.as_ref());
                cur.provisional = false;
                switched = true;
            }
        }
        exchange.forget_before(today - 1)?;
        Ok(switched)
    }

    /// Wipes and removes the salt file and any temporary file after a
    /// failed rotation, so a salt past its day does not stay on disk.
    /// Failures are logged: there is nothing else left to try.
    fn destroy_files(&self) {
        for path in [self.path(), self.dir().join(TEMP_NAME)] {
            if !path.is_file() {
                continue;
            }
            if let Err(error) = wipe_file(&path).and_then(|()| std::fs::remove_file(&path)) {
                tracing::error!(path = %path.display(), %error, "could not destroy an old visitor salt file");
            }
        }
    }

    /// Writes `day` and `salt` to a synced temporary file (0600), wipes
    /// the old file, renames the temporary file over it and syncs the
    /// directory.
    fn replace_file(&self, day: i64, salt: &[u8; SALT_LEN]) -> Result<(), SaltError> {
        let path = self.path();
        let temp = self.dir().join(TEMP_NAME);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SaltError::Io { path, source }
        };
        let mut contents = Zeroizing::new([0u8; FILE_LEN]);
        contents[..8].copy_from_slice(&day.to_le_bytes());
        contents[8..].copy_from_slice(salt);
        let mut file = private_file(&temp).map_err(io(&temp))?;
        file.write_all(contents.as_ref()).map_err(io(&temp))?;
        file.sync_all().map_err(io(&temp))?;
        drop(file);
        if path.exists() {
            wipe_file(&path).map_err(io(&path))?;
        }
        std::fs::rename(&temp, &path).map_err(io(&path))?;
        sync_dir(self.dir()).map_err(io(self.dir()))
    }

    /// The UTC day the current salt belongs to.
    pub fn current_day(&self) -> i64 {
        self.lock().day
    }
}

/// A shared keeper's rotation to `day`: the exchange's salt for the day,
/// or, while it cannot be reached, a provisional one of this collector's
/// own (replaced by [`SaltKeeper::recheck`] once it answers). The old salt
/// is wiped either way.
fn rotate_shared(
    exchange: &dyn SaltExchange,
    cur: &mut DaySalt,
    day: i64,
) -> Result<bool, SaltError> {
    let candidate = match fresh_salt() {
        Ok(candidate) => candidate,
        Err(error) => {
            cur.salt.zeroize();
            tracing::error!(%error, "visitor salt rotation failed; no visits are counted until it succeeds");
            return Err(error);
        }
    };
    cur.salt.zeroize();
    match exchange.agree(day, &candidate) {
        Ok(agreed) => {
            cur.salt.copy_from_slice(agreed.as_ref());
            cur.provisional = false;
        }
        Err(error) => {
            tracing::warn!(%error, "the shared visitor salt cannot be read; this collector hashes with a salt of its own until it can (a visitor may count once per collector meanwhile)");
            cur.salt.copy_from_slice(candidate.as_ref());
            cur.provisional = true;
        }
    }
    cur.day = day;
    Ok(true)
}

/// A fresh random salt that is not all zeros (which means "none in force").
fn fresh_salt() -> Result<Salt, SaltError> {
    let salt = new_salt()?;
    if salt.iter().all(|&b| b == 0) {
        return Err(SaltError::Random(
            "the random source gave only zeros".into(),
        ));
    }
    Ok(salt)
}

/// Creates (or truncates) `path` readable and writable by the owner only.
fn private_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        // `mode` applies only to a new file; an existing one is narrowed
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    options.open(path)
}

/// Overwrites the whole of `path` with zeros and syncs, so the bytes of a
/// salt do not stay in the blocks of a file that is about to be unlinked.
fn wipe_file(path: &Path) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    let len = file.metadata()?.len() as usize;
    file.write_all(&vec![0u8; len])?;
    file.sync_all()
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
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

/// A fresh random salt (for salts that live in memory only, such as a log
/// import's).
pub(crate) fn new_salt() -> Result<Salt, SaltError> {
    let mut salt = Zeroizing::new([0u8; SALT_LEN]);
    getrandom::fill(salt.as_mut()).map_err(|e| SaltError::Random(e.to_string()))?;
    Ok(salt)
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
    finish(&mut h)
}

/// A page-view id made in the page (Matomo's six characters, the
/// tracker's own) as 64 bits keyed with the daily salt: the raw id, short
/// enough to be guessed, is never stored, and its hash cannot be
/// recomputed once the day's salt is gone. Never 0, which means "none".
pub fn pageview_hash(salt: &[u8; SALT_LEN], raw: &str) -> u64 {
    let mut h = blake3::Hasher::new_keyed(salt);
    // a domain label, so a page-view hash never equals a visitor hash
    h.update(b"sparsam page view\0");
    h.update(raw.as_bytes());
    finish(&mut h).max(1)
}

/// The first 64 bits of the hash; the hasher (which holds the salt as its
/// key) is wiped.
fn finish(h: &mut blake3::Hasher) -> u64 {
    let out = h.finalize();
    h.zeroize();
    u64::from_le_bytes(out.as_bytes()[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::IpMasks;

    fn ip(s: &str) -> AnonIp {
        AnonIp::truncate(s.parse().unwrap(), &IpMasks::DEFAULT)
    }

    fn file_day(dir: &Path) -> i64 {
        let bytes = std::fs::read(dir.join(FILE_NAME)).unwrap();
        i64::from_le_bytes(bytes[..8].try_into().unwrap())
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
        let bytes = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(bytes.len(), FILE_LEN);
        assert!(
            !bytes.windows(SALT_LEN).any(|w| w == old.as_ref()),
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
    fn the_file_is_private_and_replaced_without_a_temporary_left_over() {
        let dir = tempfile::tempdir().unwrap();
        let k = SaltKeeper::open(dir.path(), 300).unwrap();
        k.rotate(301).unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [FILE_NAME], "only the salt file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        }
        drop(k);

        // A temporary file left by a crash between writing it and the
        // rename is destroyed at the next start; the salt file wins.
        let stale = [0x5Au8; FILE_LEN];
        std::fs::write(dir.path().join(TEMP_NAME), stale).unwrap();
        let before = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        let k = SaltKeeper::open(dir.path(), 301).unwrap();
        assert!(!dir.path().join(TEMP_NAME).exists());
        assert_eq!(k.salt_for(301).unwrap()[..], before[8..]);

        // A salt file wiped (zeros) by a crash before the rename counts as
        // none: a fresh salt, never an all-zero one.
        drop(k);
        std::fs::write(dir.path().join(FILE_NAME), [0u8; FILE_LEN]).unwrap();
        let k = SaltKeeper::open(dir.path(), 301).unwrap();
        assert!(k.salt_for(301).unwrap().iter().any(|&b| b != 0));
        assert_eq!(file_day(dir.path()), 301);
    }

    #[test]
    fn a_failed_rotation_destroys_the_old_salt_and_retries() {
        let dir = tempfile::tempdir().unwrap();
        let k = SaltKeeper::open(dir.path(), 600).unwrap();
        let old = k.salt_for(600).unwrap();
        // a directory where the temporary file goes: creating it fails
        // (even for root, unlike a read-only mode)
        let blocker = dir.path().join(TEMP_NAME);
        std::fs::create_dir(&blocker).unwrap();

        assert!(k.rotate(601).is_err(), "the new salt could not be written");
        assert!(
            !dir.path().join(FILE_NAME).exists(),
            "the old salt file is destroyed although no new one was written"
        );
        // nothing is hashed, neither with the old salt nor with zeros
        assert!(matches!(k.salt_for(601), Err(SaltError::Io { .. })));
        assert!(matches!(k.salt_for(600), Err(SaltError::Unavailable)));
        let mut used = false;
        let mut keeper = &k;
        assert!(keeper.with_salt(600, &mut |_| used = true).is_err());
        assert!(!used, "no hash keyed with a salt not in force");

        // once the write can succeed, the next call rotates
        std::fs::remove_dir(&blocker).unwrap();
        let new = k.salt_for(601).unwrap();
        assert_ne!(new, old);
        assert!(new.iter().any(|&b| b != 0));
        assert_eq!(file_day(dir.path()), 601);
        assert_eq!(k.current_day(), 601);
    }

    #[test]
    fn a_clock_going_back_keeps_the_newer_salt() {
        let dir = tempfile::tempdir().unwrap();
        let k = SaltKeeper::open(dir.path(), 500).unwrap();
        let newer = k.salt_for(500).unwrap();
        drop(k);
        // Restarted with the clock a day behind: the newer salt and its day
        // stay; no salt is made for the older day.
        let k = SaltKeeper::open(dir.path(), 499).unwrap();
        assert_eq!(k.current_day(), 500);
        assert_eq!(file_day(dir.path()), 500);
        assert_eq!(k.salt_for(499).unwrap(), newer);
        assert!(!k.rotate(499).unwrap());
        assert!(!k.rotate(500).unwrap(), "the clock reaches the salt's day");
        assert_eq!(k.salt_for(500).unwrap(), newer);
        assert!(k.rotate(501).unwrap(), "and rotates after it as usual");
        assert_ne!(k.salt_for(501).unwrap(), newer);
    }

    #[test]
    fn rotate_replaces_an_old_day_only() {
        let dir = tempfile::tempdir().unwrap();
        let k = SaltKeeper::open(dir.path(), 200).unwrap();
        let first = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        assert!(!k.rotate(200).unwrap(), "same day: kept");
        assert!(!k.rotate(199).unwrap(), "earlier day: kept");
        assert_eq!(std::fs::read(dir.path().join(FILE_NAME)).unwrap(), first);

        assert!(k.rotate(201).unwrap(), "next day: rotated without any hit");
        let bytes = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
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

    #[test]
    fn page_view_ids_are_keyed_with_the_salt() {
        let (s1, s2) = ([1u8; 32], [2u8; 32]);
        assert_eq!(pageview_hash(&s1, "Ab12Cd"), pageview_hash(&s1, "Ab12Cd"));
        assert_ne!(pageview_hash(&s1, "Ab12Cd"), pageview_hash(&s2, "Ab12Cd"));
        assert_ne!(pageview_hash(&s1, "Ab12Cd"), pageview_hash(&s1, "Ab12Ce"));
        // not the unkeyed hash, which anyone could compute for all short ids
        let plain = blake3::hash(b"Ab12Cd");
        let plain = u64::from_le_bytes(plain.as_bytes()[..8].try_into().unwrap());
        assert_ne!(pageview_hash(&s1, "Ab12Cd"), plain);
    }
}
