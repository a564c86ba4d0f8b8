//! The `dialtone` command: run the PBX, or manage extensions in its store.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

use dialtone::config::{self, Config};
use dialtone::pbx::directory::Extension;
use dialtone::runtime;
use dialtone::store::Store;

/// mimalloc: the message path allocates many small strings; glibc malloc cost ~15 % of a
/// REGISTER storm's CPU in profiles.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "dialtone", version, about = "Dialtone: a native SIP/RTP PBX")]
struct Cli {
    /// config.yml to use (default: $DIALTONE_CONFIG, else ./config.yml, else the embedded defaults)
    #[arg(long, short = 'c', global = true, env = "DIALTONE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the PBX (the default).
    Serve,
    /// Check config.yml and print what would be used.
    CheckConfig,
    /// Manage extensions in the configured store (works while the server runs).
    Extension {
        #[command(subcommand)]
        action: ExtCmd,
    },
    /// Run an Asterisk CLI command on the running server through its AMI, like
    /// `asterisk -rx "pjsip show endpoints"`.
    Cli {
        /// The command to run.
        #[arg(short = 'x', long = "execute")]
        execute: String,
        /// Accepted for `asterisk -rx` compatibility (the connection is always remote).
        #[arg(short = 'r', default_value_t = false)]
        remote: bool,
        /// Accepted for `asterisk -rvvvx` compatibility (verbosity does not apply).
        #[arg(short = 'v', action = clap::ArgAction::Count)]
        verbose: u8,
        /// AMI address (default: ami.host:ami.port from the config).
        #[arg(long)]
        ami: Option<std::net::SocketAddr>,
        /// AMI user (default: the first ami.users entry).
        #[arg(long, env = "DIALTONE_AMI_USER")]
        user: Option<String>,
        /// Its secret (default: from the config).
        #[arg(long, env = "DIALTONE_AMI_SECRET")]
        secret: Option<String>,
    },
    /// Print registrations, ringing and ended calls as they happen (RayanPBX's
    /// `rayanpbx:monitor-events`), from the running server's AMI.
    MonitorEvents {
        /// AMI address (default: ami.host:ami.port from the config).
        #[arg(long)]
        ami: Option<std::net::SocketAddr>,
        /// AMI user (default: the first ami.users entry).
        #[arg(long, env = "DIALTONE_AMI_USER")]
        user: Option<String>,
        /// Its secret (default: from the config).
        #[arg(long, env = "DIALTONE_AMI_SECRET")]
        secret: Option<String>,
    },
    /// Import or export Asterisk pjsip.conf / extensions.conf (works while the server runs).
    Pjsip {
        #[command(subcommand)]
        action: PjsipCmd,
    },
}

#[derive(Subcommand, Debug)]
enum PjsipCmd {
    /// Import a pjsip.conf into the store (one transaction; the file is the source of truth:
    /// stored extensions missing from it are removed unless --keep-missing).
    Import {
        file: PathBuf,
        /// Print what would be added/changed/removed, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Keep stored extensions and objects that the file does not define.
        #[arg(long)]
        keep_missing: bool,
    },
    /// Make the running server re-read its pjsip.conf (`pjsip.config_file`) without a restart
    /// (through its AMI, like `asterisk -rx "pjsip reload"`); registrations of unchanged
    /// extensions stay.
    Reload {
        /// AMI address (default: ami.host:ami.port from the config).
        #[arg(long)]
        ami: Option<std::net::SocketAddr>,
        /// AMI user (default: the first ami.users entry).
        #[arg(long, env = "DIALTONE_AMI_USER")]
        user: Option<String>,
        /// Its secret (default: from the config).
        #[arg(long, env = "DIALTONE_AMI_SECRET")]
        secret: Option<String>,
    },
    /// Check a pjsip.conf (rule 8 of the RayanPBX validator, without its false duplicates);
    /// exits non-zero on errors.
    Validate { file: PathBuf },
    /// Export the store as pjsip.conf (stdout, or --out; an existing file keeps everything
    /// outside Dialtone's managed block).
    Export {
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "rayanpbx")]
        layout: LayoutArg,
        /// Also write extensions.conf (hints and Dial lines) here.
        #[arg(long)]
        extensions_conf: Option<PathBuf>,
        /// Write auth_type=md5 + md5_cred (realm from config.yml) instead of plaintext passwords.
        #[arg(long)]
        md5: bool,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LayoutArg {
    Rayanpbx,
    Freepbx,
}

