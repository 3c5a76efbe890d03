//! The extended query protocol: Parse/Bind/Describe/Execute/Close are kept
//! until Sync (or Flush), the batch is routed once by the SQL it runs, and
//! sent with statement names rewritten.
//!
//! Named prepared statements follow the client to whichever backend runs its
//! next Execute: each client Parse is remembered (name → SQL and parameter
//! types) and gets a backend-side name shared by every client preparing the
//! same (SQL, types) in the same statement generation (see
//! [`backend_statements`]); each backend connection knows which of those it
//! has, and the proxy injects the Parse (hiding its ParseComplete) where one is
//! missing. A client Close of a statement only forgets it client-side.
//!
//! The client's statement names behave as on PostgreSQL: a name exists once
//! its Parse succeeded (one that failed, or was skipped after an error, is
//! forgotten again: see [`statement_names`]), and a Parse of a name that
//! exists fails with `42P05`, raised by the backend itself, so that the
//! batch's transaction fails and the rest of the batch is skipped exactly as
//! PostgreSQL does.

mod backend_statements;
mod batch_settings;
mod batch_unit;
mod build;
mod flush_split;
mod shape;
mod statement_names;

use std::sync::atomic::AtomicUsize;

use bytes::Bytes;

use super::Session;
use super::client::SessionEnd;
use super::dispatch::Unit;
use super::relay::Relayed;
use crate::pool::PooledBackend;
use crate::protocol::Message;
use crate::protocol::backend::encode_close_complete;
use crate::protocol::frontend::{FrontendMessage, Target};
pub(super) use backend_statements::changes_relations;
use batch_unit::strictest;
use statement_names::retire_statements;

/// A statement a client prepared.
#[derive(Debug)]
pub(crate) struct PreparedStatement {
    sql: Bytes,
    param_types: Vec<u32>,
    /// The name it has on backends (`pgrw_<hash>_<len>_g<generation>`), empty
    /// for the unnamed statement.
    backend_name: String,
    unit: Unit,
    /// The description the client was given for it (see [`shape`]).
    pub(crate) shape: shape::Shape,
    /// While the exchange holding its Parse runs: how many steps from the end
    /// of that exchange the Parse is (an error that many steps from the end,
    /// or fewer, means the Parse never happened). 0 once it is settled.
    unsettled: AtomicUsize,
}

/// How a batch ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BatchEnd {
    Sync,
    Flush,
}

impl Session {
    /// Keeps one extended-protocol message for the batch.
    pub(super) async fn extended_message(&mut self, message: Message) -> Result<(), SessionEnd> {
        if self.skip_until_sync {
            return Ok(());
        }
        // Reject malformed messages now, before anything is sent.
        FrontendMessage::decode(message.view())?;
        self.batch.push(message);
        Ok(())
    }

    /// Sync: run the batch and answer ReadyForQuery.
    pub(super) async fn sync(&mut self) -> Result<(), SessionEnd> {
        if self.skip_until_sync {
            self.skip_until_sync = false;
            self.batch.clear();
            if self.open_batch.is_none() {
                self.ready();
                return Ok(());
            }
            // The backend of a batch that failed before a Flush skips to
            // this Sync too: it gets it, and its ReadyForQuery is the client's.
        }
        if self.open_batch.is_none() {
            // A BEGIN first, as pgjdbc sends it (`transaction_reads`).
            self.defer_batch_begin()?;
        }
        self.run_batch(BatchEnd::Sync).await
    }

    /// Ends an extended batch left open after a Flush (asyncpg prepares with
    /// Parse, Describe, Flush and no Sync) before a Query, which PostgreSQL
    /// runs after it as the end of its implicit transaction: the proxy's own
    /// Sync, unseen by the client, ends it where it ran, so that the Query is
    /// routed afresh and the ReadyForQuery the client gets is the Query's.
    pub(super) async fn end_open_batch(&mut self) -> Result<(), SessionEnd> {
        if self.skip_until_sync {
            return Ok(());
        }
        if !self.batch.is_empty() {
            // Messages not flushed yet run first, as PostgreSQL would run them.
            self.run_batch(BatchEnd::Flush).await?;
        }
        if let Some((backend, unit)) = self.open_batch.take() {
            self.flushed.clear();
            self.end_first_part(backend, unit).await?;
        }
        Ok(())
    }

