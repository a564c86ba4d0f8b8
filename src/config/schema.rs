//! The config.yml schema: serde types with Dialtone's defaults.
//!
//! Key names follow the Python PBX ("Warden") config.yml where the features overlap
//! (`server.*`, `api.*`, `database.*`, `extensions[]`, `logging.*`, `security.rate_limit.*`);
//! Dialtone's own keys live under `sip`, `registrar`, `ami` and a few extra `api` keys.
//!
//! Every struct is `#[serde(default)]`: a missing key takes the value below, which is the same
//! value the shipped `config.yml` spells out (a unit test keeps the two in step).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::pbx::directory::{DEFAULT_CODECS, Extension};

/// The documented default `api.admin_password`; start-up warns while it is unchanged.
pub const DEFAULT_ADMIN_PASSWORD: &str = "change-me-now";

/// The database used when config.yml names none.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/dialtone.db";

/// A secret string (password, token, key). Its `Debug` never shows the value, so a config can be
/// logged with `{:?}` safely. Read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in characters (validation reports lengths, never values).
    pub fn char_len(&self) -> usize {
        self.0.chars().count()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// The whole config.yml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
// Not `default`: `Config::default()` parses the embedded file, which would recurse.
#[serde(default = "Config::coded_defaults")]
pub struct Config {
    pub server: ServerConfig,
    pub sip: SipConfig,
    pub registrar: RegistrarConfig,
    pub security: SecurityConfig,
    pub api: ApiConfig,
    /// `ami:` (also accepted as `manager:`, the manager.conf name).
    #[serde(alias = "manager")]
    pub ami: AmiConfig,
    /// `pjsip:` — run from an Asterisk pjsip.conf (import at start-up, `pjsip reload`).
    pub pjsip: PjsipConfig,
    /// `compat_api:` — the second HTTP listener (RayanPBX and ISPBX v1 APIs).
    pub compat_api: CompatApiConfig,
    pub database: DatabaseConfig,
    pub logging: LoggingConfig,
    /// How `extensions[]` seeds the store at start-up.
    pub extensions_seed_mode: SeedMode,
    /// Extensions defined in the file (seed data for the store, see [`SeedMode`]).
    pub extensions: Vec<ExtensionConfig>,
}

impl Default for Config {
    /// The embedded defaults: the shipped `config.yml` ([`super::DEFAULT_CONFIG_YML`]).
    fn default() -> Self {
        match super::parse(super::DEFAULT_CONFIG_YML, "config.yml (embedded)") {
            Ok(loaded) => loaded.config,
            // A unit test parses the embedded file; this arm cannot be reached by a release build
            // that passed its tests. Fall back to the coded section defaults rather than panic.
            Err(_) => Config::coded_defaults(),
        }
    }
}

impl Config {
    /// The defaults coded in Rust (what a key takes when config.yml leaves it out): no extensions.
    pub fn coded_defaults() -> Self {
        Config {
            server: ServerConfig::default(),
            sip: SipConfig::default(),
            registrar: RegistrarConfig::default(),
            security: SecurityConfig::default(),
            api: ApiConfig::default(),
            ami: AmiConfig::default(),
            pjsip: PjsipConfig::default(),
            compat_api: CompatApiConfig::default(),
            database: DatabaseConfig::default(),
            logging: LoggingConfig::default(),
            extensions_seed_mode: SeedMode::default(),
            extensions: Vec::new(),
        }
    }

    /// True while `api.admin_password` is still the documented default ([`DEFAULT_ADMIN_PASSWORD`]).
    pub fn uses_default_admin_password(&self) -> bool {
        self.api.admin_password.expose() == DEFAULT_ADMIN_PASSWORD
    }

    /// Where the SIP UDP (and TCP) listeners bind.
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::new(self.server.sip_host, self.server.sip_port)
    }

    /// Where the REST API listens.
    pub fn api_addr(&self) -> SocketAddr {
        SocketAddr::new(self.api.host, self.api.port)
    }

    /// Where the AMI listens (when `ami.enabled`).
    pub fn ami_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ami.host, self.ami.port)
    }

    /// `extensions[]` as store records (id 0, timestamps 0: the store assigns them).
    pub fn seed_extensions(&self) -> Vec<Extension> {
        self.extensions
            .iter()
            .map(|e| e.to_extension(&self.registrar))
            .collect()
    }
}

