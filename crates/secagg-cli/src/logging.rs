//! Logs of the long-running commands (`server`, `client`, `gateway`) through `tracing`: to
//! stderr, as text for people or as one JSON object per line for log pipelines
//! (`--log-format json`), filtered by `--log-level` (`info`, or per target, e.g.
//! `warn,secagg_service=debug`). Results (JSON reports, round ids) stay on stdout.

use clap::ValueEnum;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event: timestamp, level, target, message and fields.
    Json,
}

/// Parses a `--log-level` filter: a level (`error`, `warn`, `info`, `debug`, `trace`, `off`),
/// or comma-separated `target=level` directives with an optional default level.
pub fn parse_filter(s: &str) -> Result<Targets, String> {
    let hint = "e.g. info, or warn,secagg_service=debug";
    // `Targets` reads a bare word as a target name; here a bare word must be a level, so that
    // a misspelt level is an error rather than a filter that drops every line.
    for d in s.split(',').filter(|d| !d.contains('=')) {
        d.trim()
            .parse::<LevelFilter>()
            .map_err(|_| format!("invalid log level {d:?} in {s:?} ({hint})"))?;
    }
    s.parse::<Targets>()
        .map_err(|e| format!("invalid log level {s:?}: {e} ({hint})"))
}

/// Installs the global subscriber. Called once, before any command runs.
pub fn init(format: LogFormat, filter: Targets) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE);
    // `try_init` fails only if a subscriber is already set (never, in this binary).
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(ansi)
            .with_target(false)
            .finish()
            .with(filter)
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .finish()
            .with(filter)
            .try_init(),
    };
}
