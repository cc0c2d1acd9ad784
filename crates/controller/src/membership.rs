//! Membership of sharded controller replicas: each replica holds a
//! `coordination.k8s.io/v1` Lease `<group>-member-<identity>` in the
//! management namespace, taken and renewed by the same elector as leader
//! election ([`crate::leader`], client-go's timings: it stops counting
//! itself a member before its Lease can expire). The live members are the
//! member Leases with a holder whose record changed within their
//! `leaseDurationSeconds` **by this replica's own clock since it saw them
//! change** (as client-go's elector judges a Lease: clock skew does not
//! matter). A Lease released on shutdown (empty holder) is gone at once; a
//! killed replica's Lease is gone `lease_duration` after the last renewal
//! this replica saw.

use crate::leader::{LeaderConfig, LeaderError, LeaderState, Leadership};
use kube::{
    Api, Client,
    api::{DynamicObject, ListParams},
};
use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};
use tidegate_cluster::lease_resource;
use tokio::{sync::watch, task::JoinHandle, time::Instant};
use tracing::{info, warn};

/// The name of `identity`'s member Lease in the group `group`.
pub fn member_lease(group: &str, identity: &str) -> String {
    format!("{group}-member-{}", lease_part(identity))
}

/// The name of the ownership Lease of `environment` in the group `group`.
pub fn owner_lease(group: &str, environment: &str) -> String {
    format!("{group}-owner-{}", lease_part(environment))
}

/// `text` as part of a Lease name (a DNS subdomain): lower case, other
/// characters than letters, digits, `-` and `.` made `-`.
pub(crate) fn lease_part(text: &str) -> String {
    text.chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .collect()
}

/// A member Lease as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The Lease's name.
    pub name: String,
    /// `spec.holderIdentity` (None or empty: released).
    pub holder: Option<String>,
    /// `spec.renewTime` as written.
    pub renew_time: Option<String>,
    /// `spec.leaseDurationSeconds`.
    pub duration: Duration,
}

impl MemberRecord {
    fn from_lease(lease: &DynamicObject) -> Option<MemberRecord> {
        let spec = lease.data.get("spec")?;
        Some(MemberRecord {
            name: lease.metadata.name.clone()?,
            holder: spec["holderIdentity"]
                .as_str()
                .filter(|h| !h.is_empty())
                .map(str::to_string),
            renew_time: spec["renewTime"].as_str().map(str::to_string),
            duration: Duration::from_secs(spec["leaseDurationSeconds"].as_u64().unwrap_or(0)),
        })
    }
}

/// What this replica has seen of the member Leases: when (by its own
/// clock) each last changed.
#[derive(Debug, Default)]
pub struct MemberView {
    seen: BTreeMap<String, (MemberRecord, Instant)>,
}

impl MemberView {
    /// Takes in one listing made at `now`; returns the live members (their
    /// holder identities). Leases no longer listed are forgotten.
    pub fn observe(&mut self, listed: &[MemberRecord], now: Instant) -> BTreeSet<String> {
        let mut seen = BTreeMap::new();
        for record in listed {
            let changed_at = match self.seen.remove(&record.name) {
                Some((old, at)) if old == *record => at,
                _ => now,
            };
            seen.insert(record.name.clone(), (record.clone(), changed_at));
        }
        self.seen = seen;
        self.seen
            .values()
            .filter(|(r, at)| *at + r.duration > now)
            .filter_map(|(r, _)| r.holder.clone())
            .collect()
    }
}

/// This replica's membership: its member Lease held, and the live members
/// as last listed.
pub struct Membership {
    member: Leadership,
    live: watch::Receiver<BTreeSet<String>>,
    lister: JoinHandle<()>,
}

impl Membership {
    /// Joins the group `config.name` as `config.identity` (the member
    /// Lease is `config.name`-member-`identity`) and lists the members every
    /// `config.retry_period`.
    pub async fn join(
        client: Client,
        cluster: &str,
        config: &LeaderConfig,
    ) -> Result<Membership, LeaderError> {
        let member_config = LeaderConfig {
            name: member_lease(&config.name, &config.identity),
            members: None,
            ..config.clone()
        };
        let member = Leadership::start(client.clone(), cluster, member_config).await?;
        let (publish, live) = watch::channel(BTreeSet::new());
        let api: Api<DynamicObject> =
            Api::namespaced_with(client, &config.namespace, &lease_resource());
        let prefix = format!("{}-member-", config.name);
        let lister = tokio::spawn(list_members(api, prefix, config.retry_period, publish));
        Ok(Membership {
            member,
            live,
            lister,
        })
    }

