//! Credentials of the sinks: read from where the operator says (a variable
//! or a file), never shown by `Debug` or in a log line.

use serde::Deserialize;
use std::{fmt, path::PathBuf};

/// A credential (a Slack or Teams URL, an HMAC key, a token). `Debug` and
/// `Display` show `<redacted>`; the text is only read to sign or send.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret from its text.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The text, for signing or sending only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a secret is read from, as the operator's file writes it:
/// `{env: VAR}` or `{file: /path}` (one trailing newline removed).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// An environment variable of the controller's process.
    #[serde(default)]
    pub env: Option<String>,
    /// A file (e.g. a mounted Kubernetes Secret).
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl SecretSource {
    /// Reads the secret; the error says what is missing, never the value.
    pub fn read(&self) -> Result<Secret, String> {
        let text = match (&self.env, &self.file) {
            (Some(var), None) => match std::env::var(var) {
                Ok(text) => text,
                Err(std::env::VarError::NotPresent) => {
                    return Err(format!("the variable {var} is not set"));
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(format!("the variable {var} is not valid UTF-8"));
                }
            },
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            _ => return Err("give exactly one of `env` or `file`".into()),
        };
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.is_empty() {
            return Err(format!("{} is empty", self.describe()));
        }
        Ok(Secret(text.to_string()))
    }

    /// Where it comes from, for messages (`the variable X`, `the file F`).
    pub fn describe(&self) -> String {
        match (&self.env, &self.file) {
            (Some(var), _) => format!("the variable {var}"),
            (_, Some(path)) => format!("the file {}", path.display()),
            _ => "nothing".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let s = Secret::new("hunter2-xoxb");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{s}"), "<redacted>");
        assert!(!format!("{:?}", Some(&s)).contains("hunter2"));
    }

    #[test]
    fn a_file_secret_loses_one_trailing_newline_and_an_empty_one_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("key");
        std::fs::write(&path, "k3y\n").expect("write");
        let source = SecretSource {
            env: None,
            file: Some(path.clone()),
        };
        assert_eq!(source.read().expect("read").expose(), "k3y");
        std::fs::write(&path, "\n").expect("write");
        assert!(source.read().expect_err("empty").contains("is empty"));
        let missing = SecretSource {
            env: Some("TIDEGATE_NOTIFY_TEST_UNSET_VARIABLE".into()),
            file: None,
        };
        assert_eq!(
            missing.read().expect_err("unset"),
            "the variable TIDEGATE_NOTIFY_TEST_UNSET_VARIABLE is not set"
        );
    }
}
