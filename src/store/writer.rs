//! The batching binding writer.
//!
//! The registrar sends [`BindingOp`]s on an unbounded channel and never waits for the disk.
//! The writer task collects them, coalesces by (AOR, Contact) — the last op for a key wins —
//! and writes each batch in one transaction: [`BATCH_INTERVAL`] after the first op of a batch,
//! at once when [`BATCH_MAX_OPS`] ops are queued or a `Flush` is asked for. When the channel
//! closes it writes what is left and exits, so dropping every sender then awaiting the
//! `JoinHandle` is a graceful shutdown.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::Store;
use crate::pbx::directory::BindingRecord;

/// Longest time an op waits before its batch is written.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(200);
/// A batch is written at once when this many ops are queued.
pub const BATCH_MAX_OPS: usize = 1000;

/// One change to the persisted bindings.
#[derive(Debug)]
pub enum BindingOp {
    /// Insert or replace the binding (aor, contact).
    Upsert(BindingRecord),
    /// Remove the binding (aor, contact) (unregister, expiry, replacement).
    Delete { aor: String, contact: String },
    /// Write everything sent before this op, then answer.
    Flush(oneshot::Sender<()>),
}

/// The writer's coalescing buffer (no I/O; the task in [`spawn_binding_writer`] drives it).
#[derive(Debug, Default)]
pub struct BindingWriter {
    /// Last op per (aor, contact): `Some` = upsert, `None` = delete.
    pending: HashMap<(String, String), Option<BindingRecord>>,
    queued_ops: usize,
    flushes: Vec<oneshot::Sender<()>>,
}

/// A coalesced batch, ready for [`Store::save_bindings`].
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub upserts: Vec<BindingRecord>,
    pub deletes: Vec<(String, String)>,
    /// Answered once the batch has been written (or given up on).
    pub flushes: Vec<oneshot::Sender<()>>,
}

impl WriteBatch {
    /// Nothing to write (there may still be flushes to answer).
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty()
    }
}

impl BindingWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, op: BindingOp) {
        match op {
            BindingOp::Upsert(record) => {
                self.queued_ops += 1;
                let key = (record.aor.clone(), record.contact.clone());
                self.pending.insert(key, Some(record));
            }
            BindingOp::Delete { aor, contact } => {
                self.queued_ops += 1;
                self.pending.insert((aor, contact), None);
            }
            BindingOp::Flush(done) => self.flushes.push(done),
        }
    }

    /// Ops received since the last batch (before coalescing).
    pub fn queued_ops(&self) -> usize {
        self.queued_ops
    }

    /// Write now rather than at the end of the interval.
    pub fn is_urgent(&self) -> bool {
        !self.flushes.is_empty() || self.queued_ops >= BATCH_MAX_OPS
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.flushes.is_empty()
    }

    /// Take the coalesced batch, leaving the buffer empty.
    pub fn take_batch(&mut self) -> WriteBatch {
        let mut batch = WriteBatch {
            upserts: Vec::with_capacity(self.pending.len()),
            deletes: Vec::new(),
            flushes: std::mem::take(&mut self.flushes),
        };
        for (key, op) in self.pending.drain() {
            match op {
                Some(record) => batch.upserts.push(record),
                None => batch.deletes.push(key),
            }
        }
        self.queued_ops = 0;
        batch
    }
}

/// Spawn the writer task on the current tokio runtime. It ends when every sender is dropped,
/// after writing what was queued.
pub fn spawn_binding_writer(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<BindingOp>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut writer = BindingWriter::new();
        while let Some(op) = rx.recv().await {
            writer.push(op);
            let deadline = tokio::time::Instant::now() + BATCH_INTERVAL;
            let mut closed = false;
            while !writer.is_urgent() {
                tokio::select! {
                    op = rx.recv() => match op {
                        Some(op) => writer.push(op),
                        None => {
                            closed = true;
                            break;
                        }
                    },
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
            write(&store, writer.take_batch()).await;
            if closed {
                break;
            }
        }
        tracing::debug!("binding writer stopped");
    })
}

/// Write one batch, retrying once; then answer the flushes. Never panics.
async fn write(store: &Store, batch: WriteBatch) {
    if !batch.is_empty() {
        let (upserts, deletes) = (batch.upserts.len(), batch.deletes.len());
        if let Err(first) = store.save_bindings(&batch.upserts, &batch.deletes).await {
            tracing::warn!(error = %first, upserts, deletes, "saving bindings failed; retrying once");
            if let Err(second) = store.save_bindings(&batch.upserts, &batch.deletes).await {
                tracing::warn!(
                    error = %second,
                    upserts,
                    deletes,
                    "saving bindings failed again; batch dropped (phones restore it when they re-register)"
                );
            }
        }
    }
    for done in batch.flushes {
        // The asker may have gone away; nothing to do then.
        let _ = done.send(());
    }
}
