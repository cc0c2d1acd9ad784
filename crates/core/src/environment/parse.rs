//! Reading and checking an environment file.

use super::{Environment, Located};
use crate::{Diagnostic, Diagnostics, paths};
use std::collections::BTreeSet;

/// The only `apiVersion` this version of Tidegate reads.
pub const API_VERSION: &str = "tidegate.dev/v1alpha1";
/// The `kind` of an environment file.
pub const KIND: &str = "Environment";

/// Largest environment file read, in bytes.
const MAX_ENVIRONMENT_BYTES: usize = 1 << 20;

impl Environment {
    /// Parses and checks an environment file. `file` is the path shown in
    /// diagnostics (relative to the repository root). Every problem found is
    /// returned, each with its line and a hint.
    pub fn parse(text: &str, file: &str) -> Result<Environment, Diagnostics> {
        if text.len() > MAX_ENVIRONMENT_BYTES {
            return Err(Diagnostic::new(format!(
                "environment file is {} bytes, more than the {MAX_ENVIRONMENT_BYTES} allowed",
                text.len()
            ))
            .at(file, None)
            .help("split the environment or move data into manifests")
            .into());
        }
        // Numbers as Kubernetes reads them (YAML 1.1: `0400` is octal), so a
        // patch value means what it means in a manifest; booleans strictly.
        let options = serde_saphyr::options! {
            strict_booleans: true,
            legacy_octal_numbers: true,
        };
        let mut env: Environment = serde_saphyr::from_str_with_options(text, options)
            .map_err(|e| Diagnostics::from(yaml_diagnostic(&e, file)))?;
        env.integral_patch_values();
        let mut problems = env.check(file);
        problems.extend(super::values::check(&env, text, file));
        problems.into_result(env)
    }

    /// Patch values reach the API server as integers where they are
    /// integral (`08` and `1.0` are 8 and 1, never `8.0`), as `kubectl` sends
    /// them.
    fn integral_patch_values(&mut self) {
        let patches = self
            .spec
            .apps
            .iter_mut()
            .flat_map(|a| a.value.overlays.iter_mut())
            .flat_map(|o| o.value.patches.iter_mut());
        for patch in patches {
            for value in [&mut patch.value.merge, &mut patch.value.json]
                .into_iter()
                .flatten()
            {
                crate::numbers::integral_floats_as_integers(value);
            }
        }
    }

