//! Semantic validation and normalisation of a deserialised [`Config`].
//!
//! Every problem is reported with the YAML path of the offending key
//! (`extensions[3].password: must be at least 8 characters`); all problems are collected, not
//! just the first. Normalisation: `logging.level` becomes an EnvFilter string, `database.url`
//! becomes the effective URL, codec names and transports are lower-cased.

use std::collections::HashMap;
use std::net::IpAddr;

use super::schema::{Config, DEFAULT_DATABASE_URL, ExtensionConfig, Secret};

/// One semantic problem: the YAML path and what is wrong with the value there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted YAML path, sequences as `[i]`: `extensions[3].password`.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Minimum length of every password or secret in config.yml.
pub const MIN_SECRET_LEN: usize = 8;
/// Minimum length of `api.jwt_secret`.
pub const MIN_JWT_SECRET_LEN: usize = 16;

struct Checker {
    errors: Vec<FieldError>,
    warnings: Vec<String>,
}

impl Checker {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn warn(&mut self, warning: String) {
        self.warnings.push(warning);
    }

    fn secret(&mut self, path: &str, secret: &Secret, min: usize) {
        let value = secret.expose();
        if value.chars().any(char::is_control) {
            self.err(path, "must not contain control characters");
        } else if secret.char_len() < min {
            self.err(path, format!("must be at least {min} characters"));
        }
        if looks_like_placeholder(value) {
            self.warn(format!(
                "{path}: looks like an environment placeholder; ${{...}} is not expanded, the text is used as is"
            ));
        }
    }

    fn text(&mut self, path: &str, value: &str) {
        if value.trim().is_empty() {
            self.err(path, "must not be empty");
        } else if value.chars().any(char::is_control) {
            self.err(path, "must not contain control characters");
        }
    }

    fn nonzero_port(&mut self, path: &str, port: u16) {
        if port == 0 {
            self.err(path, "must be a port number 1–65535");
        }
    }
}

fn looks_like_placeholder(value: &str) -> bool {
    value.starts_with("${") && value.ends_with('}')
}

