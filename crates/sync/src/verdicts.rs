//! In-sync verdicts kept with the cluster, so a fresh process (another
//! CLI run, another machine, the controller after a restart) need not
//! dry-run an object already known to be in sync.
//!
//! A verdict says: applying the desired object whose hash is `H` to the
//! live object at `resourceVersion` `RV` changes nothing. It is recorded
//! when a dry run predicted exactly the live object (no ignore rules
//! involved), or from an apply's answer (the object as it now is, at its
//! new `resourceVersion`). It is trusted only while both sides are the
//! same: a Git change (or a new field manager, or a new verdict format)
//! changes `H`; any write to the live object (`kubectl scale`, a
//! controller, a status update) changes `RV`. What changes neither side
//! (an admission webhook installed later, a new CRD schema, an API server
//! upgrade that adds defaults) is bounded by [`MAX_AGE`]: older verdicts
//! are ignored.
//!
//! Verdicts live in the environment's inventory ConfigMaps (data key
//! `verdicts`), written only by syncs that write anyway: a plan or diff
//! never writes. Secrets never get one: a bare hash of low-entropy
//! content could be brute-forced from the cluster, so Secrets are dry-run
//! every time.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tidegate_core::{ObjectKey, tracking::FIELD_MANAGER};

/// How long a verdict is trusted when neither side changed.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Beyond this size the verdicts are not stored (the inventory ConfigMap
/// must stay well under the API server's 1 MiB object limit): every object
/// is then dry-run, as without verdicts.
const MAX_BYTES: usize = 256 * 1024;

/// Bumped when what `H` covers changes: old verdicts then never match.
const FORMAT: &str = "tidegate-verdict-v1";

/// The in-sync verdicts of one app in one cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdicts {
    /// When they were recorded (seconds since the Unix epoch).
    #[serde(rename = "at")]
    recorded: u64,
    /// Object (see [`object_id`]) → (hex `H`, live `resourceVersion`).
    objects: BTreeMap<String, (String, String)>,
}

/// True when an object may have a verdict: every kind but Secrets.
pub fn eligible(key: &ObjectKey) -> bool {
    !(key.group.is_empty() && key.kind == "Secret")
}

/// How an object is named in the verdicts: `group/kind/namespace/name`.
fn object_id(key: &ObjectKey) -> String {
    format!(
        "{}/{}/{}/{}",
        key.group,
        key.kind,
        key.namespace.as_deref().unwrap_or_default(),
        key.name
    )
}

/// `H`: SHA-256 of the verdict format, the field manager and the desired
/// object as sent, in hex.
pub(crate) fn desired_hash(manifest: &Value) -> String {
    desired_hash_of(&serde_json::to_vec(manifest).unwrap_or_default())
}

/// [`desired_hash`] of a manifest already serialized (`serde_json::to_vec`).
pub(crate) fn desired_hash_of(serialized: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(FORMAT.as_bytes());
    h.update([0]);
    h.update(FIELD_MANAGER.as_bytes());
    h.update([0]);
    h.update(serialized);
    hex(&h.finalize())
}