    /// Semantic checks that the types alone cannot express.
    fn check(&self, file: &str) -> Diagnostics {
        let mut out = Diagnostics::default();
        let mut problem = |line: u64, message: String, help: &str| {
            out.push(
                Diagnostic::new(message)
                    .at(file, (line > 0).then_some(line))
                    .help(help),
            );
        };
        if self.api_version != API_VERSION {
            problem(
                1,
                format!("apiVersion is {:?}", self.api_version),
                &format!("write `apiVersion: {API_VERSION}`"),
            );
        }
        if self.kind != KIND {
            problem(
                1,
                format!("kind is {:?}", self.kind),
                "write `kind: Environment`",
            );
        }
        if let Some(stem) = file_stem(file)
            && stem != self.metadata.name
        {
            problem(
                1,
                format!(
                    "metadata.name is {:?} but the file is named {stem:?}",
                    self.metadata.name
                ),
                "name the file after the environment (environments/<name>.yaml)",
            );
        }
        if let Err(e) = paths::normalize(&self.spec.source.path) {
            problem(
                self.spec.source.path.line,
                format!("spec.source.path: {e}"),
                "keep manifests inside the repository",
            );
        }
        if self.spec.clusters.is_empty()
            && self.spec.clusters.discover().is_empty()
            && self.spec.clusters.malformed().is_empty()
        {
            problem(
                1,
                "spec.clusters is empty".into(),
                "list at least one cluster",
            );
        }
        for (line, message, help) in self.spec.clusters.malformed() {
            problem(*line, message.clone(), help);
        }
        for (line, who, path) in self.spec.clusters.kubeconfig_files() {
            problem(
                line,
                format!(
                    "{who}: kubeconfig file {path:?} is named by the repository; Tidegate reads kubeconfig files only from its operator"
                ),
                "remove `file:` (keep `context:` to pick a context); the operator passes the kubeconfig with --kubeconfig PATH or KUBECONFIG (see SECURITY.md)",
            );
        }
        for entry in self.spec.clusters.discover() {
            for (message, help) in entry.discover.problems() {
                problem(entry.line, message, &help);
            }
        }
        check_unique(
            self.spec.clusters.iter().map(|c| (c.name.as_str(), c.line)),
            "cluster",
            &mut problem,
        );
        for cluster in &self.spec.clusters {
            if !is_dns_label(&cluster.name) {
                problem(
                    cluster.line,
                    format!("cluster name {:?} is not a DNS label", cluster.name),
                    "use lower-case letters, digits and '-' (at most 63 characters)",
                );
            }
        }
        check_unique(
            self.spec.apps.iter().map(|a| (a.name.as_str(), a.line)),
            "app",
            &mut problem,
        );
        for app in &self.spec.apps {
            if !is_dns_label(&app.name) {
                problem(
                    app.line,
                    format!("app name {:?} is not a DNS label", app.name),
                    "use lower-case letters, digits and '-' (at most 63 characters)",
                );
            }
            if let Err(e) = paths::normalize(app.manifests_dir()) {
                problem(
                    app.line,
                    format!("app {}: path: {e}", app.name),
                    "keep the app inside spec.source.path",
                );
            }
            for (line, message, help) in super::template::check_app(app) {
                problem(line, message, &help);
            }
            for overlay in &app.overlays {
                for patch in &overlay.patches {
                    match (&patch.merge, &patch.json) {
                        (Some(_), Some(_)) | (None, None) => problem(
                            patch.line,
                            format!(
                                "app {}: a patch needs exactly one of `merge` and `json`",
                                app.name
                            ),
                            "use `merge:` for a JSON merge patch (RFC 7386) or `json:` for a JSON patch (RFC 6902)",
                        ),
                        (None, Some(json)) if !json.is_array() => problem(
                            patch.line,
                            format!("app {}: `json` must be a list of operations", app.name),
                            "write `json: [{op: replace, path: /spec/replicas, value: 2}]`",
                        ),
                        _ => {}
                    }
                }
                for image in &overlay.images {
                    if image.new_name.is_none() && image.new_tag.is_none() && image.digest.is_none()
                    {
                        problem(
                            image.line,
                            format!(
                                "app {}: image override of {:?} changes nothing",
                                app.name, image.name
                            ),
                            "set newTag, digest or newName",
                        );
                    }
                }
            }
        }
        let rollout = &self.spec.rollout;
        if rollout.max_surge.is_zero() && rollout.max_unavailable.is_zero() {
            problem(
                1,
                "spec.rollout: maxSurge and maxUnavailable are both 0, so no cluster could ever change".into(),
                "set maxSurge to at least 1 (or maxUnavailable above 0)",
            );
        }
        for (line, message, help) in self.analysis_problems() {
            problem(line, message, &help);
        }
        for bg in &self.spec.blue_green {
            self.check_blue_green(bg, &mut problem);
        }
        super::windows::check(self, &mut problem);
        for ignore in &self.spec.sync.ignore_differences {
            for pointer in &ignore.json_pointers {
                if !pointer.starts_with('/') {
                    problem(
                        ignore.line,
                        format!("ignoreDifferences: {pointer:?} is not a JSON pointer"),
                        "JSON pointers start with '/', e.g. /spec/replicas",
                    );
                }
            }
        }
        for check in &self.spec.health.checks {
            if check.cel.is_some() == check.lua.is_some() {
                problem(
                    check.line,
                    format!(
                        "spec.health.checks: the check for {}/{} needs exactly one of `cel` and `lua`",
                        check.group, check.kind
                    ),
                    "give CEL expressions (cel: {current: ...}) or a Lua script (lua: |), not both",
                );
            }
            if check.kind.is_empty() {
                problem(
                    check.line,
                    "spec.health.checks: kind is empty".into(),
                    "name a kind, or `*` for every kind of the group",
                );
            }
        }
        // Which waves have clusters is known once discovery has run.
        if self.spec.clusters.discover().is_empty() {
            out.extend(self.check_waves(file));
            out.extend(super::windows::check_cluster_names(self, file));
        }
        out
    }

