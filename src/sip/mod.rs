//! SIP: messages (parse/print), digest authentication, the transaction layer.
//! Sans-IO: nothing here touches sockets, tokio or the clock.

pub mod auth;
pub mod msg;
pub mod transaction;

pub use msg::*;
