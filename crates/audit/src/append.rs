//! What both stores do to append: check the entries, number and seal them
//! after the current head, fill outcomes from their intents. The stores
//! only read the head and the intents inside their write transaction and
//! insert the sealed rows.

use crate::AuditError;
use crate::canonical::GENESIS;
use crate::chain::seal;
use crate::entry::{Entry, Phase, Record, Seq};
use crate::sink::{OperationId, inherit, now_ms};
use std::collections::HashMap;

/// One entry to append, with its role.
pub(crate) enum Pending {
    /// A stand-alone event.
    Event(Entry),
    /// The intent that opens an operation.
    Intent(Entry),
    /// A step of an open operation.
    Step(OperationId, Entry),
    /// The outcome that closes an operation.
    Outcome(OperationId, Entry),
}

impl Pending {
    fn entry(&self) -> &Entry {
        let (Pending::Event(e) | Pending::Intent(e) | Pending::Step(_, e) | Pending::Outcome(_, e)) =
            self;
        e
    }

    /// The operation it belongs to, when it must already be open.
    pub(crate) fn operation(&self) -> Option<OperationId> {
        match self {
            Pending::Step(op, _) | Pending::Outcome(op, _) => Some(*op),
            Pending::Event(_) | Pending::Intent(_) => None,
        }
    }
}

/// An operation's intent as stored, and whether an outcome closed it.
pub(crate) struct Intent {
    /// The intent's entry.
    pub entry: Entry,
    /// Its time.
    pub time_ms: i64,
    /// True when an outcome already closed the operation.
    pub closed: bool,
}

/// Refuses entries unfit for the log before any transaction starts.
pub(crate) fn check_all(items: &[Pending]) -> Result<(), AuditError> {
    items.iter().try_for_each(|i| i.entry().check())
}

/// Seals `items` after `head` (`None`: an empty log). `intent` reads an
/// operation's intent ([`AuditError::UnknownOperation`] when there is none);
/// it is asked once per operation. Returns each record with its canonical
/// body, in order.
pub(crate) fn seal_all(
    items: Vec<Pending>,
    head: Option<(Seq, String)>,
    mut intent: impl FnMut(OperationId) -> Result<Intent, AuditError>,
) -> Result<Vec<(Record, String)>, AuditError> {
    let (mut seq, mut prev) = head.unwrap_or((0, GENESIS.to_string()));
    let mut intents: HashMap<OperationId, Intent> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        seq += 1;
        if let Some(op) = item.operation()
            && !intents.contains_key(&op)
        {
            intents.insert(op, intent(op)?);
        }
        let (phase, op, mut entry) = match item {
            Pending::Event(e) => (Phase::Event, None, e),
            Pending::Intent(e) => (Phase::Intent, Some(seq), e),
            Pending::Step(op, e) => (Phase::Event, Some(op.0), e),
            Pending::Outcome(op, e) => (Phase::Outcome, Some(op.0), e),
        };
        let now = entry.time_ms.unwrap_or_else(now_ms);
        if let (Phase::Outcome, Some(op)) = (phase, op) {
            let Some(open) = intents.get_mut(&OperationId(op)).filter(|i| !i.closed) else {
                return Err(AuditError::UnknownOperation(op));
            };
            inherit(&mut entry, &open.entry, open.time_ms, now);
            open.closed = true;
        }
        let (record, body) = seal(seq, now, phase, op, entry, &prev);
        prev.clone_from(&record.hash);
        out.push((record, body));
    }
    Ok(out)
}

/// The columns stored beside a record's body (copies of body fields).
pub(crate) struct Columns<'a> {
    /// `seq`.
    pub seq: i64,
    /// `time_ms`.
    pub time_ms: i64,
    /// `phase`.
    pub phase: &'static str,
    /// `operation`.
    pub operation: Option<i64>,
    /// `actor` (the identity).
    pub actor: &'a str,
    /// `environment`.
    pub environment: Option<&'a str>,
    /// `cluster`.
    pub cluster: Option<&'a str>,
    /// `app`.
    pub app: Option<&'a str>,
    /// `action`.
    pub action: &'a str,
    /// `outcome`.
    pub outcome: Option<&'static str>,
}

impl<'a> Columns<'a> {
    /// The columns of `record`.
    pub(crate) fn of(record: &'a Record) -> Self {
        let e = &record.entry;
        Columns {
            seq: record.seq as i64,
            time_ms: record.time_ms,
            phase: record.phase.as_str(),
            operation: record.operation.map(|o| o as i64),
            actor: &e.actor.identity,
            environment: e.environment.as_deref(),
            cluster: e.cluster.as_deref(),
            app: e.app.as_deref(),
            action: e.action.as_str(),
            outcome: e.outcome.map(|o| o.as_str()),
        }
    }
}
