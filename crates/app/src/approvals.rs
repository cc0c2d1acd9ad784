//! Approvals of waves (`tidegate approve`), as the fleet driver asks for them.

use futures::future::BoxFuture;
use std::path::PathBuf;
use tidegate_audit::{AuditError, AuditStore, Filter};
use tidegate_fleet::{ApprovalError, Approvals};

/// Approvals recorded in the local audit trail by `tidegate approve`.
pub struct AuditApprovals {
    /// The audit database.
    pub path: PathBuf,
    /// The environment.
    pub env: String,
    /// The revision being rolled out.
    pub revision: String,
}

impl AuditApprovals {
    /// True when the audit trail records an approval of `wave` for this
    /// revision; false when there is no audit trail yet.
    pub fn approved_in_audit(&self, wave: u32) -> Result<bool, ApprovalError> {
        let store = match AuditStore::open_read_only(&self.path) {
            Ok(store) => store,
            Err(AuditError::Missing(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        Ok(store
            .records(&Filter {
                environment: Some(self.env.clone()),
                actions: vec!["approve".into()],
                ..Filter::default()
            })?
            .iter()
            .any(|r| {
                r.entry.details.get("wave") == Some(&wave.to_string())
                    && r.entry.to.as_ref().is_some_and(|t| t.sha == self.revision)
            }))
    }
}

impl Approvals for AuditApprovals {
    fn approved(&self, wave: u32) -> BoxFuture<'_, Result<bool, ApprovalError>> {
        Box::pin(std::future::ready(self.approved_in_audit(wave)))
    }
}