/// Validate `config` in place (normalising some values). Returns the warnings, or every error.
pub(crate) fn validate(config: &mut Config) -> Result<Vec<String>, Vec<FieldError>> {
    let mut c = Checker {
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    server(&mut c, config);
    sip(&mut c, config);
    registrar(&mut c, config);
    security(&mut c, config);
    api(&mut c, config);
    ami(&mut c, config);
    listeners(&mut c, config);
    pjsip(&mut c, config);
    database(&mut c, config);
    logging(&mut c, config);
    extensions(&mut c, config);
    if c.errors.is_empty() {
        Ok(c.warnings)
    } else {
        Err(c.errors)
    }
}

/// The listener checks alone (after manager.conf moved the AMI listener).
pub(crate) fn check_listeners(config: &Config) -> Vec<FieldError> {
    let mut c = Checker {
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    listeners(&mut c, config);
    c.errors
}

fn server(c: &mut Checker, config: &Config) {
    let s = &config.server;
    c.nonzero_port("server.rtp_port_range_start", s.rtp_port_range_start);
    if s.rtp_port_range_start >= s.rtp_port_range_end {
        c.err(
            "server.rtp_port_range_end",
            format!(
                "must be greater than server.rtp_port_range_start ({})",
                s.rtp_port_range_start
            ),
        );
    }
    if !(400..700).contains(&s.dnd_status) {
        c.err(
            "server.dnd_status",
            format!("must be a SIP failure status 400-699, not {}", s.dnd_status),
        );
    }
    if let Some(ip) = s.external_ip
        && ip.is_unspecified()
    {
        c.err(
            "server.external_ip",
            "must be a concrete address, not 0.0.0.0 or ::",
        );
    }
}

fn sip(c: &mut Checker, config: &Config) {
    let s = &config.sip;
    c.text("sip.realm", &s.realm);
    if s.realm.contains(['"', '\\']) {
        c.err("sip.realm", "must not contain '\"' or '\\'");
    }
    c.text("sip.user_agent", &s.user_agent);
    if s.udp_buffer_bytes < 65_536 {
        c.err("sip.udp_buffer_bytes", "must be at least 65536");
    }
    if !(1024..=16 * 1024 * 1024).contains(&s.tcp_max_message_bytes) {
        c.err(
            "sip.tcp_max_message_bytes",
            "must be between 1024 and 16777216",
        );
    }
    if s.tcp_idle_timeout == 0 {
        c.err("sip.tcp_idle_timeout", "must be at least 1 second");
    }
    if s.t1_ms == 0 {
        c.err("sip.t1_ms", "must be at least 1 ms");
    }
    if s.t2_ms < s.t1_ms {
        c.err(
            "sip.t2_ms",
            format!("must be at least sip.t1_ms ({})", s.t1_ms),
        );
    }
    if s.t4_ms == 0 {
        c.err("sip.t4_ms", "must be at least 1 ms");
    }
}

fn registrar(c: &mut Checker, config: &Config) {
    let r = &config.registrar;
    if r.min_expires == 0 {
        c.err("registrar.min_expires", "must be at least 1 second");
    }
    if r.min_expires > r.max_expires {
        c.err(
            "registrar.min_expires",
            format!("must not exceed registrar.max_expires ({})", r.max_expires),
        );
    } else if r.default_expires < r.min_expires || r.default_expires > r.max_expires {
        c.err(
            "registrar.default_expires",
            format!(
                "must lie between registrar.min_expires ({}) and registrar.max_expires ({})",
                r.min_expires, r.max_expires
            ),
        );
    }
    if r.nonce_lifetime == 0 {
        c.err("registrar.nonce_lifetime", "must be at least 1 second");
    }
    if r.qualify_frequency_default > 3600 {
        c.err(
            "registrar.qualify_frequency_default",
            "must be 0–3600 seconds",
        );
    }
}

fn security(c: &mut Checker, config: &Config) {
    let r = &config.security.rate_limit;
    if r.max_attempts > 0 {
        if r.window_seconds == 0 {
            c.err(
                "security.rate_limit.window_seconds",
                "must be at least 1 second",
            );
        }
        if r.lockout_duration == 0 {
            c.err(
                "security.rate_limit.lockout_duration",
                "must be at least 1 second",
            );
        }
    }
}

fn api(c: &mut Checker, config: &Config) {
    let a = &config.api;
    for (i, token) in a.tokens.iter().enumerate() {
        let path = format!("api.tokens[{i}]");
        let value = token.expose();
        if value.is_empty() {
            c.err(path, "must not be empty");
        } else if value
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control())
        {
            c.err(path, "must not contain whitespace or control characters");
        } else if token.char_len() < 16 {
            c.warn(format!(
                "{path}: shorter than 16 characters; use a long random token"
            ));
        }
    }
    c.text("api.admin_user", &a.admin_user);
    c.secret("api.admin_password", &a.admin_password, MIN_SECRET_LEN);
    if let Some(secret) = &a.jwt_secret {
        c.secret("api.jwt_secret", secret, MIN_JWT_SECRET_LEN);
    }
    for (i, o) in a.cors_allowed_origins.iter().enumerate() {
        let ok = (o.starts_with("http://") || o.starts_with("https://"))
            && !o.ends_with('/')
            && axum::http::HeaderValue::from_str(o).is_ok();
        if !ok {
            c.err(
                format!("api.cors_allowed_origins[{i}]"),
                format!("{o:?} is not an origin (scheme://host[:port], no path)"),
            );
        }
    }
}

fn ami(c: &mut Checker, config: &Config) {
    let a = &config.ami;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, user) in a.users.iter().enumerate() {
        let path = format!("ami.users[{i}]");
        c.text(&format!("{path}.username"), &user.username);
        if let Some(first) = seen.insert(user.username.as_str(), i) {
            c.err(
                format!("{path}.username"),
                format!(
                    "duplicate AMI user {} (also ami.users[{first}])",
                    user.username
                ),
            );
        }
        c.secret(&format!("{path}.secret"), &user.secret, MIN_SECRET_LEN);
        for (key, list) in [("read", &user.read), ("write", &user.write)] {
            let unknown = crate::ami::perms::unknown_perms(list);
            if !unknown.is_empty() {
                c.err(
                    format!("{path}.{key}"),
                    format!("unknown permission class {}", unknown.join(", ")),
                );
            }
        }
        for (key, nets) in [("deny", &user.deny), ("permit", &user.permit)] {
            for (j, n) in nets.iter().enumerate() {
                if let Err(e) = crate::ami::perms::Net::parse(n) {
                    c.err(format!("{path}.{key}[{j}]"), e);
                }
            }
        }
        for (j, f) in user.eventfilter.iter().enumerate() {
            if let Err(e) = crate::ami::filter::EventFilters::parse(std::slice::from_ref(f)) {
                c.err(format!("{path}.eventfilter[{j}]"), e);
            }
        }
    }
}

