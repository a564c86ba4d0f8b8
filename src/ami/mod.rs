//! The Asterisk Manager Interface (sans-IO): framing, the per-connection [`session::AmiSession`]
//! state machine, actions, events and the CLI emulation behind `Action: Command`.
//!
//! Nothing here touches sockets or the clock: [`crate::runtime::ami_io`] feeds bytes, time,
//! snapshots and backend results in, and writes out what the sessions produce.

pub mod actions;
pub mod backend;
pub mod channels;
pub mod cli;
pub mod events;
pub mod filter;
pub mod frame;
pub mod manager_conf;
pub mod model;
pub mod monitor;
pub mod perms;
pub mod session;
pub mod tracker;

/// The AMI version Asterisk 22 announces (banner and `CoreSettings`).
pub const AMI_VERSION: &str = "11.0.0";
/// The Asterisk version Dialtone presents.
pub const ASTERISK_VERSION: &str = "22.5.0";
/// The banner line (no blank line after it).
pub const BANNER: &str = "Asterisk Call Manager/11.0.0\r\n";

/// Read a file under `shared/fixtures/` for a test: `<crate>/../shared`, then
/// `<crate>/../../shared`, then `/work/shared`. `None` (with a note) when absent.
#[cfg(test)]
pub(crate) fn test_fixture(rel: &str) -> Option<String> {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        manifest.join("../shared/fixtures"),
        manifest.join("../../shared/fixtures"),
        std::path::PathBuf::from("/work/shared/fixtures"),
    ];
    for dir in candidates {
        let p = dir.join(rel);
        if let Ok(s) = std::fs::read_to_string(&p) {
            return Some(s);
        }
    }
    eprintln!("note: fixture {rel} not found; skipping");
    None
}
