//! The `sparsam` command line: `serve` (the default) and `ua`. Only argument
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
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = Config::load(&cli.config)
                .with_context(|| format!("invalid configuration in {}", cli.config.display()))?;
            init_logging(config.server.log_format == "json");
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
        Command::Ua => {
            let detector = DeviceDetector::try_new(10_000).context("loading device data")?;
            let stdin = std::io::stdin().lock();
            let stdout = std::io::stdout().lock();
            sparsam::enrich::ua_cli::run(stdin, stdout, &detector).context("classifying")?;
            Ok(())
        }
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