    /// Whether this replica holds its member Lease (it must own nothing
    /// otherwise).
    pub fn is_member(&self) -> bool {
        self.member.state().is_leading()
    }

    /// This replica's member Lease state, to wait on.
    pub fn member_state(&self) -> watch::Receiver<LeaderState> {
        self.member.watch()
    }

    /// The live members, as last listed (empty before the first listing).
    pub fn live(&self) -> watch::Receiver<BTreeSet<String>> {
        self.live.clone()
    }

    /// Leaves the group: stops listing and releases the member Lease, so
    /// the others rebalance at their next listing.
    pub async fn leave(self) {
        self.lister.abort();
        let Membership { member, .. } = self;
        member.release().await;
    }
}

/// Lists the member Leases every `every` and publishes the live members
/// when they change (the first listing is always published).
async fn list_members(
    api: Api<DynamicObject>,
    prefix: String,
    every: Duration,
    publish: watch::Sender<BTreeSet<String>>,
) {
    let mut view = MemberView::default();
    let mut first = true;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let listed = match api.list(&ListParams::default()).await {
            Ok(list) => list
                .items
                .iter()
                .filter(|l| {
                    l.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.starts_with(&prefix))
                })
                .filter_map(MemberRecord::from_lease)
                .collect::<Vec<_>>(),
            Err(e) => {
                warn!(error = %e, "listing the member Leases failed; keeping the last view");
                continue;
            }
        };
        let live = view.observe(&listed, Instant::now());
        let changed = publish.send_if_modified(|old| {
            let changed = first || *old != live;
            if changed {
                info!(members = ?live, "live controller replicas");
                *old = live;
            }
            changed
        });
        first &= !changed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, holder: Option<&str>, renew: &str) -> MemberRecord {
        MemberRecord {
            name: name.into(),
            holder: holder.map(str::to_string),
            renew_time: Some(renew.into()),
            duration: Duration::from_secs(15),
        }
    }

    #[test]
    fn a_member_whose_lease_stops_changing_expires_after_its_duration_by_our_clock() {
        let mut view = MemberView::default();
        let t0 = Instant::now();
        let a = |renew: &str| record("g-member-a", Some("a"), renew);
        let b = |renew: &str| record("g-member-b", Some("b"), renew);
        // First seen: live, whatever its renewTime says (our clock counts).
        let live = view.observe(&[a("00:00"), b("00:00")], t0);
        assert_eq!(live, BTreeSet::from(["a".to_string(), "b".to_string()]));
        // a renews, b does not (killed): b is live until 15 s after we saw it change.
        let live = view.observe(&[a("00:10"), b("00:00")], t0 + Duration::from_secs(10));
        assert!(live.contains("b"));
        let live = view.observe(&[a("00:14"), b("00:00")], t0 + Duration::from_secs(14));
        assert!(live.contains("b"), "14 s < 15 s");
        let live = view.observe(&[a("00:15"), b("00:00")], t0 + Duration::from_secs(15));
        assert_eq!(live, BTreeSet::from(["a".to_string()]), "b expired at 15 s");
        // b comes back (a renewal we see): live again at once.
        let live = view.observe(&[a("00:16"), b("00:16")], t0 + Duration::from_secs(16));
        assert!(live.contains("b"));
    }

    #[test]
    fn a_released_or_deleted_member_is_gone_at_once() {
        let mut view = MemberView::default();
        let t0 = Instant::now();
        view.observe(
            &[
                record("g-member-a", Some("a"), "1"),
                record("g-member-b", Some("b"), "1"),
            ],
            t0,
        );
        let live = view.observe(
            &[
                record("g-member-a", None, "2"),
                record("g-member-b", Some("b"), "1"),
            ],
            t0 + Duration::from_secs(1),
        );
        assert_eq!(live, BTreeSet::from(["b".to_string()]), "released");
        let live = view.observe(&[], t0 + Duration::from_secs(2));
        assert!(live.is_empty(), "deleted");
    }

    #[test]
    fn lease_names_are_dns_subdomains() {
        assert_eq!(
            member_lease("tidegate-controller", "Host_1:42"),
            "tidegate-controller-member-host-1-42"
        );
        assert_eq!(
            owner_lease("tidegate-controller", "prod.eu"),
            "tidegate-controller-owner-prod.eu"
        );
    }
}