    /// Flush: run what is batched so far; later messages up to Sync go to the
    /// same backend.
    pub(super) async fn flush_batch(&mut self) -> Result<(), SessionEnd> {
        if self.skip_until_sync || (self.batch.is_empty() && self.open_batch.is_none()) {
            self.client.flush().await?;
            return Ok(());
        }
        self.run_batch(BatchEnd::Flush).await
    }

    async fn run_batch(&mut self, end: BatchEnd) -> Result<(), SessionEnd> {
        let batch = std::mem::take(&mut self.batch);
        let sent = std::mem::take(&mut self.flushed);
        if let Some((mut backend, unit)) = self.open_batch.take() {
            match self.splits_at_flush(&mut backend, &unit, &sent, &batch)? {
                Some(rebinds) => {
                    // The rest writes after reads on a replica: see [`flush_split`].
                    self.end_first_part(backend, unit).await?;
                    self.rebinds = rebinds;
                }
                None => {
                    self.open_batch = Some((backend, unit));
                    self.flushed = sent;
                }
            }
        }
        self.run_batch_part(batch, end).await?;
        self.rebinds.clear();
        Ok(())
    }

    /// Runs one part of a batch (up to a Flush or its Sync); the parts of a
    /// batch still open after it are kept for a split (`self.flushed`).
    async fn run_batch_part(
        &mut self,
        batch: Vec<Message>,
        end: BatchEnd,
    ) -> Result<(), SessionEnd> {
        self.run_routed(&batch, end).await?;
        if self.open_batch.is_some() {
            self.flushed.extend(batch);
        } else {
            self.flushed.clear();
        }
        Ok(())
    }

    /// Routes one part of a batch (or follows its open batch) and runs it.
    async fn run_routed(&mut self, batch: &[Message], end: BatchEnd) -> Result<(), SessionEnd> {
        // An error in an earlier part of this batch (before a Flush) is the
        // whole batch's: its implicit transaction is rolled back at the Sync.
        let errored_before = self.open_batch.is_some() && self.exchange_errored;
        let continued = self.open_batch.is_some();
        let (backend, unit) = match self.open_batch.take() {
            // The rest of a batch after a Flush: part of the same unit.
            Some((backend, mut unit)) => {
                if !batch.is_empty() {
                    unit = strictest(unit, self.batch_unit(batch)?);
                    self.follow_settings(batch, &mut unit)?;
                }
                (backend, unit)
            }
            None => {
                if batch.is_empty() {
                    // A lone Sync: nothing to run anywhere.
                    self.ready();
                    return Ok(());
                }
                if end == BatchEnd::Sync && self.answers_closes_alone(batch)? {
                    return Ok(());
                }
                if self.refuses_pgrw_commands(batch)? {
                    match end {
                        BatchEnd::Sync => self.ready(),
                        BatchEnd::Flush => self.skip_until_sync = true,
                    }
                    return Ok(());
                }
                let mut unit = self.batch_unit(batch)?;
                if self.may_recall_shape(&unit)
                    && let Some(sql) = self.executed_sql(batch)?
                {
                    self.recall_shape(&sql, &mut unit);
                }
                self.unit_settings.clear();
                self.follow_settings(batch, &mut unit)?;
                let Some(mut backend) = self.acquire(&unit).await else {
                    match end {
                        BatchEnd::Sync => self.ready(),
                        BatchEnd::Flush => self.skip_until_sync = true,
                    }
                    return Ok(());
                };
                if let Err(error) = retire_statements(&mut backend).await {
                    self.backend_failed(backend, error.to_string());
                    if end == BatchEnd::Flush {
                        self.skip_until_sync = true;
                    }
                    return Ok(());
                }
                match self.result_shape_changed(&mut backend, batch).await? {
                    Ok(false) => {}
                    Ok(true) => return self.refuse_changed_shape(backend, end).await,
                    Err(error) => {
                        self.backend_failed(backend, error.to_string());
                        if end == BatchEnd::Flush {
                            self.skip_until_sync = true;
                        }
                        return Ok(());
                    }
                }
                (backend, unit)
            }
        };
        // Only a whole batch (to its Sync) that closes nothing can be sent
        // again as it was.
        let rerunnable = !continued
            && self.rebinds.is_empty()
            && end == BatchEnd::Sync
            && !closes_anything(batch)?
            && self.may_rerun(&unit, backend.node());
        self.send_batch(backend, unit, batch, end, errored_before, rerunnable)
            .await
    }

