//! Persistent store (sqlx; SQLite by default).
//!
//! Callers hold a [`Store`] (alias [`AnyStore`]): a concrete enum over the backends, cheap to
//! clone (pools are shared), with one inherent async method per operation. There is no trait
//! object: adding PostgreSQL later means a `Postgres(PgStore)` variant, a `postgres://` arm in
//! [`Store::open`] and one match arm per method; callers do not change.
//!
//! Bindings are written through a batching task ([`spawn_binding_writer`]) so the registrar
//! never waits on the disk: it sends [`BindingOp`]s on an unbounded channel and the writer
//! coalesces them by (AOR, Contact) and writes each batch in one transaction.
//!
//! Secrets (`Extension::secret`, `voicemail_pin`) are stored in plaintext: digest
//! authentication needs the password itself. They are never logged here.

mod pjsip;
mod sqlite;
mod writer;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

pub use pjsip::FsConfSource;
pub use sqlite::SqliteStore;
pub use writer::{
    BATCH_INTERVAL, BATCH_MAX_OPS, BindingOp, BindingWriter, WriteBatch, spawn_binding_writer,
};

use crate::config::SeedMode;
use crate::pbx::directory::{BindingRecord, Extension};
use crate::pjsip_conf::{Changes, PjsipObject};

/// Store failures. `Duplicate` and `NotFound` map to HTTP 409 and 404.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("extension {number} already exists")]
    Duplicate { number: String },
    #[error("extension {number} not found")]
    NotFound { number: String },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create database directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unsupported database URL scheme in {scheme:?} (use sqlite:// or sqlite::memory:)")]
    Unsupported { scheme: String },
}

/// Seconds since the Unix epoch (the store's timestamps).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The store: one variant per database backend.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqliteStore),
}

/// The name the task brief uses for [`Store`].
pub type AnyStore = Store;

/// One call detail record (the seed 004 `/api/cdr` fields plus the hangup cause).
#[derive(Debug, Clone, PartialEq)]
pub struct CdrRow {
    pub call_id: String,
    pub from_extension: String,
    pub to_extension: String,
    /// Unix milliseconds.
    pub start_time: i64,
    pub answer_time: Option<i64>,
    pub end_time: i64,
    /// ANSWERED, NO ANSWER, BUSY, FAILED, CANCELLED.
    pub disposition: String,
    /// Seconds.
    pub duration: i64,
    pub billsec: i64,
    pub recording_file: Option<String>,
    /// SIP status of the end of the call.
    pub hangup_cause: u16,
    /// caller, callee or system.
    pub hung_up_by: String,
    /// Q.850 cause (RFC 3398 mapping of the SIP status; 16 = normal clearing).
    pub q850_cause: u8,
    /// Negotiated codec per leg (Asterisk names: ulaw, alaw, g722 …).
    pub codec_a: Option<String>,
    pub codec_b: Option<String>,
    /// RTP received from each leg's phone.
    pub rtp_a: CdrRtpStats,
    pub rtp_b: CdrRtpStats,
}

/// Aggregates of the call records in a time range (`GET /api/statistics`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CdrSummary {
    pub total: i64,
    /// Calls per disposition (ANSWERED, NO ANSWER, BUSY, FAILED, CANCELLED).
    pub by_disposition: Vec<(String, i64)>,
    /// Seconds, summed.
    pub total_duration: i64,
    pub total_billsec: i64,
    /// Calls started in each UTC hour of the day, 0–23.
    pub hourly: [i64; 24],
    /// Per UTC day (`YYYY-MM-DD`): calls, answered calls, billsec.
    pub daily: Vec<(String, i64, i64, i64)>,
    /// Callers with the most calls: (extension, calls, billsec), at most 10.
    pub top_callers: Vec<(String, i64, i64)>,
    /// Over answered calls with RTP: mean jitter (ms) and packet loss (%) of both legs.
    pub mean_jitter_ms: Option<f64>,
    pub loss_pct: Option<f64>,
}

/// RTP statistics of one call leg, as stored with its CDR.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct CdrRtpStats {
    pub packets: i64,
    pub bytes: i64,
    /// RFC 3550 cumulative lost packets.
    pub lost: i64,
    /// RFC 3550 interarrival jitter, milliseconds.
    pub jitter_ms: f64,
}

/// What [`Store::seed_extensions`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// Numbers inserted from config.yml.
    pub inserted: Vec<String>,
    /// Numbers already stored and left untouched.
    pub kept: Vec<String>,
    /// Numbers not stored and not inserted (mode `if_empty` on a non-empty store).
    pub skipped: Vec<String>,
}

