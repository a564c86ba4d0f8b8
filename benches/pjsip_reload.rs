//! `pjsip reload` of an unchanged 10,000-extension pjsip.conf on a running server with 10,000
//! registrations: every registration stays, and the reload (re-read, import, diff against the
//! store, push) takes < 500 ms.
//! `cargo bench --bench pjsip_reload`

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use dialtone::config;
use dialtone::pbx::directory::BindingRecord;
use dialtone::runtime::Server;
use dialtone::store::Store;

const EXTENSIONS: u32 = 10_000;
const RUNS: usize = 10;
const LIMIT: Duration = Duration::from_millis(500);

fn generate(n: u32) -> String {
    let mut s = String::with_capacity(n as usize * 600);
    s.push_str("[transport-udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0:5060\n\n");
    s.push_str("[endpoint-tmpl](!)\ntype=endpoint\ncontext=from-internal\ndisallow=all\ndirect_media=no\n\n");
    for i in 0..n {
        let num = 100_000 + i;
        let _ = write!(
            s,
            "[{num}](endpoint-tmpl)\nallow=ulaw\nallow=alaw\ntransport=transport-udp\nauth={num}\n\
             aors={num}\ncallerid=\"User {i}\" <{num}>\n\n[{num}]\ntype=auth\nauth_type=userpass\n\
             username={num}\npassword=pw-{num}-secret\n\n[{num}]\ntype=aor\nmax_contacts=1\n\
             qualify_frequency=0\n\n"
        );
    }
    s
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pjsip.conf");
    std::fs::write(&file, generate(EXTENSIONS)).expect("write pjsip.conf");
    let db = dir.path().join("d.db");
    let yaml = format!(
        "server:\n  sip_host: 127.0.0.1\n  sip_port: 0\napi:\n  host: 127.0.0.1\n  port: 0\n\
         ami:\n  enabled: false\ncompat_api:\n  enabled: false\npjsip:\n  config_file: \"{}\"\n\
         database:\n  url: \"sqlite://{}\"\nlogging:\n  level: warn\nextensions: []\n",
        file.display(),
        db.display()
    );
    let cfg = config::parse(&yaml, "bench").expect("config").config;
    rt.block_on(async {
        // First start imports the file; then 10,000 bindings are stored and restored at start.
        let server = Server::start(&cfg).await.expect("start");
        server.shutdown().await.expect("shutdown");
        let store = Store::open(cfg.database.url()).await.expect("store");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let bindings: Vec<BindingRecord> = (0..EXTENSIONS)
            .map(|i| {
                let num = 100_000 + i;
                let port = 20_000 + (i % 40_000) as u16;
                BindingRecord {
                    aor: num.to_string(),
                    contact: format!("sip:{num}@127.0.0.1:{port}"),
                    source: format!("127.0.0.1:{port}"),
                    transport: "udp".into(),
                    call_id: format!("bench-{num}"),
                    cseq: 1,
                    expires_at: now + 3600,
                    user_agent: Some("bench".into()),
                    instance: None,
                    registered_at: now,
                }
            })
            .collect();
        store.save_bindings(&bindings, &[]).await.expect("bindings");
        store.close().await;

        let server = Server::start(&cfg).await.expect("start");
        let before = server.handle().stats().await;
        assert_eq!(before.extensions, EXTENSIONS as usize);
        assert_eq!(before.bindings, EXTENSIONS as usize, "bindings restored");
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let t = Instant::now();
            let r = server.pjsip_reload().await.expect("reload");
            times.push(t.elapsed());
            assert_eq!(r.added + r.changed + r.removed, 0, "{}", r.changes);
            let s = server.handle().stats().await;
            assert_eq!(s.bindings, EXTENSIONS as usize, "a registration was lost");
            assert_eq!(s.extensions, EXTENSIONS as usize);
        }
        times.sort();
        let median = times[RUNS / 2];
        let max = times[RUNS - 1];
        println!(
            "pjsip reload, unchanged 10,000-extension file, 10,000 registrations: \
             median {median:?}, max {max:?} over {RUNS} runs; all registrations kept"
        );
        assert!(median < LIMIT, "median {median:?} >= {LIMIT:?}");
        server.shutdown().await.expect("shutdown");
    });
}
