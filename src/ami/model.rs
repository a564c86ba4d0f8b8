//! The PBX as AMI and the CLI see it: a point-in-time [`Snapshot`] of endpoints (PJSIP
//! objects), channels, hints and the dialplan. The runtime builds it from the engine; actions
//! and the CLI emulation only format it.

use md5::{Digest, Md5};

use super::events::{ChannelSnapshot, ContactState, DeviceState};

/// Everything the actions and the CLI read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Wall clock when taken (unix seconds).
    pub now_unix: f64,
    pub started_unix: f64,
    pub last_reload_unix: f64,
    /// asterisk.conf `systemname` (empty = none).
    pub system_name: String,
    pub endpoints: Vec<Endpoint>,
    pub transports: Vec<Transport>,
    pub channels: Vec<ChannelSnapshot>,
    pub contexts: Vec<DialplanContext>,
    pub hints: Vec<Hint>,
    /// Calls in progress and calls since start.
    pub active_calls: usize,
    pub processed_calls: u64,
    /// Global dialplan variables.
    pub globals: Vec<(String, String)>,
}

impl Snapshot {
    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.id == id)
    }

    pub fn channel(&self, name: &str) -> Option<&ChannelSnapshot> {
        self.channels
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The state of a device (`PJSIP/1001`), `None` when unknown to the PBX.
    pub fn device_state(&self, device: &str) -> Option<DeviceState> {
        let (tech, res) = device.split_once('/')?;
        if !tech.eq_ignore_ascii_case("PJSIP") {
            return None;
        }
        self.endpoint(res).map(|e| e.device_state)
    }

    /// Every contact of every endpoint's AORs.
    pub fn contacts(&self) -> impl Iterator<Item = &Contact> {
        self.endpoints
            .iter()
            .flat_map(|e| e.aors.iter())
            .flat_map(|a| a.contacts.iter())
    }

    /// Every distinct AOR.
    pub fn aors(&self) -> Vec<&Aor> {
        let mut out: Vec<&Aor> = Vec::new();
        for a in self.endpoints.iter().flat_map(|e| e.aors.iter()) {
            if !out.iter().any(|o| o.id == a.id) {
                out.push(a);
            }
        }
        out
    }

    /// Every distinct auth.
    pub fn auths(&self) -> Vec<&Auth> {
        let mut out: Vec<&Auth> = Vec::new();
        for a in self
            .endpoints
            .iter()
            .flat_map(|e| e.auths.iter().chain(e.outbound_auths.iter()))
        {
            if !out.iter().any(|o| o.id == a.id) {
                out.push(a);
            }
        }
        out
    }

    /// Seconds since start and since the last reload.
    pub fn uptime(&self) -> (u64, u64) {
        (
            (self.now_unix - self.started_unix).max(0.0) as u64,
            (self.now_unix - self.last_reload_unix).max(0.0) as u64,
        )
    }
}

/// A PJSIP endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Endpoint {
    pub id: String,
    /// Caller-ID number shown as `id/<cid>` by the CLI (empty = none).
    pub callerid_num: String,
    /// `transport=` (empty = any).
    pub transport: String,
    pub aors: Vec<Aor>,
    pub auths: Vec<Auth>,
    pub outbound_auths: Vec<Auth>,
    pub identifies: Vec<Identify>,
    pub device_state: DeviceState,
    pub active_channels: u32,
    /// `device_state_busy_at` (0 = infinite).
    pub device_state_busy_at: u32,
    /// Sorcery options by snake_case name, as strings (AMI and `pjsip show endpoint`).
    pub options: Vec<(String, String)>,
}

impl Endpoint {
    /// The raw `aors=` value.
    pub fn aors_str(&self) -> String {
        join_ids(self.aors.iter().map(|a| a.id.as_str()))
    }
}

pub fn join_ids<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    ids.collect::<Vec<_>>().join(",")
}

/// A PJSIP AOR.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aor {
    pub id: String,
    pub max_contacts: u32,
    pub contacts: Vec<Contact>,
    /// Sorcery options (without `contact`, shown as `Contacts`).
    pub options: Vec<(String, String)>,
}

