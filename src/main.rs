//! The `queuehub` binary: parse the configuration, start logging, serve until SIGINT/SIGTERM.

use clap::Parser;
use queuehub::config::{Cli, Config};
use queuehub::{Application, app, telemetry};

/// jemalloc: the server allocates and frees many small buffers per message and per delivery,
/// from several threads; under load glibc's malloc and free took about a quarter of its CPU,
/// and the 500 msg/s fan-out sometimes fell behind with it. Measured side by side with
/// queuehub-bench (docs/BENCHMARKS.md): less server CPU for the same load, the fan-out held,
/// and the memory of an idle socket about the same.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.print_config {
        print!("{}", queuehub::config::print_config(&cli)?);
        return Ok(());
    }
    let config = Config::from_cli(cli)?;
    telemetry::init();
    // Every connection takes a file descriptor: raise the soft limit to the hard one.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(err) => tracing::warn!(error = %err, "cannot raise the open file limit"),
    }
    let mode = config.security.describe();
    if config.security.secured() {
        tracing::info!("{mode}");
    } else {
        tracing::warn!("{mode}");
    }
    let application = Application::build(config).await?;
    application.run_until_stopped(app::shutdown_signal()).await
}
