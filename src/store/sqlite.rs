//! The SQLite backend: one writer connection, a small read-only pool, WAL journal.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, SqlSafeStr};

use super::{CdrRow, CdrRtpStats, CdrSummary};
use super::{StoreError, unix_now};
use crate::pbx::directory::{BindingRecord, Extension};

/// Bind the 26 stored fields of an extension (everything but id and the timestamps), in
/// [`EXTENSION_COLUMNS`] order; works on `query` and `query_scalar` builders alike.
macro_rules! bind_extension_fields {
    ($query:expr, $ext:expr) => {{
        let ext: &Extension = $ext;
        $query
            .bind(ext.number.as_str())
            .bind(ext.name.as_str())
            .bind(ext.email.as_deref())
            .bind(ext.secret.as_str())
            .bind(ext.enabled)
            .bind(ext.context.as_str())
            .bind(ext.transport.as_deref())
            .bind(ext.codecs.join(","))
            .bind(ext.max_contacts)
            .bind(ext.remove_existing)
            .bind(ext.qualify_frequency)
            .bind(ext.caller_id.as_deref())
            .bind(ext.voicemail_enabled)
            .bind(ext.voicemail_pin.as_deref())
            .bind(ext.allow_external)
            .bind(ext.is_admin)
            .bind(ext.notes.as_deref())
            .bind(ext.direct_media)
            .bind(ext.rtp_symmetric)
            .bind(ext.force_rport)
            .bind(ext.rewrite_contact)
            .bind(ext.dtmf_mode.as_str())
            .bind(ext.mailboxes.as_deref())
            .bind(ext.subscribe_context.as_deref())
            .bind(ext.device_state_busy_at)
            .bind(super::pjsip::extra_json(&ext.pjsip_extra))
    }};
}

/// Embedded migrations, in order: (version, file name). The SQL is compiled into the binary.
/// Keep in step with `migrations/sqlite/` (a unit test checks that every file is listed).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_initial_schema.sql",
        include_str!("migrations/sqlite/0001_initial_schema.sql"),
    ),
    (
        2,
        "0002_directory_version.sql",
        include_str!("migrations/sqlite/0002_directory_version.sql"),
    ),
    (
        3,
        "0003_cdr.sql",
        include_str!("migrations/sqlite/0003_cdr.sql"),
    ),
    (
        4,
        "0004_cdr_detail.sql",
        include_str!("migrations/sqlite/0004_cdr_detail.sql"),
    ),
    (
        5,
        "0005_pjsip.sql",
        include_str!("migrations/sqlite/0005_pjsip.sql"),
    ),
];

