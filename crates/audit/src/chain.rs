//! Sealing records into the chain, and checking a chain.

use crate::canonical::{GENESIS, chain_hash, to_canonical};
use crate::entry::{Entry, Phase, Record, Seq};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

#[derive(Serialize)]
struct BodyRef<'a> {
    seq: Seq,
    time_ms: i64,
    phase: Phase,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation: Option<Seq>,
    #[serde(flatten)]
    entry: &'a Entry,
}

/// Builds the record that follows `prev_hash`, and its canonical body.
pub fn seal(
    seq: Seq,
    time_ms: i64,
    phase: Phase,
    operation: Option<Seq>,
    mut entry: Entry,
    prev_hash: &str,
) -> (Record, String) {
    entry.time_ms = None;
    let value = serde_json::to_value(BodyRef {
        seq,
        time_ms,
        phase,
        operation,
        entry: &entry,
    })
    // Entry has only strings, integers, maps with string keys: infallible.
    .unwrap_or(serde_json::Value::Null);
    let body = to_canonical(&value);
    let hash = chain_hash(prev_hash, &body);
    let record = Record {
        seq,
        time_ms,
        phase,
        operation,
        entry,
        prev_hash: prev_hash.to_string(),
        hash,
    };
    (record, body)
}

/// The body fields that are also stored as columns; read without decoding
/// the rest of the body.
#[derive(Debug, Deserialize)]
pub(crate) struct BodyColumns<'a> {
    pub seq: Seq,
    pub time_ms: i64,
    #[serde(borrow)]
    pub phase: Cow<'a, str>,
    pub operation: Option<Seq>,
    #[serde(borrow)]
    pub environment: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub cluster: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub app: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    #[serde(borrow)]
    pub outcome: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub actor: ActorColumn<'a>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ActorColumn<'a> {
    #[serde(borrow)]
    pub identity: Cow<'a, str>,
}

/// One stored row, as the checker sees it.
#[derive(Debug, Clone, Default)]
pub struct StoredRow {
    /// The `seq` column.
    pub seq: Seq,
    /// Copies of body fields kept as columns (name, value); `None` = NULL.
    pub columns: Vec<(&'static str, Option<String>)>,
    /// The canonical body.
    pub body: String,
    /// The `prev_hash` column.
    pub prev_hash: String,
    /// The `hash` column.
    pub hash: String,
}

/// The first thing wrong with a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ChainProblem {
    /// The entry's content no longer matches what was hashed.
    Altered {
        /// The entry.
        seq: Seq,
        /// What does not match.
        detail: String,
    },
    /// Entries are missing.
    Removed {
        /// First missing sequence number.
        from: Seq,
        /// Last missing sequence number.
        to: Seq,
    },
    /// An entry that was not written by the log was added.
    Inserted {
        /// Position of the foreign entry.
        seq: Seq,
    },
    /// Entries were moved.
    Reordered {
        /// Position.
        seq: Seq,
        /// Sequence number of the entry found there.
        holds: Seq,
    },
    /// The link to the previous entry is broken (an entry before it was
    /// removed or replaced).
    Unlinked {
        /// The entry.
        seq: Seq,
    },
    /// A signed head names an entry past the end: the tail was cut off.
    Truncated {
        /// Sequence number of the signed head.
        signed_seq: Seq,
        /// The last entry present.
        last_seq: Seq,
    },
    /// A signed head does not match the entry it names.
    SignedHeadMismatch {
        /// The entry.
        seq: Seq,
    },
    /// A head signature is not valid.
    BadSignature {
        /// The signed head's sequence number.
        seq: Seq,
    },
    /// A public key was given but no head is signed with it.
    NoSignedHead,
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainProblem::Altered { seq, detail } => {
                write!(f, "entry {seq} was altered: {detail}")
            }
            ChainProblem::Removed { from, to } if from == to => {
                write!(f, "entry {from} was removed")
            }
            ChainProblem::Removed { from, to } => write!(f, "entries {from}..={to} were removed"),
            ChainProblem::Inserted { seq } => {
                write!(f, "entry {seq} was inserted (it is not part of the chain)")
            }
            ChainProblem::Reordered { seq, holds } => {
                write!(
                    f,
                    "entries were reordered: position {seq} holds entry {holds}"
                )
            }
            ChainProblem::Unlinked { seq } => write!(
                f,
                "entry {seq} does not follow the entry before it (an entry was removed or replaced)"
            ),
            ChainProblem::Truncated {
                signed_seq,
                last_seq,
            } => write!(
                f,
                "the log was truncated: a signed head names entry {signed_seq} but the last entry is {last_seq}"
            ),
            ChainProblem::SignedHeadMismatch { seq } => {
                write!(f, "entry {seq} differs from the signed head that names it")
            }
            ChainProblem::BadSignature { seq } => {
                write!(f, "the signature of the head at entry {seq} is not valid")
            }
            ChainProblem::NoSignedHead => {
                write!(f, "no chain head is signed with the given public key")
            }
        }
    }
}

