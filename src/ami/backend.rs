//! What AMI needs from the rest of the PBX: snapshots and call control. The session asks
//! through [`Request`]s; the runtime answers with [`Reply`]s by calling an [`AmiBackend`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::events::OriginateTarget;
use super::model::Snapshot;

/// A boxed, `Send` future borrowing from the backend.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An `Originate` as validated by the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginateRequest {
    /// `PJSIP/1001` (tech/resource).
    pub channel: String,
    pub target: OriginateTarget,
    /// Priority for an `Exten` target.
    pub priority: i32,
    pub timeout_ms: u64,
    /// `"Name" <num>`.
    pub caller_id: Option<String>,
    pub variables: Vec<(String, String)>,
    pub account: String,
    pub early_media: bool,
    /// `Async: true`: answer "queued" at once, report with an `OriginateResponse` event
    /// carrying `action_id`.
    pub is_async: bool,
    pub action_id: Option<String>,
    pub channel_id: Option<String>,
    pub other_channel_id: Option<String>,
    pub codecs: Option<String>,
}

/// A `Redirect` (with the optional second channel of a dual redirect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectRequest {
    pub channel: String,
    pub exten: String,
    pub context: String,
    pub priority: i32,
    pub extra: Option<(String, String, String, i32)>,
}

/// A state change asked of the PBX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Hang up channels by name; `cause` is Q.850.
    Hangup {
        channels: Vec<String>,
        cause: Option<u8>,
    },
    Originate(Box<OriginateRequest>),
    Redirect(Box<RedirectRequest>),
    /// Set a variable on a channel (or a global one when `channel` is `None`).
    Setvar {
        channel: Option<String>,
        variable: String,
        value: String,
    },
    /// Reload a module (`res_pjsip.so`, `pbx_config.so`) or everything (`None`).
    Reload {
        module: Option<String>,
    },
    /// `BlindTransfer`: `channel`'s bridge peer goes to `exten`, `channel` hangs up.
    BlindTransfer {
        channel: String,
        exten: String,
        context: Option<String>,
    },
    /// Broadcast `Event: UserEvent` with these body headers (`UserEvent: <name>` first).
    UserEvent {
        body: Vec<(String, String)>,
    },
}

/// A successful [`Control`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlOk {
    Done,
    /// The channels that were hung up.
    Hungup(Vec<String>),
    /// Async originate accepted (an `OriginateResponse` follows as an event).
    OriginateQueued,
    /// Sync originate answered.
    OriginateAnswered,
}

/// A failed [`Control`]; the session turns it into Asterisk's message for the action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("No such channel")]
    NoSuchChannel,
    #[error("No such module")]
    NoSuchModule,
    /// The operation ran and failed (`Originate failed`, `Redirect failed`).
    #[error("operation failed")]
    Failed,
    /// `Redirect`: the channel is not up (a callee still ringing, or hung up meanwhile).
    #[error("Redirect failed, channel not up.")]
    ChannelNotUp,
    /// Not available in this build; the text says so to the client.
    #[error("{0}")]
    Unsupported(String),
    /// A reload ran and failed (a config error, `file:line: what`); nothing changed.
    #[error("{0}")]
    ReloadFailed(String),
}

/// What a session waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Snapshot,
    Control(Control),
}

/// The answer to a [`Request`].
#[derive(Debug, Clone)]
pub enum Reply {
    Snapshot(Arc<Snapshot>),
    Control(Result<ControlOk, ControlError>),
}

/// The PBX side of AMI, implemented by the runtime.
pub trait AmiBackend: Send + Sync + 'static {
    /// The PBX now.
    fn snapshot(&self) -> BoxFut<'_, Snapshot>;
    /// Hang up channels by name; the names that existed.
    fn hangup(
        &self,
        channels: Vec<String>,
        cause: Option<u8>,
    ) -> BoxFut<'_, Result<Vec<String>, ControlError>>;
    /// Place a call (sync: resolves when answered or failed; async: when queued).
    fn originate(&self, req: OriginateRequest) -> BoxFut<'_, Result<ControlOk, ControlError>>;
    fn redirect(&self, req: RedirectRequest) -> BoxFut<'_, Result<(), ControlError>>;
    fn setvar(
        &self,
        channel: Option<String>,
        variable: String,
        value: String,
    ) -> BoxFut<'_, Result<(), ControlError>>;
    fn reload(&self, module: Option<String>) -> BoxFut<'_, Result<(), ControlError>>;
    /// Transfer `channel`'s bridge peer to `exten` (the transferer hangs up).
    fn blind_transfer(
        &self,
        channel: String,
        exten: String,
        context: Option<String>,
    ) -> BoxFut<'_, Result<(), ControlError>> {
        let _ = (channel, exten, context);
        Box::pin(async {
            Err(ControlError::Unsupported(
                "BlindTransfer is not available here".into(),
            ))
        })
    }
    /// Broadcast a `UserEvent` to every session that reads `user`.
    fn user_event(&self, body: Vec<(String, String)>) -> BoxFut<'_, Result<(), ControlError>> {
        let _ = body;
        Box::pin(async {
            Err(ControlError::Unsupported(
                "UserEvent is not available here".into(),
            ))
        })
    }
}

/// Run a session's request against a backend.
pub async fn execute(backend: &dyn AmiBackend, req: Request) -> Reply {
    match req {
        Request::Snapshot => Reply::Snapshot(Arc::new(backend.snapshot().await)),
        Request::Control(c) => Reply::Control(match c {
            Control::Hangup { channels, cause } => {
                backend.hangup(channels, cause).await.map(ControlOk::Hungup)
            }
            Control::Originate(r) => backend.originate(*r).await,
            Control::Redirect(r) => backend.redirect(*r).await.map(|()| ControlOk::Done),
            Control::Setvar {
                channel,
                variable,
                value,
            } => backend
                .setvar(channel, variable, value)
                .await
                .map(|()| ControlOk::Done),
            Control::Reload { module } => backend.reload(module).await.map(|()| ControlOk::Done),
            Control::BlindTransfer {
                channel,
                exten,
                context,
            } => backend
                .blind_transfer(channel, exten, context)
                .await
                .map(|()| ControlOk::Done),
            Control::UserEvent { body } => backend.user_event(body).await.map(|()| ControlOk::Done),
        }),
    }
}
