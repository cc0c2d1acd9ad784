//! Building an environment's [`HealthChecks`] from its file
//! (`spec.health`) and the scripts of its checks directory, with every
//! problem reported at its file and line (what `tidegate validate` prints).

use crate::cel::CelExprs;
use crate::checks::{CheckError, HealthChecks};
use crate::context::{Context, IngressWithoutClass};
use tidegate_core::environment::{self, Located};
use tidegate_core::files::{FileContent, SourceFile};
use tidegate_core::{Diagnostic, Diagnostics, Environment};

// === impl HealthChecks ===

impl HealthChecks {
    /// The checks of `env` (read from `env_file`): its `spec.health.checks`
    /// and the `health.lua` files of `spec.health.checksPath` in `scripts`
    /// (as read from the commit). Returns the checks that could be built
    /// and a diagnostic for every one that could not.
    pub fn for_environment(
        env: &Environment,
        env_file: &str,
        scripts: &[SourceFile],
    ) -> (HealthChecks, Diagnostics) {
        let options = &env.spec.health;
        let mut checks = HealthChecks::new();
        let mut problems = Diagnostics::default();
        for check in &options.checks {
            if let Some(cel) = &check.cel {
                add_cel(&mut checks, check, cel, env_file, &mut problems);
            } else if let Some(lua) = &check.lua {
                let name = format!("{env_file} (check at line {})", check.line);
                if let Err(e) = checks.add_inline_lua(&check.group, &check.kind, &name, lua) {
                    let line = match &e {
                        // The value of a block scalar starts on the line after `lua: |`.
                        CheckError::Lua(l) => l.line.map(|n| lua.line + n.saturating_sub(1)),
                        _ => None,
                    };
                    problems.push(
                        Diagnostic::new(format!("spec.health.checks: Lua: {e}"))
                            .at(env_file, line.or(lua.line()))
                            .help("fix the script; `tidegate health -f FILE --env ENV` runs it on objects in a file"),
                    );
                }
            }
        }
        if let Some(dir) = &options.checks_path {
            let mut texts = Vec::new();
            for file in scripts {
                match &file.content {
                    FileContent::Bytes(bytes) => match std::str::from_utf8(bytes) {
                        Ok(text) => texts.push((file.path.as_str(), text)),
                        Err(_) => problems.push(
                            Diagnostic::new("health check is not valid UTF-8")
                                .at(&file.path, None),
                        ),
                    },
                    other => problems.push(
                        Diagnostic::new(format!("health check not loaded: {other:?}"))
                            .at(&file.path, None)
                            .help("keep health checks small regular files inside the checks directory"),
                    ),
                }
            }
            for e in checks.add_lua_directory(dir, texts) {
                let (file, line, message) = match &e {
                    CheckError::Lua(l) => {
                        // The diagnostic names the file and line already.
                        let prefix = format!("{}:{}: ", l.file, l.line.unwrap_or(0));
                        let message = l.message.strip_prefix(&prefix).unwrap_or(&l.message);
                        (l.file.clone(), l.line, message.to_string())
                    }
                    CheckError::Layout { file } => (file.clone(), None, e.to_string()),
                    CheckError::Cel(_) => (env_file.to_string(), dir.line(), e.to_string()),
                };
                problems.push(Diagnostic::new(message).at(file, line).help(format!(
                    "health checks live at {}/<group>/<kind>/health.lua and must be valid Lua (5.2, as gopher-lua accepts it)",
                    dir.value
                )));
            }
        }
        (checks.with_settings(env), problems)
    }

    fn with_settings(mut self, env: &Environment) -> Self {
        let options = &env.spec.health;
        self.ingress_without_class = options.ingress_without_class.map(|i| match i {
            environment::IngressWithoutClass::Healthy => IngressWithoutClass::Healthy,
            environment::IngressWithoutClass::Wait => IngressWithoutClass::Wait,
        });
        self.status_grace = Some(
            options
                .status_grace_period
                .map_or(env.spec.rollout.progress_deadline.0, |d| d.0),
        );
        self
    }

    /// The context of an assessment in a cluster of `provider`
    /// (`kubeconfig`, `eks`, `aks`, `gke`) at `now`: the environment's
    /// settings, else the provider's conventions.
    pub fn context(&self, provider: &str, now: Option<jiff::Timestamp>) -> Context {
        let mut ctx = Context {
            now,
            ingress_without_class: self
                .ingress_without_class
                .unwrap_or_else(|| IngressWithoutClass::for_provider(provider)),
            ..Context::default()
        };
        if let Some(grace) = self.status_grace {
            ctx.status_grace = grace;
        }
        ctx
    }
}

fn add_cel(
    checks: &mut HealthChecks,
    check: &Located<environment::HealthCheck>,
    cel: &environment::CelHealthCheck,
    env_file: &str,
    problems: &mut Diagnostics,
) {
    let exprs = CelExprs {
        current: cel.current.value.clone(),
        in_progress: cel.in_progress.as_ref().map(|e| e.value.clone()),
        failed: cel.failed.as_ref().map(|e| e.value.clone()),
    };
    let Err(CheckError::Cel(errors)) =
        checks.add_cel(&check.group, &check.kind, &exprs, env_file, check.line)
    else {
        return;
    };
    for e in errors {
        let line = match e.field {
            "inProgress" => cel.in_progress.as_ref().and_then(|l| l.line()),
            "failed" => cel.failed.as_ref().and_then(|l| l.line()),
            _ => cel.current.line(),
        };
        problems.push(
            Diagnostic::new(format!(
                "spec.health.checks: CEL for {}/{}: {}: {}",
                check.group, check.kind, e.field, e.message
            ))
            .at(env_file, line.or(check.line()))
            .help("fix the expression; the object's fields (status, spec, metadata) are its variables"),
        );
    }
}
