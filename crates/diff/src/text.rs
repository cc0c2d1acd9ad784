//! A unified, optionally coloured YAML diff for people.

use crate::ObjectDiff;

/// The diff as unified YAML (`---` live, `+++` desired), coloured when asked.
pub fn unified(diff: &ObjectDiff, color: bool) -> String {
    let yaml = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .map(|v| serde_saphyr::to_string(v).unwrap_or_else(|e| format!("# unprintable: {e}\n")))
            .unwrap_or_default()
    };
    let (before, after) = (yaml(&diff.before), yaml(&diff.after));
    let text = similar::TextDiff::from_lines(&before, &after);
    let name = diff.key.to_string();
    let rendered = text
        .unified_diff()
        .context_radius(3)
        .header(&format!("live/{name}"), &format!("desired/{name}"))
        .to_string();
    if !color {
        return rendered;
    }
    rendered
        .lines()
        .map(|line| {
            let code = match line.as_bytes().first() {
                Some(b'+') => "32",
                Some(b'-') => "31",
                Some(b'@') => "36",
                _ => return format!("{line}\n"),
            };
            format!("\x1b[{code}m{line}\x1b[0m\n")
        })
        .collect()
}
