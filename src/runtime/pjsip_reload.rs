//! Running from a pjsip.conf: import at start-up, `pjsip reload` at run time, and the NAT
//! settings (`external_media_address`, `external_signaling_address`, `local_net`) of the
//! imported transports applied to the engine.
//!
//! A reload re-reads the file, diffs it against the store and applies the difference in one
//! transaction (a bad file changes nothing and the error names `file:line`), then pushes the
//! directory and the NAT settings to the core at once. The engine's `LoadDirectory` drops only
//! the bindings of vanished or disabled extensions, so registrations of the others stay.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::core::CoreHandle;
use crate::pbx::engine::Command;
use crate::pjsip_conf::model::{self, Transport};
use crate::pjsip_conf::{ImportModel, PjsipObject, parse, parse_local_net};
use crate::store::{FsConfSource, Store};

/// Why a reload failed (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// The file does not parse or import (`file:line: what`).
    #[error("{0}")]
    Config(String),
    #[error("store: {0}")]
    Store(String),
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// The file re-read (None: Dialtone does not run from a pjsip.conf; the directory was
    /// reloaded from the store).
    pub file: Option<PathBuf>,
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    /// `added/changed/removed` lines (see [`model::Changes::render`]).
    pub changes: String,
    /// Import warnings (`file:line: message`).
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

/// NAT settings as the engine takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nat {
    pub external_ip: Option<IpAddr>,
    pub external_media_ip: Option<IpAddr>,
    pub local_nets: Vec<ipnet::IpNet>,
}

/// The NAT keys of pjsip transports, unresolved: the first transport (file order) that sets
/// each address wins; `local_net` is the union of all transports'. `[global]` fills in for
/// transports without them (see [`model::transports`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatKeys {
    pub external_signaling_address: Option<String>,
    pub external_media_address: Option<String>,
    pub local_net: Vec<String>,
}

impl NatKeys {
    pub fn from_objects(objects: &[PjsipObject]) -> NatKeys {
        let ts: Vec<Transport> = model::transports(objects);
        let mut k = NatKeys::default();
        for t in &ts {
            if k.external_signaling_address.is_none() {
                k.external_signaling_address = t.external_signaling_address.clone();
            }
            if k.external_media_address.is_none() {
                k.external_media_address = t.external_media_address.clone();
            }
            for n in &t.local_net {
                if !k.local_net.contains(n) {
                    k.local_net.push(n.clone());
                }
            }
        }
        if ts.is_empty()
            && let Some(g) = objects.iter().find(|o| o.kind == "global")
        {
            // RayanPBX writes the keys into [global]; with no transport they still count.
            let get = |key: &str| {
                g.get(key)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
            };
            k.external_signaling_address = get("external_signaling_address");
            k.external_media_address = get("external_media_address");
            k.local_net = g
                .get_all("local_net")
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect();
        }
        k
    }
}

/// An external address: an IP literal, else a host name resolved now (Asterisk resolves them
/// at load time too). `host:port` is accepted; the port is ignored.
async fn resolve(addr: &str) -> Option<IpAddr> {
    let a = addr.trim();
    if let Ok(ip) = a.trim_start_matches('[').trim_end_matches(']').parse() {
        return Some(ip);
    }
    if let Ok(sa) = a.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    let host = match a.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => a,
    };
    match tokio::net::lookup_host((host, 0)).await {
        Ok(mut it) => it.next().map(|s| s.ip()),
        Err(e) => {
            warn!(address = %a, error = %e, "pjsip external address does not resolve; ignored");
            None
        }
    }
}

/// Re-reads the pjsip.conf and applies NAT; shared by the AMI, the compat API and the watcher.
pub struct PjsipReloader {
    store: Store,
    core: CoreHandle,
    file: Option<PathBuf>,
    /// config.yml `server.external_ip` / `server.local_net` (used where pjsip.conf sets none).
    base: Nat,
    /// One reload at a time.
    lock: tokio::sync::Mutex<()>,
    /// The NAT last pushed to the engine.
    applied: std::sync::Mutex<Option<Nat>>,
}

