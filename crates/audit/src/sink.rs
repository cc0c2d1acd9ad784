//! The one interface through which the engines write the log.

use crate::AuditError;
use crate::canonical::GENESIS;
use crate::chain::{ChainChecker, StoredRow, seal};
use crate::entry::{Entry, Phase, Record, Seq};
use std::sync::{Mutex, PoisonError};

/// An operation opened by [`AuditSink::begin_operation`]: the sequence
/// number of its intent entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OperationId(pub Seq);

impl std::fmt::Display for OperationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "op-{}", self.0)
    }
}

/// Where audit entries go. API boundary: the rollout, sync and drift engines
/// depend on this trait only; [`SqliteStore`](crate::SqliteStore) is the real
/// one, [`MemorySink`] the one for their tests.
///
/// Protocol for anything that changes a cluster:
/// 1. [`begin_operation`](Self::begin_operation) with the intent (e.g.
///    `rollout-start`), which is on disk before it returns;
/// 2. change the cluster, recording steps with [`record`](Self::record);
/// 3. [`finish_operation`](Self::finish_operation) with the outcome (e.g.
///    `rollout-end`, with [`Entry::outcome`] set).
///
/// An intent without an outcome is reported as *interrupted*.
pub trait AuditSink: Send + Sync {
    /// Appends a stand-alone event (e.g. `drift-detected`).
    fn append(&self, entry: Entry) -> Result<Seq, AuditError>;
    /// Appends an intent and makes it durable before returning.
    fn begin_operation(&self, intent: Entry) -> Result<OperationId, AuditError>;
    /// Appends a step of an open operation (e.g. `wave-start`, `apply`).
    fn record(&self, operation: OperationId, entry: Entry) -> Result<Seq, AuditError>;
    /// Appends several steps of an operation in one transaction (one fsync).
    fn record_batch(
        &self,
        operation: OperationId,
        entries: Vec<Entry>,
    ) -> Result<Vec<Seq>, AuditError> {
        entries
            .into_iter()
            .map(|e| self.record(operation, e))
            .collect()
    }
    /// Closes an operation with its outcome; `environment`, `cluster`,
    /// `app`, `from` and `to` default to the intent's, `duration_ms` to the
    /// time since the intent.
    fn finish_operation(&self, operation: OperationId, outcome: Entry) -> Result<Seq, AuditError>;
    /// Intents without an outcome, oldest first: operations a crash
    /// interrupted, or that are still running.
    fn open_operations(&self) -> Result<Vec<Record>, AuditError>;
    /// Walks the whole chain: true when every entry and signed head checks
    /// out (what `tidegate audit verify` says, without a trusted key).
    fn verify_chain(&self) -> Result<bool, AuditError>;
}

