//! Text from repository content made safe to print on a terminal.
//!
//! File names, object names and values come from untrusted commits. A
//! newline in a file name would start a new YAML document in `tidegate
//! render` output, and an escape sequence would let a commit rewrite the
//! screen. Everything shown to people goes through [`printable`].

use std::borrow::Cow;

/// `text` with every control character (C0, DEL, C1, and the Unicode line
/// and paragraph separators) written as a Rust escape such as `\n` or
/// `\u{1b}`; borrowed unchanged when there is none.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unprintable) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unprintable(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// True for characters that move the cursor or start terminal sequences.
pub fn is_unprintable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters_only() {
        assert!(matches!(printable("manifests/a b.yaml"), Cow::Borrowed(_)));
        assert_eq!(printable("a\nb"), "a\\nb");
        assert_eq!(printable("x\u{1b}[31mred"), "x\\u{1b}[31mred");
        assert_eq!(printable("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(printable("é ü"), "é ü");
    }

    #[test]
    fn diagnostics_and_provenance_never_print_control_characters() {
        let d = crate::Diagnostic::new("name \"a\u{1b}]0;pwned\u{7}\"")
            .at("m/x\n---\nkind: Secret.yaml", Some(3))
            .for_object("ConfigMap ns/a\rb")
            .help("rename\u{9b}");
        let shown = d.to_string();
        assert!(
            !shown.chars().any(|c| c.is_control() && c != '\n'),
            "{shown:?}"
        );
        assert_eq!(
            shown.lines().count(),
            2,
            "only the help line breaks: {shown:?}"
        );
        assert!(
            shown.starts_with("m/x\\n---\\nkind: Secret.yaml:3: "),
            "{shown}"
        );
        let p = crate::Provenance {
            commit: "c".into(),
            path: "a\nb.yaml".into(),
            document: 0,
            line: 1,
        };
        assert_eq!(p.to_string(), "a\\nb.yaml:1");
    }
}