/// `server:` — network addresses (Warden names).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Address the SIP UDP and TCP listeners bind.
    pub sip_host: IpAddr,
    /// SIP port, UDP and (with `sip.tcp`) TCP.
    pub sip_port: u16,
    /// Public address written into SDP/Contact/Via when behind NAT.
    pub external_ip: Option<IpAddr>,
    /// First RTP port of the media relay (inclusive).
    pub rtp_port_range_start: u16,
    /// Last RTP port of the media relay (inclusive).
    pub rtp_port_range_end: u16,
    /// Networks whose phones reach Dialtone directly (CIDR, Asterisk's `local_net`). Phones
    /// outside them get `external_ip` in SDP, Via and Contact. Empty = the private, loopback
    /// and link-local ranges.
    pub local_net: Vec<ipnet::IpNet>,
    /// Seconds without RTP (while not on hold) before an answered call is hung up; 0 = never
    /// (Asterisk's `rtp_timeout`).
    pub rtp_timeout: u32,
    /// Seconds a call rings before it is given up with 480 (`Dial(PJSIP/N,30)`).
    pub ring_timeout: u32,
    /// SIP status a call to an extension in do-not-disturb gets (400–699; 486 Busy Here).
    pub dnd_status: u16,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            sip_host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            sip_port: 5060,
            external_ip: None,
            rtp_port_range_start: 10000,
            rtp_port_range_end: 20000,
            local_net: Vec::new(),
            rtp_timeout: 60,
            ring_timeout: 30,
            dnd_status: 486,
        }
    }
}

/// `sip:` — transport and RFC 3261 timer settings (Dialtone's own).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct SipConfig {
    /// Digest realm (RFC 3261 §22.1).
    pub realm: String,
    /// Listen on TCP as well as UDP.
    pub tcp: bool,
    /// SO_RCVBUF/SO_SNDBUF of the UDP socket, bytes.
    pub udp_buffer_bytes: u32,
    /// Largest SIP message accepted on a TCP connection, bytes.
    pub tcp_max_message_bytes: u32,
    /// Seconds after which an idle TCP connection is closed.
    pub tcp_idle_timeout: u64,
    /// RFC 3261 T1 (RTT estimate), ms.
    pub t1_ms: u64,
    /// RFC 3261 T2 (maximum retransmit interval for non-INVITE requests and INVITE responses), ms.
    pub t2_ms: u64,
    /// RFC 3261 T4 (maximum duration a message remains in the network), ms.
    pub t4_ms: u64,
    /// `User-Agent`/`Server` header value.
    pub user_agent: String,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            realm: "dialtone".into(),
            tcp: true,
            udp_buffer_bytes: 8 * 1024 * 1024,
            tcp_max_message_bytes: 65535,
            tcp_idle_timeout: 600,
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            user_agent: "Dialtone".into(),
        }
    }
}

impl SipConfig {
    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.t1_ms)
    }
    pub fn t2(&self) -> Duration {
        Duration::from_millis(self.t2_ms)
    }
    pub fn t4(&self) -> Duration {
        Duration::from_millis(self.t4_ms)
    }
    pub fn tcp_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.tcp_idle_timeout)
    }
}

/// `registrar:` — REGISTER handling (RFC 3261 §10).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct RegistrarConfig {
    /// Shorter requested expiries are refused with 423 Interval Too Brief.
    pub min_expires: u32,
    /// Longer requested expiries are lowered to this.
    pub max_expires: u32,
    /// Expiry granted when the REGISTER names none.
    pub default_expires: u32,
    /// Seconds a digest nonce stays valid (then `stale=true`).
    pub nonce_lifetime: u64,
    /// `qualify_frequency` of an extension from `extensions[]` that names none, seconds (0 = off).
    pub qualify_frequency_default: u32,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            nonce_lifetime: 300,
            qualify_frequency_default: 60,
        }
    }
}

impl RegistrarConfig {
    pub fn nonce_lifetime(&self) -> Duration {
        Duration::from_secs(self.nonce_lifetime)
    }
}

/// `security:` — brute-force protection (Warden's `security.rate_limit` names).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct SecurityConfig {
    pub rate_limit: RateLimitConfig,
}

/// `security.rate_limit:` — a source IP that fails authentication (SIP digest or API login)
/// `max_attempts` times within `window_seconds` is banned for `lockout_duration` seconds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    /// Failures allowed in the window before a ban; 0 disables banning.
    pub max_attempts: u32,
    /// Sliding window for counting failures, seconds.
    pub window_seconds: u64,
    /// Ban length, seconds.
    pub lockout_duration: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            max_attempts: 10,
            window_seconds: 60,
            lockout_duration: 300,
        }
    }
}

impl RateLimitConfig {
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_seconds)
    }
    pub fn lockout(&self) -> Duration {
        Duration::from_secs(self.lockout_duration)
    }
}

