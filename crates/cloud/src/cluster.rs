//! What discovery finds about a cluster.

use std::collections::BTreeMap;

/// Where a cluster's API server is and how to trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://...` URL of the API server.
    pub server: String,
    /// CA certificates (DER) that sign the API server's certificate.
    pub ca: Vec<Vec<u8>>,
}

/// A cluster as a cloud describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredCluster {
    /// Cluster name in the cloud.
    pub name: String,
    /// `eks`, `aks` or `gke`.
    pub provider: &'static str,
    /// Region or location.
    pub location: String,
    /// API server and CA.
    pub endpoint: Endpoint,
    /// Kubernetes version the cloud reports.
    pub version: String,
    /// Status the cloud reports (`ACTIVE`, `Succeeded`, `RUNNING`, ...).
    pub status: String,
    /// Tags (EKS, AKS) or resource labels (GKE).
    pub tags: BTreeMap<String, String>,
    /// AKS: the resource group the cluster is in.
    pub resource_group: Option<String>,
}
