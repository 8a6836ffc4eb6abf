//! Structured logs with `tracing`: one line per connection, subscription and error at info
//! level. `RUST_LOG` overrides the default filter.

use tracing_subscriber::EnvFilter;

/// Installs the global log subscriber; call once, at start.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,socketioxide=warn,engineioxide=warn,tower_http=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}