/// `api:` — the REST API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    pub host: IpAddr,
    pub port: u16,
    /// Require a bearer token (static token or login JWT) on every endpoint but health/login.
    pub require_authentication: bool,
    /// Send CORS headers (and answer preflight requests) so browser front ends on other
    /// origins can call the API.
    pub enable_cors: bool,
    /// Origins allowed when `enable_cors` (exact `scheme://host[:port]`); empty = any origin.
    pub cors_allowed_origins: Vec<String>,
    /// Static bearer tokens (for scripts).
    pub tokens: Vec<Secret>,
    /// User name for `POST /api/auth/login`.
    pub admin_user: String,
    /// Password for `POST /api/auth/login`.
    pub admin_password: Secret,
    /// HS256 key for login JWTs; when absent a random key is made at each start (tokens then do
    /// not survive a restart).
    pub jwt_secret: Option<Secret>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 8080,
            require_authentication: true,
            enable_cors: false,
            cors_allowed_origins: Vec::new(),
            tokens: Vec::new(),
            admin_user: "admin".into(),
            admin_password: Secret::new(DEFAULT_ADMIN_PASSWORD),
            jwt_secret: None,
        }
    }
}

/// `ami:` — the Asterisk Manager Interface listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct AmiConfig {
    pub enabled: bool,
    /// Listen address (`bind` is accepted too, after manager.conf `bindaddr`).
    #[serde(alias = "bind")]
    pub host: IpAddr,
    /// 0 = any free port (tests).
    pub port: u16,
    pub users: Vec<AmiUser>,
    /// manager.conf `timestampevents`: every event carries `Timestamp: <unix>.<micros>`.
    pub timestampevents: bool,
    /// manager.conf `disabledevents`: events never sent to anyone (exact names).
    pub disabledevents: Vec<String>,
    /// manager.conf `authtimeout`: seconds a connection may stay without logging in.
    pub authtimeout: u32,
    /// An Asterisk `manager.conf` to read at start-up (`#include`s followed): its `[general]`
    /// `enabled`/`port`/`bindaddr`/`timestampevents`/`disabledevents`/`authtimeout` override
    /// the keys above, and its user sections are added to `users`.
    pub manager_conf: Option<String>,
}

impl Default for AmiConfig {
    fn default() -> Self {
        AmiConfig {
            enabled: true,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 5038,
            users: Vec::new(),
            timestampevents: false,
            disabledevents: Vec::new(),
            authtimeout: 30,
            manager_conf: None,
        }
    }
}

/// `pjsip:` — Asterisk pjsip.conf as the source of extensions and NAT settings.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct PjsipConfig {
    /// When set, Dialtone runs from this pjsip.conf: it is imported at start-up (the file is
    /// the source of truth: stored extensions it lacks are removed) and re-read by
    /// `pjsip reload` (AMI/CLI, `dialtone pjsip reload`). Its transports' (or `[global]`'s)
    /// `external_media_address`, `external_signaling_address` and `local_net` override
    /// `server.external_ip` / `server.local_net`.
    pub config_file: Option<String>,
}

/// `compat_api:` — a second HTTP listener speaking the RayanPBX API (`/api/...`, JWT from
/// `POST /api/auth/login` with the `api.admin_user` credentials) and the ISPBX v1 API
/// (`/`, `/endpoints...`, public like ISPBX). Port 8080 keeps the Warden API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct CompatApiConfig {
    pub enabled: bool,
    pub host: IpAddr,
    /// 0 = any free port (tests).
    pub port: u16,
    /// Serve the ISPBX v1 routes (`/`, `/endpoints...`) without authentication, as ISPBX does.
    /// When false they need a bearer token like the RayanPBX routes.
    pub ispbx_public: bool,
}

impl Default for CompatApiConfig {
    fn default() -> Self {
        CompatApiConfig {
            enabled: true,
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 8000,
            ispbx_public: true,
        }
    }
}

/// One `ami.users[]` entry (an Asterisk manager.conf `[user]` section).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AmiUser {
    pub username: String,
    pub secret: Secret,
    /// Read permission classes, manager.conf style (`all`, `system,call`, ...).
    #[serde(default = "all")]
    pub read: String,
    /// Write permission classes.
    #[serde(default = "all")]
    pub write: String,
    /// Networks refused (`ip/mask` or `ip/bits`); checked before `permit`, the last match wins.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Networks allowed.
    #[serde(default)]
    pub permit: Vec<String>,
    /// manager.conf `eventfilter` lines: a regex (`!regex` excludes) or
    /// `action(exclude),name(Newchannel),header(Channel),method(starts_with) = Local/`.
    #[serde(default)]
    pub eventfilter: Vec<String>,
}

