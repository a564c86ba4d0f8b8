//! Dialtone: a native SIP/RTP PBX.
//!
//! Layering (see README "Architecture"):
//! - sans-IO cores: [`sip`], [`sdp`], [`pbx`], [`ami`], [`config`] (pure parsing/validation). They never
//!   touch sockets, tokio, sqlx or the clock; time is always an argument.
//! - I/O shells: [`runtime`] (sockets, the core task, timers), [`api`] (axum REST), [`store`] (sqlx).

pub mod ami;
pub mod api;
pub mod config;
pub mod media;
pub mod pbx;
pub mod pjsip_conf;
pub mod runtime;
pub mod sdp;
pub mod sip;
pub mod store;