impl Store {
    /// Open the database named by `url` and run the embedded migrations.
    /// `sqlite://data/dialtone.db` creates `data/` and the file; `sqlite::memory:` is a private
    /// in-memory database (tests).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            return Ok(Store::Sqlite(SqliteStore::open(url).await?));
        }
        let scheme = url.split_once(':').map_or(url, |(s, _)| s);
        Err(StoreError::Unsupported {
            scheme: scheme.to_owned(),
        })
    }

    /// Close the connections (flush the WAL). Use at shutdown, after the binding writer ended.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
        }
    }

    /// All extensions, ordered by number (shorter numbers first), in one query.
    pub async fn list_extensions(&self) -> Result<Vec<Extension>, StoreError> {
        match self {
            Store::Sqlite(s) => s.list_extensions().await,
        }
    }

    /// A counter that moves whenever any process changes the extension directory.
    pub async fn directory_version(&self) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite(s) => s.directory_version().await,
        }
    }

    pub async fn count_extensions(&self) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.count_extensions().await,
        }
    }

    pub async fn get_extension(&self, number: &str) -> Result<Option<Extension>, StoreError> {
        match self {
            Store::Sqlite(s) => s.get_extension(number).await,
        }
    }

    pub async fn get_extension_by_id(&self, id: i64) -> Result<Option<Extension>, StoreError> {
        match self {
            Store::Sqlite(s) => s.get_extension_by_id(id).await,
        }
    }

    /// Insert; returns the stored record with its `id`, `created_at` (kept when non-zero) and
    /// `updated_at`. `Duplicate` when the number exists.
    pub async fn insert_extension(&self, ext: &Extension) -> Result<Extension, StoreError> {
        match self {
            Store::Sqlite(s) => s.insert_extension(ext).await,
        }
    }

    /// Insert many extensions in one transaction (seeding, imports): all or none; `Duplicate`
    /// names a number that repeats in `exts` or is already stored. Returns the count.
    pub async fn insert_extensions_bulk(&self, exts: &[Extension]) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.insert_extensions_bulk(exts).await,
        }
    }

    /// Replace every field of a stored extension, found by `id` when `id > 0` (renumbering
    /// allowed), else by `number`. `NotFound` / `Duplicate` (new number taken).
    pub async fn update_extension(&self, ext: &Extension) -> Result<Extension, StoreError> {
        match self {
            Store::Sqlite(s) => s.update_extension(ext).await,
        }
    }

    /// Delete an extension and its bindings. `NotFound` when absent.
    pub async fn delete_extension(&self, number: &str) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.delete_extension(number).await,
        }
    }

    /// Every stored binding (expired ones included: the caller filters by `expires_at`).
    pub async fn load_bindings(&self) -> Result<Vec<BindingRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.load_bindings().await,
        }
    }

    /// Upsert `upserts` (keyed by aor + contact) and delete `deletes` (aor, contact) in one
    /// transaction. Deletes are applied after upserts.
    /// Append call records (one transaction).
    pub async fn insert_cdrs(&self, rows: &[CdrRow]) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.insert_cdrs(rows).await,
        }
    }

    /// Aggregates of the call records that started in `[from_ms, to_ms)`.
    pub async fn cdr_summary(&self, from_ms: i64, to_ms: i64) -> Result<CdrSummary, StoreError> {
        match self {
            Store::Sqlite(s) => s.cdr_summary(from_ms, to_ms).await,
        }
    }

    /// Call records that started in `[from_ms, to_ms)`, newest first.
    pub async fn list_cdrs(
        &self,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<CdrRow>, StoreError> {
        match self {
            Store::Sqlite(s) => s.list_cdrs(from_ms, to_ms, limit).await,
        }
    }

    pub async fn save_bindings(
        &self,
        upserts: &[BindingRecord],
        deletes: &[(String, String)],
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.save_bindings(upserts, deletes).await,
        }
    }

    /// The stored pjsip objects (transports, global, trunks, ...) in export order.
    pub async fn list_pjsip_objects(&self) -> Result<Vec<PjsipObject>, StoreError> {
        match self {
            Store::Sqlite(s) => s.list_pjsip_objects().await,
        }
    }

    /// Apply a pjsip.conf import (extensions and objects) in one transaction: on any error
    /// nothing is changed. The directory version moves, so a running server reloads.
    pub async fn apply_pjsip_changes(&self, changes: &Changes) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.apply_pjsip_changes(changes).await,
        }
    }

    /// Delete bindings whose `expires_at <= now_unix`; returns how many.
    pub async fn delete_expired_bindings(&self, now_unix: i64) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.delete_expired_bindings(now_unix).await,
        }
    }

    /// Seed the store from config.yml's `extensions[]` (see [`SeedMode`]). An extension that
    /// is already stored is never modified, whatever the mode. Inserts happen in one
    /// transaction. Logs what was inserted and kept (numbers only, never secrets).
    pub async fn seed_extensions(
        &self,
        exts: &[Extension],
        mode: SeedMode,
    ) -> Result<SeedReport, StoreError> {
        let mut report = SeedReport::default();
        if exts.is_empty() || mode == SeedMode::Off {
            return Ok(report);
        }
        let existing: HashSet<String> = match self {
            Store::Sqlite(s) => s.numbers().await?,
        };
        if mode == SeedMode::IfEmpty && !existing.is_empty() {
            tracing::info!(
                stored = existing.len(),
                "extensions_seed_mode if_empty: the store already holds extensions; extensions[] not applied"
            );
            report.skipped = exts
                .iter()
                .filter(|e| !existing.contains(&e.number))
                .map(|e| e.number.clone())
                .collect();
            report.kept = exts
                .iter()
                .filter(|e| existing.contains(&e.number))
                .map(|e| e.number.clone())
                .collect();
            return Ok(report);
        }
        let (keep, insert): (Vec<&Extension>, Vec<&Extension>) =
            exts.iter().partition(|e| existing.contains(&e.number));
        report.kept = keep.iter().map(|e| e.number.clone()).collect();
        let to_insert: Vec<Extension> = insert.into_iter().cloned().collect();
        self.insert_extensions_bulk(&to_insert).await?;
        report.inserted = to_insert.into_iter().map(|e| e.number).collect();
        const LIST_LIMIT: usize = 10;
        if report.kept.len() <= LIST_LIMIT {
            for number in &report.kept {
                tracing::info!(
                    number = %number,
                    "extension {number} from config.yml is already stored; kept unchanged"
                );
            }
        } else {
            tracing::info!(
                count = report.kept.len(),
                "{} extensions from config.yml are already stored; kept unchanged",
                report.kept.len()
            );
        }
        if !report.inserted.is_empty() {
            tracing::info!(
                count = report.inserted.len(),
                "inserted {} extensions from config.yml",
                report.inserted.len()
            );
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