fn all() -> String {
    "all".into()
}

/// `database:` — Dialtone reads `url`; Warden's `type`/`path`/`host`/... keys are accepted.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db`, `sqlite::memory:` or (later) `postgres://...`.
    /// After loading it holds the effective URL (see [`DatabaseConfig::url`]).
    pub url: Option<String>,
    /// Warden: `sqlite` or `postgresql`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Warden: SQLite file path (used as `sqlite://<path>` when `url` is absent).
    pub path: Option<String>,
    /// Warden PostgreSQL keys: accepted, not used (Dialtone reads `url`).
    pub host: Option<String>,
    pub port: Option<String>,
    pub name: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
}

impl DatabaseConfig {
    /// The database URL to open.
    pub fn url(&self) -> &str {
        self.url.as_deref().unwrap_or(DEFAULT_DATABASE_URL)
    }
}

/// `logging:` (Warden names).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct LoggingConfig {
    /// A level (`trace`, `debug`, `info`, `warn`/`warning`, `error`/`critical`, `off`, any case)
    /// or tracing EnvFilter directives (`info,dialtone::sip=debug`). After loading it holds the
    /// normalised EnvFilter string. `RUST_LOG` overrides it.
    pub level: String,
    /// Also append log lines to this file.
    pub file: Option<String>,
    /// Log to standard error.
    pub console: bool,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
            file: None,
            console: true,
        }
    }
}

/// How `extensions[]` seeds the store at start-up. No mode ever modifies an extension that is
/// already in the store, so an edit made through the API survives a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeedMode {
    /// At every start insert each `extensions[]` entry whose number is not in the store; keep
    /// existing ones untouched. (An extension deleted through the API comes back at the next
    /// start while it is still in config.yml.)
    #[default]
    InsertMissing,
    /// Insert `extensions[]` only when the store holds no extension at all (first start).
    IfEmpty,
    /// Never seed from config.yml.
    Off,
}

/// One `extensions[]` entry. Warden keys: `number, name, email, password, allow_external,
/// voicemail_pin`; the rest are Dialtone's optional extras (defaults of [`Extension::new`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExtensionConfig {
    /// 2–20 digits; also the SIP user name. An unquoted number keeps its text (`0100` stays
    /// `0100`).
    pub number: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// SIP digest password (the store's `secret`), at least 8 characters.
    pub password: Secret,
    #[serde(default)]
    pub allow_external: bool,
    #[serde(default)]
    pub voicemail_pin: Option<Secret>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub context: Option<String>,
    #[serde(default)]
    pub codecs: Option<Vec<String>>,
    #[serde(default)]
    pub max_contacts: Option<u32>,
    /// `udp` or `tcp`; absent = any.
    #[serde(default)]
    pub transport: Option<String>,
    #[serde(default)]
    pub remove_existing: Option<bool>,
    #[serde(default)]
    pub qualify_frequency: Option<u32>,
    #[serde(default)]
    pub caller_id: Option<String>,
    /// Default: true when `voicemail_pin` is set.
    #[serde(default)]
    pub voicemail_enabled: Option<bool>,
    #[serde(default)]
    pub is_admin: bool,
    #[serde(default)]
    pub notes: Option<String>,
}

impl ExtensionConfig {
    /// The store record for this entry (id and timestamps 0).
    pub fn to_extension(&self, registrar: &RegistrarConfig) -> Extension {
        let mut ext = Extension::new(
            self.number.clone(),
            self.name.clone(),
            self.password.expose(),
        );
        ext.email = self.email.clone();
        ext.allow_external = self.allow_external;
        ext.voicemail_pin = self.voicemail_pin.as_ref().map(|p| p.expose().to_owned());
        ext.voicemail_enabled = self
            .voicemail_enabled
            .unwrap_or(self.voicemail_pin.is_some());
        if let Some(enabled) = self.enabled {
            ext.enabled = enabled;
        }
        if let Some(context) = &self.context {
            ext.context = context.clone();
        }
        ext.codecs = match &self.codecs {
            Some(codecs) => codecs.clone(),
            None => DEFAULT_CODECS.iter().map(|s| (*s).to_owned()).collect(),
        };
        if let Some(max) = self.max_contacts {
            ext.max_contacts = max;
        }
        ext.transport = self.transport.clone();
        if let Some(remove) = self.remove_existing {
            ext.remove_existing = remove;
        }
        ext.qualify_frequency = self
            .qualify_frequency
            .unwrap_or(registrar.qualify_frequency_default);
        ext.caller_id = self.caller_id.clone();
        ext.is_admin = self.is_admin;
        ext.notes = self.notes.clone();
        ext
    }
}
