//! pjsip.conf support in the store: the std::fs [`ConfSource`], the `pjsip_objects` table and
//! the atomic application of an import ([`Changes`]).

use std::io;
use std::path::{Path, PathBuf};

use sqlx::{AssertSqlSafe, Row};

use super::StoreError;
use super::sqlite::{EXTENSION_VALUES, SqliteStore, bind_extension_row, placeholders};
use crate::pbx::directory::PjsipExtra;
use crate::pjsip_conf::{Changes, ConfSource, PjsipObject, split_pattern, wildcard_match};

/// Reads config files from the filesystem; globs match the last path component.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsConfSource;

impl ConfSource for FsConfSource {
    fn read(&self, path: &Path) -> io::Result<String> {
        let bytes = std::fs::read(path)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn glob(&self, pattern: &Path) -> Vec<PathBuf> {
        let (dir, pat) = split_pattern(pattern);
        let read_dir = if dir.as_os_str().is_empty() {
            std::fs::read_dir(".")
        } else {
            std::fs::read_dir(&dir)
        };
        let Ok(entries) = read_dir else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| wildcard_match(&pat, n))
            })
            .map(|e| dir.join(e.file_name()))
            .collect();
        out.sort();
        out
    }
}

pub(super) fn extra_json(extra: &PjsipExtra) -> String {
    if extra.is_empty() {
        return "{}".to_owned();
    }
    serde_json::to_string(extra).unwrap_or_else(|_| "{}".to_owned())
}

