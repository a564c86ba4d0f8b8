//! The REST API's view of the PBX: extensions from the store (then pushed to the core at
//! once), live registrations and counters from the core.

use std::time::Duration;

use tracing::{debug, info, warn};

use super::core::CoreHandle;
use crate::api::{
    ApiBackend, ApiConfig, BackendError, BoxFut, CallInfo, CdrInfo, ContactInfo, OriginateFailure,
    StatusCounts,
};
use crate::config::Config;
use crate::pbx::directory::Extension;
use crate::pbx::engine::{Command, ContactView};
use crate::store::{Store, StoreError};

/// The live backend.
pub struct Backend {
    store: Store,
    core: CoreHandle,
}

impl Backend {
    pub fn new(store: Store, core: CoreHandle, _started_unix_ms: i64) -> Backend {
        Backend { store, core }
    }
}

fn store_err(e: StoreError) -> BackendError {
    match e {
        StoreError::Duplicate { number } => BackendError::Duplicate(number),
        StoreError::NotFound { number } => BackendError::NotFound(number),
        other => BackendError::Unavailable(other.to_string()),
    }
}

fn contact_info(c: ContactView) -> ContactInfo {
    ContactInfo {
        number: c.number,
        uri: c.uri,
        ip: c.source.addr.ip().to_string(),
        port: c.source.addr.port(),
        transport: c.source.proto.as_str().to_string(),
        user_agent: c.user_agent,
        expires_in: u64::from(c.expires_in),
        registered_at: c.registered_at,
        qualify_status: c.qualify.as_str().to_string(),
        rtt_ms: c.rtt.map(|d| d.as_secs_f64() * 1000.0),
    }
}

impl ApiBackend for Backend {
    fn list_extensions(&self) -> BoxFut<'_, Result<Vec<Extension>, BackendError>> {
        Box::pin(async move { self.store.list_extensions().await.map_err(store_err) })
    }

    fn get_extension<'a>(
        &'a self,
        number: &'a str,
    ) -> BoxFut<'a, Result<Option<Extension>, BackendError>> {
        Box::pin(async move { self.store.get_extension(number).await.map_err(store_err) })
    }

    fn create_extension(&self, ext: Extension) -> BoxFut<'_, Result<Extension, BackendError>> {
        Box::pin(async move {
            let stored = self.store.insert_extension(&ext).await.map_err(store_err)?;
            // Takes effect at once: the next REGISTER for it is accepted.
            self.core
                .command(Command::UpsertExtension(stored.clone()))
                .await;
            Ok(stored)
        })
    }

    fn update_extension(&self, ext: Extension) -> BoxFut<'_, Result<Extension, BackendError>> {
        Box::pin(async move {
            let stored = self.store.update_extension(&ext).await.map_err(store_err)?;
            // A disabled extension loses its bindings; a new secret applies to the next REGISTER.
            self.core
                .command(Command::UpsertExtension(stored.clone()))
                .await;
            Ok(stored)
        })
    }

    fn delete_extension<'a>(&'a self, number: &'a str) -> BoxFut<'a, Result<(), BackendError>> {
        Box::pin(async move {
            self.store
                .delete_extension(number)
                .await
                .map_err(store_err)?;
            self.core
                .command(Command::RemoveExtension(number.to_string()))
                .await;
            Ok(())
        })
    }

    fn contacts<'a>(&'a self, number: Option<&'a str>) -> BoxFut<'a, Vec<ContactInfo>> {
        Box::pin(async move {
            self.core
                .contacts(number.map(str::to_string))
                .await
                .into_iter()
                .map(contact_info)
                .collect()
        })
    }

    fn calls(&self) -> BoxFut<'_, Vec<CallInfo>> {
        Box::pin(async move {
            let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            self.core
                .calls()
                .await
                .into_iter()
                .map(|c| CallInfo {
                    call_id: c.call_id,
                    from: c.from,
                    to: c.to,
                    answered: c.answered,
                    start: ms(c.start),
                    answer: c.answer.map(ms),
                })
                .collect()
        })
    }

    fn hangup<'a>(&'a self, call_id: &'a str) -> BoxFut<'a, Result<(), BackendError>> {
        Box::pin(async move {
            if self.core.hangup(call_id.to_string()).await {
                Ok(())
            } else {
                Err(BackendError::NotFound(call_id.to_string()))
            }
        })
    }

    fn originate<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
    ) -> BoxFut<'a, Result<String, OriginateFailure>> {
        Box::pin(async move {
            match self.core.originate(from.to_owned(), to.to_owned()).await {
                Some(Ok((_, call_id))) => Ok(call_id),
                Some(Err(e)) => Err(OriginateFailure::Rejected(e)),
                None => Err(OriginateFailure::Unavailable("core stopped".into())),
            }
        })
    }

    fn presence(&self) -> BoxFut<'_, Vec<crate::pbx::engine::PresenceEntry>> {
        Box::pin(async move { self.core.presence().await })
    }

    fn set_presence<'a>(
        &'a self,
        extension: &'a str,
        status: crate::pbx::presence::PresenceStatus,
        note: Option<String>,
    ) -> BoxFut<'a, Result<(), BackendError>> {
        Box::pin(async move {
            match self
                .core
                .set_presence(extension.to_owned(), status, note)
                .await
            {
                Some(true) => Ok(()),
                Some(false) => Err(BackendError::NotFound(extension.to_owned())),
                None => Err(BackendError::Unavailable("core stopped".into())),
            }
        })
    }

    fn cdr_summary(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> BoxFut<'_, Result<crate::store::CdrSummary, BackendError>> {
        Box::pin(async move {
            self.store
                .cdr_summary(from_ms, to_ms)
                .await
                .map_err(store_err)
        })
    }

    fn cdrs(
        &self,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> BoxFut<'_, Result<Vec<CdrInfo>, BackendError>> {
        Box::pin(async move {
            let rows = self
                .store
                .list_cdrs(from_ms, to_ms, limit)
                .await
                .map_err(store_err)?;
            Ok(rows
                .into_iter()
                .map(|r| CdrInfo {
                    call_id: r.call_id,
                    from_extension: r.from_extension,
                    to_extension: r.to_extension,
                    start_time: r.start_time,
                    answer_time: r.answer_time,
                    end_time: r.end_time,
                    disposition: r.disposition,
                    duration: r.duration,
                    billsec: r.billsec,
                    recording_file: r.recording_file,
                    hangup_cause: r.hangup_cause,
                    hung_up_by: r.hung_up_by,
                    q850_cause: r.q850_cause,
                    codec_a: r.codec_a,
                    codec_b: r.codec_b,
                    rtp_a: r.rtp_a,
                    rtp_b: r.rtp_b,
                })
                .collect())
        })
    }

    fn status(&self) -> BoxFut<'_, StatusCounts> {
        Box::pin(async move {
            let s = self.core.stats().await;
            StatusCounts {
                registered_extensions: s.registered_aors,
                active_calls: s.active_calls,
                total_calls: s.total_calls,
                registered_contacts: s.bindings,
                extensions: s.extensions,
                ..StatusCounts::default()
            }
        })
    }
}