fn read_model(file: PathBuf) -> Result<ImportModel, ReloadError> {
    let conf = parse::parse_file(&FsConfSource, &file, parse::ParseOptions::default())
        .map_err(|e| ReloadError::Config(e.to_string()))?;
    model::import(&conf).map_err(|e| ReloadError::Config(e.to_string()))
}

impl PjsipReloader {
    pub fn new(store: Store, core: CoreHandle, file: Option<PathBuf>, base: Nat) -> Self {
        PjsipReloader {
            store,
            core,
            file,
            base,
            lock: tokio::sync::Mutex::new(()),
            applied: std::sync::Mutex::new(None),
        }
    }

    /// The pjsip.conf Dialtone runs from, if any.
    pub fn file(&self) -> Option<&PathBuf> {
        self.file.as_ref()
    }

    /// Import `file` into the store (start-up; the core is not told).
    pub async fn import_file(
        store: &Store,
        file: &std::path::Path,
    ) -> Result<ReloadReport, ReloadError> {
        let t0 = Instant::now();
        let path = file.to_path_buf();
        let m = tokio::task::spawn_blocking(move || read_model(path))
            .await
            .map_err(|e| ReloadError::Config(e.to_string()))??;
        let store_err = |e: crate::store::StoreError| ReloadError::Store(e.to_string());
        let exts = store.list_extensions().await.map_err(store_err)?;
        let objs = store.list_pjsip_objects().await.map_err(store_err)?;
        let changes = model::diff(&exts, &objs, &m, true);
        if !changes.is_empty() || changes.obj_order.is_some() {
            store
                .apply_pjsip_changes(&changes)
                .await
                .map_err(store_err)?;
        }
        Ok(ReloadReport {
            file: Some(file.to_path_buf()),
            added: changes.ext_added.len() + changes.obj_added.len(),
            changed: changes.ext_changed.len() + changes.obj_changed.len(),
            removed: changes.ext_removed.len() + changes.obj_removed.len(),
            changes: changes.render(),
            warnings: m.report.warnings.clone(),
            elapsed: t0.elapsed(),
        })
    }

