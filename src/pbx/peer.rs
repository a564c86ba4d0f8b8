//! Where a message came from / goes to: the transport-level peer.

use std::fmt;
use std::net::SocketAddr;

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    /// Lower-case name, as stored and shown (`udp`, `tcp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
    /// Upper-case name for Via headers.
    pub fn via_name(self) -> &'static str {
        match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
        }
    }
    /// Reliable transports need no retransmission timers.
    pub fn is_reliable(self) -> bool {
        matches!(self, Proto::Tcp)
    }
    pub fn parse(s: &str) -> Option<Proto> {
        if s.eq_ignore_ascii_case("udp") {
            Some(Proto::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Some(Proto::Tcp)
        } else {
            None
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifier of a stream (TCP) connection, assigned by the runtime.
pub type ConnId = u64;

/// A transport-level peer: address, protocol and (for TCP) the connection it is reached over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub addr: SocketAddr,
    pub proto: Proto,
    /// The stream connection the peer is attached to, when it lives.
    pub conn: Option<ConnId>,
}

impl Peer {
    pub fn udp(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            proto: Proto::Udp,
            conn: None,
        }
    }
    pub fn tcp(addr: SocketAddr, conn: ConnId) -> Peer {
        Peer {
            addr,
            proto: Proto::Tcp,
            conn: Some(conn),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.proto, self.addr)
    }
}