/// TCP listeners must not collide (SIP TCP, REST, AMI).
fn listeners(c: &mut Checker, config: &Config) {
    let mut tcp: Vec<(&str, IpAddr, u16)> = Vec::with_capacity(3);
    if config.sip.tcp {
        tcp.push((
            "server.sip_port",
            config.server.sip_host,
            config.server.sip_port,
        ));
    }
    tcp.push(("api.port", config.api.host, config.api.port));
    if config.ami.enabled {
        tcp.push(("ami.port", config.ami.host, config.ami.port));
    }
    if config.compat_api.enabled {
        tcp.push((
            "compat_api.port",
            config.compat_api.host,
            config.compat_api.port,
        ));
    }
    for (i, &(path, host, port)) in tcp.iter().enumerate() {
        let clash = tcp[..i].iter().find(|&&(_, other_host, other_port)| {
            other_port == port
                && (host == other_host || host.is_unspecified() || other_host.is_unspecified())
        });
        if let Some((other, _, _)) = clash
            && port != 0
        {
            c.err(path, format!("TCP port {port} is already used by {other}"));
        }
    }
}

fn pjsip(c: &mut Checker, config: &Config) {
    if let Some(f) = &config.pjsip.config_file {
        c.text("pjsip.config_file", f);
    }
}

fn database(c: &mut Checker, config: &mut Config) {
    let db = &mut config.database;
    let kind = db.kind.as_deref().map(str::to_ascii_lowercase);
    let is_postgres = matches!(kind.as_deref(), Some("postgresql" | "postgres"));
    if let Some(k) = kind.as_deref()
        && !is_postgres
        && k != "sqlite"
    {
        c.err("database.type", "must be sqlite or postgresql");
    }
    let warden_keys = db.host.is_some()
        || db.port.is_some()
        || db.name.is_some()
        || db.user.is_some()
        || db.password.is_some();
    let url = match (&db.url, db.path.as_deref()) {
        (Some(url), _) => {
            if db.kind.is_some() || db.path.is_some() || warden_keys {
                c.warn(
                    "database: database.url is set, so type/path/host/port/name/user/password are ignored"
                        .into(),
                );
            }
            url.clone()
        }
        (None, Some(path)) if !is_postgres => {
            if path.trim().is_empty() {
                c.err("database.path", "must not be empty");
            }
            format!("sqlite://{path}")
        }
        (None, _) => {
            if is_postgres {
                c.warn(format!(
                    "database.type: postgresql settings (host/port/name/user/password) are not used; \
                     set database.url to choose a database (using {DEFAULT_DATABASE_URL})"
                ));
            }
            DEFAULT_DATABASE_URL.to_owned()
        }
    };
    let sqlite = url.starts_with("sqlite://") || url.starts_with("sqlite:");
    let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !(sqlite || postgres) {
        c.err(
            "database.url",
            "must start with sqlite:// (or be sqlite::memory:) or postgres://",
        );
    } else if sqlite
        && url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:")
            .is_empty()
    {
        c.err("database.url", "must name a database file");
    }
    db.url = Some(url);
}

/// Map a level word (Python or tracing spelling, any case) to tracing's.
fn level_word(word: &str) -> Option<&'static str> {
    Some(match word.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" | "critical" | "fatal" => "error",
        "off" => "off",
        _ => return None,
    })
}

/// Normalise `logging.level` to an EnvFilter directive string.
fn normalise_filter(spec: &str) -> Option<String> {
    let mut out = String::with_capacity(spec.len());
    for directive in spec.split(',').map(str::trim) {
        if directive.is_empty() {
            return None;
        }
        if !out.is_empty() {
            out.push(',');
        }
        match directive.split_once('=') {
            None => out.push_str(level_word(directive)?),
            Some((target, level)) => {
                let target = target.trim();
                let target_ok = !target.is_empty()
                    && target
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | ':' | '-'));
                if !target_ok {
                    return None;
                }
                out.push_str(target);
                out.push('=');
                out.push_str(level_word(level.trim())?);
            }
        }
    }
    Some(out)
}

fn logging(c: &mut Checker, config: &mut Config) {
    match normalise_filter(&config.logging.level) {
        Some(filter) => config.logging.level = filter,
        None => c.err(
            "logging.level",
            format!(
                "invalid level {:?}: expected trace, debug, info, warn, error or off \
                 (or directives like info,dialtone::sip=debug)",
                config.logging.level
            ),
        ),
    }
    if let Some(file) = &config.logging.file
        && file.trim().is_empty()
    {
        c.err(
            "logging.file",
            "must not be empty (leave it out to log to the console only)",
        );
    }
}

/// An extension number: 2–20 ASCII digits.
pub fn is_valid_number(number: &str) -> bool {
    (2..=20).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit())
}

fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'))
}

