//! Builds the running service from a config: storage (the store behind its
//! boundary, with its writer thread), salt
//! (rotated at each UTC midnight by a small task; shared through the store
//! when the backend is ClickHouse), device detector,
//! pipeline, HTTP server (with the watch over responses for unexpected
//! cookies) and the gate the sweeper shares with `POST /api/v1/sweep`; and
//! shuts it down in the right order (stop accepting, answer in-flight
//! requests, commit what was accepted, close the store cleanly).

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::KeepAlive;
use actix_web::{web, App, HttpServer};
use chrono::Utc;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::config::{Config, ConfigError, StoreBackend};
use crate::enrich::device::{DeviceDetector, DeviceError};
use crate::http::{self, AppState};
use crate::ingest::Pipeline;
use crate::privacy::visitor::{utc_day, SaltError};
use crate::privacy::{ClientAddrPolicy, SaltExchange, SaltKeeper};
use crate::retention::SweepGate;
use crate::storage::redb::RedbStorage;
use crate::storage::{Storage, StorageError};
use crate::store::{StoreError, StoreOptions, WriterOptions};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(#[from] StorageError),
    #[error("store {path}: {source}")]
    OpenStore {
        path: std::path::PathBuf,
        source: StoreError,
    },
    #[error("visitor salt: {0}")]
    Salt(#[from] SaltError),
    #[error("device detection: {0}")]
    Device(#[from] DeviceError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics recorder: {0}")]
    Metrics(String),
    #[error("audit log: {0}")]
    Audit(String),
    #[error("HTTP server: {0}")]
    Server(std::io::Error),
    #[error("cannot create store file {path} (mode 0600): {source}")]
    StoreFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("clock: {0}")]
    Clock(#[from] crate::clock::ClockError),
    #[error("ClickHouse store: {0}")]
    ClickHouse(#[from] crate::storage::clickhouse::OpenError),
}

/// The process-wide Prometheus recorder (the `metrics` facade has one
/// global recorder, so several apps in one test process share it).
pub fn metrics_handle() -> Result<PrometheusHandle, StartError> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // Another recorder may already be installed (e.g. by a bench); then
    // metrics go there and ours stays empty, which is harmless.
    let _ = metrics::set_global_recorder(recorder);
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Opens the store in `config.server.data_dir`, creating the directory
/// (0700) and the store file (0600): both hold shortened addresses and
/// visitor hashes, which are for the collector's eyes only. Starts the
/// store's writer.
pub fn open_storage(config: &Config) -> Result<Arc<RedbStorage>, StartError> {
    if config.store.backend != StoreBackend::Redb {
        return Err(StartError::Store(StorageError::Rejected(
            "this command works on the embedded store only (store.backend = \"redb\")".into(),
        )));
    }
    let dir = &config.server.data_dir;
    let data_dir_error = |source| StartError::DataDir {
        path: dir.clone(),
        source,
    };
    private_dir(dir).map_err(data_dir_error)?;
    let path = config.store_path();
    private_store_file(&path).map_err(|source| StartError::StoreFile {
        path: path.clone(),
        source,
    })?;
    if crate::store::remove_leftover_copy(&path).map_err(|source| StartError::StoreFile {
        path: path.clone(),
        source,
    })? {
        tracing::warn!("removed the copy an interrupted vacuum left beside the store");
    }
    let storage = RedbStorage::open(&path, &store_options(config), writer_options(config))
        .map_err(|source| StartError::OpenStore { path, source })?;
    Ok(Arc::new(storage))
}

/// Opens the backend `store.backend` names: the embedded store, or the
/// ClickHouse backend (its spool stays in `server.data_dir`, created 0700
/// like the store's).
pub fn open_backend(config: &Config) -> Result<Arc<dyn Storage>, StartError> {
    Ok(open_backend_and_salts(config)?.0)
}

/// The opened backend, and where it shares the visitor salt when it does.
pub type BackendAndSalts = (Arc<dyn Storage>, Option<Arc<dyn SaltExchange>>);

/// Like [`open_backend`], with where the visitor salt is shared when the
/// backend shares it (ClickHouse: every collector on one database uses
/// the same daily salt); `None` keeps it in `server.data_dir`.
pub fn open_backend_and_salts(config: &Config) -> Result<BackendAndSalts, StartError> {
    match config.store.backend {
        StoreBackend::Redb => Ok((open_storage(config)?, None)),
        StoreBackend::ClickHouse => {
            private_dir(&config.server.data_dir).map_err(|source| StartError::DataDir {
                path: config.server.data_dir.clone(),
                source,
            })?;
            let storage = crate::storage::clickhouse::open_from_config(config)?;
            let exchange: Arc<dyn SaltExchange> = Arc::new(storage.salt_exchange());
            Ok((Arc::new(storage), Some(exchange)))
        }
    }
}

/// Store settings from the config.
pub fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        cache_size: config.store.cache_mb * 1024 * 1024,
    }
}

/// Creates `dir` (and its parents) with mode 0700 on Unix.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the store file empty with mode 0600 before redb opens it (redb
/// initialises an empty file), or narrows an existing file to 0600.
fn private_store_file(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writer settings from the config; settings the config does not name keep
/// the store's defaults.
#[allow(clippy::needless_update)]
pub fn writer_options(config: &Config) -> WriterOptions {
    WriterOptions {
        queue_capacity: config.store.queue_capacity,
        max_batch: config.store.max_batch,
        rollup_fold_interval: config.store.rollup_fold_interval,
        rollup_fold_events: config.store.rollup_fold_events,
        rollup_max_rows: config.store.rollup_max_rows,
        max_engaged_ms: config.server.max_engaged_seconds.saturating_mul(1000),
        discard_events: crate::store::writer::discard_events_from_env(
            config.server.listen.ip().is_loopback(),
        ),
        site_timezones: config
            .sites
            .iter()
            .map(|s| (s.id.clone(), s.tz()))
            .collect(),
        ..WriterOptions::default()
    }
}

/// A built, bound, not yet running service.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    storage: Arc<dyn Storage>,
    config: Arc<Config>,
    salts: Arc<SaltKeeper>,
    sweep_gate: Arc<SweepGate>,
    /// The demo site's server and address, when `[demo]` is configured.
    demo: Option<(Server, SocketAddr)>,
    /// The metrics-only listener, when `server.metrics_listen` is set.
    metrics_only: Option<(Server, SocketAddr)>,
}

impl Application {
    /// Builds everything and binds the listener (port 0 picks a free port).
    pub fn build(config: Config) -> Result<Application, StartError> {
        let started = std::time::Instant::now();
        crate::clock::install_from_env(config.server.listen.ip().is_loopback())?;
        let config = Arc::new(config);
        // The device rules compile on their own threads while the store opens.
        let ua_cache = config.store.ua_cache_entries;
        let rules_dir = config.device.rules_dir.clone();
        let detector = std::thread::spawn(move || {
            DeviceDetector::with_rules_dir(ua_cache, rules_dir.as_deref())
        });
        let metrics = metrics_handle()?;
        let (storage, shared_salts) = open_backend_and_salts(&config)?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store open"
        );
        let today = utc_day(crate::clock::now());
        let salts = Arc::new(match shared_salts {
            Some(exchange) => SaltKeeper::shared(exchange, &config.server.data_dir, today)?,
            None => SaltKeeper::open(&config.server.data_dir, today)?,
        });
        let detector = detector.join().map_err(|_| {
            StartError::Server(std::io::Error::other("device rules thread panicked"))
        })??;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "device rules ready"
        );
        // the referrer-spam sets are built now, not by the first hit
        config.referrer_spam.prepare();
        let pipeline = Pipeline::new(config.clone(), detector, salts.clone());
        crate::retention::audit::record_settings(&*storage, &config, Utc::now())
            .map_err(|e| StartError::Audit(e.to_string()))?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "settings recorded"
        );
        let sweep_gate = Arc::new(SweepGate::default());
        let state = web::Data::new(AppState {
            config: config.clone(),
            pipeline,
            storage: storage.clone(),
            addr_policy: ClientAddrPolicy {
                trusted_proxies: config.server.trusted_proxies.clone(),
                client_ip_header: config.server.client_ip_header,
                masks: config.privacy.masks(),
            },
            metrics: metrics.clone(),
            rate_limit: http::rate_limit::PrefixLimiter::from_config(&config.server),
            sweep_gate: sweep_gate.clone(),
            failed_tokens: http::auth::FailedTokens::new(config.auth.max_failed_tokens_per_minute),
            day_limits: crate::ingest::day_limits::DayLimits::new(
                config.store.max_new_strings_per_site_day,
                config.store.max_events_per_site_day,
            ),
        });

        let wanted = config.server.listen;
        let listener = TcpListener::bind(wanted).map_err(|source| StartError::Bind {
            addr: wanted,
            source,
        })?;
        let addr = listener.local_addr().map_err(StartError::Server)?;
        let timeout = config.server.client_timeout;
        let keep_alive = match config.server.keep_alive {
            Duration::ZERO => KeepAlive::Disabled,
            idle => KeepAlive::Timeout(idle),
        };
        // Shared by the middleware that fills it and the audit view.
        let cookie_watch = web::Data::new(http::cookie_watch::CookieWatch::new(
            &config.privacy.optout_cookie,
        ));
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(http::default_headers())
                .app_data(cookie_watch.clone())
                .wrap(actix_web::middleware::from_fn(
                    http::cookie_watch::watch_responses,
                ))
                .configure(http::routes)
        })
        .client_request_timeout(timeout)
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(keep_alive)
        .disable_signals()
        .shutdown_timeout(10);
        if config.server.workers > 0 {
            server = server.workers(config.server.workers);
        }
        let server = server.listen(listener).map_err(StartError::Server)?.run();
        let metrics_only = match config.server.metrics_listen {
            Some(listen) => Some(metrics_server(listen, metrics.clone())?),
            None => None,
        };
        let demo = match config.demo.as_ref().map(|demo| demo.listen) {
            Some(listen) => {
                Some(
                    http::demo::start(listen, addr).map_err(|source| StartError::Bind {
                        addr: listen,
                        source,
                    })?,
                )
            }
            None => None,
        };
        Ok(Application {
            addr,
            server,
            storage,
            config,
            salts,
            sweep_gate,
            demo,
            metrics_only,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or `handle().stop()`), then stops
    /// gracefully: in-flight requests finish, the writer commits everything
    /// queued, and the store is closed.
    pub async fn run_until_stopped(self) -> Result<(), StartError> {
        let handle = self.server.handle();
        // registered here, before "listening" is logged: a SIGTERM sent as
        // soon as a client sees the service up is a graceful stop, not the
        // default disposition
        let stop_requested = shutdown_signal();
        tokio::spawn(async move {
            stop_requested.await;
            tracing::info!("shutdown requested; finishing in-flight requests");
            handle.stop(true).await;
        });
        catch_file_size_signal();
        // before "listening": whoever waits for that line finds this one
        let metrics_only = self.metrics_only.map(|(server, addr)| {
            let handle = server.handle();
            tokio::spawn(server);
            tracing::info!(
                "metrics on http://{addr}/metrics (no token: keep this address internal)"
            );
            handle
        });
        tracing::info!("listening on http://{}", self.addr);
        let demo = self.demo.map(|(server, addr)| {
            let handle = server.handle();
            tokio::spawn(server);
            tracing::info!(
                "demo site on {} (open it and click around); the dashboard is at http://{}/dashboard (token: a site's `tokens` entry in the config)",
                http::demo::browse_url(addr),
                http::demo::collector_host(self.addr)
            );
            handle
        });
        let sweeper = crate::retention::SweeperTask::spawn(
            self.storage.clone(),
            self.config.clone(),
            self.sweep_gate.clone(),
        );
        let salt_rotation = tokio::spawn(rotate_salt_daily(self.salts.clone()));
        let served = self.server.await;
        salt_rotation.abort();
        if let Some(demo) = demo {
            demo.stop(true).await;
        }
        if let Some(metrics_only) = metrics_only {
            metrics_only.stop(true).await;
        }
        sweeper.stop().await;
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || storage.close())
            .await
            .map_err(|_| StorageError::Internal("the store's closing thread panicked".into()))??;
        if Arc::strong_count(&self.storage) > 1 {
            tracing::warn!("store still referenced at shutdown");
        }
        drop(self.storage);
        tracing::info!("store closed");
        served.map_err(StartError::Server)
    }
}

