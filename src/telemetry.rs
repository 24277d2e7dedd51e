//! Logging set-up. Logs go to stderr so that CLI output on stdout stays clean;
//! `--log-level` (or `PROMOTER_LOG_LEVEL`), else `RUST_LOG`, overrides the
//! default level. Human-readable lines by default, in
//! colour only when stderr is a terminal (a file or a journal gets plain text);
//! one JSON object per line with `--log-format json`, for log collectors.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event; coloured on a terminal only.
    #[default]
    Human,
    /// One JSON object per event, with the request's fields.
    Json,
}

/// Checks a `--log-level` value: a level (`debug`) or a `tracing` filter
/// (`info,promoter::webhooks=debug`).
pub fn parse_log_level(text: &str) -> Result<String, String> {
    EnvFilter::builder()
        .parse(text)
        .map(|_| text.to_owned())
        .map_err(|error| format!("not a level or a tracing filter: {error}"))
}

/// Starts logging: `level` is `--log-level` when given.
pub fn init(level: Option<&str>, default_level: &str, format: LogFormat) {
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},sqlx=warn"))),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Panics outside a request (a background task) go through the log too, so
    // that a JSON log stays JSON.
    std::panic::set_hook(Box::new(|panic| {
        tracing::error!(panic = %panic, "panicked");
    }));
    match format {
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