fn extensions(c: &mut Checker, config: &mut Config) {
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(config.extensions.len());
    for (i, ext) in config.extensions.iter_mut().enumerate() {
        let path = format!("extensions[{i}]");
        extension(c, &path, ext);
        if let Some(first) = seen.insert(ext.number.clone(), i) {
            c.err(
                format!("{path}.number"),
                format!(
                    "duplicate extension number {} (also extensions[{first}])",
                    ext.number
                ),
            );
        }
    }
}

fn extension(c: &mut Checker, path: &str, ext: &mut ExtensionConfig) {
    if !is_valid_number(&ext.number) {
        c.err(format!("{path}.number"), "must be 2–20 digits");
    }
    c.text(&format!("{path}.name"), &ext.name);
    if ext.name.chars().count() > 255 {
        c.err(format!("{path}.name"), "must be at most 255 characters");
    }
    c.secret(&format!("{path}.password"), &ext.password, MIN_SECRET_LEN);
    if let Some(email) = &ext.email {
        let ok = email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
            && !email
                .chars()
                .any(|ch| ch.is_whitespace() || ch.is_control());
        if !ok {
            c.err(format!("{path}.email"), "must be an e-mail address");
        }
    }
    if let Some(pin) = &ext.voicemail_pin {
        let pin = pin.expose();
        if !(1..=20).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
            c.err(format!("{path}.voicemail_pin"), "must be 1–20 digits");
        }
    }
    if let Some(context) = &ext.context
        && !is_token(context)
    {
        c.err(
            format!("{path}.context"),
            "must be a non-empty name of letters, digits, '_', '-' or '.'",
        );
    }
    if let Some(codecs) = &mut ext.codecs {
        if codecs.is_empty() {
            c.err(format!("{path}.codecs"), "must list at least one codec");
        }
        for (j, codec) in codecs.iter_mut().enumerate() {
            *codec = codec.trim().to_ascii_lowercase();
            if !is_token(codec) {
                c.err(
                    format!("{path}.codecs[{j}]"),
                    "must be a codec name such as ulaw",
                );
            }
        }
        for (j, codec) in codecs.iter().enumerate() {
            if codecs[..j].contains(codec) {
                c.err(
                    format!("{path}.codecs[{j}]"),
                    format!("duplicate codec {codec}"),
                );
            }
        }
    }
    if let Some(max) = ext.max_contacts
        && !(1..=10).contains(&max)
    {
        c.err(format!("{path}.max_contacts"), "must be 1–10");
    }
    if let Some(transport) = &ext.transport {
        let lower = transport.trim().to_ascii_lowercase();
        match lower.as_str() {
            "" => ext.transport = None,
            "udp" | "tcp" => ext.transport = Some(lower),
            _ => c.err(format!("{path}.transport"), "must be udp or tcp"),
        }
    }
    if let Some(q) = ext.qualify_frequency
        && q > 3600
    {
        c.err(
            format!("{path}.qualify_frequency"),
            "must be 0–3600 seconds",
        );
    }
    if let Some(caller_id) = &ext.caller_id
        && caller_id.chars().any(char::is_control)
    {
        c.err(
            format!("{path}.caller_id"),
            "must not contain control characters",
        );
    }
}

/// Hints appended to the unknown-key warning of Warden keys that have a Dialtone equivalent.
pub(crate) fn unknown_key_hint(path: &str) -> Option<&'static str> {
    Some(match path {
        "security.max_failed_attempts" => "use security.rate_limit.max_attempts",
        "security.ban_duration" => "use security.rate_limit.lockout_duration",
        "security.require_authentication" => "use api.require_authentication",
        "security.min_password_length" => "passwords must be at least 8 characters",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert!(is_valid_number("1001"));
        assert!(is_valid_number("10"));
        assert!(is_valid_number("01234567890123456789"));
        assert!(!is_valid_number("1"));
        assert!(!is_valid_number("012345678901234567890"));
        assert!(!is_valid_number("10a1"));
        assert!(!is_valid_number("+1001"));
        assert!(!is_valid_number("١٢٣")); // non-ASCII digits
    }

    #[test]
    fn filters() {
        assert_eq!(normalise_filter("INFO").as_deref(), Some("info"));
        assert_eq!(normalise_filter("Warning").as_deref(), Some("warn"));
        assert_eq!(normalise_filter("critical").as_deref(), Some("error"));
        assert_eq!(
            normalise_filter("info, dialtone::sip=DEBUG").as_deref(),
            Some("info,dialtone::sip=debug")
        );
        assert_eq!(normalise_filter("verbose"), None);
        assert_eq!(normalise_filter(""), None);
        assert_eq!(normalise_filter("info,"), None);
        assert_eq!(normalise_filter("a b=info"), None);
        assert_eq!(normalise_filter("x=loud"), None);
    }
}