/// Fills the outcome's unset fields from its intent.
pub(crate) fn inherit(outcome: &mut Entry, intent: &Entry, intent_time: i64, now: i64) {
    if outcome.environment.is_none() {
        outcome.environment.clone_from(&intent.environment);
    }
    if outcome.cluster.is_none() {
        outcome.cluster.clone_from(&intent.cluster);
    }
    if outcome.app.is_none() {
        outcome.app.clone_from(&intent.app);
    }
    if outcome.from.is_none() {
        outcome.from.clone_from(&intent.from);
    }
    if outcome.to.is_none() {
        outcome.to.clone_from(&intent.to);
    }
    if outcome.duration_ms.is_none() {
        outcome.duration_ms = Some(now.saturating_sub(intent_time).max(0) as u64);
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An in-memory log with the same rules and chain as the SQLite store, for
/// tests of the crates that write audit entries.
#[derive(Debug, Default)]
pub struct MemorySink {
    records: Mutex<Vec<(Record, String)>>,
}

impl MemorySink {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every record so far.
    pub fn records(&self) -> Vec<Record> {
        self.lock().iter().map(|(r, _)| r.clone()).collect()
    }

    /// Checks the chain; `Ok(n)` with the number of entries when it holds.
    pub fn verify(&self) -> Result<u64, crate::ChainProblem> {
        let rows: Vec<StoredRow> = self
            .lock()
            .iter()
            .map(|(r, body)| StoredRow {
                seq: r.seq,
                columns: Vec::new(),
                body: body.clone(),
                prev_hash: r.prev_hash.clone(),
                hash: r.hash.clone(),
            })
            .collect();
        let mut checker = ChainChecker::new();
        for (i, row) in rows.iter().enumerate() {
            if !checker.push(row, rows.get(i + 1)) {
                break;
            }
        }
        match checker.problem() {
            Some(p) => Err(p.clone()),
            None => Ok(checker.count()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Record, String)>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(
        &self,
        phase: Phase,
        operation: Option<OperationId>,
        mut entry: Entry,
    ) -> Result<Seq, AuditError> {
        entry.check()?;
        let mut records = self.lock();
        let now = entry.time_ms.unwrap_or_else(now_ms);
        let seq = records.len() as Seq + 1;
        let op = match (phase, operation) {
            (Phase::Intent, _) => Some(seq),
            (_, Some(op)) => {
                let Some((intent, _)) = records
                    .iter()
                    .find(|(r, _)| r.seq == op.0 && r.phase == Phase::Intent)
                else {
                    return Err(AuditError::UnknownOperation(op.0));
                };
                if phase == Phase::Outcome {
                    if records
                        .iter()
                        .any(|(r, _)| r.operation == Some(op.0) && r.phase == Phase::Outcome)
                    {
                        return Err(AuditError::UnknownOperation(op.0));
                    }
                    let (intent_entry, intent_time) = (intent.entry.clone(), intent.time_ms);
                    inherit(&mut entry, &intent_entry, intent_time, now);
                }
                Some(op.0)
            }
            (_, None) => None,
        };
        let prev = records
            .last()
            .map(|(r, _)| r.hash.clone())
            .unwrap_or_else(|| GENESIS.to_string());
        records.push(seal(seq, now, phase, op, entry, &prev));
        Ok(seq)
    }
}

impl AuditSink for MemorySink {
    fn verify_chain(&self) -> Result<bool, AuditError> {
        Ok(self.verify().is_ok())
    }

    fn append(&self, entry: Entry) -> Result<Seq, AuditError> {
        self.push(Phase::Event, None, entry)
    }

    fn begin_operation(&self, intent: Entry) -> Result<OperationId, AuditError> {
        self.push(Phase::Intent, None, intent).map(OperationId)
    }

    fn record(&self, operation: OperationId, entry: Entry) -> Result<Seq, AuditError> {
        self.push(Phase::Event, Some(operation), entry)
    }

    fn finish_operation(&self, operation: OperationId, outcome: Entry) -> Result<Seq, AuditError> {
        self.push(Phase::Outcome, Some(operation), outcome)
    }

    fn open_operations(&self) -> Result<Vec<Record>, AuditError> {
        let records = self.lock();
        Ok(records
            .iter()
            .filter(|(r, _)| {
                r.phase == Phase::Intent
                    && !records
                        .iter()
                        .any(|(o, _)| o.operation == Some(r.seq) && o.phase == Phase::Outcome)
            })
            .map(|(r, _)| r.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Actor, Outcome, Trigger};

    #[test]
    fn open_operations_are_the_intents_without_an_outcome() {
        let sink = MemorySink::new();
        let actor = Actor::new("tests", Trigger::Cli);
        let done = sink
            .begin_operation(Entry::new(actor.clone(), Action::Sync))
            .expect("intent");
        let open = sink
            .begin_operation(Entry::new(actor.clone(), Action::RolloutStart))
            .expect("intent");
        sink.record(open, Entry::new(actor.clone(), Action::WaveStart))
            .expect("step");
        sink.finish_operation(
            done,
            Entry::new(actor, Action::Sync).outcome(Outcome::Success),
        )
        .expect("outcome");
        let seqs: Vec<Seq> = sink
            .open_operations()
            .expect("open")
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, vec![open.0]);
    }
}