/// The API settings from config.yml.
pub fn api_config(cfg: &Config) -> ApiConfig {
    ApiConfig {
        require_authentication: cfg.api.require_authentication,
        tokens: cfg
            .api
            .tokens
            .iter()
            .map(|t| t.expose().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        admin_user: cfg.api.admin_user.clone(),
        admin_password: cfg.api.admin_password.expose().to_string(),
        jwt_secret: cfg
            .api
            .jwt_secret
            .as_ref()
            .map(|s| s.expose().as_bytes().to_vec())
            .unwrap_or_default(),
        token_ttl: Duration::from_secs(24 * 3600),
    }
}

/// Follow extension changes made by another process (the `dialtone extension` CLI writes the
/// same store): poll the store's directory version once a second and reload when it moves.
/// `loaded_version` is the version read *before* the directory the core holds was listed, so a
/// change made in between is not missed.
pub async fn watch_directory(
    store: Store,
    core: CoreHandle,
    loaded_version: i64,
    reloader: std::sync::Arc<super::pjsip_reload::PjsipReloader>,
) {
    let mut last = loaded_version;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        match store.directory_version().await {
            Ok(v) if v != last => {
                last = v;
                match store.list_extensions().await {
                    Ok(list) => {
                        info!(
                            extensions = list.len(),
                            "directory changed in the store: reloading"
                        );
                        if !core.command(Command::LoadDirectory(list)).await {
                            return;
                        }
                        // pjsip transports (NAT) may have changed too (`dialtone pjsip import`).
                        if let Err(e) = reloader.apply_nat().await {
                            warn!(error = %e, "NAT settings not re-read");
                        }
                    }
                    Err(e) => warn!(error = %e, "directory reload failed"),
                }
            }
            Ok(_) => {}
            Err(e) => debug!(error = %e, "directory version poll failed"),
        }
    }
}
