//! The `sparsam` command line: `serve` (the default), `ua`, `import`, `sweep` and `audit`. Only argument
//! parsing and process set-up live here; everything else is in the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sparsam::enrich::device::DeviceDetector;
use sparsam::{Application, Config};

#[derive(Parser)]
#[command(
    name = "sparsam",
    version,
    about = "Privacy-first web analytics collector"
)]
struct Cli {
    /// Config file.
    #[arg(
        short,
        long,
        global = true,
        env = "SPARSAM_CONFIG",
        default_value = "config/sparsam.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector (the default).
    Serve,
    /// Classify user agents: one JSON object per line on stdin
    /// (`{"ua": "...", "headers": {...}}`), one classification per line out.
    Ua,
    /// Count page views and downloads from web server access logs
    /// (combined format, `.gz` allowed); the server must be stopped.
    Import {
        /// Site id the logs belong to.
        #[arg(long)]
        site: String,
        /// Log format.
        #[arg(long, default_value = "combined")]
        format: String,
        /// Log files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Delete expired raw data now and print what was deleted.
    Sweep {
        /// Only print what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Rewrite the store file with live data only, so deleted data is gone
    /// from the disk file too; the server must be stopped.
    Compact,
    /// Copy the embedded store's raw events and audit log into the
    /// ClickHouse database of the `[clickhouse]` section, day by day;
    /// resumable, with every day counted on both sides at the end. The
    /// server must be stopped. Exits with status 1 when a count differs.
    Migrate {
        /// Where to copy to.
        #[arg(long, value_enum)]
        to: MigrateTarget,
    },
    /// Print the audit view (retention, masks, sweeps, verification);
    /// exits with status 2 when the verification fails.
    Audit {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Engines `sparsam migrate` can copy the embedded store into.
#[derive(Clone, Copy, clap::ValueEnum)]
enum MigrateTarget {
    Clickhouse,
}

fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SPARSAM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Every file and directory this process creates (store, its vacuumed
    // copy, salt, exports) is for its owner only.
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = Config::load(&cli.config)
                .with_context(|| format!("invalid configuration in {}", cli.config.display()))?;
            init_logging(config.server.log_format == sparsam::config::LogFormat::Json);
            let workers = if config.server.workers > 0 {
                config.server.workers
            } else {
                num_cpus()
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers.max(1))
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(async move {
                let app = Application::build(config).context("starting sparsam")?;
                // actix needs its own system; run it on this runtime's thread.
                app.run_until_stopped().await.context("serving")
            })
        }
        Command::Sweep { dry_run } => {
            let config = load(&cli.config)?;
            init_logging(false);
            print!("{}", sparsam::retention::sweep_command(&config, dry_run)?);
            Ok(())
        }
        Command::Compact => {
            let config = load(&cli.config)?;
            init_logging(false);
            print!("{}", sparsam::retention::compact_command(&config)?);
            Ok(())
        }
        Command::Import {
            site,
            format,
            files,
        } => {
            let config = load(&cli.config)?;
            init_logging(false);
            let report = sparsam::import::import_command(&config, &site, &format, &files)?;
            print!("{}", report.render());
            Ok(())
        }
        Command::Migrate {
            to: MigrateTarget::Clickhouse,
        } => {
            let config = load(&cli.config)?;
            init_logging(false);
            let report = sparsam::storage::migrate::migrate_to_clickhouse(&config)?;
            print!("{}", report.render());
            if !report.problems().is_empty() {
                eprintln!("migration incomplete: see the days marked above");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Audit { json } => {
            let config = load(&cli.config)?;
            let (text, ok) = sparsam::retention::audit_command(&config, json)?;
            print!("{text}");
            if !ok {
                eprintln!("audit verification FAILED");
                std::process::exit(2);
            }
            Ok(())
        }
        Command::Ua => {
            let detector = DeviceDetector::try_new(10_000).context("loading device data")?;
            let stdin = std::io::stdin().lock();
            let stdout = std::io::stdout().lock();
            sparsam::enrich::ua_cli::run(stdin, stdout, &detector).context("classifying")?;
            Ok(())
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| format!("invalid configuration in {}", path.display()))
}

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
