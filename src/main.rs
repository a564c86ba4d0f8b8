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

fn main() -> Result<()> {
    let cli = Cli::parse();
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
            ami,
            user,
            secret,
        } => {
            let addr = ami.unwrap_or_else(|| cfg.ami_addr());
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
            let (ok, text) = rt
                .block_on(runtime::ami_io::run_command(
                    addr, &username, &secret, &execute,
                ))
                .with_context(|| format!("AMI at {addr}"))?;
            print!("{text}");
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
    }
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