/// A PJSIP contact (a registration binding or a static `contact=`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contact {
    pub aor: String,
    pub uri: String,
    pub endpoint: String,
    pub user_agent: String,
    /// Unix seconds the binding expires (0 for static contacts).
    pub expiration_unix: i64,
    pub status: ContactState,
    pub rtt_usec: Option<u64>,
    pub via_addr: String,
    pub via_port: u16,
    pub call_id: String,
    pub reg_server: String,
    pub path: String,
    pub outbound_proxy: String,
    pub qualify_frequency: u32,
    pub qualify_timeout: f64,
    pub authenticate_qualify: bool,
    pub qualify_2xx_only: bool,
    /// A static `contact=` of the AOR rather than a registration.
    pub permanent: bool,
}

impl Contact {
    /// The md5 hex of the URI (the CLI shows its first 10 characters).
    pub fn hash(&self) -> String {
        hex::encode(Md5::digest(self.uri.as_bytes()))
    }

    /// The sorcery id: `aor;@hash` for a registration, `aor@@hash` for a static contact.
    pub fn id(&self) -> String {
        if self.permanent {
            format!("{}@@{}", self.aor, self.hash())
        } else {
            format!("{};@{}", self.aor, self.hash())
        }
    }

    /// `RoundtripUsec` as the PJSIP lists show it (`N/A` unless reachable).
    pub fn rtt_text(&self) -> String {
        match (self.status, self.rtt_usec) {
            (ContactState::Reachable, Some(u)) => u.to_string(),
            _ => "N/A".into(),
        }
    }
}

/// A PJSIP auth.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Auth {
    pub id: String,
    pub username: String,
    pub password: String,
    pub realm: String,
    pub options: Vec<(String, String)>,
}

/// A PJSIP transport.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transport {
    pub id: String,
    /// `udp`, `tcp`, `tls`, `ws`, `wss`.
    pub protocol: String,
    /// `ip:port`.
    pub bind: String,
    pub cos: u32,
    pub tos: u32,
    pub options: Vec<(String, String)>,
}

/// A PJSIP identify.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identify {
    pub id: String,
    pub endpoint: String,
    /// `ip/bits`.
    pub matches: Vec<String>,
}

/// A dialplan hint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hint {
    pub exten: String,
    pub context: String,
    /// The devices (`PJSIP/1001&Custom:DND1001`).
    pub hint: String,
    /// ExtensionStatus number (0 Idle, 1 InUse, 4 Unavailable, 8 Ringing...).
    pub state: i32,
    /// Presence token (`not_set`).
    pub presence: String,
    pub watchers: u32,
}

/// A dialplan context (for `dialplan show`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DialplanContext {
    pub name: String,
    /// `pbx_config`.
    pub registrar: String,
    pub extensions: Vec<DialplanExten>,
    pub includes: Vec<String>,
}

/// One extension (name) of a context with its priorities.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DialplanExten {
    pub name: String,
    pub cid: Option<String>,
    pub priorities: Vec<DialplanPriority>,
}

/// One priority; priority -1 is the hint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DialplanPriority {
    pub priority: i32,
    pub label: Option<String>,
    pub app: String,
    pub data: String,
    /// `(file, line)` when it came from a file.
    pub source: Option<(String, u32)>,
}

/// Asterisk-style option name → AMI header name (`dtmf_mode` → `DtmfMode`).
pub fn to_camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for piece in name.split('_') {
        let mut chars = piece.chars();
        if let Some(c) = chars.next() {
            out.extend(c.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_and_contact_ids() {
        assert_eq!(to_camel_case("dtmf_mode"), "DtmfMode");
        assert_eq!(to_camel_case("100rel"), "100rel");
        assert_eq!(to_camel_case("t38_udptl_ec"), "T38UdptlEc");
        let c = Contact {
            aor: "1001".into(),
            uri: "sip:1001@192.0.2.50:5060;ob".into(),
            ..Contact::default()
        };
        assert_eq!(&c.hash()[..10], "d0cde1d069");
        assert_eq!(c.id(), format!("1001;@{}", c.hash()));
    }
}