#[derive(Subcommand, Debug)]
enum ExtCmd {
    /// List extensions.
    List,
    /// Create an extension.
    Create {
        number: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        secret: String,
        #[arg(long)]
        email: Option<String>,
        /// Maximum simultaneous contacts.
        #[arg(long, default_value_t = 1)]
        max_contacts: u32,
    },
    /// Delete an extension (and its registrations).
    Delete { number: String },
}

fn load_config(path: Option<&Path>) -> Result<(Config, Vec<String>, String)> {
    let path = match path {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from("config.yml")).filter(|p| p.exists()),
    };
    match path {
        Some(p) => {
            let loaded = config::load(&p).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok((loaded.config, loaded.warnings, p.display().to_string()))
        }
        None => Ok((
            Config::default(),
            Vec::new(),
            "embedded defaults".to_string(),
        )),
    }
}

fn init_tracing(cfg: &config::schema::LoggingConfig) -> Result<()> {
    use tracing_subscriber::prelude::*;
    let filter = || {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            EnvFilter::new(format!(
                "{},sqlx=warn,hyper=warn,tower_http=warn",
                cfg.level
            ))
        })
    };
    let console = cfg.console.then(|| {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(std::io::stderr)
            .with_filter(filter())
    });
    let file = match &cfg.file {
        Some(path) => {
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("logging.file: cannot create {}", dir.display()))?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("logging.file: cannot open {path}"))?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(f))
                    .with_filter(filter()),
            )
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(console)
        .with(file)
        .init();
    Ok(())
}

/// Run as `asterisk` (a symlink named `asterisk` to this binary), the arguments are those of
/// `asterisk -rx "<command>"`: they become `dialtone cli -rx "<command>"`, so scripts and
/// panels that shell out to Asterisk's CLI keep working.
fn asterisk_shim(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let as_asterisk = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == "asterisk");
    if as_asterisk {
        args.insert(1, "cli".into());
    }
    args
}

