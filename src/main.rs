//! The `queuehub` binary: parse the configuration, start logging, serve until SIGINT/SIGTERM.

use clap::Parser;
use queuehub::config::{Cli, Config};
use queuehub::{Application, app, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_cli(Cli::parse())?;
    telemetry::init();
    if !config.security.secured() {
        tracing::warn!(
            "open mode: no authentication; anyone who can reach queuehub can publish and read (see docs/SECURITY.md for --api-key and --token-secret)"
        );
    }
    let application = Application::build(config).await?;
    application.run_until_stopped(app::shutdown_signal()).await
}