    /// `pjsip reload`: re-read the file (when configured), apply the difference, push the
    /// directory and NAT to the core. Without a file, the directory is reloaded from the store.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one = self.lock.lock().await;
        let t0 = Instant::now();
        let store_err = |e: crate::store::StoreError| ReloadError::Store(e.to_string());
        let mut report = match &self.file {
            Some(f) => Self::import_file(&self.store, f).await?,
            None => ReloadReport::default(),
        };
        let changed_dir = self.file.is_none() || report.added + report.changed + report.removed > 0;
        if changed_dir {
            let list = self.store.list_extensions().await.map_err(store_err)?;
            self.core.command(Command::LoadDirectory(list)).await;
        }
        self.apply_nat().await?;
        report.elapsed = t0.elapsed();
        info!(
            file = ?report.file,
            added = report.added,
            changed = report.changed,
            removed = report.removed,
            ms = report.elapsed.as_millis() as u64,
            "pjsip reload"
        );
        Ok(report)
    }

    /// The NAT settings from the stored pjsip objects over config.yml's.
    pub async fn effective_nat(&self) -> Result<Nat, ReloadError> {
        let objs = self
            .store
            .list_pjsip_objects()
            .await
            .map_err(|e| ReloadError::Store(e.to_string()))?;
        Ok(self.nat_from(&NatKeys::from_objects(&objs)).await)
    }

    async fn nat_from(&self, keys: &NatKeys) -> Nat {
        let mut nat = self.base.clone();
        if let Some(a) = &keys.external_signaling_address
            && let Some(ip) = resolve(a).await
        {
            nat.external_ip = Some(ip);
        }
        if let Some(a) = &keys.external_media_address
            && let Some(ip) = resolve(a).await
        {
            nat.external_media_ip = Some(ip);
        }
        let nets: Vec<ipnet::IpNet> = keys
            .local_net
            .iter()
            .filter_map(|n| {
                let p = parse_local_net(n);
                if p.is_none() {
                    warn!(local_net = %n, "pjsip local_net is not a network; ignored");
                }
                p
            })
            .collect();
        if !nets.is_empty() {
            nat.local_nets = nets;
        }
        nat
    }

    /// Push the effective NAT settings to the engine when they changed.
    pub async fn apply_nat(&self) -> Result<Nat, ReloadError> {
        let nat = self.effective_nat().await?;
        let changed = {
            let mut last = self.applied.lock().unwrap_or_else(|p| p.into_inner());
            let changed = last.as_ref() != Some(&nat);
            *last = Some(nat.clone());
            changed
        };
        if changed {
            info!(
                external_ip = ?nat.external_ip,
                external_media_ip = ?nat.external_media_ip,
                local_nets = ?nat.local_nets,
                "NAT settings applied"
            );
            self.core
                .command(Command::SetNat {
                    external_ip: nat.external_ip,
                    external_media_ip: nat.external_media_ip,
                    local_nets: nat.local_nets.clone(),
                })
                .await;
        }
        Ok(nat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: &str, name: &str, opts: &[(&str, &str)]) -> PjsipObject {
        PjsipObject {
            kind: kind.into(),
            name: name.into(),
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            comments: Vec::new(),
        }
    }

    #[test]
    fn local_net_forms() {
        assert_eq!(
            parse_local_net("10.1.2.3/8"),
            Some("10.0.0.0/8".parse().unwrap())
        );
        assert_eq!(
            parse_local_net("192.168.0.0/255.255.0.0"),
            Some("192.168.0.0/16".parse().unwrap())
        );
        assert_eq!(
            parse_local_net(" 172.16.1.1 "),
            Some("172.16.1.1/32".parse().unwrap())
        );
        assert_eq!(
            parse_local_net("fd00::/8"),
            Some("fd00::/8".parse().unwrap())
        );
        assert_eq!(parse_local_net("lan"), None);
        assert_eq!(parse_local_net("10.0.0.0/255.0.255.0"), None);
    }

    #[test]
    fn nat_keys_from_transports_and_global() {
        let objs = vec![
            obj("global", "global", &[("local_net", "10.0.0.0/8")]),
            obj("transport", "transport-tcp", &[("protocol", "tcp")]),
            obj(
                "transport",
                "transport-udp",
                &[
                    ("protocol", "udp"),
                    ("external_media_address", "203.0.113.5"),
                    ("external_signaling_address", "203.0.113.6"),
                    ("local_net", "192.168.0.0/16"),
                    ("local_net", "172.16.0.0/12"),
                ],
            ),
        ];
        let k = NatKeys::from_objects(&objs);
        assert_eq!(k.external_media_address.as_deref(), Some("203.0.113.5"));
        assert_eq!(k.external_signaling_address.as_deref(), Some("203.0.113.6"));
        // transport-tcp inherits [global]'s local_net; transport-udp has its own two.
        assert_eq!(
            k.local_net,
            vec!["10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12"]
        );
        // [global] alone (RayanPBX's layout) counts when there is no transport.
        let g = vec![obj(
            "global",
            "global",
            &[
                ("external_media_address", "198.51.100.1"),
                ("local_net", "10.0.0.0/8,192.168.1.0/24"),
            ],
        )];
        let k = NatKeys::from_objects(&g);
        assert_eq!(k.external_media_address.as_deref(), Some("198.51.100.1"));
        assert_eq!(k.external_signaling_address, None);
        assert_eq!(k.local_net, vec!["10.0.0.0/8", "192.168.1.0/24"]);
        assert_eq!(NatKeys::from_objects(&[]), NatKeys::default());
    }
}
