//! Native cloud access: find EKS, AKS and GKE clusters and authenticate to
//! them in-process, without `aws`, `az`, `gcloud` or `kubelogin`.
//!
//! Each cloud module turns an environment's cluster entry into an
//! [`Endpoint`] (server URL, CA) and a [`TokenSource`] (bearer tokens);
//! [`CloudFactory`] builds kube clients from them with a [`BearerLayer`] that
//! caches the token, refreshes it before it expires and retries a request
//! once after a 401 with a fresh token.
//!
//! **Architecture invariant:** tokens and keys are never logged; `Debug` of
//! every type holding one prints `[redacted]`.

mod aks;
mod ca;
mod cluster;
mod discover;
mod eks;
mod error;
mod factory;
mod gke;
mod layer;
mod token;

#[cfg(test)]
#[allow(clippy::unwrap_used, dead_code)] // test helper
mod stub;

pub use aks::{
    AKS_API_VERSION, AKS_SCOPE, AZURE_PUBLIC_ARM, AksDiscovery, AksOptions, azure_credential,
};
pub use ca::decode_ca;
pub use cluster::{DiscoveredCluster, Endpoint};
pub use eks::{EksDiscovery, eks_token, sts_presigned_url};
pub use error::CloudError;
pub use factory::{CloudFactory, CloudOptions};
pub use gke::{CLOUD_PLATFORM, GkeCredentials, GkeDiscovery, ServiceAccountExchange};
pub use layer::{BearerLayer, BearerService};
pub use token::{CachedToken, Token, TokenSource};