/// The migrator for [`MIGRATIONS`]; version, description and checksum are those that
/// `sqlx::migrate!("src/store/migrations/sqlite")` would compute, so either can run a database.
fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, file, sql)| {
            let description = file
                .split_once('_')
                .map_or(file, |(_, rest)| rest)
                .trim_end_matches(".sql")
                .replace('_', " ");
            Migration::new(
                version,
                Cow::Owned(description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Rows per multi-row INSERT in [`SqliteStore::insert_extensions_bulk`] (x 28 bound values,
/// below SQLite's 32,766 variable limit).
const BULK_CHUNK: usize = 500;

pub(super) const EXTENSION_COLUMNS: &str = "number, name, email, secret, enabled, context, transport, \
     codecs, max_contacts, remove_existing, qualify_frequency, caller_id, voicemail_enabled, \
     voicemail_pin, allow_external, is_admin, notes, direct_media, rtp_symmetric, force_rport, \
     rewrite_contact, dtmf_mode, mailboxes, subscribe_context, device_state_busy_at, pjsip_extra, \
     created_at, updated_at";

/// Values per extension row in [`EXTENSION_COLUMNS`].
pub(super) const EXTENSION_VALUES: usize = 28;

const SELECT_EXTENSION: &str = "SELECT id, number, name, email, secret, enabled, context, \
     transport, codecs, max_contacts, remove_existing, qualify_frequency, caller_id, \
     voicemail_enabled, voicemail_pin, allow_external, is_admin, notes, direct_media, \
     rtp_symmetric, force_rport, rewrite_contact, dtmf_mode, mailboxes, subscribe_context, \
     device_state_busy_at, pjsip_extra, created_at, updated_at FROM extensions";

/// SQLite-backed store. Cloning is cheap (the pools are shared).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Exactly one connection: SQLite allows one writer at a time, so queueing writes here
    /// avoids SQLITE_BUSY between our own connections.
    pub(super) writer: SqlitePool,
    /// Read-only connections (WAL lets them read while the writer writes). For an in-memory
    /// database this is the writer pool itself.
    pub(super) reader: SqlitePool,
}

impl SqliteStore {
    /// Open (creating it and its parent directory if needed) and migrate a SQLite database.
    /// `url`: `sqlite://path/file.db`, `sqlite:path/file.db` or `sqlite::memory:`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if in_memory {
            // One connection that is never closed: the database lives as long as it does.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?;
            migrator().run(&pool).await?;
            return Ok(SqliteStore {
                writer: pool.clone(),
                reader: pool,
            });
        }

        let file = options.get_filename().to_owned();
        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir(parent)?;
        }
        let writer_options = options
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(writer_options)
            .await?;
        migrator().run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore { writer, reader })
    }

    /// Close all connections (checkpointing the WAL). Later calls fail with `PoolClosed`.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    pub async fn list_extensions(&self) -> Result<Vec<Extension>, StoreError> {
        let sql = AssertSqlSafe(format!(
            "{SELECT_EXTENSION} ORDER BY length(number), number"
        ));
        let rows = sqlx::query(sql).fetch_all(&self.reader).await?;
        rows.iter().map(extension_from_row).collect()
    }

    /// The directory change counter (bumped by triggers on every extension write).
    pub async fn directory_version(&self) -> Result<i64, StoreError> {
        let v: i64 = sqlx::query_scalar("SELECT version FROM directory_version WHERE id = 1")
            .fetch_one(&self.reader)
            .await?;
        Ok(v)
    }

    pub async fn count_extensions(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM extensions")
            .fetch_one(&self.reader)
            .await?;
        Ok(n.max(0) as u64)
    }

    pub async fn get_extension(&self, number: &str) -> Result<Option<Extension>, StoreError> {
        let sql = AssertSqlSafe(format!("{SELECT_EXTENSION} WHERE number = ?"));
        let row = sqlx::query(sql)
            .bind(number)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(extension_from_row).transpose()
    }

    pub async fn get_extension_by_id(&self, id: i64) -> Result<Option<Extension>, StoreError> {
        let sql = AssertSqlSafe(format!("{SELECT_EXTENSION} WHERE id = ?"));
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(extension_from_row).transpose()
    }

    pub async fn insert_extension(&self, ext: &Extension) -> Result<Extension, StoreError> {
        let now = unix_now();
        let mut stored = ext.clone();
        if stored.created_at == 0 {
            stored.created_at = now;
        }
        stored.updated_at = now;
        let sql = AssertSqlSafe(format!(
            "INSERT INTO extensions ({EXTENSION_COLUMNS}) VALUES ({}) RETURNING id",
            placeholders(EXTENSION_VALUES)
        ));
        let query = bind_extension(sqlx::query_scalar::<_, i64>(sql), &stored);
        match query.fetch_one(&self.writer).await {
            Ok(id) => {
                stored.id = id;
                Ok(stored)
            }
            Err(e) => Err(duplicate_or(e, &stored.number)),
        }
    }

    /// Insert many extensions in one transaction: all or none. Returns how many were inserted.
    pub async fn insert_extensions_bulk(&self, exts: &[Extension]) -> Result<u64, StoreError> {
        if exts.is_empty() {
            return Ok(0);
        }
        let mut seen = HashSet::with_capacity(exts.len());
        if let Some(dup) = exts.iter().find(|e| !seen.insert(e.number.as_str())) {
            return Err(StoreError::Duplicate {
                number: dup.number.clone(),
            });
        }
        let now = unix_now();
        let row = format!("({})", placeholders(EXTENSION_VALUES));
        let mut tx = self.writer.begin().await?;
        let mut inserted = 0;
        for chunk in exts.chunks(BULK_CHUNK) {
            let mut sql = format!("INSERT INTO extensions ({EXTENSION_COLUMNS}) VALUES ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&row);
            }
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for ext in chunk {
                let created_at = if ext.created_at == 0 {
                    now
                } else {
                    ext.created_at
                };
                query = bind_extension_fields!(query, ext)
                    .bind(created_at)
                    .bind(now);
            }
            match query.execute(&mut *tx).await {
                Ok(done) => inserted += done.rows_affected(),
                Err(e) if is_unique_violation(&e) => {
                    drop(tx); // rolls back
                    return Err(self.first_existing(exts).await);
                }
                Err(e) => return Err(e.into()),
            }
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// After a unique violation in a bulk insert: name the first number already stored.
    async fn first_existing(&self, exts: &[Extension]) -> StoreError {
        let existing = match self.numbers().await {
            Ok(numbers) => numbers,
            Err(e) => return e,
        };
        match exts.iter().find(|e| existing.contains(&e.number)) {
            Some(ext) => StoreError::Duplicate {
                number: ext.number.clone(),
            },
            None => StoreError::Duplicate {
                number: exts[0].number.clone(),
            },
        }
    }

    /// Every stored extension number.
    pub async fn numbers(&self) -> Result<HashSet<String>, StoreError> {
        let numbers: Vec<String> = sqlx::query_scalar("SELECT number FROM extensions")
            .fetch_all(&self.reader)
            .await?;
        Ok(numbers.into_iter().collect())
    }

    /// Update every field of a stored extension. It is found by `id` when `id > 0` (so the
    /// number can change) and by `number` otherwise. `created_at` is kept; `updated_at` is now.
    pub async fn update_extension(&self, ext: &Extension) -> Result<Extension, StoreError> {
        let now = unix_now();
        let by = if ext.id > 0 { "id" } else { "number" };
        let sql = AssertSqlSafe(format!(
            "UPDATE extensions SET number = ?, name = ?, email = ?, secret = ?, enabled = ?, \
             context = ?, transport = ?, codecs = ?, max_contacts = ?, remove_existing = ?, \
             qualify_frequency = ?, caller_id = ?, voicemail_enabled = ?, voicemail_pin = ?, \
             allow_external = ?, is_admin = ?, notes = ?, direct_media = ?, rtp_symmetric = ?, \
             force_rport = ?, rewrite_contact = ?, dtmf_mode = ?, mailboxes = ?, \
             subscribe_context = ?, device_state_busy_at = ?, pjsip_extra = ?, updated_at = ? \
             WHERE {by} = ? RETURNING id, created_at"
        ));
        let query = bind_extension_fields!(sqlx::query(sql), ext).bind(now);
        let query = if ext.id > 0 {
            query.bind(ext.id)
        } else {
            query.bind(ext.number.as_str())
        };
        match query.fetch_optional(&self.writer).await {
            Ok(Some(row)) => {
                let mut stored = ext.clone();
                stored.id = row.try_get("id")?;
                stored.created_at = row.try_get("created_at")?;
                stored.updated_at = now;
                Ok(stored)
            }
            Ok(None) => Err(StoreError::NotFound {
                number: ext.number.clone(),
            }),
            Err(e) => Err(duplicate_or(e, &ext.number)),
        }
    }

    /// Delete an extension and its bindings (one transaction).
    pub async fn delete_extension(&self, number: &str) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query("DELETE FROM extensions WHERE number = ?")
            .bind(number)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                number: number.to_owned(),
            });
        }
        sqlx::query("DELETE FROM bindings WHERE aor = ?")
            .bind(number)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn load_bindings(&self) -> Result<Vec<BindingRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT aor, contact, source, transport, call_id, cseq, expires_at, user_agent, \
             instance, registered_at FROM bindings ORDER BY aor, registered_at",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(binding_from_row).collect()
    }

    /// Upsert and delete bindings in one transaction.
    /// Append call records in one transaction.
    pub async fn insert_cdrs(&self, rows: &[CdrRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO cdr (call_id, from_extension, to_extension, start_time, answer_time, \
                 end_time, disposition, duration, billsec, recording_file, hangup_cause, hung_up_by, \
                 q850_cause, codec_a, codec_b, a_packets, a_bytes, a_lost, a_jitter_ms, \
                 b_packets, b_bytes, b_lost, b_jitter_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(r.call_id.as_str())
            .bind(r.from_extension.as_str())
            .bind(r.to_extension.as_str())
            .bind(r.start_time)
            .bind(r.answer_time)
            .bind(r.end_time)
            .bind(r.disposition.as_str())
            .bind(r.duration)
            .bind(r.billsec)
            .bind(r.recording_file.as_deref())
            .bind(i64::from(r.hangup_cause))
            .bind(r.hung_up_by.as_str())
            .bind(i64::from(r.q850_cause))
            .bind(r.codec_a.as_deref())
            .bind(r.codec_b.as_deref())
            .bind(r.rtp_a.packets)
            .bind(r.rtp_a.bytes)
            .bind(r.rtp_a.lost)
            .bind(r.rtp_a.jitter_ms)
            .bind(r.rtp_b.packets)
            .bind(r.rtp_b.bytes)
            .bind(r.rtp_b.lost)
            .bind(r.rtp_b.jitter_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Aggregates of the call records that started in `[from_ms, to_ms)` (index range scans on
    /// `start_time`; no row leaves the database).
    pub async fn cdr_summary(&self, from_ms: i64, to_ms: i64) -> Result<CdrSummary, StoreError> {
        let mut s = CdrSummary::default();
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(duration), 0) AS d, COALESCE(SUM(billsec), 0) AS b \
             FROM cdr WHERE start_time >= ? AND start_time < ?",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_one(&self.reader)
        .await?;
        s.total = row.try_get("n")?;
        s.total_duration = row.try_get("d")?;
        s.total_billsec = row.try_get("b")?;
        for row in sqlx::query(
            "SELECT disposition, COUNT(*) AS n FROM cdr WHERE start_time >= ? AND start_time < ? \
             GROUP BY disposition ORDER BY n DESC",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.reader)
        .await?
        {
            s.by_disposition
                .push((row.try_get("disposition")?, row.try_get("n")?));
        }
        for row in sqlx::query(
            "SELECT (start_time / 3600000) % 24 AS h, COUNT(*) AS n FROM cdr \
             WHERE start_time >= ? AND start_time < ? GROUP BY h",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.reader)
        .await?
        {
            let h: i64 = row.try_get("h")?;
            if let Some(slot) = usize::try_from(h).ok().and_then(|h| s.hourly.get_mut(h)) {
                *slot = row.try_get("n")?;
            }
        }
        for row in sqlx::query(
            "SELECT date(start_time / 1000, 'unixepoch') AS day, COUNT(*) AS n, \
             SUM(disposition = 'ANSWERED') AS a, COALESCE(SUM(billsec), 0) AS b FROM cdr \
             WHERE start_time >= ? AND start_time < ? GROUP BY day ORDER BY day",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.reader)
        .await?
        {
            s.daily.push((
                row.try_get("day")?,
                row.try_get("n")?,
                row.try_get("a")?,
                row.try_get("b")?,
            ));
        }
        for row in sqlx::query(
            "SELECT from_extension, COUNT(*) AS n, COALESCE(SUM(billsec), 0) AS b FROM cdr \
             WHERE start_time >= ? AND start_time < ? GROUP BY from_extension \
             ORDER BY n DESC, from_extension LIMIT 10",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.reader)
        .await?
        {
            s.top_callers.push((
                row.try_get("from_extension")?,
                row.try_get("n")?,
                row.try_get("b")?,
            ));
        }
        let row = sqlx::query(
            "SELECT AVG((a_jitter_ms + b_jitter_ms) / 2.0) AS j, \
             SUM(MAX(a_lost, 0) + MAX(b_lost, 0)) AS lost, \
             SUM(a_packets + b_packets) AS pk FROM cdr \
             WHERE start_time >= ? AND start_time < ? AND (a_packets + b_packets) > 0",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_one(&self.reader)
        .await?;
        s.mean_jitter_ms = row.try_get("j")?;
        let lost: Option<i64> = row.try_get("lost")?;
        let packets: Option<i64> = row.try_get("pk")?;
        if let (Some(l), Some(p)) = (lost, packets)
            && p + l > 0
        {
            s.loss_pct = Some(100.0 * l as f64 / (p + l) as f64);
        }
        Ok(s)
    }

    /// Call records that started in `[from_ms, to_ms)`, newest first, at most `limit`.
    pub async fn list_cdrs(
        &self,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<CdrRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT call_id, from_extension, to_extension, start_time, answer_time, end_time, \
             disposition, duration, billsec, recording_file, hangup_cause, hung_up_by, q850_cause, \
             codec_a, codec_b, a_packets, a_bytes, a_lost, a_jitter_ms, b_packets, b_bytes, \
             b_lost, b_jitter_ms FROM cdr \
             WHERE start_time >= ? AND start_time < ? ORDER BY start_time DESC, id DESC LIMIT ?",
        )
        .bind(from_ms)
        .bind(to_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(CdrRow {
                call_id: row.try_get("call_id")?,
                from_extension: row.try_get("from_extension")?,
                to_extension: row.try_get("to_extension")?,
                start_time: row.try_get("start_time")?,
                answer_time: row.try_get("answer_time")?,
                end_time: row.try_get("end_time")?,
                disposition: row.try_get("disposition")?,
                duration: row.try_get("duration")?,
                billsec: row.try_get("billsec")?,
                recording_file: row.try_get("recording_file")?,
                hangup_cause: row.try_get::<i64, _>("hangup_cause")?.clamp(0, 999) as u16,
                hung_up_by: row.try_get("hung_up_by")?,
                q850_cause: row.try_get::<i64, _>("q850_cause")?.clamp(0, 127) as u8,
                codec_a: row.try_get("codec_a")?,
                codec_b: row.try_get("codec_b")?,
                rtp_a: CdrRtpStats {
                    packets: row.try_get("a_packets")?,
                    bytes: row.try_get("a_bytes")?,
                    lost: row.try_get("a_lost")?,
                    jitter_ms: row.try_get("a_jitter_ms")?,
                },
                rtp_b: CdrRtpStats {
                    packets: row.try_get("b_packets")?,
                    bytes: row.try_get("b_bytes")?,
                    lost: row.try_get("b_lost")?,
                    jitter_ms: row.try_get("b_jitter_ms")?,
                },
            });
        }
        Ok(out)
    }

    pub async fn save_bindings(
        &self,
        upserts: &[BindingRecord],
        deletes: &[(String, String)],
    ) -> Result<(), StoreError> {
        if upserts.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for b in upserts {
            sqlx::query(
                "INSERT INTO bindings (aor, contact, source, transport, call_id, cseq, \
                 expires_at, user_agent, instance, registered_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (aor, contact) DO UPDATE SET source = excluded.source, \
                 transport = excluded.transport, call_id = excluded.call_id, \
                 cseq = excluded.cseq, expires_at = excluded.expires_at, \
                 user_agent = excluded.user_agent, instance = excluded.instance, \
                 registered_at = excluded.registered_at",
            )
            .bind(b.aor.as_str())
            .bind(b.contact.as_str())
            .bind(b.source.as_str())
            .bind(b.transport.as_str())
            .bind(b.call_id.as_str())
            .bind(b.cseq)
            .bind(b.expires_at)
            .bind(b.user_agent.as_deref())
            .bind(b.instance.as_deref())
            .bind(b.registered_at)
            .execute(&mut *tx)
            .await?;
        }
        for (aor, contact) in deletes {
            sqlx::query("DELETE FROM bindings WHERE aor = ? AND contact = ?")
                .bind(aor.as_str())
                .bind(contact.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Delete bindings with `expires_at <= now_unix`; returns how many.
    pub async fn delete_expired_bindings(&self, now_unix: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM bindings WHERE expires_at <= ?")
            .bind(now_unix)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }
}

fn create_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
        path: dir.to_owned(),
        source,
    })
}

pub(super) fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s
}

/// Bind the 28 [`EXTENSION_COLUMNS`] values of `ext`, in order.
fn bind_extension<'q, O>(
    query: sqlx::query::QueryScalar<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments>,
    ext: &'q Extension,
) -> sqlx::query::QueryScalar<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments> {
    bind_extension_fields!(query, ext)
        .bind(ext.created_at)
        .bind(ext.updated_at)
}

/// Bind all [`EXTENSION_COLUMNS`] of `ext` with the given timestamps to a `query`.
pub(super) fn bind_extension_row<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ext: &'q Extension,
    created_at: i64,
    updated_at: i64,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    bind_extension_fields!(query, ext)
        .bind(created_at)
        .bind(updated_at)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

fn duplicate_or(e: sqlx::Error, number: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Duplicate {
            number: number.to_owned(),
        }
    } else {
        StoreError::Db(e)
    }
}

