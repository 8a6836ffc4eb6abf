//! The `queuehub` binary: parse the configuration, start logging, serve until SIGINT/SIGTERM.

use clap::Parser;
use queuehub::config::{Cli, Config};
use queuehub::{Application, app, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_cli(Cli::parse())?;
    telemetry::init();
    tracing::warn!(
        "open mode: no authentication; anyone who can reach queuehub can publish and read (secured mode arrives with issue 5)"
    );
    let application = Application::build(config).await?;
    application.run_until_stopped(app::shutdown_signal()).await
}
