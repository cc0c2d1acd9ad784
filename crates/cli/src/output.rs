//! Terminal output: colours, diagnostics, logging set-up.

use crate::args::{Color, Global, LogFormat};
use std::io::IsTerminal;
use tidegate_core::Diagnostics;
use tracing_subscriber::EnvFilter;

/// Sends `tracing` events to stderr as text or JSON, at the level -v/-q ask
/// for (`RUST_LOG` wins when set).
pub fn init_logging(global: &Global) {
    let level = if global.quiet {
        "error"
    } else {
        match global.verbose {
            // The AWS credential chain warns (with debug dumps) about every
            // provider it tries; the error Tidegate reports says what failed.
            0 => "warn,aws_config=error",
            1 => "debug",
            _ => "trace",
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
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
            eprintln!("{} {text}", self.error("error:"));
        }
    }
}