/// A listener on `listen` that serves `/metrics` only, without a token.
fn metrics_server(
    listen: SocketAddr,
    metrics: PrometheusHandle,
) -> Result<(Server, SocketAddr), StartError> {
    let bind_error = |source| StartError::Bind {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).map_err(bind_error)?;
    let addr = listener.local_addr().map_err(StartError::Server)?;
    let metrics = web::Data::new(metrics);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .wrap(http::default_headers())
            .route("/metrics", web::get().to(http::ops::metrics_without_token))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .map_err(StartError::Server)?
    .run();
    Ok((server, addr))
}

/// How often a shared salt is checked against the exchange (a candidate
/// that won late, salts older than yesterday left behind).
const SHARED_SALT_RECHECK: Duration = Duration::from_secs(60);
/// How often a collector hashing with a provisional salt of its own (the
/// exchange did not answer at rotation) asks again.
const PROVISIONAL_SALT_RETRY: Duration = Duration::from_secs(5);

/// Rotates the visitor salt at start-up and at each UTC midnight, whether
/// or not hits arrive, so a quiet site does not keep yesterday's salt.
/// A shared salt is also checked against the exchange at once when the
/// day changed and then every minute (every few seconds while it is
/// provisional): old shared salts are deleted there.
async fn rotate_salt_daily(salts: Arc<SaltKeeper>) {
    let mut checked: Option<(i64, std::time::Instant)> = None;
    loop {
        let now = crate::clock::now();
        let today = utc_day(now);
        // a shared salt is agreed over the network (and a new one waits
        // for concurrent offers): off the async threads
        let keeper = salts.clone();
        match tokio::task::spawn_blocking(move || keeper.rotate(today)).await {
            Ok(Ok(true)) => tracing::info!("visitor salt rotated; the previous one is destroyed"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "visitor salt rotation failed"),
            Err(e) => tracing::error!(error = %e, "visitor salt rotation panicked"),
        }
        if salts.is_shared() {
            let every = if salts.is_provisional() {
                PROVISIONAL_SALT_RETRY
            } else {
                SHARED_SALT_RECHECK
            };
            let due = checked.is_none_or(|(day, at)| day != today || at.elapsed() >= every);
            if due {
                checked = Some((today, std::time::Instant::now()));
                let keeper = salts.clone();
                match tokio::task::spawn_blocking(move || keeper.recheck(today)).await {
                    Ok(Ok(true)) => tracing::info!("now hashing with the shared visitor salt"),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "shared visitor salt check failed; retrying")
                    }
                    Err(e) => tracing::error!(error = %e, "shared visitor salt check panicked"),
                }
            }
        }
        tokio::time::sleep(crate::clock::until_next_check(now)).await;
    }
}

/// Turns SIGXFSZ (file-size limit reached) from "terminate the process"
/// into a logged event, so that a write past the limit fails with an error
/// the store handles (503 to ingest, reopen, resume) like a full disk.
fn catch_file_size_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::from_raw(libc::SIGXFSZ)) {
            Ok(mut sig) => {
                tokio::spawn(async move {
                    while sig.recv().await.is_some() {
                        tracing::warn!(
                            "file size limit reached (SIGXFSZ); writes fail until it is raised"
                        );
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot catch SIGXFSZ"),
        }
    }
}

/// SIGTERM or SIGINT. The handlers are installed when this is called; the
/// future completes at the first of them.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            (Ok(mut term), Err(_)) => {
                term.recv().await;
            }
            (Err(_), _) => std::future::pending().await,
        }
    }
}

#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
