//! The compat API's backend (RayanPBX/ISPBX listener): the CLI emulation through the AMI
//! backend, pjsip objects in the store, NAT applied after a change.

use std::sync::Arc;

use crate::ami::backend::AmiBackend;
use crate::ami::cli::CliOutput;
use crate::ami::model::Snapshot;
use crate::api::{BackendError, BoxFut, CompatBackend};
use crate::pjsip_conf::{Changes, PjsipObject};
use crate::store::Store;

use super::pjsip_reload::PjsipReloader;

pub struct Compat {
    pub store: Store,
    pub ami: Arc<dyn AmiBackend>,
    pub reloader: Arc<PjsipReloader>,
}

fn unavailable(e: impl std::fmt::Display) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

impl CompatBackend for Compat {
    fn snapshot(&self) -> BoxFut<'_, Arc<Snapshot>> {
        Box::pin(async move { Arc::new(self.ami.snapshot().await) })
    }

    fn cli<'a>(&'a self, command: &'a str) -> BoxFut<'a, CliOutput> {
        Box::pin(super::ami_io::run_cli(self.ami.as_ref(), command))
    }

    fn pjsip_objects(&self) -> BoxFut<'_, Result<Vec<PjsipObject>, BackendError>> {
        Box::pin(async move { self.store.list_pjsip_objects().await.map_err(unavailable) })
    }

    fn save_pjsip_objects(
        &self,
        objects: Vec<PjsipObject>,
    ) -> BoxFut<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let stored = self.store.list_pjsip_objects().await.map_err(unavailable)?;
            let mut ch = Changes::default();
            for o in objects {
                match stored.iter().find(|s| s.kind == o.kind && s.name == o.name) {
                    Some(old) if *old == o => {}
                    Some(old) => ch.obj_changed.push((old.clone(), o)),
                    None => ch.obj_added.push(o),
                }
            }
            if !ch.is_empty() {
                self.store
                    .apply_pjsip_changes(&ch)
                    .await
                    .map_err(unavailable)?;
            }
            self.reloader.apply_nat().await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn pjsip_file(&self) -> Option<String> {
        self.reloader.file().map(|p| p.display().to_string())
    }
}
