//! The health vocabulary: [`HealthStatus`], [`Health`] and [`worst`].

use serde::{Deserialize, Serialize};
use std::fmt;

/// How healthy an object is, best first.
///
/// The order is the one Argo CD uses and is part of the API: the worst status
/// of a set is its maximum (`Healthy < Suspended < Progressing < Missing <
/// Degraded < Unknown`). API boundary: rollout gates compare these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HealthStatus {
    /// The object is doing what its spec asks.
    Healthy,
    /// Deliberately stopped by a user (paused Deployment, suspended Job or CronJob).
    Suspended,
    /// Not there yet, but moving: a rollout, a pending claim, a load balancer
    /// being provisioned.
    Progressing,
    /// The object does not exist in the cluster.
    Missing,
    /// Failed, or stuck in a way that needs a person.
    Degraded,
    /// The object's status could not be interpreted.
    Unknown,
}

/// The health of one object: a status and a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Health {
    /// The verdict.
    pub status: HealthStatus,
    /// Why, e.g. `Waiting for rollout to finish: 1 of 3 updated replicas are available`.
    pub reason: String,
}

/// The worst of a set of healths (the highest [`HealthStatus`]; the first one
/// on ties), or `None` for an empty set.
///
/// Cluster health is the worst of its objects' healths, so a Missing object
/// outweighs a Progressing one and a Degraded one outweighs both.
pub fn worst<'a>(items: impl IntoIterator<Item = &'a Health>) -> Option<&'a Health> {
    items.into_iter().fold(None, |acc, item| match acc {
        Some(current) if current.status >= item.status => Some(current),
        _ => Some(item),
    })
}

// === impl HealthStatus ===

impl HealthStatus {
    /// The name as Argo CD and our reports spell it, e.g. `Progressing`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "Healthy",
            HealthStatus::Suspended => "Suspended",
            HealthStatus::Progressing => "Progressing",
            HealthStatus::Missing => "Missing",
            HealthStatus::Degraded => "Degraded",
            HealthStatus::Unknown => "Unknown",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl Health ===

impl Health {
    /// A health with the given status and reason.
    pub fn new(status: HealthStatus, reason: impl Into<String>) -> Self {
        Health {
            status,
            reason: reason.into(),
        }
    }

    /// [`HealthStatus::Healthy`] with a reason.
    pub fn healthy(reason: impl Into<String>) -> Self {
        Health::new(HealthStatus::Healthy, reason)
    }

    /// [`HealthStatus::Suspended`] with a reason.
    pub fn suspended(reason: impl Into<String>) -> Self {
        Health::new(HealthStatus::Suspended, reason)
    }

    /// [`HealthStatus::Progressing`] with a reason.
    pub fn progressing(reason: impl Into<String>) -> Self {
        Health::new(HealthStatus::Progressing, reason)
    }

    /// [`HealthStatus::Missing`]: the object is not in the cluster.
    pub fn missing() -> Self {
        Health::new(
            HealthStatus::Missing,
            "Object does not exist in the cluster",
        )
    }

    /// [`HealthStatus::Degraded`] with a reason.
    pub fn degraded(reason: impl Into<String>) -> Self {
        Health::new(HealthStatus::Degraded, reason)
    }

    /// [`HealthStatus::Unknown`] with a reason.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Health::new(HealthStatus::Unknown, reason)
    }
}

impl fmt::Display for Health {
    /// `Degraded: Job has reached the specified backoff limit`, or just the
    /// status when there is no reason.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.status)
        } else {
            write!(f, "{}: {}", self.status, self.reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthStatus::*;

    #[test]
    fn statuses_are_ordered_best_first() {
        let order = [Healthy, Suspended, Progressing, Missing, Degraded, Unknown];
        assert!(order.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn worst_is_the_highest_status_and_the_first_on_ties() {
        let items = [
            Health::healthy("a"),
            Health::progressing("b"),
            Health::missing(),
            Health::progressing("c"),
            Health::new(Missing, "second missing"),
        ];
        let w = worst(&items).expect("non-empty");
        assert_eq!(w.status, Missing);
        assert_eq!(w.reason, Health::missing().reason);
        assert_eq!(
            worst(&[Health::degraded("x"), Health::missing()]).map(|h| h.status),
            Some(Degraded)
        );
        assert_eq!(worst(&[]), None);
    }

    #[test]
    fn display_and_serde_use_argo_names() {
        assert_eq!(Health::degraded("boom").to_string(), "Degraded: boom");
        assert_eq!(Health::healthy("").to_string(), "Healthy");
        assert_eq!(
            serde_json::to_value(Progressing).expect("serializes"),
            serde_json::json!("Progressing")
        );
        let back: HealthStatus = serde_json::from_str("\"Suspended\"").expect("deserializes");
        assert_eq!(back, Suspended);
    }
}
