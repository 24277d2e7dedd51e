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

/// The levels a `--log-level` value may name.
const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// Checks a `--log-level` value: a level (`debug`) or a `tracing` filter
/// (`info,promoter::webhooks=debug`) whose every directive ends in a level.
/// `tracing` itself takes any other word as a target to log at every level,
/// so a misspelt level (`warning`, `debg`) would log nothing at all.
pub fn parse_log_level(text: &str) -> Result<String, String> {
    let levels = || format!("the levels are {}", LEVELS.join(", "));
    for directive in text.split(',').map(str::trim) {
        // `target[span{field=value}]=level`: the level is after the last `=`.
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if !LEVELS.iter().any(|known| level.eq_ignore_ascii_case(known)) {
            return Err(if directive.contains('=') {
                format!("{directive:?} does not end in a level; {}", levels())
            } else {
                format!("{directive:?} is not a level; {}", levels())
            });
        }
    }
    EnvFilter::builder()
        .parse(text)
        .map(|_| text.to_owned())
        .map_err(|error| format!("not a tracing filter: {error}"))
}

/// Starts logging: `level` is `--log-level` when given.
pub fn init(level: Option<&str>, default_level: &str, format: LogFormat) {
    // RUST_LOG is read by the same rule as --log-level: a misspelt level
    // there must not silence the server either. It is not ours alone, so it
    // is passed over with a warning rather than refused.
    let from_environment = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let ignored = from_environment.as_deref().and_then(|value| {
        parse_log_level(value)
            .err()
            .map(|why| (value.to_owned(), why))
    });
    let filter = match (level, &from_environment, &ignored) {
        (Some(level), _, _) => EnvFilter::new(level),
        (None, Some(value), None) => EnvFilter::new(value),
        _ => EnvFilter::new(format!("{default_level},sqlx=warn")),
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
    if let (None, Some((value, why))) = (level, ignored) {
        tracing::warn!(rust_log = %value, "RUST_LOG is ignored: {why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_level_must_name_a_level() {
        for good in [
            "debug",
            "WARN",
            "off",
            "info,promoter::webhooks=debug",
            "info,sqlx=warn",
        ] {
            assert_eq!(parse_log_level(good).as_deref(), Ok(good));
        }
        assert_eq!(
            parse_log_level("warning").unwrap_err(),
            "\"warning\" is not a level; the levels are error, warn, info, debug, trace, off"
        );
        assert!(parse_log_level("debg").is_err());
        assert!(parse_log_level("promoter::webhooks").is_err());
        assert_eq!(
            parse_log_level("info,promoter=verbose").unwrap_err(),
            "\"promoter=verbose\" does not end in a level; the levels are error, warn, info, debug, trace, off"
        );
        assert!(parse_log_level("").is_err());
    }
}