pub(super) fn extra_from_json(s: &str) -> PjsipExtra {
    serde_json::from_str(s).unwrap_or_default()
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

impl SqliteStore {
    pub async fn list_pjsip_objects(&self) -> Result<Vec<PjsipObject>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, name, options, comments FROM pjsip_objects ORDER BY position, kind, name",
        )
        .fetch_all(&self.reader)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let options: String = row.try_get("options")?;
            let comments: String = row.try_get("comments")?;
            out.push(PjsipObject {
                kind: row.try_get("kind")?,
                name: row.try_get("name")?,
                options: serde_json::from_str(&options).unwrap_or_default(),
                comments: serde_json::from_str(&comments).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Apply an import in one transaction: any failure leaves the store untouched.
    pub async fn apply_pjsip_changes(&self, ch: &Changes) -> Result<(), StoreError> {
        let now = super::unix_now();
        let mut tx = self.writer.begin().await?;
        for e in &ch.ext_removed {
            sqlx::query("DELETE FROM extensions WHERE number = ?")
                .bind(e.number.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM bindings WHERE aor = ?")
                .bind(e.number.as_str())
                .execute(&mut *tx)
                .await?;
        }
        for (_, e) in &ch.ext_changed {
            let sql = AssertSqlSafe(format!(
                "UPDATE extensions SET ({}) = ({}) WHERE id = ?",
                super::sqlite::EXTENSION_COLUMNS,
                placeholders(EXTENSION_VALUES)
            ));
            let q = bind_extension_row(sqlx::query(sql), e, e.created_at, now).bind(e.id);
            q.execute(&mut *tx).await?;
        }
        for chunk in ch.ext_added.chunks(500) {
            let row = format!("({})", placeholders(EXTENSION_VALUES));
            let mut sql = format!(
                "INSERT INTO extensions ({}) VALUES ",
                super::sqlite::EXTENSION_COLUMNS
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&row);
            }
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for e in chunk {
                let created = if e.created_at == 0 { now } else { e.created_at };
                q = bind_extension_row(q, e, created, now);
            }
            if let Err(err) = q.execute(&mut *tx).await {
                if err
                    .as_database_error()
                    .is_some_and(|d| d.is_unique_violation())
                {
                    return Err(StoreError::Duplicate {
                        number: chunk.first().map(|e| e.number.clone()).unwrap_or_default(),
                    });
                }
                return Err(err.into());
            }
        }
        for o in &ch.obj_removed {
            sqlx::query("DELETE FROM pjsip_objects WHERE kind = ? AND name = ?")
                .bind(o.kind.as_str())
                .bind(o.name.as_str())
                .execute(&mut *tx)
                .await?;
        }
        for (_, o) in &ch.obj_changed {
            sqlx::query(
                "UPDATE pjsip_objects SET options = ?, comments = ? WHERE kind = ? AND name = ?",
            )
            .bind(json(&o.options))
            .bind(json(&o.comments))
            .bind(o.kind.as_str())
            .bind(o.name.as_str())
            .execute(&mut *tx)
            .await?;
        }
        let max: i64 = sqlx::query_scalar("SELECT coalesce(max(position), -1) FROM pjsip_objects")
            .fetch_one(&mut *tx)
            .await?;
        for (i, o) in ch.obj_added.iter().enumerate() {
            sqlx::query(
                "INSERT INTO pjsip_objects (kind, name, position, options, comments) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(o.kind.as_str())
            .bind(o.name.as_str())
            .bind(max + 1 + i as i64)
            .bind(json(&o.options))
            .bind(json(&o.comments))
            .execute(&mut *tx)
            .await?;
        }
        if let Some(order) = &ch.obj_order {
            for (i, (kind, name)) in order.iter().enumerate() {
                sqlx::query("UPDATE pjsip_objects SET position = ? WHERE kind = ? AND name = ? AND position <> ?")
                    .bind(i as i64)
                    .bind(kind.as_str())
                    .bind(name.as_str())
                    .bind(i as i64)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::pbx::directory::Extension;
    use crate::pjsip_conf::export::export_pjsip;
    use crate::pjsip_conf::model::{diff, import};
    use crate::pjsip_conf::parse::{NoFiles, ParseOptions, parse_str};
    use crate::pjsip_conf::{ExportOptions, ImportModel};
    use crate::store::Store;

    const FILE: &str = "\
[transport-udp]
type=transport
protocol=udp
bind=0.0.0.0:5060

[101]
type=endpoint
context=from-internal
disallow=all
allow=ulaw
allow=alaw
auth=101
aors=101
callerid=\"Alice\" <101>
language=en
set_var=A=1
set_var=B=2

[101]
type=auth
auth_type=userpass
username=101
password=alice-pw

[101]
type=aor
max_contacts=2
remove_existing=yes
qualify_frequency=30

[trunk]
type=registration
server_uri=sip:sip.example.com
";

    fn model(text: &str) -> ImportModel {
        let conf = parse_str(
            &NoFiles,
            Path::new("pjsip.conf"),
            text,
            ParseOptions::default(),
        )
        .expect("parse");
        import(&conf).expect("import")
    }

    fn strip(mut e: Extension) -> Extension {
        e.id = 0;
        e.created_at = 0;
        e.updated_at = 0;
        e
    }

    #[tokio::test]
    async fn import_apply_list_and_round_trip() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let seeded = store
            .insert_extension(&Extension::new("555", "Gone", "gone-secret"))
            .await
            .unwrap();
        let v0 = store.directory_version().await.unwrap();
        let m = model(FILE);
        let ch = diff(&store.list_extensions().await.unwrap(), &[], &m, true);
        assert_eq!(
            (ch.ext_added.len(), ch.ext_removed.len(), ch.obj_added.len()),
            (1, 1, 2)
        );
        store.apply_pjsip_changes(&ch).await.unwrap();
        assert!(
            store.directory_version().await.unwrap() > v0,
            "a running server reloads"
        );
        assert!(store.get_extension(&seeded.number).await.unwrap().is_none());
        let exts = store.list_extensions().await.unwrap();
        assert_eq!(exts.len(), 1);
        assert_eq!(strip(exts[0].clone()), m.extensions[0]);
        let objs = store.list_pjsip_objects().await.unwrap();
        assert_eq!(objs, m.objects);
        // Importing the same file again changes nothing.
        let again = diff(&exts, &objs, &model(FILE), true);
        assert!(
            again.is_empty() && again.obj_order.is_none(),
            "{}",
            again.render()
        );
        // import(export(store)) == store.
        let out = &export_pjsip(&exts, &objs, &ExportOptions::default())[0].content;
        let back = diff(&exts, &objs, &model(out), true);
        assert!(back.is_empty(), "{}", back.render());
        // Editing the secret and the aor in the file: one changed extension.
        let edited = FILE
            .replace("password=alice-pw", "password=alice-pw2")
            .replace("max_contacts=2", "max_contacts=3");
        let ch = diff(&exts, &objs, &model(&edited), true);
        assert_eq!(ch.ext_changed.len(), 1);
        store.apply_pjsip_changes(&ch).await.unwrap();
        let e = store.get_extension("101").await.unwrap().unwrap();
        assert_eq!(
            (e.secret.as_str(), e.max_contacts, e.id),
            ("alice-pw2", 3, exts[0].id)
        );
        assert_eq!(e.pjsip_extra.endpoint.len(), 3);
    }

    #[tokio::test]
    async fn failed_apply_leaves_the_store_untouched() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store
            .insert_extension(&Extension::new("101", "A", "secret-101"))
            .await
            .unwrap();
        let before = store.list_extensions().await.unwrap();
        let v0 = store.directory_version().await.unwrap();
        // Objects and a removal first, then an insert that collides: all rolled back.
        let m = model(FILE);
        let mut ch = diff(&before, &[], &m, true);
        ch.ext_removed = before.clone();
        ch.ext_added = vec![
            Extension::new("102", "B", "pw"),
            Extension::new("102", "B", "pw"),
        ];
        assert!(store.apply_pjsip_changes(&ch).await.is_err());
        assert_eq!(store.list_extensions().await.unwrap(), before);
        assert!(store.list_pjsip_objects().await.unwrap().is_empty());
        assert_eq!(store.directory_version().await.unwrap(), v0);
    }

    #[test]
    fn fs_glob_sorted_and_relative() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["b.conf", "a.conf", "c.txt"] {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        let got = FsConfSource.glob(&dir.path().join("*.conf"));
        assert_eq!(got, [dir.path().join("a.conf"), dir.path().join("b.conf")]);
        assert!(
            FsConfSource
                .glob(&dir.path().join("nope/*.conf"))
                .is_empty()
        );
    }
}