/// Walks rows in `seq` order and stops at the first problem.
#[derive(Debug)]
pub struct ChainChecker {
    expected: Seq,
    running: String,
    before_last_prev: String,
    last_prev: String,
    count: u64,
    problem: Option<ChainProblem>,
}

impl Default for ChainChecker {
    fn default() -> Self {
        ChainChecker {
            expected: 1,
            running: GENESIS.to_string(),
            before_last_prev: String::new(),
            last_prev: String::new(),
            count: 0,
            problem: None,
        }
    }
}

impl ChainChecker {
    /// A checker expecting entry 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// The first problem found, if any.
    pub fn problem(&self) -> Option<&ChainProblem> {
        self.problem.as_ref()
    }

    /// Entries checked and found good.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Hash of the last good entry.
    pub fn head_hash(&self) -> &str {
        &self.running
    }

    /// Checks the next row; `next` is the row after it, if known (it tells an
    /// inserted row from a removed one). Returns false once a problem is found.
    pub fn push(&mut self, row: &StoredRow, next: Option<&StoredRow>) -> bool {
        if self.problem.is_some() {
            return false;
        }
        self.problem = self.check(row, next);
        if self.problem.is_some() {
            return false;
        }
        self.before_last_prev = std::mem::replace(&mut self.last_prev, row.prev_hash.clone());
        self.running.clone_from(&row.hash);
        self.expected = row.seq + 1;
        self.count += 1;
        true
    }

    fn check(&self, row: &StoredRow, next: Option<&StoredRow>) -> Option<ChainProblem> {
        if row.seq > self.expected {
            return Some(ChainProblem::Removed {
                from: self.expected,
                to: row.seq - 1,
            });
        }
        let cols: BodyColumns<'_> = match serde_json::from_str(&row.body) {
            Ok(c) => c,
            Err(e) => {
                return Some(ChainProblem::Altered {
                    seq: row.seq,
                    detail: format!("the body is not a valid record ({e})"),
                });
            }
        };
        if cols.seq != row.seq {
            // An entry inserted by renumbering shows as the row after it
            // holding its predecessor's body, linked to the same parent.
            if cols.seq + 1 == row.seq && row.prev_hash == self.last_prev {
                return Some(ChainProblem::Inserted { seq: row.seq - 1 });
            }
            // Entries deleted and the rest renumbered to hide the gap: this
            // row holds a later entry, and the entry it replaced is not
            // simply further down (as it would be after a swap).
            let next_holds = next.and_then(|n| {
                serde_json::from_str::<BodyColumns<'_>>(&n.body)
                    .ok()
                    .map(|c| c.seq)
            });
            if cols.seq > row.seq && next_holds != Some(row.seq) {
                return Some(ChainProblem::Removed {
                    from: row.seq,
                    to: cols.seq - 1,
                });
            }
            return Some(ChainProblem::Reordered {
                seq: row.seq,
                holds: cols.seq,
            });
        }
        if row.prev_hash != self.running {
            if next.is_some_and(|n| n.prev_hash == self.running) {
                return Some(ChainProblem::Inserted { seq: row.seq });
            }
            if row.prev_hash == self.before_last_prev && !self.before_last_prev.is_empty() {
                return Some(ChainProblem::Inserted { seq: row.seq - 1 });
            }
            if chain_hash(&row.prev_hash, &row.body) == row.hash {
                return Some(ChainProblem::Unlinked { seq: row.seq });
            }
            return Some(ChainProblem::Altered {
                seq: row.seq,
                detail: "its link to the previous entry was changed".into(),
            });
        }
        if chain_hash(&row.prev_hash, &row.body) != row.hash {
            return Some(ChainProblem::Altered {
                seq: row.seq,
                detail: "its content does not match its hash".into(),
            });
        }
        for (name, value) in &row.columns {
            let in_body: Option<String> = match *name {
                "time_ms" => Some(cols.time_ms.to_string()),
                "phase" => Some(cols.phase.to_string()),
                "operation" => cols.operation.map(|o| o.to_string()),
                "environment" => cols.environment.as_deref().map(str::to_string),
                "cluster" => cols.cluster.as_deref().map(str::to_string),
                "app" => cols.app.as_deref().map(str::to_string),
                "action" => Some(cols.action.to_string()),
                "outcome" => cols.outcome.as_deref().map(str::to_string),
                "actor" => Some(cols.actor.identity.to_string()),
                _ => continue,
            };
            // `outcome` is NULL where a binary older than schema v2 appended.
            let Some(value) = value else {
                if *name != "outcome" && in_body.is_some() {
                    return Some(ChainProblem::Altered {
                        seq: row.seq,
                        detail: format!("column `{name}` was cleared"),
                    });
                }
                continue;
            };
            if in_body.as_deref() != Some(value.as_str()) {
                return Some(ChainProblem::Altered {
                    seq: row.seq,
                    detail: format!(
                        "column `{name}` is {value:?} but the hashed record says {}",
                        in_body.as_deref().unwrap_or("nothing")
                    ),
                });
            }
        }
        None
    }
}