pub(super) fn extension_from_row(row: &SqliteRow) -> Result<Extension, StoreError> {
    let codecs: String = row.try_get("codecs")?;
    Ok(Extension {
        id: row.try_get("id")?,
        number: row.try_get("number")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        secret: row.try_get("secret")?,
        enabled: row.try_get("enabled")?,
        context: row.try_get("context")?,
        transport: row.try_get("transport")?,
        codecs: codecs
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        max_contacts: row.try_get("max_contacts")?,
        remove_existing: row.try_get("remove_existing")?,
        qualify_frequency: row.try_get("qualify_frequency")?,
        caller_id: row.try_get("caller_id")?,
        voicemail_enabled: row.try_get("voicemail_enabled")?,
        voicemail_pin: row.try_get("voicemail_pin")?,
        allow_external: row.try_get("allow_external")?,
        is_admin: row.try_get("is_admin")?,
        notes: row.try_get("notes")?,
        direct_media: row.try_get("direct_media")?,
        rtp_symmetric: row.try_get("rtp_symmetric")?,
        force_rport: row.try_get("force_rport")?,
        rewrite_contact: row.try_get("rewrite_contact")?,
        dtmf_mode: row.try_get("dtmf_mode")?,
        mailboxes: row.try_get("mailboxes")?,
        subscribe_context: row.try_get("subscribe_context")?,
        device_state_busy_at: row.try_get("device_state_busy_at")?,
        pjsip_extra: super::pjsip::extra_from_json(&row.try_get::<String, _>("pjsip_extra")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn binding_from_row(row: &SqliteRow) -> Result<BindingRecord, StoreError> {
    Ok(BindingRecord {
        aor: row.try_get("aor")?,
        contact: row.try_get("contact")?,
        source: row.try_get("source")?,
        transport: row.try_get("transport")?,
        call_id: row.try_get("call_id")?,
        cseq: row.try_get("cseq")?,
        expires_at: row.try_get("expires_at")?,
        user_agent: row.try_get("user_agent")?,
        instance: row.try_get("instance")?,
        registered_at: row.try_get("registered_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/migrations/sqlite");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("migrations dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.1).collect();
        assert_eq!(files, listed);
        // Strictly increasing; a gap is allowed (numbers are reserved per feature branch).
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].1, pair[1].1);
        }
        for &(version, file, _) in MIGRATIONS {
            assert!(file.starts_with(&format!("{version:04}_")), "{file}");
        }
        let m = migrator();
        assert_eq!(m.migrations[0].description, "initial schema");
    }

    #[test]
    fn placeholder_lists() {
        assert_eq!(placeholders(1), "?");
        assert_eq!(placeholders(3), "?, ?, ?");
    }
}
