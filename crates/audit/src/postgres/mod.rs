//! The PostgreSQL store: the same entries, chain, signed heads, intents
//! and outcomes as [`SqliteStore`](crate::SqliteStore), for several
//! controller replicas writing one trail.
//!
//! Writers from any number of processes are serialised by a
//! transaction-scoped advisory lock ([`schema::WRITE_LOCK`]) taken before
//! the head is read: the next `seq` and `prev_hash` are computed from the
//! head the previous writer committed, so there is one chain, no fork and
//! no gap. The primary key on `seq` and the unique `prev_hash` refuse a
//! second row at the same place even if the lock were bypassed.

mod connect;
pub(crate) mod schema;

use crate::AuditError;
use crate::append::{self, Columns, Intent, Pending};
use crate::chain::StoredRow;
use crate::entry::{Entry, Record, Seq};
use crate::location::PgUrl;
use crate::signing;
use crate::sink::{AuditSink, OperationId, now_ms};
use crate::store::{Filter, FilterArg, SignedHead, VerifyReport, decode};
use connect::Runner;
use deadpool_postgres::Pool;
use ed25519_dalek::{SigningKey, VerifyingKey};
use schema::{ENTRIES, HEADS, SCHEMA_LOCK, WRITE_LOCK};
use tokio_postgres::types::ToSql;

/// Rows read per query when walking the whole log.
const PAGE: i64 = 2_000;

fn pg(e: tokio_postgres::Error) -> AuditError {
    AuditError::postgres(&e)
}

fn pool_err(e: deadpool_postgres::PoolError) -> AuditError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => AuditError::postgres(&e),
        other => AuditError::Postgres(other.to_string()),
    }
}

/// The audit log in a PostgreSQL database.
pub struct PgStore {
    runner: Runner,
    pool: Pool,
    url: PgUrl,
    signing_key: Option<SigningKey>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.url.display)
            .field("signing", &self.signing_key.is_some())
            .finish()
    }
}

/// A query parameter owned by the future that sends it.
type Param = FilterArg;

fn as_sql(p: &Param) -> &(dyn ToSql + Sync) {
    match p {
        Param::Text(s) => s,
        Param::Int(i) => i,
    }
}

/// A stored row and its body, as copied by `tidegate audit migrate`.
pub(crate) type Sealed = (Record, String);

impl PgStore {
    /// Connects to `url` and creates the tables if missing.
    pub fn open(url: &PgUrl) -> Result<Self, AuditError> {
        let store = Self::connect(url)?;
        let pool = store.pool.clone();
        store.runner.run(async move {
            let mut client = pool.get().await.map_err(pool_err)?;
            if schema_present(&client).await? {
                return Ok(());
            }
            let tx = client.transaction().await.map_err(pg)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
                .await
                .map_err(pg)?;
            tx.batch_execute(schema::CREATE).await.map_err(pg)?;
            tx.commit().await.map_err(pg)
        })?;
        Ok(store)
    }

    /// Connects to an existing log; [`AuditError::Missing`] if the database
    /// has no Tidegate audit tables.
    pub fn open_existing(url: &PgUrl) -> Result<Self, AuditError> {
        let store = Self::connect(url)?;
        let pool = store.pool.clone();
        let present = store.runner.run(async move {
            let client = pool.get().await.map_err(pool_err)?;
            schema_present(&client).await
        })?;
        if !present {
            return Err(AuditError::Missing(url.display.clone().into()));
        }
        Ok(store)
    }

    /// Connects for reading: nothing is created; appending still works
    /// when the database user may write (PostgreSQL's grants decide).
    pub fn open_read_only(url: &PgUrl) -> Result<Self, AuditError> {
        Self::open_existing(url)
    }

    fn connect(url: &PgUrl) -> Result<Self, AuditError> {
        let runner = Runner::new()?;
        let pool = connect::pool(url)?;
        Ok(PgStore {
            runner,
            pool,
            url: url.clone(),
            signing_key: None,
        })
    }

    /// Signs the chain head with `key` after every write from now on.
    pub fn with_signing_key(mut self, key: SigningKey) -> Self {
        self.signing_key = Some(key);
        self
    }

    /// The URL, password hidden.
    pub fn display(&self) -> &str {
        &self.url.display
    }

    /// Appends stand-alone events in one transaction.
    pub fn append_batch(&self, entries: Vec<Entry>) -> Result<Vec<Seq>, AuditError> {
        self.write(entries.into_iter().map(Pending::Event).collect())
    }

