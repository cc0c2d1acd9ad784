//! Terminal output: colours, diagnostics, logging set-up.

use crate::args::{Color, Global, LogFormat};
use std::io::IsTerminal;
use tidegate_core::Diagnostics;
use tracing_subscriber::EnvFilter;

/// Sends `tracing` events to stderr as text or JSON, at the level -v/-q ask
/// for (`RUST_LOG` wins when set).
pub fn init_logging(global: &Global, long_running: bool) {
    // A long-running command (the controller) reports what it does at
    // info level: nobody watches its output line by line.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let base = log_filter(global.quiet, global.verbose);
        if long_running && !global.quiet && global.verbose == 0 {
            EnvFilter::new(format!("{base},tidegate=info"))
        } else {
            EnvFilter::new(base)
        }
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match global.log_format {
        LogFormat::Json => builder.json().with_current_span(true).init(),
        LogFormat::Text => builder
            .with_ansi(Style::new(global.color).enabled)
            .without_time()
            .init(),
    }
}

/// The log filter for `-q` / `-v`...: verbosity raises Tidegate's own
/// targets (`tidegate*`) only. Libraries stay at info at most, since their
/// debug and trace events carry credentials (signed AWS requests, bearer
/// headers, session tokens); `RUST_LOG` can still ask for them.
fn log_filter(quiet: bool, verbose: u8) -> &'static str {
    if quiet {
        return "error";
    }
    match verbose {
        // The AWS credential chain warns (with debug dumps) about every
        // provider it tries; the error Tidegate reports says what failed.
        0 => "warn,aws_config=error",
        1 => "info,aws_config=error,tidegate=debug",
        _ => "info,aws_config=error,tidegate=trace",
    }
}

/// ANSI styling, on only when wanted.
pub struct Style {
    enabled: bool,
}

impl Style {
    /// Decides once: `always`, `never`, or (auto) a terminal without `NO_COLOR`.
    pub fn new(color: Color) -> Self {
        let enabled = match color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        Style { enabled }
    }

    /// True when colours are on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Red bold.
    pub fn error(&self, text: &str) -> String {
        self.paint("1;31", text)
    }

    /// Green.
    pub fn ok(&self, text: &str) -> String {
        self.paint("32", text)
    }

    /// Dim.
    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }

    /// Prints every diagnostic to stderr, then a count.
    pub fn print_diagnostics(&self, diagnostics: &Diagnostics) {
        for d in diagnostics.iter() {
            let mut text = d.to_string();
            if let Some(i) = text.find("\n  help:") {
                let (head, help) = text.split_at(i);
                text = format!("{head}{}", self.dim(help));
            }
            errln!("{} {text}", self.error("error:"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;
    use tracing_subscriber::{EnvFilter, layer::SubscriberExt as _};

    /// Whether an event of `target` at `level` passes the filter for `-v` x `verbose`.
    fn enabled(verbose: u8, target: &'static str, level: Level) -> bool {
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = seen.clone();
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::new(log_filter(false, verbose)))
            .with(tracing_subscriber::fmt::layer().with_writer(move || {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                std::io::sink()
            }));
        tracing::subscriber::with_default(subscriber, || match (target, level) {
            ("tidegate_cloud::eks", Level::TRACE) => {
                tracing::trace!(target: "tidegate_cloud::eks", "x")
            }
            ("tidegate", Level::DEBUG) => tracing::debug!(target: "tidegate", "x"),
            ("aws_smithy_runtime::client", Level::TRACE) => {
                tracing::trace!(target: "aws_smithy_runtime::client", "x")
            }
            ("hyper_util::client", Level::DEBUG) => {
                tracing::debug!(target: "hyper_util::client", "x")
            }
            ("kube_client::client", Level::INFO) => {
                tracing::info!(target: "kube_client::client", "x")
            }
            _ => unreachable!("not a case of this test"),
        });
        seen.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn verbosity_raises_only_tidegate_targets() {
        assert!(enabled(2, "tidegate_cloud::eks", Level::TRACE));
        assert!(enabled(1, "tidegate", Level::DEBUG));
        assert!(!enabled(1, "tidegate_cloud::eks", Level::TRACE));
        for verbose in [1, 2, 3] {
            assert!(!enabled(
                verbose,
                "aws_smithy_runtime::client",
                Level::TRACE
            ));
            assert!(!enabled(verbose, "hyper_util::client", Level::DEBUG));
            assert!(enabled(verbose, "kube_client::client", Level::INFO));
        }
        assert!(!enabled(0, "kube_client::client", Level::INFO));
    }
}
