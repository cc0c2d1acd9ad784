//! Notifications: what the controller did, told to people and systems
//! without them watching.
//!
//! - [`config`]: the operator's file (`tidegate controller --notifications
//!   FILE`): sinks (Slack, Microsoft Teams, a generic JSON webhook signed
//!   with HMAC-SHA256, CDEvents, GitHub commit statuses), where their
//!   credentials are read from, and per environment which events go where.
//!   Validated at file:line.
//! - [`event`]: the events, derived from audit records (every event is an
//!   audit entry first: rollout started/succeeded/failed, rollback,
//!   quarantine, switch, drift detected/corrected, approval needed).
//! - [`payload`]: each sink's request.
//! - [`queue`]: per sink, bounded (drop-oldest, counted), ordered and
//!   de-duplicated by audit sequence number.
//! - [`notifier`]: follows the audit trail, routes, delivers with retries
//!   (exponential backoff with jitter); outcomes go to the log and, as
//!   controller [`Event`](tidegate_controller::Event)s, to `/metrics`.
//! - [`transport`]: HTTPS with rustls, no redirects.
//!
//! Architecture invariants: a notification never blocks or fails a
//! rollout (the notifier reads the trail after the fact, in its own
//! tasks); repository content chooses neither a sink, a host nor a
//! credential; credentials are never logged or shown by `Debug`.

pub mod config;
pub mod event;
pub mod notifier;
pub mod payload;
pub mod queue;
mod secret;
pub mod transport;

pub use config::{Config, DeliveryOptions, Route, SinkConfig, SinkKind, TeamsFormat};
pub use event::{EventKind, Notice};
pub use notifier::Notifier;
pub use secret::{Secret, SecretSource};
pub use transport::{Http, SendError, Transport};
