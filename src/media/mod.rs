//! RTP media relay core (sans-IO).
//!
//! - [`PortAllocator`]: even RTP ports with RTCP = RTP + 1 from `server.rtp_port_range_start..end`,
//!   with a quarantine for released pairs so late packets of an old call never reach a new one.
//! - [`RelaySession`]: one per call, two legs ([`Leg::A`], [`Leg::B`]). Each packet goes through
//!   [`RelaySession::handle_packet`], which validates it, applies symmetric-RTP latching (RFC 4961
//!   style: learn the real source from the first packets, then lock), keeps RFC 3550 receiver
//!   statistics (A.1 sequence tracking, A.3 loss, A.8 jitter), rewrites RFC 4733 telephone-event
//!   payload types and SSRC/sequence/timestamp in place when needed, and says where to send it.
//!   It never allocates, locks or logs.
//!
//! Time is always an argument; the socket shell lives in `runtime::media_io`.

mod allocator;
mod session;
mod stats;

use std::fmt;
use std::time::Duration;

use thiserror::Error;

pub use allocator::{PortAllocator, PortPair};
pub use session::{DropReason, Forward, RelaySession, SessionConfig, is_rtcp_mux_packet};
pub use stats::LegStats;

/// One side of a relayed call: A is the caller side, B the callee side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    A,
    B,
}

impl Leg {
    /// The opposite leg: media received on `leg` is sent out on `leg.other()`.
    pub const fn other(self) -> Leg {
        match self {
            Leg::A => Leg::B,
            Leg::B => Leg::A,
        }
    }

    /// 0 for A, 1 for B.
    pub const fn index(self) -> usize {
        match self {
            Leg::A => 0,
            Leg::B => 1,
        }
    }
}

/// Identity of a relay session (one per call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "media-{}", self.0)
    }
}

/// Media relay failures. The B2BUA maps them to a SIP status with [`MediaError::sip_status`].
#[derive(Debug, Error)]
pub enum MediaError {
    #[error("no free RTP port pair in {start}..{end}")]
    PortsExhausted { start: u16, end: u16 },
    #[error("unknown media session {0}")]
    UnknownSession(SessionId),
    #[error("cannot bind RTP/RTCP port {port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("media relay I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("media relay is stopped")]
    RelayStopped,
}

impl MediaError {
    /// SIP status the B2BUA answers with: 503 for resource problems (exhaustion, bind, I/O,
    /// stopped relay), 500 for an unknown session (a B2BUA bug, not the caller's fault).
    pub fn sip_status(&self) -> u16 {
        match self {
            MediaError::UnknownSession(_) => 500,
            _ => 503,
        }
    }
}

/// Something the B2BUA must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// No RTP on either leg for `idle` (>= the configured `rtp_timeout`) while no leg is on hold.
    Timeout { session: SessionId, idle: Duration },
}