    fn write(&self, items: Vec<Pending>) -> Result<Vec<Seq>, AuditError> {
        append::check_all(&items)?;
        let pool = self.pool.clone();
        let key = self.signing_key.clone();
        self.runner.run(async move {
            let mut client = pool.get().await.map_err(pool_err)?;
            let tx = client.transaction().await.map_err(pg)?;
            let head = lock_head(&tx).await?;
            let mut intents = std::collections::HashMap::new();
            for op in items.iter().filter_map(Pending::operation) {
                if let std::collections::hash_map::Entry::Vacant(slot) = intents.entry(op) {
                    slot.insert(read_intent(&tx, op).await?);
                }
            }
            let sealed = append::seal_all(items, head, |op| {
                intents
                    .remove(&op)
                    .ok_or(AuditError::UnknownOperation(op.0))
            })?;
            insert_rows(&tx, &sealed).await?;
            if let (Some(key), Some((last, _))) = (&key, sealed.last()) {
                insert_head(&tx, &new_head(key, last.seq, &last.hash)).await?;
            }
            tx.commit().await.map_err(pg)?;
            Ok(sealed.iter().map(|(r, _)| r.seq).collect())
        })
    }

    /// Signs the current head with `key` and stores the signature
    /// (`None` when the log is empty).
    pub fn sign_head(&self, key: &SigningKey) -> Result<Option<SignedHead>, AuditError> {
        let pool = self.pool.clone();
        let key = key.clone();
        self.runner.run(async move {
            let mut client = pool.get().await.map_err(pool_err)?;
            let tx = client.transaction().await.map_err(pg)?;
            let Some((seq, hash)) = lock_head(&tx).await? else {
                return Ok(None);
            };
            let head = new_head(&key, seq, &hash);
            insert_head(&tx, &head).await?;
            tx.commit().await.map_err(pg)?;
            Ok(Some(head))
        })
    }

    /// Every signed head, oldest first.
    pub fn signed_heads(&self) -> Result<Vec<SignedHead>, AuditError> {
        let pool = self.pool.clone();
        self.runner.run(async move {
            let client = pool.get().await.map_err(pool_err)?;
            let rows = client
                .query(
                    &format!("SELECT seq, hash, public_key, signature, signed_at_ms FROM {HEADS} ORDER BY id"),
                    &[],
                )
                .await
                .map_err(pg)?;
            Ok(rows
                .iter()
                .map(|r| SignedHead {
                    seq: r.get::<_, i64>(0).max(0) as Seq,
                    hash: r.get(1),
                    public_key: r.get(2),
                    signature: r.get(3),
                    signed_at_ms: r.get(4),
                })
                .collect())
        })
    }

