//! Reaching clusters: a `kube::Client` per cluster, a discovery cache, and
//! reading the live state of managed objects.
//!
//! Cloud-native authentication (EKS, AKS, GKE) plugs in through
//! [`ClientFactory`]; [`KubeconfigFactory`] reaches clusters through
//! kubeconfig contexts. Every client counts its requests
//! ([`RequestCounter`]), so callers and tests can prove that a no-op sync
//! writes nothing.

mod counter;
mod discovery;
mod error;
mod factory;
mod facts;
mod forbidden;
mod gates;
mod lease;
mod live;
mod reach;
mod resources;
mod retry;

pub use counter::{Answers, CODES, CountLayer, Counted, RequestCounter, RequestCounts, VERBS};
pub use discovery::{Resolved, Resolver};
pub use error::{ClusterError, is_retryable, kube_error_text};
pub use factory::{ClientFactory, KubeconfigFactory, install_crypto_provider};
pub use facts::{FACTS_TIMEOUT, FactsCache, helm_kube_version, served_api_versions};
pub use forbidden::Forbidden;
pub use gates::{GateChange, GateRecord, Gates, GatesError, gates_name, read_gates, write_gate};
pub use lease::{
    Holder, LeaseError, acquire_lease, ensure_namespace, lease_resource, release_lease,
};
pub use live::{LiveObjects, dynamic_api, get_object, key_of, list_managed, listed_value};
pub use reach::Unreachable;
pub use resources::configmap_resource;
pub use retry::with_retries;