fn main() -> Result<()> {
    let cli = Cli::parse_from(asterisk_shim(std::env::args_os().collect()));
    let (cfg, warnings, origin) = load_config(cli.config.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::Serve => {
            init_tracing(&cfg.logging)?;
            info!(config = %origin, "starting Dialtone {}", env!("CARGO_PKG_VERSION"));
            for w in &warnings {
                warn!("{origin}: {w}");
            }
            rt.block_on(serve(cfg))
        }
        Cmd::CheckConfig => {
            for w in &warnings {
                eprintln!("warning: {origin}: {w}");
            }
            println!("{origin}: OK");
            println!(
                "SIP {}:{} (UDP{}), REST {}:{}, database {}",
                cfg.server.sip_host,
                cfg.server.sip_port,
                if cfg.sip.tcp { "+TCP" } else { "" },
                cfg.api.host,
                cfg.api.port,
                cfg.database.url()
            );
            Ok(())
        }
        Cmd::Extension { action } => rt.block_on(extension_cmd(cfg, action)),
        Cmd::Cli {
            execute,
            remote: _,
            verbose: _,
            ami,
            user,
            secret,
        } => {
            let (ok, text) = rt.block_on(ami_cli(&cfg, ami, user, secret, &execute))?;
            print!("{text}");
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::Pjsip {
            action: PjsipCmd::Reload { ami, user, secret },
        } => {
            // The running server re-reads its pjsip.conf (AMI `Command: pjsip reload`).
            let (ok, text) = rt.block_on(ami_cli(&cfg, ami, user, secret, "pjsip reload"))?;
            print!("{text}");
            if !ok {
                std::process::exit(1);
            }
            match &cfg.pjsip.config_file {
                Some(f) => println!("{f} reloaded"),
                None => {
                    println!("directory reloaded from the store (pjsip.config_file is not set)")
                }
            }
            Ok(())
        }
        Cmd::MonitorEvents { ami, user, secret } => {
            let addr = ami.unwrap_or_else(|| cfg.ami_addr());
            let (username, secret) = ami_account(&cfg, user, secret)?;
            rt.block_on(async {
                let run = runtime::ami_io::monitor_events(addr, &username, &secret, |line| {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                });
                tokio::select! {
                    r = run => r.with_context(|| format!("AMI at {addr}")),
                    _ = tokio::signal::ctrl_c() => Ok(()),
                }
            })
        }
        Cmd::Pjsip { action } => rt.block_on(pjsip_cmd(cfg, action)),
    }
}

/// The AMI user and secret for the CLI commands: given, or the config's (first) user.
fn ami_account(
    cfg: &Config,
    user: Option<String>,
    secret: Option<String>,
) -> Result<(String, String)> {
    let account = match &user {
        Some(u) => cfg.ami.users.iter().find(|x| &x.username == u),
        None => cfg.ami.users.first(),
    };
    let username = user
        .clone()
        .or_else(|| account.map(|a| a.username.clone()))
        .context("no AMI user: add one under ami.users or pass --user")?;
    let secret = secret
        .or_else(|| account.map(|a| a.secret.expose().to_string()))
        .context("no AMI secret: pass --secret")?;
    Ok((username, secret))
}

/// Run one CLI command on the running server through its AMI (`asterisk -rx`).
async fn ami_cli(
    cfg: &Config,
    ami: Option<std::net::SocketAddr>,
    user: Option<String>,
    secret: Option<String>,
    command: &str,
) -> Result<(bool, String)> {
    let addr = ami.unwrap_or_else(|| cfg.ami_addr());
    let (username, secret) = ami_account(cfg, user, secret)?;
    runtime::ami_io::run_command(addr, &username, &secret, command)
        .await
        .with_context(|| format!("AMI at {addr}"))
}

async fn serve(cfg: Config) -> Result<()> {
    if cfg.uses_default_admin_password() && cfg.api.require_authentication {
        warn!(
            "api.admin_password is the documented default: change it before exposing port {}",
            cfg.api.port
        );
    }
    let server = runtime::Server::start(&cfg).await?;
    info!(
        udp = %server.udp_addr(),
        tcp = ?server.tcp_addr(),
        api = ?server.api_addr(),
        ami = ?server.ami_addr(),
        "Dialtone is up"
    );
    shutdown_signal().await;
    info!("shutting down");
    server.shutdown().await?;
    info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

async fn extension_cmd(cfg: Config, action: ExtCmd) -> Result<()> {
    let store = Store::open(cfg.database.url())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match action {
        ExtCmd::List => {
            let list = store
                .list_extensions()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{:<10} {:<24} {:<8} {:<14} CODECS",
                "NUMBER", "NAME", "ENABLED", "CONTEXT"
            );
            for e in list {
                println!(
                    "{:<10} {:<24} {:<8} {:<14} {}",
                    e.number,
                    e.name,
                    e.enabled,
                    e.context,
                    e.codecs.join(",")
                );
            }
        }
        ExtCmd::Create {
            number,
            name,
            secret,
            email,
            max_contacts,
        } => {
            if number.len() < 2 || number.len() > 20 || !number.bytes().all(|b| b.is_ascii_digit())
            {
                bail!("number: must be 2-20 digits");
            }
            if secret.chars().count() < 8 {
                bail!("secret: must be at least 8 characters");
            }
            if !(1..=100).contains(&max_contacts) {
                bail!("max-contacts: must be 1-100");
            }
            let mut ext = Extension::new(
                number.clone(),
                name.unwrap_or_else(|| number.clone()),
                secret,
            );
            ext.email = email;
            ext.max_contacts = max_contacts;
            store
                .insert_extension(&ext)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("extension {number} created");
        }
        ExtCmd::Delete { number } => {
            store
                .delete_extension(&number)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("extension {number} deleted");
        }
    }
    store.close().await;
    Ok(())
}

async fn pjsip_cmd(cfg: Config, action: PjsipCmd) -> Result<()> {
    use dialtone::pjsip_conf::{self, AuthMode, ExportOptions, Layout, PjsipObject, export, model};
    use dialtone::store::FsConfSource;

    if let PjsipCmd::Validate { file } = &action {
        return pjsip_validate(file);
    }

    let store = Store::open(cfg.database.url())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let result = async {
        match action {
            PjsipCmd::Import {
                file,
                dry_run,
                keep_missing,
            } => {
                let conf = pjsip_conf::parse::parse_file(
                    &FsConfSource,
                    &file,
                    pjsip_conf::parse::ParseOptions::default(),
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                let m = model::import(&conf).map_err(|e| anyhow::anyhow!("{e}"))?;
                print!("{}", m.report.render());
                let exts = store
                    .list_extensions()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let objs = store
                    .list_pjsip_objects()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let changes = model::diff(&exts, &objs, &m, !keep_missing);
                print!("{}", changes.render());
                if dry_run {
                    println!("dry run: nothing changed");
                } else if changes.is_empty() && changes.obj_order.is_none() {
                    println!("store already up to date");
                } else {
                    store
                        .apply_pjsip_changes(&changes)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    println!("imported {}", file.display());
                }
            }
            PjsipCmd::Validate { file } => pjsip_validate(&file)?,
            PjsipCmd::Reload { .. } => bail!("pjsip reload talks to the running server"),
            PjsipCmd::Export {
                out,
                layout,
                extensions_conf,
                md5,
            } => {
                let exts = store
                    .list_extensions()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let objs = store
                    .list_pjsip_objects()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let mut default_transports = vec![PjsipObject {
                    kind: "transport".into(),
                    name: "transport-udp".into(),
                    options: vec![
                        ("protocol".into(), "udp".into()),
                        (
                            "bind".into(),
                            format!("{}:{}", cfg.server.sip_host, cfg.server.sip_port),
                        ),
                    ],
                    comments: Vec::new(),
                }];
                if cfg.sip.tcp {
                    default_transports.push(PjsipObject {
                        kind: "transport".into(),
                        name: "transport-tcp".into(),
                        options: vec![
                            ("protocol".into(), "tcp".into()),
                            (
                                "bind".into(),
                                format!("{}:{}", cfg.server.sip_host, cfg.server.sip_port),
                            ),
                        ],
                        comments: Vec::new(),
                    });
                }
                let opts = ExportOptions {
                    layout: match layout {
                        LayoutArg::Rayanpbx => Layout::Rayanpbx,
                        LayoutArg::Freepbx => Layout::Freepbx,
                    },
                    auth: if md5 {
                        AuthMode::Md5 {
                            realm: cfg.sip.realm.clone(),
                        }
                    } else {
                        AuthMode::Plaintext
                    },
                    default_transports,
                };
                let files = export::export_pjsip(&exts, &objs, &opts);
                let written = export::written_sections(&exts, &objs, &opts);
                match &out {
                    None if opts.layout == Layout::Freepbx => {
                        bail!("--layout freepbx writes several files: give --out DIR/pjsip.conf")
                    }
                    None => print!("{}", files[0].content),
                    Some(main) => {
                        let dir = main.parent().unwrap_or(Path::new("")).to_path_buf();
                        for f in &files {
                            let path = if f.name == "pjsip.conf" {
                                main.clone()
                            } else {
                                dir.join(&f.name)
                            };
                            if f.create_only {
                                if !path.exists() {
                                    write_file(&path, &f.content)?;
                                }
                                continue;
                            }
                            write_merged(&path, &f.content, &written)?;
                            println!("wrote {}", path.display());
                        }
                    }
                }
                if let Some(path) = extensions_conf {
                    let text = export::export_extensions_conf(&exts);
                    write_merged(&path, &text, &Default::default())?;
                    println!("wrote {}", path.display());
                }
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}

fn pjsip_validate(file: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let v = dialtone::pjsip_conf::validate::validate_pjsip(&text);
    for e in &v.errors {
        println!("error: {}: {e}", file.display());
    }
    for w in &v.warnings {
        println!("warning: {}: {w}", file.display());
    }
    if !v.valid {
        bail!("{}: {} errors", file.display(), v.errors.len());
    }
    println!("{}: valid ({} warnings)", file.display(), v.warnings.len());
    Ok(())
}

/// Write `new` to `path`, merged into the existing file (only the managed block is replaced).
fn write_merged(
    path: &Path,
    new: &str,
    redefined: &std::collections::HashSet<(String, String)>,
) -> Result<()> {
    let text = match std::fs::read(path) {
        Ok(bytes) => {
            let existing = String::from_utf8_lossy(&bytes);
            dialtone::pjsip_conf::export::merge_into(path, &existing, new, redefined)
                .map_err(|e| anyhow::anyhow!("{e} (file left unchanged)"))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => new.to_owned(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    write_file(path, &text)
}

/// Write through a temporary file and a rename, so readers never see half a file.
fn write_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("dialtone-tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
