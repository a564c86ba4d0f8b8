//! pjsip.conf speed on a generated 10,000-extension file (RayanPBX layout, ~25 lines per
//! extension): parse, import model, diff against an identical store (what a reload of an
//! unchanged file does), and export. Target: < 1 s each.
//! `cargo bench --bench pjsip_conf -- --warm-up-time 1 --measurement-time 5`

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use dialtone::pjsip_conf::ExportOptions;
use dialtone::pjsip_conf::export::{export_extensions_conf, export_pjsip};
use dialtone::pjsip_conf::model::{diff, import};
use dialtone::pjsip_conf::parse::{NoFiles, ParseOptions, parse_str};
use dialtone::store::Store;

const EXTENSIONS: u32 = 10_000;

fn generate(n: u32) -> String {
    let mut s = String::with_capacity(n as usize * 700);
    s.push_str("[transport-udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0:5060\n\n");
    s.push_str("[endpoint-tmpl](!)\ntype=endpoint\ncontext=from-internal\ndisallow=all\ndirect_media=no\n\n");
    for i in 0..n {
        let num = 100_000 + i;
        let _ = write!(
            s,
            "; phone {i}\n[{num}](endpoint-tmpl)\nallow=ulaw\nallow=alaw\nallow=g722\n\
             transport=transport-udp\nauth={num}\naors={num}\ncallerid=\"User {i}\" <{num}>\n\
             mailboxes={num}@default\nsubscribe_context=from-internal\ndevice_state_busy_at=1\n\
             language=en\n\n[{num}]\ntype=auth\nauth_type=userpass\nusername={num}\npassword=pw-{num}-secret\n\n\
             [{num}]\ntype=aor\nmax_contacts=1\nremove_existing=yes\nqualify_frequency=60\n\n"
        );
    }
    s
}

fn bench(c: &mut Criterion) {
    let text = generate(EXTENSIONS);
    let parse = || {
        parse_str(
            &NoFiles,
            Path::new("pjsip.conf"),
            &text,
            ParseOptions::default(),
        )
        .expect("parse")
    };
    let conf = parse();
    let model = import(&conf).expect("import");
    assert_eq!(model.extensions.len(), EXTENSIONS as usize);
    let opts = ExportOptions::default();
    let mut g = c.benchmark_group("pjsip_conf_10k");
    g.sample_size(10);
    g.bench_function("parse", |b| b.iter(|| black_box(parse())));
    g.bench_function("import_model", |b| {
        b.iter(|| black_box(import(&conf).expect("import")))
    });
    g.bench_function("parse_and_import", |b| {
        b.iter(|| black_box(import(&parse()).expect("import")))
    });
    g.bench_function("diff_unchanged", |b| {
        b.iter(|| {
            let ch = diff(&model.extensions, &model.objects, &model, true);
            assert!(ch.is_empty());
            black_box(ch)
        })
    });
    g.bench_function("export_pjsip", |b| {
        b.iter(|| black_box(export_pjsip(&model.extensions, &model.objects, &opts)))
    });
    g.bench_function("export_extensions_conf", |b| {
        b.iter(|| black_box(export_extensions_conf(&model.extensions)))
    });
    // The store side of `dialtone pjsip import`: one transaction inserting 10,000 extensions
    // into a fresh SQLite file, and reading them back plus diffing (an unchanged re-import).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let changes = diff(&[], &[], &model, true);
    g.bench_function("store_apply_10k_new", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("b.db").display());
                rt.block_on(async {
                    let store = Store::open(&url).await.expect("open");
                    let t = Instant::now();
                    store.apply_pjsip_changes(&changes).await.expect("apply");
                    total += t.elapsed();
                    store.close().await;
                });
            }
            total
        })
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("b.db").display());
    let store = rt.block_on(async {
        let store = Store::open(&url).await.expect("open");
        store.apply_pjsip_changes(&changes).await.expect("apply");
        store
    });
    g.bench_function("reimport_unchanged_end_to_end", |b| {
        b.iter(|| {
            rt.block_on(async {
                let m = import(&parse()).expect("import");
                let exts = store.list_extensions().await.expect("list");
                let objs = store.list_pjsip_objects().await.expect("objects");
                let ch = diff(&exts, &objs, &m, true);
                assert!(ch.is_empty(), "{}", ch.render());
                black_box(ch)
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
