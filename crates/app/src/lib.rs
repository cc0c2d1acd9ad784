//! The application layer shared by the `tidegate` CLI and the controller.
//!
//! Loading an environment at a revision (open the repository, resolve the
//! ref, discover clusters, render), reaching its clusters, rendering other
//! revisions for rollbacks (cached by commit), quarantines and approvals,
//! running a fleet rollout, the status rows and the wait after a sync.
//! Front ends parse their input, call this crate and present the result.
//!
//! Architecture invariant: no printing and no command-line types; plain
//! parameters in, typed results and [`AppError`] out; progress through
//! callbacks.

mod approvals;
mod error;
mod gates;
mod load;
mod memo;
mod plans;
mod quarantine;
mod rendering;
mod revisions;
mod rollout;
mod status;
mod wait;
mod workspace;

pub use approvals::AuditApprovals;
pub use error::{AppError, error_chain};
pub use gates::{ClusterApprovals, GatesRead, GatesWritten, quarantined, read_gates, write_gates};
pub use load::{Capabilities, ClusterAccess, LoadRequest, Loaded, client_factory, load};
pub use memo::{RenderMemo, SharedRendering};
pub use plans::{ClusterPlan, PlanError, plan_clusters};
pub use quarantine::{
    Admission, admit_revision, existing as existing_audit, quarantine_list, quarantine_record,
    quarantined_everywhere,
};
pub use rendering::{Rendering, health_checks, load_rendered};
pub use revisions::{GitRevisions, RevisionEntry};
pub use rollout::{RolloutDone, RolloutRun, journal, last_healthy_revision};
pub use status::{CLUSTER_CONCURRENCY, StatusRow, SyncState, status_rows};
pub use wait::{Waited, wait_and_mark_healthy};
pub use workspace::{Workspace, WorkspaceAt};