/// Lower-case hex, without a formatter call per byte.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Verdicts {
    /// No verdicts, recorded now.
    pub(crate) fn new() -> Self {
        Verdicts {
            recorded: now(),
            objects: BTreeMap::new(),
        }
    }

    /// How many objects have a verdict.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True when no object has one.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Records that `manifest` applied over `key` at `version` changes
    /// nothing (never for a Secret).
    pub(crate) fn record(&mut self, key: &ObjectKey, manifest: &Value, version: &str) {
        if eligible(key) && !version.is_empty() {
            self.objects.insert(
                object_id(key),
                (desired_hash(manifest), version.to_string()),
            );
        }
    }

    /// Adds every verdict of `other` (for a lookup across an environment's apps).
    pub(crate) fn extend(&mut self, other: &Verdicts, at: u64) {
        if other.fresh(at) {
            self.objects
                .extend(other.objects.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }

    fn fresh(&self, at: u64) -> bool {
        at.saturating_sub(self.recorded) <= MAX_AGE.as_secs() && self.recorded <= at + 300
    }

    /// True when `hash` (see [`desired_hash`]) over the live object at
    /// `version` is known to change nothing.
    pub(crate) fn in_sync(&self, key: &ObjectKey, hash: &str, version: Option<&str>) -> bool {
        let Some(version) = version else {
            return false;
        };
        eligible(key)
            && self
                .objects
                .get(&object_id(key))
                .is_some_and(|(h, v)| h == hash && v == version)
    }

    /// The same objects, hashes and versions (the time aside).
    pub(crate) fn same_as(&self, other: &Verdicts) -> bool {
        self.objects == other.objects
    }

    /// The ConfigMap value; `None` when empty or too large to store.
    pub(crate) fn to_data(&self) -> Option<String> {
        if self.objects.is_empty() {
            return None;
        }
        serde_json::to_string(self)
            .ok()
            .filter(|s| s.len() <= MAX_BYTES)
    }

    /// Parsed from the ConfigMap value; anything unreadable is no verdicts.
    pub(crate) fn from_data(data: Option<&str>) -> Verdicts {
        data.and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }

    /// The current time for [`Verdicts::extend`].
    pub(crate) fn now() -> u64 {
        now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm() -> (ObjectKey, Value) {
        (
            ObjectKey::new("", "ConfigMap", Some("ns"), "a"),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1"}}),
        )
    }

    #[test]
    fn a_verdict_holds_only_for_the_same_desired_object_and_live_version() {
        let (key, desired) = cm();
        let mut v = Verdicts::new();
        v.record(&key, &desired, "7");
        let h = desired_hash(&desired);
        assert!(v.in_sync(&key, &h, Some("7")));
        // A live edit (kubectl scale/patch, a controller) changes the version.
        assert!(!v.in_sync(&key, &h, Some("8")));
        assert!(!v.in_sync(&key, &h, None));
        // A Git change changes the hash.
        let changed = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "2"}});
        assert!(!v.in_sync(&key, &desired_hash(&changed), Some("7")));
        // Another object with the same content and version.
        let other = ObjectKey::new("", "ConfigMap", Some("ns2"), "a");
        assert!(!v.in_sync(&other, &h, Some("7")));
    }

    #[test]
    fn the_hash_covers_the_format_and_field_manager() {
        let (_, desired) = cm();
        let bare: String = Sha256::digest(serde_json::to_vec(&desired).unwrap_or_default())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_ne!(desired_hash(&desired), bare);
        assert_eq!(desired_hash(&desired).len(), 64);
        // The same text as formatting each byte.
        let bytes: Vec<u8> = (0..=255).collect();
        let formatted: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&bytes), formatted);
    }

    #[test]
    fn secrets_never_get_a_verdict() {
        let key = ObjectKey::new("", "Secret", Some("ns"), "s");
        let desired = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"p": "hunter2"}});
        let mut v = Verdicts::new();
        v.record(&key, &desired, "7");
        assert!(v.is_empty());
        assert!(v.to_data().is_none());
        assert!(!v.in_sync(&key, &desired_hash(&desired), Some("7")));
        // A custom kind named Secret in another group is not a Secret.
        assert!(eligible(&ObjectKey::new(
            "example.com",
            "Secret",
            None,
            "s"
        )));
    }

    #[test]
    fn verdicts_round_trip_and_expire() {
        let (key, desired) = cm();
        let mut v = Verdicts::new();
        v.record(&key, &desired, "7");
        let data = v.to_data().unwrap_or_default();
        let back = Verdicts::from_data(Some(&data));
        assert_eq!(back, v);
        let h = desired_hash(&desired);
        let mut merged = Verdicts::default();
        merged.extend(&back, Verdicts::now());
        assert!(merged.in_sync(&key, &h, Some("7")));
        // Older than MAX_AGE, or from the future beyond skew: ignored.
        let mut late = Verdicts::default();
        late.extend(&back, Verdicts::now() + MAX_AGE.as_secs() + 1);
        assert!(late.is_empty());
        let mut early = Verdicts::default();
        early.extend(&back, Verdicts::now().saturating_sub(3600));
        assert!(early.is_empty());
        // Unreadable data is no verdicts, never an error.
        assert!(Verdicts::from_data(Some("{not json")).is_empty());
        assert!(Verdicts::from_data(None).is_empty());
    }

    #[test]
    fn too_many_verdicts_are_not_stored() {
        let (_, desired) = cm();
        let mut v = Verdicts::new();
        for i in 0..3000 {
            let key = ObjectKey::new("", "ConfigMap", Some("ns"), &format!("object-{i:05}"));
            v.record(&key, &desired, "123456");
        }
        assert!(v.to_data().is_none());
    }
}
