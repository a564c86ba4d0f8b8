//! The extension directory: the domain model shared by the store, the API and the registrar.

use serde::{Deserialize, Serialize};

/// Default codec list of a new extension (Asterisk names).
pub const DEFAULT_CODECS: &[&str] = &["ulaw", "alaw", "g722"];

/// One extension (a PJSIP endpoint + auth + AOR in Asterisk terms). `Debug` hides the
/// secret and the voicemail PIN.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Extension {
    /// Store row id (0 before the first insert).
    pub id: i64,
    /// The dialable number and SIP username, 2–20 digits.
    pub number: String,
    /// Display name (caller-ID name defaults to it).
    pub name: String,
    pub email: Option<String>,
    /// SIP digest secret, stored retrievable (digest auth needs it). Never returned by the API.
    pub secret: String,
    pub enabled: bool,
    /// Dialplan context, Asterisk style (`from-internal`).
    pub context: String,
    /// `udp`, `tcp` or empty for any.
    pub transport: Option<String>,
    /// Allowed codecs, Asterisk names (`ulaw`, `alaw`, `g722`, ...), in preference order.
    pub codecs: Vec<String>,
    /// Maximum simultaneous contacts (bindings) for this AOR.
    pub max_contacts: u32,
    /// When full, a new contact replaces the oldest instead of being refused.
    pub remove_existing: bool,
    /// Seconds between OPTIONS qualify pings; 0 = off.
    pub qualify_frequency: u32,
    /// `"Name" <number>`; None = derived from name and number.
    pub caller_id: Option<String>,
    pub voicemail_enabled: bool,
    pub voicemail_pin: Option<String>,
    pub allow_external: bool,
    pub is_admin: bool,
    pub notes: Option<String>,
    /// pjsip endpoint `direct_media` (Asterisk default yes). Stored for pjsip.conf
    /// compatibility; Dialtone always relays media.
    #[serde(default = "yes")]
    pub direct_media: bool,
    /// pjsip endpoint `rtp_symmetric` (default no).
    #[serde(default)]
    pub rtp_symmetric: bool,
    /// pjsip endpoint `force_rport` (default yes).
    #[serde(default = "yes")]
    pub force_rport: bool,
    /// pjsip endpoint `rewrite_contact` (default no).
    #[serde(default)]
    pub rewrite_contact: bool,
    /// pjsip endpoint `dtmf_mode`: rfc4733 (default), inband, info, auto, auto_info, none.
    #[serde(default = "default_dtmf_mode")]
    pub dtmf_mode: String,
    /// pjsip endpoint `mailboxes` (`1001@default`); None = none.
    #[serde(default)]
    pub mailboxes: Option<String>,
    /// pjsip endpoint `subscribe_context` (BLF); None = the endpoint context.
    #[serde(default)]
    pub subscribe_context: Option<String>,
    /// pjsip endpoint `device_state_busy_at` (0 = off).
    #[serde(default)]
    pub device_state_busy_at: u32,
    /// pjsip.conf options Dialtone keeps verbatim for export but does not implement.
    #[serde(default)]
    pub pjsip_extra: PjsipExtra,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl std::fmt::Debug for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extension")
            .field("id", &self.id)
            .field("number", &self.number)
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("context", &self.context)
            .field("transport", &self.transport)
            .field("codecs", &self.codecs)
            .field("max_contacts", &self.max_contacts)
            .field("remove_existing", &self.remove_existing)
            .field("qualify_frequency", &self.qualify_frequency)
            .field("secret", &"***")
            .finish_non_exhaustive()
    }
}

impl Extension {
    /// A new enabled extension with Dialtone's defaults.
    pub fn new(
        number: impl Into<String>,
        name: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        Extension {
            id: 0,
            number: number.into(),
            name: name.into(),
            email: None,
            secret: secret.into(),
            enabled: true,
            context: "from-internal".into(),
            transport: None,
            codecs: DEFAULT_CODECS.iter().map(|s| s.to_string()).collect(),
            max_contacts: 1,
            remove_existing: true,
            qualify_frequency: 60,
            caller_id: None,
            voicemail_enabled: false,
            voicemail_pin: None,
            allow_external: false,
            is_admin: false,
            notes: None,
            direct_media: true,
            rtp_symmetric: false,
            force_rport: true,
            rewrite_contact: false,
            dtmf_mode: default_dtmf_mode(),
            mailboxes: None,
            subscribe_context: None,
            device_state_busy_at: 0,
            pjsip_extra: PjsipExtra::default(),
            created_at: 0,
            updated_at: 0,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_dtmf_mode() -> String {
    "rfc4733".to_owned()
}

/// pjsip.conf options of an extension that Dialtone does not implement, kept verbatim (in
/// order, repeats included) so an export writes them back. Stored as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PjsipExtra {
    /// Other `type=endpoint` options (`language`, `set_var`, `ice_support`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoint: Vec<(String, String)>,
    /// Other `type=auth` options (`realm`, `md5_cred`, a `username` that is not the number).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auth: Vec<(String, String)>,
    /// Other `type=aor` options (`contact`, `minimum_expiration`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aor: Vec<(String, String)>,
    /// The endpoint's `transport=` when it is not `transport-<protocol>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_name: Option<String>,
    /// Comment lines written before the endpoint section (without `;`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<String>,
}

impl Extension {
    /// What digest authentication checks: the plaintext secret, or, for an extension imported
    /// from pjsip.conf with `auth_type=md5`, its `md5_cred` (an MD5 HA1, which is only right
    /// when it was computed with Dialtone's realm). None: nothing to check against.
    pub fn digest_secret(&self) -> Option<crate::sip::auth::Secret<'_>> {
        if !self.secret.is_empty() {
            return Some(crate::sip::auth::Secret::Plain(self.secret.as_str()));
        }
        self.pjsip_extra
            .auth
            .iter()
            .find(|(k, v)| k.eq_ignore_ascii_case("md5_cred") && v.len() == 32)
            .map(|(_, v)| crate::sip::auth::Secret::Ha1 {
                md5: Some(v.as_str()),
                sha256: None,
            })
    }
}

impl PjsipExtra {
    pub fn is_empty(&self) -> bool {
        *self == PjsipExtra::default()
    }
}

/// Where a binding was learnt from, persisted so bindings survive a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingRecord {
    /// The extension number (AOR user part).
    pub aor: String,
    /// The Contact URI as registered (with its URI parameters).
    pub contact: String,
    /// Source address the REGISTER came from (`ip:port`).
    pub source: String,
    /// `udp` or `tcp`.
    pub transport: String,
    pub call_id: String,
    pub cseq: u32,
    /// Unix seconds when the binding expires.
    pub expires_at: i64,
    pub user_agent: Option<String>,
    /// `+sip.instance` contact parameter, when given.
    pub instance: Option<String>,
    /// Unix seconds of the (last) registration.
    pub registered_at: i64,
}