    /// Number of entries.
    pub fn len(&self) -> Result<u64, AuditError> {
        let pool = self.pool.clone();
        self.runner.run(async move {
            let client = pool.get().await.map_err(pool_err)?;
            let row = client
                .query_one(&format!("SELECT count(*) FROM {ENTRIES}"), &[])
                .await
                .map_err(pg)?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> Result<bool, AuditError> {
        Ok(self.len()? == 0)
    }

    /// The last entry's sequence number and hash.
    pub fn head(&self) -> Result<Option<(Seq, String)>, AuditError> {
        let pool = self.pool.clone();
        self.runner.run(async move {
            let client = pool.get().await.map_err(pool_err)?;
            let row = client
                .query_opt(
                    &format!("SELECT seq, hash FROM {ENTRIES} ORDER BY seq DESC LIMIT 1"),
                    &[],
                )
                .await
                .map_err(pg)?;
            Ok(row.map(|r| (r.get::<_, i64>(0).max(0) as Seq, r.get(1))))
        })
    }

    /// Records matching `filter`, in sequence order.
    pub fn records(&self, filter: &Filter) -> Result<Vec<Record>, AuditError> {
        let mut out = Vec::new();
        self.for_each(filter, |r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` with each record matching `filter`, in sequence order
    /// (read in pages, so a large log is never held in memory at once).
    pub fn for_each(
        &self,
        filter: &Filter,
        mut f: impl FnMut(Record) -> Result<(), AuditError>,
    ) -> Result<(), AuditError> {
        let (conditions, rest) = filter.conditions(1, |n| format!("${n}"));
        let sql = format!(
            "SELECT seq, body, prev_hash, hash FROM {ENTRIES} WHERE seq > $1{conditions} ORDER BY seq LIMIT {PAGE}"
        );
        let mut args = vec![Param::Int(0)];
        args.extend(rest);
        loop {
            let page = self.query(&sql, args.clone())?;
            let full = page.len() as i64 == PAGE;
            for row in &page {
                let seq = row.get::<_, i64>(0).max(0) as Seq;
                args[0] = Param::Int(seq as i64);
                f(decode(seq, row.get(1), row.get(2), row.get(3))?)?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn query(&self, sql: &str, args: Vec<Param>) -> Result<Vec<tokio_postgres::Row>, AuditError> {
        let pool = self.pool.clone();
        let sql = sql.to_string();
        self.runner.run(async move {
            let client = pool.get().await.map_err(pool_err)?;
            let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(as_sql).collect();
            client.query(&sql, &params).await.map_err(pg)
        })
    }

    /// Intents that have no outcome: operations a crash interrupted (or
    /// still running).
    pub fn interrupted(&self) -> Result<Vec<Record>, AuditError> {
        let rows = self.query(
            &format!(
                "SELECT i.seq, i.body, i.prev_hash, i.hash FROM {ENTRIES} i WHERE i.phase = 'intent' \
                 AND NOT EXISTS (SELECT 1 FROM {ENTRIES} o WHERE o.operation = i.seq AND o.phase = 'outcome') \
                 ORDER BY i.seq"
            ),
            Vec::new(),
        )?;
        rows.iter()
            .map(|r| {
                let seq = r.get::<_, i64>(0).max(0) as Seq;
                decode(seq, r.get(1), r.get(2), r.get(3))
            })
            .collect()
    }

    /// Recomputes the whole chain and checks the signed heads, as
    /// [`SqliteStore::verify`](crate::SqliteStore::verify) does.
    pub fn verify(&self, trusted: Option<&VerifyingKey>) -> Result<VerifyReport, AuditError> {
        let heads = self.signed_heads()?;
        let sql = format!(
            "SELECT seq, time_ms, phase, operation, actor, environment, cluster, app, action, body, prev_hash, hash, outcome \
             FROM {ENTRIES} WHERE seq > $1 ORDER BY seq LIMIT {PAGE}"
        );
        let mut page: std::collections::VecDeque<StoredRow> = Default::default();
        let mut after: Option<i64> = Some(i64::MIN);
        crate::verify::verify_chain(&heads, trusted, || {
            if page.is_empty()
                && let Some(from) = after
            {
                let rows = self.query(&sql, vec![Param::Int(from)])?;
                after = (rows.len() as i64 == PAGE)
                    .then(|| rows.last().map(|r| r.get::<_, i64>(0)))
                    .flatten();
                page.extend(rows.iter().map(stored_row));
            }
            Ok(page.pop_front())
        })
    }

    /// Appends rows sealed elsewhere (a migrated trail) verbatim, in one
    /// transaction, provided the head is still `expected_head`.
    pub(crate) fn import(
        &self,
        rows: Vec<Sealed>,
        heads: Vec<SignedHead>,
        expected_head: Option<(Seq, String)>,
    ) -> Result<(), AuditError> {
        let pool = self.pool.clone();
        let display = self.url.display.clone();
        self.runner.run(async move {
            let mut client = pool.get().await.map_err(pool_err)?;
            let tx = client.transaction().await.map_err(pg)?;
            if lock_head(&tx).await? != expected_head {
                return Err(AuditError::Refused(format!(
                    "{display} was written to while the trail was being copied; nothing of this batch was copied (run migrate again)"
                )));
            }
            insert_rows(&tx, &rows).await?;
            for h in &heads {
                insert_head(&tx, h).await?;
            }
            tx.commit().await.map_err(pg)
        })
    }
}

fn stored_row(r: &tokio_postgres::Row) -> StoredRow {
    let int = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.to_string());
    let text = |i: usize| r.get::<_, Option<String>>(i);
    StoredRow {
        seq: r.get::<_, i64>(0).max(0) as Seq,
        columns: vec![
            ("time_ms", int(1)),
            ("phase", text(2)),
            ("operation", int(3)),
            ("actor", text(4)),
            ("environment", text(5)),
            ("cluster", text(6)),
            ("app", text(7)),
            ("action", text(8)),
            ("outcome", text(12)),
        ],
        body: r.get(9),
        prev_hash: r.get(10),
        hash: r.get(11),
    }
}

async fn schema_present(client: &tokio_postgres::Client) -> Result<bool, AuditError> {
    let row = client
        .query_one(
            "SELECT to_regclass('tidegate_audit_meta') IS NOT NULL AND to_regclass($1) IS NOT NULL",
            &[&ENTRIES],
        )
        .await
        .map_err(pg)?;
    Ok(row.get(0))
}

/// Takes the write lock (one writer at a time, until this transaction
/// ends), then reads the head: the one the previous writer committed.
async fn lock_head(
    tx: &deadpool_postgres::Transaction<'_>,
) -> Result<Option<(Seq, String)>, AuditError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
        .await
        .map_err(pg)?;
    read_head(tx).await
}

async fn read_head(
    tx: &deadpool_postgres::Transaction<'_>,
) -> Result<Option<(Seq, String)>, AuditError> {
    let row = tx
        .query_opt(
            &format!("SELECT seq, hash FROM {ENTRIES} ORDER BY seq DESC LIMIT 1"),
            &[],
        )
        .await
        .map_err(pg)?;
    Ok(row.map(|r| (r.get::<_, i64>(0).max(0) as Seq, r.get(1))))
}

async fn read_intent(
    tx: &deadpool_postgres::Transaction<'_>,
    op: OperationId,
) -> Result<Intent, AuditError> {
    let seq = op.0 as i64;
    let row = tx
        .query_opt(
            &format!(
                "SELECT body, prev_hash, hash, EXISTS (SELECT 1 FROM {ENTRIES} o WHERE o.operation = $1 AND o.phase = 'outcome') \
                 FROM {ENTRIES} WHERE seq = $1 AND phase = 'intent'"
            ),
            &[&seq],
        )
        .await
        .map_err(pg)?;
    let Some(row) = row else {
        return Err(AuditError::UnknownOperation(op.0));
    };
    let record = decode(op.0, row.get(0), row.get(1), row.get(2))?;
    Ok(Intent {
        entry: record.entry,
        time_ms: record.time_ms,
        closed: row.get(3),
    })
}

async fn insert_rows(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &[Sealed],
) -> Result<(), AuditError> {
    if rows.is_empty() {
        return Ok(());
    }
    let insert = tx
        .prepare(&format!(
            "INSERT INTO {ENTRIES} (seq, time_ms, phase, operation, actor, environment, cluster, app, action, body, prev_hash, hash, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .await
        .map_err(pg)?;
    for (record, body) in rows {
        let c = Columns::of(record);
        tx.execute(
            &insert,
            &[
                &c.seq,
                &c.time_ms,
                &c.phase,
                &c.operation,
                &c.actor,
                &c.environment,
                &c.cluster,
                &c.app,
                &c.action,
                body,
                &record.prev_hash,
                &record.hash,
                &c.outcome,
            ],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}

fn new_head(key: &SigningKey, seq: Seq, hash: &str) -> SignedHead {
    SignedHead {
        seq,
        hash: hash.to_string(),
        public_key: signing::public_key_hex(&key.verifying_key()),
        signature: signing::sign_head(key, seq, hash),
        signed_at_ms: now_ms(),
    }
}

async fn insert_head(
    tx: &deadpool_postgres::Transaction<'_>,
    head: &SignedHead,
) -> Result<(), AuditError> {
    tx.execute(
        &format!("INSERT INTO {HEADS} (seq, hash, public_key, signature, signed_at_ms) VALUES ($1, $2, $3, $4, $5)"),
        &[
            &(head.seq as i64),
            &head.hash,
            &head.public_key,
            &head.signature,
            &head.signed_at_ms,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

impl AuditSink for PgStore {
    fn verify_chain(&self) -> Result<bool, AuditError> {
        Ok(self.verify(None)?.ok())
    }

    fn append(&self, entry: Entry) -> Result<Seq, AuditError> {
        first(self.write(vec![Pending::Event(entry)])?)
    }

    fn begin_operation(&self, intent: Entry) -> Result<OperationId, AuditError> {
        first(self.write(vec![Pending::Intent(intent)])?).map(OperationId)
    }

    fn record(&self, operation: OperationId, entry: Entry) -> Result<Seq, AuditError> {
        first(self.write(vec![Pending::Step(operation, entry)])?)
    }

    fn record_batch(
        &self,
        operation: OperationId,
        entries: Vec<Entry>,
    ) -> Result<Vec<Seq>, AuditError> {
        self.write(
            entries
                .into_iter()
                .map(|e| Pending::Step(operation, e))
                .collect(),
        )
    }

    fn finish_operation(&self, operation: OperationId, outcome: Entry) -> Result<Seq, AuditError> {
        first(self.write(vec![Pending::Outcome(operation, outcome)])?)
    }

    fn open_operations(&self) -> Result<Vec<Record>, AuditError> {
        self.interrupted()
    }
}

fn first(seqs: Vec<Seq>) -> Result<Seq, AuditError> {
    seqs.first()
        .copied()
        .ok_or_else(|| AuditError::Refused("nothing to append".into()))
}
