//! `tidegate clusters`: every cluster of an environment, where it is, and
//! whether Tidegate can reach it (and why not).

use super::fleet::{self, Capabilities};
use crate::{
    args::{ClustersArgs, Global, Selection, TextOrJson},
    output::Style,
};
use futures::StreamExt;
use serde::Serialize;
use std::{process::ExitCode, time::Duration};
use tidegate_cloud::CloudFactory;
use tidegate_cluster::{ClientFactory, ClusterError, RequestCounter, Unreachable};
use tidegate_core::environment::{Cluster, Provider};

/// How long a reachability check may take.
const REACH_TIMEOUT: Duration = Duration::from_secs(15);

/// How many clusters are checked at once.
const CONCURRENCY: usize = 8;

/// One row of the table.
#[derive(Debug, Serialize)]
struct Row {
    cluster: String,
    provider: &'static str,
    endpoint: Option<String>,
    /// The version the cloud reports, else the API server's.
    version: Option<String>,
    /// The status the cloud reports (`ACTIVE`, ...); `-` for kubeconfig clusters.
    status: Option<String>,
    reachable: bool,
    /// Why not: `auth`, `tls`, `timeout`, `connection`, `cloud` or `config`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Exit 0 when every cluster is reachable, 2 otherwise.
pub async fn run(global: &Global, args: &ClustersArgs, style: &Style) -> anyhow::Result<ExitCode> {
    let selection = Selection {
        env: args.env.clone(),
        cluster: args.cluster.clone(),
        app: None,
        kubeconfig: args.kubeconfig.clone(),
    };
    let Some(loaded) = fleet::load(global, &selection, Capabilities::Declared, style).await? else {
        return Ok(ExitCode::from(1));
    };
    let clusters = loaded
        .clusters
        .iter()
        .map(|name| loaded.cluster(name))
        .collect::<Result<Vec<_>, _>>()?;
    // Every cluster at once (a bounded number in flight), in the
    // environment's order: an unreachable cluster waits out its timeout
    // beside the others, not before them.
    let rows: Vec<Row> = futures::stream::iter(clusters)
        .map(|cluster| check(loaded.factory(), cluster))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    match args.output {
        TextOrJson::Json => outln!("{}", serde_json::to_string_pretty(&rows)?),
        TextOrJson::Text => {
            outln!(
                "{:<20} {:<10} {:<48} {:<10} {:<10} REACHABLE",
                "CLUSTER",
                "PROVIDER",
                "ENDPOINT",
                "VERSION",
                "STATUS"
            );
            for r in &rows {
                let reachable = match r.reason {
                    None => style.ok("yes"),
                    Some(reason) => style.error(&format!("no ({reason})")),
                };
                outln!(
                    "{:<20} {:<10} {:<48} {:<10} {:<10} {reachable}",
                    r.cluster,
                    r.provider,
                    r.endpoint.as_deref().unwrap_or("-"),
                    r.version.as_deref().unwrap_or("-"),
                    r.status.as_deref().unwrap_or("-"),
                );
                if let Some(e) = &r.error {
                    outln!("  {} {e}", style.error("error:"));
                }
            }
        }
    }
    Ok(if rows.iter().all(|r| r.reachable) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

async fn check(factory: &CloudFactory, cluster: &Cluster) -> Row {
    let via_kubeconfig =
        factory.kubeconfig_only() || matches!(cluster.provider, Provider::Kubeconfig(_));
    let mut row = Row {
        cluster: cluster.name.clone(),
        provider: if via_kubeconfig && factory.kubeconfig_only() {
            "kubeconfig"
        } else {
            cluster.provider.name()
        },
        endpoint: None,
        version: None,
        status: None,
        reachable: false,
        reason: None,
        error: None,
    };
    if via_kubeconfig {
        row.endpoint = kubeconfig_server(factory, cluster).await;
    } else {
        match factory.describe(cluster).await {
            Ok(described) => {
                row.endpoint = Some(described.endpoint.server);
                row.version = Some(described.version).filter(|v| !v.is_empty());
                row.status = Some(described.status);
            }
            Err(e) => {
                row.reason = Some(
                    if matches!(e.status(), Some(401 | 403))
                        || matches!(e, tidegate_cloud::CloudError::Credentials { .. })
                    {
                        "auth"
                    } else {
                        "cloud"
                    },
                );
                row.error = Some(e.to_string());
                return row;
            }
        }
    }
    let attempt = async {
        let client = factory.client(cluster, &RequestCounter::default()).await?;
        client
            .apiserver_version()
            .await
            .map_err(|error| ClusterError::Api {
                cluster: cluster.name.clone(),
                what: "GET /version".into(),
                error,
            })
    };
    match tokio::time::timeout(REACH_TIMEOUT, attempt).await {
        Ok(Ok(info)) => {
            row.reachable = true;
            if row.version.is_none() {
                row.version = Some(info.git_version);
            }
        }
        Ok(Err(e)) => {
            row.reason = Some(Unreachable::of(&e).as_str());
            row.error = Some(e.to_string());
        }
        Err(_) => {
            row.reason = Some(Unreachable::Timeout.as_str());
            row.error = Some(format!(
                "no answer from the API server within {}s",
                REACH_TIMEOUT.as_secs()
            ));
        }
    }
    row
}

/// The server URL of a cluster's kubeconfig context, when it can be read.
async fn kubeconfig_server(factory: &CloudFactory, cluster: &Cluster) -> Option<String> {
    let file = factory.kubeconfig_file().map(|p| p.to_path_buf());
    let options = kube::config::KubeConfigOptions {
        context: Some(cluster.kubeconfig_context().to_string()),
        ..Default::default()
    };
    let config = match file {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).ok()?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .ok()?
        }
        None => kube::Config::from_kubeconfig(&options).await.ok()?,
    };
    Some(config.cluster_url.to_string())
}