    /// Sends `batch` on `backend`, relays the answer and settles; a
    /// `rerunnable` one refused by a replica is sent again to the primary.
    async fn send_batch(
        &mut self,
        mut backend: PooledBackend,
        mut unit: Unit,
        batch: &[Message],
        end: BatchEnd,
        errored_before: bool,
        mut rerunnable: bool,
    ) -> Result<(), SessionEnd> {
        loop {
            let node = backend.node();
            let mut built = self.build(&mut backend, batch, end)?;
            built.exchange.rerunnable = rerunnable;
            if let Err(error) = backend.connection().send(&built.out).await {
                self.forget_statements(&built.parsed);
                self.backend_failed(backend, error.to_string());
                return Ok(());
            }
            let relayed = self.relay(backend, built.exchange).await?;
            self.exchange_errored |= errored_before;
            match relayed {
                Relayed::Ready(backend, ready) => {
                    self.settle_statements(&built.parsed);
                    return self.settle(backend, &unit, ready).await;
                }
                Relayed::Flushed(backend) => {
                    self.settle_statements(&built.parsed);
                    // After an error the backend ignores everything up to Sync,
                    // answering nothing: so does the proxy.
                    self.skip_until_sync |= self.exchange_errored;
                    self.open_batch = Some((backend, unit));
                    return Ok(());
                }
                Relayed::Failed(backend, error) => {
                    self.forget_statements(&built.parsed);
                    self.backend_lost(backend, error);
                    if end == BatchEnd::Flush {
                        self.skip_until_sync = true;
                    }
                    return Ok(());
                }
                Relayed::Rerun(refused, reason) => {
                    // Its Parses are made again on the primary.
                    self.forget_statements(&built.parsed);
                    self.release_refused(refused).await?;
                    let sql = self.executed_sql(batch)?.unwrap_or_default();
                    unit = self.note_rerun(reason, &sql, node, &unit);
                    rerunnable = false;
                    let Some(mut primary) = self.acquire(&unit).await else {
                        self.ready();
                        return Ok(());
                    };
                    if let Err(error) = retire_statements(&mut primary).await {
                        self.backend_failed(primary, error.to_string());
                        return Ok(());
                    }
                    backend = primary;
                }
            }
        }
    }

    /// The SQL of the statement the batch's first Execute runs (through its
    /// portal's Bind), or of its first Parse: what a rerun remembers it by.
    fn executed_sql(&self, batch: &[Message]) -> Result<Option<Bytes>, SessionEnd> {
        let mut parsed: Vec<(&[u8], &[u8])> = Vec::new();
        let mut bound = None;
        for message in batch {
            match FrontendMessage::decode(message.view())? {
                FrontendMessage::Parse(parse) => parsed.push((parse.statement, parse.sql)),
                FrontendMessage::Bind(bind) => {
                    bound = parsed
                        .iter()
                        .rev()
                        .find(|(name, _)| *name == bind.statement)
                        .map(|(_, sql)| Bytes::copy_from_slice(sql))
                        .or_else(|| {
                            let known = self.statements.get(bind.statement)?;
                            Some(known.sql.clone())
                        });
                }
                FrontendMessage::Execute { .. } if bound.is_some() => return Ok(bound),
                _ => {}
            }
        }
        Ok(parsed.first().map(|(_, sql)| Bytes::copy_from_slice(sql)))
    }

    /// Answers a batch of nothing but Closes of named statements, outside a
    /// transaction, without a backend: such a Close only makes the client
    /// forget a name (backends keep the statement for other clients), and
    /// the Sync has no transaction to end. Drivers send these when they evict
    /// a cached statement; each saves a checkout and a round trip. Whether it
    /// answered.
    fn answers_closes_alone(&mut self, batch: &[Message]) -> Result<bool, SessionEnd> {
        if self.routing.transaction.is_some() {
            return Ok(false);
        }
        for message in batch {
            match FrontendMessage::decode(message.view())? {
                FrontendMessage::Close {
                    target: Target::Statement,
                    name,
                } if !name.is_empty() => {}
                _ => return Ok(false),
            }
        }
        for message in batch {
            if let FrontendMessage::Close { name, .. } = FrontendMessage::decode(message.view())? {
                self.statements.remove(name);
                encode_close_complete(&mut self.client.out);
            }
        }
        self.ready();
        Ok(true)
    }
}

/// Whether `batch` has a Close (which changes what a second run would find).
fn closes_anything(batch: &[Message]) -> Result<bool, SessionEnd> {
    for message in batch {
        if let FrontendMessage::Close { .. } = FrontendMessage::decode(message.view())? {
            return Ok(true);
        }
    }
    Ok(false)
}
