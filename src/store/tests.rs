//! Store tests: on `sqlite::memory:` or a file in a temporary directory.

use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::pbx::directory::{BindingRecord, Extension};

async fn memory() -> Store {
    Store::open("sqlite::memory:")
        .await
        .expect("open memory store")
}

fn ext(number: &str) -> Extension {
    Extension::new(number, format!("User {number}"), format!("secret-{number}"))
}

fn binding(aor: &str, contact: &str, expires_at: i64) -> BindingRecord {
    BindingRecord {
        aor: aor.into(),
        contact: contact.into(),
        source: "192.0.2.10:5060".into(),
        transport: "udp".into(),
        call_id: format!("call-{aor}-{contact}"),
        cseq: 1,
        expires_at,
        user_agent: Some("MicroSIP/3.21".into()),
        instance: None,
        registered_at: expires_at - 3600,
    }
}

fn sorted(mut v: Vec<BindingRecord>) -> Vec<BindingRecord> {
    v.sort_by(|a, b| (&a.aor, &a.contact).cmp(&(&b.aor, &b.contact)));
    v
}

#[tokio::test]
async fn extension_crud_round_trips_every_field() {
    let store = memory().await;
    let mut e = ext("1001");
    e.email = Some("a@example.com".into());
    e.enabled = false;
    e.context = "office".into();
    e.transport = Some("tcp".into());
    e.codecs = vec!["g722".into(), "ulaw".into()];
    e.max_contacts = 3;
    e.remove_existing = false;
    e.qualify_frequency = 0;
    e.caller_id = Some("\"Alice\" <1001>".into());
    e.voicemail_enabled = true;
    e.voicemail_pin = Some("4321".into());
    e.allow_external = true;
    e.is_admin = true;
    e.notes = Some("front desk".into());

    let stored = store.insert_extension(&e).await.unwrap();
    assert!(stored.id > 0);
    assert!(stored.created_at > 0 && stored.updated_at >= stored.created_at);
    let expected = Extension {
        id: stored.id,
        created_at: stored.created_at,
        updated_at: stored.updated_at,
        ..e.clone()
    };
    assert_eq!(stored, expected);
    assert_eq!(
        store.get_extension("1001").await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store.get_extension_by_id(stored.id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(store.list_extensions().await.unwrap(), vec![expected]);

    let mut changed = stored.clone();
    changed.name = "Alice B".into();
    changed.codecs = vec![];
    changed.email = None;
    changed.created_at = 1; // ignored: created_at is kept
    let updated = store.update_extension(&changed).await.unwrap();
    assert_eq!(updated.created_at, stored.created_at);
    assert_eq!(updated.name, "Alice B");
    let read = store.get_extension("1001").await.unwrap().unwrap();
    assert_eq!(read, updated);
    assert!(read.codecs.is_empty() && read.email.is_none());

    store.delete_extension("1001").await.unwrap();
    assert_eq!(store.get_extension("1001").await.unwrap(), None);
    assert_eq!(store.count_extensions().await.unwrap(), 0);
}

#[tokio::test]
async fn duplicate_and_not_found() {
    let store = memory().await;
    store.insert_extension(&ext("1001")).await.unwrap();
    let two = store.insert_extension(&ext("1002")).await.unwrap();
    assert!(matches!(
        store.insert_extension(&ext("1001")).await,
        Err(StoreError::Duplicate { number }) if number == "1001"
    ));
    assert!(matches!(
        store.update_extension(&ext("1003")).await,
        Err(StoreError::NotFound { number }) if number == "1003"
    ));
    assert!(matches!(
        store.delete_extension("1003").await,
        Err(StoreError::NotFound { number }) if number == "1003"
    ));
    // Renumbering by id onto a taken number.
    let mut renumbered = two.clone();
    renumbered.number = "1001".into();
    assert!(matches!(
        store.update_extension(&renumbered).await,
        Err(StoreError::Duplicate { number }) if number == "1001"
    ));
    // Renumbering by id onto a free number works.
    renumbered.number = "2002".into();
    let moved = store.update_extension(&renumbered).await.unwrap();
    assert_eq!((moved.id, moved.number.as_str()), (two.id, "2002"));
    assert_eq!(store.get_extension("1002").await.unwrap(), None);
    // Unknown id.
    let mut ghost = ext("3003");
    ghost.id = 999;
    assert!(matches!(
        store.update_extension(&ghost).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn list_orders_numerically() {
    let store = memory().await;
    for n in ["200", "1001", "10", "1000"] {
        store.insert_extension(&ext(n)).await.unwrap();
    }
    let numbers: Vec<String> = store
        .list_extensions()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.number)
        .collect();
    assert_eq!(numbers, ["10", "200", "1000", "1001"]);
}

#[tokio::test]
async fn bulk_insert_ten_thousand() {
    let store = memory().await;
    let exts: Vec<Extension> = (0..10_000)
        .map(|i| ext(&format!("{}", 100_000 + i)))
        .collect();
    assert_eq!(store.insert_extensions_bulk(&exts).await.unwrap(), 10_000);
    let listed = store.list_extensions().await.unwrap();
    assert_eq!(listed.len(), 10_000);
    assert_eq!(listed[0].number, "100000");
    assert_eq!(listed[9_999].number, "109999");
    assert_eq!(listed[42].secret, "secret-100042");
    assert!(listed.iter().all(|e| e.id > 0 && e.created_at > 0));
    assert_eq!(store.insert_extensions_bulk(&[]).await.unwrap(), 0);
}

#[tokio::test]
async fn bulk_insert_is_all_or_nothing() {
    let store = memory().await;
    store.insert_extension(&ext("1500")).await.unwrap();
    // 1500 sits in the second chunk: the first chunk must be rolled back too.
    let exts: Vec<Extension> = (1000..1600).map(|i| ext(&i.to_string())).collect();
    assert!(matches!(
        store.insert_extensions_bulk(&exts).await,
        Err(StoreError::Duplicate { number }) if number == "1500"
    ));
    assert_eq!(store.count_extensions().await.unwrap(), 1);
    // A number repeated inside the batch.
    let twice = [ext("2000"), ext("2001"), ext("2000")];
    assert!(matches!(
        store.insert_extensions_bulk(&twice).await,
        Err(StoreError::Duplicate { number }) if number == "2000"
    ));
    assert_eq!(store.count_extensions().await.unwrap(), 1);
}

#[tokio::test]
async fn bindings_batch_upsert_delete_and_expiry() {
    let store = memory().await;
    let a1 = binding("1001", "sip:1001@192.0.2.10:5060", 1_000);
    let a2 = binding("1001", "sip:1001@192.0.2.11:5060;transport=tcp", 2_000);
    let b1 = binding("1002", "sip:1002@192.0.2.12:5060", 3_000);
    store
        .save_bindings(&[a1.clone(), a2.clone(), b1.clone()], &[])
        .await
        .unwrap();
    assert_eq!(
        sorted(store.load_bindings().await.unwrap()),
        vec![a1.clone(), a2.clone(), b1.clone()]
    );

    // Refresh a1 (upsert on the same key), delete b1, in one batch.
    let mut a1b = a1.clone();
    a1b.cseq = 2;
    a1b.expires_at = 5_000;
    a1b.instance = Some("<urn:uuid:00000000-0000-0000-0000-000000000001>".into());
    store
        .save_bindings(&[a1b.clone()], &[(b1.aor.clone(), b1.contact.clone())])
        .await
        .unwrap();
    assert_eq!(
        sorted(store.load_bindings().await.unwrap()),
        vec![a1b.clone(), a2.clone()]
    );

    // Deleting an unknown binding is not an error.
    store
        .save_bindings(&[], &[("9999".into(), "sip:x".into())])
        .await
        .unwrap();

    assert_eq!(store.delete_expired_bindings(2_000).await.unwrap(), 1);
    assert_eq!(store.load_bindings().await.unwrap(), vec![a1b]);
}

#[tokio::test]
async fn deleting_an_extension_deletes_its_bindings() {
    let store = memory().await;
    store.insert_extension(&ext("1001")).await.unwrap();
    store.insert_extension(&ext("1002")).await.unwrap();
    let keep = binding("1002", "sip:1002@h", 10);
    store
        .save_bindings(&[binding("1001", "sip:1001@h", 10), keep.clone()], &[])
        .await
        .unwrap();
    store.delete_extension("1001").await.unwrap();
    assert_eq!(store.load_bindings().await.unwrap(), vec![keep]);
}

#[tokio::test]
async fn file_database_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nested/deeper/dialtone.db");
    let url = format!("sqlite://{}", file.display());
    let store = Store::open(&url).await.unwrap();
    assert!(file.exists(), "parent directories and file are created");
    let stored = store.insert_extension(&ext("1001")).await.unwrap();
    let b = binding("1001", "sip:1001@h", 99);
    store
        .save_bindings(std::slice::from_ref(&b), &[])
        .await
        .unwrap();
    store.close().await;
    drop(store);

    // Reopening runs the migrations again: they are recorded and skipped.
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.get_extension("1001").await.unwrap(), Some(stored));
    assert_eq!(store.load_bindings().await.unwrap(), vec![b]);
    // Reads go through the read-only pool, writes through the writer.
    store.insert_extension(&ext("1002")).await.unwrap();
    assert_eq!(store.count_extensions().await.unwrap(), 2);
    store.close().await;
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    assert!(matches!(
        Store::open("mysql://localhost/x").await,
        Err(StoreError::Unsupported { scheme }) if scheme == "mysql"
    ));
    assert!(matches!(
        Store::open("postgres://localhost/x").await,
        Err(StoreError::Unsupported { .. })
    ));
}

#[tokio::test]
async fn writer_coalesces_and_flushes() {
    let store = memory().await;
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = spawn_binding_writer(store.clone(), rx);

    let mut a = binding("1001", "sip:a", 100);
    tx.send(BindingOp::Upsert(a.clone())).unwrap();
    a.cseq = 7;
    a.expires_at = 200;
    tx.send(BindingOp::Upsert(a.clone())).unwrap(); // last op wins
    let b = binding("1001", "sip:b", 100);
    tx.send(BindingOp::Upsert(b.clone())).unwrap();
    tx.send(BindingOp::Delete {
        aor: "1001".into(),
        contact: "sip:b".into(),
    })
    .unwrap();
    let c = binding("1002", "sip:c", 100);
    tx.send(BindingOp::Delete {
        aor: "1002".into(),
        contact: "sip:c".into(),
    })
    .unwrap();
    tx.send(BindingOp::Upsert(c.clone())).unwrap(); // re-registered after removal
    let (done, flushed) = oneshot::channel();
    tx.send(BindingOp::Flush(done)).unwrap();
    flushed.await.expect("flush answered");
    assert_eq!(sorted(store.load_bindings().await.unwrap()), vec![a, c]);

    // Closing the channel writes what is left, then the task ends.
    let d = binding("1003", "sip:d", 100);
    tx.send(BindingOp::Upsert(d.clone())).unwrap();
    drop(tx);
    handle.await.expect("writer task ends cleanly");
    assert_eq!(store.load_bindings().await.unwrap().len(), 3);
    assert!(store.load_bindings().await.unwrap().contains(&d));
}

#[tokio::test]
async fn writer_answers_flush_when_idle_and_survives_store_errors() {
    let store = memory().await;
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = spawn_binding_writer(store.clone(), rx);
    let (done, flushed) = oneshot::channel();
    tx.send(BindingOp::Flush(done)).unwrap();
    flushed.await.expect("empty flush answered");

    // A closed store makes every write fail: the writer logs, retries once, answers the
    // flush and keeps running.
    store.close().await;
    tx.send(BindingOp::Upsert(binding("1001", "sip:a", 1)))
        .unwrap();
    let (done, flushed) = oneshot::channel();
    tx.send(BindingOp::Flush(done)).unwrap();
    flushed.await.expect("flush answered despite the error");
    drop(tx);
    handle.await.expect("no panic");
}

#[test]
fn writer_buffer_coalesces_by_key() {
    let mut w = BindingWriter::new();
    assert!(w.is_empty() && !w.is_urgent());
    for i in 0..BATCH_MAX_OPS - 1 {
        let mut b = binding("1001", "sip:same", 0);
        b.cseq = i as u32;
        w.push(BindingOp::Upsert(b));
    }
    assert_eq!(w.queued_ops(), BATCH_MAX_OPS - 1);
    assert!(!w.is_urgent());
    w.push(BindingOp::Delete {
        aor: "1002".into(),
        contact: "sip:x".into(),
    });
    assert!(w.is_urgent(), "urgent at {BATCH_MAX_OPS} queued ops");
    let batch = w.take_batch();
    assert_eq!(batch.upserts.len(), 1);
    assert_eq!(batch.upserts[0].cseq, (BATCH_MAX_OPS - 2) as u32);
    assert_eq!(
        batch.deletes,
        vec![("1002".to_string(), "sip:x".to_string())]
    );
    assert!(w.is_empty() && w.queued_ops() == 0);

    let (done, _rx) = oneshot::channel();
    w.push(BindingOp::Flush(done));
    assert!(w.is_urgent());
    let batch = w.take_batch();
    assert!(batch.is_empty());
    assert_eq!(batch.flushes.len(), 1);
}

#[tokio::test]
async fn seeding_never_overwrites_stored_extensions() {
    let store = memory().await;
    let mut edited = ext("1001");
    edited.name = "Edited through the API".into();
    store.insert_extension(&edited).await.unwrap();

    let seed = [ext("1001"), ext("1002")];
    let report = store
        .seed_extensions(&seed, SeedMode::InsertMissing)
        .await
        .unwrap();
    assert_eq!(report.inserted, ["1002"]);
    assert_eq!(report.kept, ["1001"]);
    assert_eq!(
        store.get_extension("1001").await.unwrap().unwrap().name,
        "Edited through the API"
    );
    // Again: nothing to insert.
    let report = store
        .seed_extensions(&seed, SeedMode::InsertMissing)
        .await
        .unwrap();
    assert!(report.inserted.is_empty());
    assert_eq!(report.kept, ["1001", "1002"]);

    // if_empty: a non-empty store is left alone.
    let seed = [ext("1001"), ext("1003")];
    let report = store
        .seed_extensions(&seed, SeedMode::IfEmpty)
        .await
        .unwrap();
    assert!(report.inserted.is_empty());
    assert_eq!(report.skipped, ["1003"]);
    assert_eq!(store.get_extension("1003").await.unwrap(), None);
    // off: nothing.
    assert_eq!(
        store.seed_extensions(&seed, SeedMode::Off).await.unwrap(),
        SeedReport::default()
    );

    // if_empty on an empty store inserts everything.
    let fresh = memory().await;
    let report = fresh
        .seed_extensions(&seed, SeedMode::IfEmpty)
        .await
        .unwrap();
    assert_eq!(report.inserted, ["1001", "1003"]);
}

#[tokio::test]
async fn shipped_config_seeds_the_demo_extensions() {
    let config = crate::config::Config::default();
    let store = memory().await;
    let report = store
        .seed_extensions(&config.seed_extensions(), config.extensions_seed_mode)
        .await
        .unwrap();
    assert_eq!(report.inserted, ["1001", "1002"]);
    let stored = store.get_extension("1001").await.unwrap().unwrap();
    assert_eq!(stored.secret, config.extensions[0].password.expose());
    assert_eq!(
        stored.qualify_frequency,
        config.registrar.qualify_frequency_default
    );
}