    /// Every wave given settings in `spec.rollout.waves` has a cluster.
    pub(super) fn check_waves(&self, file: &str) -> Diagnostics {
        let mut out = Diagnostics::default();
        let waves: BTreeSet<u32> = self.spec.clusters.iter().filter_map(|c| c.wave).collect();
        for wave in &self.spec.rollout.waves {
            if !waves.contains(&wave.wave) {
                out.push(
                    Diagnostic::new(format!(
                        "spec.rollout.waves: wave {} has no cluster",
                        wave.wave
                    ))
                    .at(file, wave.line())
                    .help("set `wave:` on a cluster (or a wave tag on discovered clusters) or remove this entry"),
                );
            }
        }
        out
    }

    fn check_blue_green(
        &self,
        bg: &Located<super::BlueGreen>,
        problem: &mut impl FnMut(u64, String, &str),
    ) {
        if self.app(&bg.app).is_none() {
            problem(
                bg.line,
                format!("blueGreen: app {:?} is not in spec.apps", bg.app),
                "name an app listed under spec.apps",
            );
        }
        if bg.colors.len() != 2 {
            problem(
                bg.line,
                format!("blueGreen {}: {} colours given", bg.app, bg.colors.len()),
                "give exactly two colours, e.g. blue and green",
            );
        }
        if !bg.colors.contains_key(&bg.active_color) {
            problem(
                bg.line,
                format!(
                    "blueGreen {}: activeColor {:?} is not one of the colours",
                    bg.app, bg.active_color
                ),
                "set activeColor to one of the keys of `colors`",
            );
        }
        if bg.services.is_empty() {
            problem(
                bg.line,
                format!("blueGreen {}: no services", bg.app),
                "list the Service(s) to switch",
            );
        }
    }
}

/// Turns a YAML or schema error into a diagnostic with its line.
pub(crate) fn yaml_diagnostic(e: &serde_saphyr::Error, file: &str) -> Diagnostic {
    let line = e.location().map(|l| l.line()).filter(|l| *l > 0);
    let message = plain_message(e);
    let help = if message.contains("unknown field") {
        "remove or correct the field; the valid fields are listed above"
    } else if message.contains("unknown variant") {
        "use one of the values listed above"
    } else if message.contains("boolean") {
        "write true or false (YAML 1.1 spellings like yes/on are not accepted here)"
    } else if message.contains("missing field") {
        "add the field (see docs/environments.md)"
    } else {
        "fix the YAML syntax at this line"
    };
    Diagnostic::new(message).at(file, line).help(help)
}

/// The error message without serde-saphyr's source snippet and location suffix.
fn plain_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or_default().trim();
    // Strip a trailing " at line N column M" that the location already carries.
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

fn check_unique<'a>(
    names: impl Iterator<Item = (&'a str, u64)>,
    what: &str,
    problem: &mut impl FnMut(u64, String, &str),
) {
    let mut seen = BTreeSet::new();
    for (name, line) in names {
        if !seen.insert(name) {
            problem(
                line,
                format!("{what} {name:?} is listed twice"),
                "give every entry a unique name",
            );
        }
    }
}

fn file_stem(file: &str) -> Option<&str> {
    let base = file.rsplit('/').next()?;
    base.strip_suffix(".yaml")
        .or_else(|| base.strip_suffix(".yml"))
}

/// RFC 1123 label: lower-case alphanumerics and '-', 1–63 characters.
pub(crate) fn is_dns_label(s: &str) -> bool {
    crate::names::is_dns_label(s)
}

#[cfg(test)]
mod tests;
