//! The `queuehub` binary: parse the configuration, start logging, serve until SIGINT/SIGTERM.

use clap::Parser;
use queuehub::config::{Cli, Config};
use queuehub::{Application, app, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_cli(Cli::parse())?;
    telemetry::init();
    let mode = config.security.describe();
    if config.security.secured() {
        tracing::info!("{mode}");
    } else {
        tracing::warn!("{mode}");
    }
    let application = Application::build(config).await?;
    application.run_until_stopped(app::shutdown_signal()).await
}
