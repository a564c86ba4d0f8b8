//! config.yml: schema, loading, validation.
//!
//! Sans-IO: [`parse`] turns text into a typed, validated [`Config`]; [`load`] only adds reading
//! the file (start-up only). Unknown keys do not stop start-up: each one becomes a warning that
//! names its full path (`unknown key server.server_name (ignored)`). A value of the wrong type,
//! or one that fails validation, is an error naming the path:
//! `config.yml: server.sip_port: invalid type: string "abc", expected u16 (line 3, column 13)`.
//!
//! Seeding: `extensions[]` is seed data for the store, applied at start-up according to
//! `extensions_seed_mode` ([`SeedMode`]); the default inserts missing numbers and never changes
//! an extension that is already stored, so edits made through the API survive a restart.

pub mod schema;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use schema::{
    AmiConfig, AmiUser, ApiConfig, Config, DEFAULT_ADMIN_PASSWORD, DEFAULT_DATABASE_URL,
    DatabaseConfig, ExtensionConfig, LoggingConfig, RateLimitConfig, RegistrarConfig, Secret,
    SecurityConfig, SeedMode, ServerConfig, SipConfig,
};
pub use validate::{FieldError, MIN_JWT_SECRET_LEN, MIN_SECRET_LEN, is_valid_number};

/// The shipped default config.yml, embedded in the binary.
pub const DEFAULT_CONFIG_YML: &str = include_str!("../../config.yml");

/// A parsed, validated config plus the warnings found on the way (unknown keys, accepted but
/// unused settings). The caller logs the warnings.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Why a config could not be loaded. `origin` is the file name shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not YAML at all (or not a mapping at the top).
    #[error("{origin}: {message}{}", location_suffix(message, *.line, *.column))]
    Syntax {
        origin: String,
        message: String,
        line: Option<usize>,
        column: Option<usize>,
    },
    /// A value of the wrong type or an unknown enum value, at `path`.
    #[error("{origin}: {path}: {message}{}", location_suffix(message, *.line, *.column))]
    Invalid {
        origin: String,
        path: String,
        message: String,
        line: Option<usize>,
        column: Option<usize>,
    },
    /// `ami.manager_conf` could not be read or holds a value Dialtone cannot use
    /// (`file:line: what`).
    #[error("ami.manager_conf: {0}")]
    ManagerConf(String),
    /// Values that deserialised but fail validation; one entry per problem.
    #[error("{}", ValidationList { origin, errors })]
    Validation {
        origin: String,
        errors: Vec<FieldError>,
    },
}

/// Drop yaml_serde's trailing ` at line L column C` (the location is shown separately).
fn strip_location(mut message: String, line: Option<usize>, column: Option<usize>) -> String {
    if let (Some(l), Some(c)) = (line, column) {
        let suffix = format!(" at line {l} column {c}");
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message.truncate(stripped.len());
        }
    }
    message
}

fn location_suffix(message: &str, line: Option<usize>, column: Option<usize>) -> String {
    if message.contains(" at line ") {
        // A scanner error that already names its location(s) inline.
        return String::new();
    }
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

struct ValidationList<'a> {
    origin: &'a str,
    errors: &'a [FieldError],
}

impl fmt::Display for ValidationList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: {e}", self.origin)?;
        }
        Ok(())
    }
}

/// Read and parse a config file. The only I/O in this module.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut loaded = parse(&text, &path.display().to_string())?;
    if let Some(file) = loaded.config.ami.manager_conf.clone() {
        let src = crate::store::FsConfSource;
        let conf = crate::pjsip_conf::parse::parse_file(
            &src,
            Path::new(&file),
            crate::pjsip_conf::parse::ParseOptions {
                follow_includes: true,
                disabled_sections: false,
            },
        )
        .map_err(|e| ConfigError::ManagerConf(e.to_string()))?;
        let m = crate::ami::manager_conf::from_conf(&conf)
            .map_err(|e| ConfigError::ManagerConf(e.to_string()))?;
        apply_manager_conf(&mut loaded, m)?;
    }
    Ok(loaded)
}

/// Merge a read manager.conf into the AMI settings (its users after config.yml's).
pub fn apply_manager_conf(
    loaded: &mut Loaded,
    m: crate::ami::manager_conf::ManagerConf,
) -> Result<(), ConfigError> {
    let ami = &mut loaded.config.ami;
    if let Some(e) = m.enabled {
        ami.enabled = e;
    }
    if let Some(p) = m.port {
        ami.port = p;
    }
    if let Some(b) = m.bindaddr {
        ami.host = b;
    }
    if let Some(t) = m.timestampevents {
        ami.timestampevents = t;
    }
    if let Some(t) = m.authtimeout {
        ami.authtimeout = t;
    }
    ami.disabledevents.extend(m.disabledevents);
    for u in m.users {
        if ami.users.iter().any(|x| x.username == u.username) {
            return Err(ConfigError::ManagerConf(format!(
                "user [{}] is also in config.yml ami.users: keep one",
                u.username
            )));
        }
        ami.users.push(u);
    }
    if let Some(e) = validate::check_listeners(&loaded.config).into_iter().next() {
        return Err(ConfigError::ManagerConf(format!(
            "the AMI listener it sets collides: {e}"
        )));
    }
    loaded.warnings.extend(
        m.warnings
            .into_iter()
            .map(|w| format!("ami.manager_conf: {w}")),
    );
    Ok(())
}

/// Parse and validate config text. `origin` names the source in messages (`config.yml`).
pub fn parse(text: &str, origin: &str) -> Result<Loaded, ConfigError> {
    let mut ignored: Vec<String> = Vec::new();
    // An empty file (or one with only comments) is the coded defaults.
    let blank = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
    let mut config = if blank {
        Config::coded_defaults()
    } else {
        // Well-formed YAML first, so that a scanner error is reported as such and not as a
        // bad value at whatever key was being read (start-up only: parsing twice is cheap).
        if let Err(e) = yaml_serde::from_str::<yaml_serde::Value>(text) {
            let (line, column) = match e.location() {
                Some(loc) => (Some(loc.line()), Some(loc.column())),
                None => (None, None),
            };
            return Err(ConfigError::Syntax {
                origin: origin.to_owned(),
                message: strip_location(e.to_string(), line, column),
                line,
                column,
            });
        }
        let de = yaml_serde::Deserializer::from_str(text);
        let mut on_ignored = |path: serde_ignored::Path<'_>| ignored.push(dotted(&path));
        let de = serde_ignored::Deserializer::new(de, &mut on_ignored);
        serde_path_to_error::deserialize::<_, Config>(de).map_err(|e| invalid(origin, e))?
    };
    let mut warnings: Vec<String> = ignored
        .into_iter()
        .map(|path| match validate::unknown_key_hint(&path) {
            Some(hint) => format!("unknown key {path} (ignored; {hint})"),
            None => format!("unknown key {path} (ignored)"),
        })
        .collect();
    match validate::validate(&mut config) {
        Ok(more) => warnings.extend(more),
        Err(errors) => {
            return Err(ConfigError::Validation {
                origin: origin.to_owned(),
                errors,
            });
        }
    }
    Ok(Loaded { config, warnings })
}

/// `serde_ignored` path → `a.b[3].c`.
fn dotted(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    fn walk(path: &Path<'_>, out: &mut String) {
        match path {
            Path::Root => {}
            Path::Seq { parent, index } => {
                walk(parent, out);
                out.push_str(&format!("[{index}]"));
            }
            Path::Map { parent, key } => {
                walk(parent, out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    let mut out = String::new();
    walk(path, &mut out);
    out
}

/// `serde_path_to_error` error → [`ConfigError`], with the path in `a.b[3].c` form and the
/// location split off the YAML message.
fn invalid(origin: &str, e: serde_path_to_error::Error<yaml_serde::Error>) -> ConfigError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let (line, column) = match inner.location() {
        Some(loc) => (Some(loc.line()), Some(loc.column())),
        None => (None, None),
    };
    let mut message = strip_location(inner.to_string(), line, column);
    // yaml_serde prefixes its own copy of the path (`server.sip_port: ...`); drop it.
    if let Some(colon) = message.find(": ") {
        let prefix = &message[..colon];
        if prefix == path || (!prefix.contains(' ') && path.ends_with(prefix)) {
            message.drain(..colon + 2);
        }
    }
    // No path, or one through a key that was never read (`database.?`): the YAML itself is
    // malformed there, not a value.
    if path == "." || path.is_empty() || path.contains('?') {
        ConfigError::Syntax {
            origin: origin.to_owned(),
            message,
            line,
            column,
        }
    } else {
        ConfigError::Invalid {
            origin: origin.to_owned(),
            path,
            message,
            line,
            column,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn ok(text: &str) -> Loaded {
        match parse(text, "config.yml") {
            Ok(loaded) => loaded,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn err(text: &str) -> String {
        match parse(text, "config.yml") {
            Ok(loaded) => panic!("expected an error, got {:?}", loaded.config),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn shipped_config_loads_cleanly() {
        let loaded = ok(DEFAULT_CONFIG_YML);
        assert_eq!(loaded.warnings, Vec::<String>::new());
        let c = &loaded.config;
        assert_eq!(c.server.sip_host, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(c.server.sip_port, 5060);
        assert!(c.sip.tcp);
        assert_eq!(c.api.port, 8080);
        assert_eq!(c.api.host, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert!(c.api.require_authentication);
        assert!(c.ami.enabled);
        assert_eq!(c.ami.host, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(c.ami.port, 5038);
        assert_eq!(c.database.url(), "sqlite://data/dialtone.db");
        assert_eq!(c.sip_addr().to_string(), "0.0.0.0:5060");
        assert_eq!(c.api_addr().to_string(), "0.0.0.0:8080");
        assert_eq!(c.ami_addr().to_string(), "127.0.0.1:5038");
        assert_eq!(c.logging.level, "info");
        assert!(c.uses_default_admin_password());
        assert!(c.api.tokens.is_empty());
        let numbers: Vec<&str> = c.extensions.iter().map(|e| e.number.as_str()).collect();
        assert_eq!(numbers, ["1001", "1002"]);
        assert!(c.extensions.iter().all(|e| e.password.char_len() >= 8));
        assert_eq!(c.extensions_seed_mode, SeedMode::InsertMissing);
    }

    #[test]
    fn shipped_config_matches_coded_defaults() {
        // Every section of config.yml spells out exactly what a missing key defaults to.
        let shipped = ok(DEFAULT_CONFIG_YML).config;
        let mut coded = Config::coded_defaults();
        validate::validate(&mut coded).expect("coded defaults are valid");
        assert_eq!(shipped.server, coded.server);
        assert_eq!(shipped.sip, coded.sip);
        assert_eq!(shipped.registrar, coded.registrar);
        assert_eq!(shipped.security, coded.security);
        assert_eq!(shipped.api, coded.api);
        assert_eq!(shipped.ami, coded.ami);
        assert_eq!(shipped.pjsip, coded.pjsip);
        assert_eq!(shipped.compat_api, coded.compat_api);
        assert_eq!(shipped.database, coded.database);
        assert_eq!(shipped.logging, coded.logging);
        assert_eq!(shipped.extensions_seed_mode, coded.extensions_seed_mode);
        assert_eq!(Config::default(), shipped);
    }

    #[test]
    fn empty_file_is_the_coded_defaults() {
        let loaded = ok("# nothing here\n");
        assert!(loaded.warnings.is_empty());
        assert_eq!(loaded.config.server.sip_port, 5060);
        assert!(loaded.config.extensions.is_empty());
        assert_eq!(loaded.config.database.url(), DEFAULT_DATABASE_URL);
        assert_eq!(ok("").config, loaded.config);
    }

    #[test]
    fn warden_config_loads_with_warnings() {
        // shared/ sits beside the checkout (two levels up from a git worktree under wt/).
        let candidates = [
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../shared/spec/warden-config.yml"
            ),
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/spec/warden-config.yml"
            ),
        ];
        let Some(text) = candidates
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
        else {
            eprintln!("skipped: shared/spec/warden-config.yml not found");
            return;
        };
        let loaded = match parse(&text, "warden-config.yml") {
            Ok(l) => l,
            Err(e) => panic!("Warden config must load: {e}"),
        };
        let c = &loaded.config;
        assert_eq!(c.api.port, 9000);
        assert_eq!(c.server.sip_port, 5060);
        assert_eq!(c.server.external_ip, Some("192.168.1.14".parse().unwrap()));
        assert_eq!(c.logging.level, "info");
        assert_eq!(c.logging.file.as_deref(), Some("logs/pbx.log"));
        assert_eq!(c.security.rate_limit.max_attempts, 5);
        assert_eq!(c.security.rate_limit.window_seconds, 300);
        assert_eq!(c.security.rate_limit.lockout_duration, 900);
        assert_eq!(c.database.host.as_deref(), Some("${DB_HOST}"));
        assert_eq!(c.database.url(), DEFAULT_DATABASE_URL);
        let has = |w: &str| loaded.warnings.iter().any(|x| x == w);
        assert!(
            has("unknown key server.server_name (ignored)"),
            "{:#?}",
            loaded.warnings
        );
        assert!(has("unknown key rtp (ignored)"));
        assert!(has("unknown key sip.caller_id (ignored)"));
        assert!(has(
            "unknown key security.ban_duration (ignored; use security.rate_limit.lockout_duration)"
        ));
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.starts_with("database.type: postgresql"))
        );
    }

    #[test]
    fn wrong_type_names_the_path() {
        let e = err("server:\n  sip_host: 0.0.0.0\n  sip_port: abc\n");
        assert_eq!(
            e,
            r#"config.yml: server.sip_port: invalid type: string "abc", expected u16 (line 3, column 13)"#
        );
        let e = err("server:\n  sip_port: 70000\n");
        assert!(
            e.starts_with("config.yml: server.sip_port: invalid value"),
            "{e}"
        );
        let e = err(
            "extensions:\n  - number: '1001'\n    name: A\n    password: longenough\n    max_contacts: many\n",
        );
        assert!(
            e.starts_with("config.yml: extensions[0].max_contacts: invalid type"),
            "{e}"
        );
        let e = err("api:\n  host: not-an-ip\n");
        assert!(
            e.starts_with("config.yml: api.host: invalid IP address syntax"),
            "{e}"
        );
        let e = err("extensions_seed_mode: sometimes\n");
        assert!(
            e.starts_with("config.yml: extensions_seed_mode: unknown variant `sometimes`"),
            "{e}"
        );
    }

    #[test]
    fn missing_required_field_names_the_entry() {
        let e = err("extensions:\n  - number: '1001'\n    name: A\n");
        assert!(
            e.starts_with("config.yml: extensions[0]: missing field `password`"),
            "{e}"
        );
    }

    #[test]
    fn syntax_error_has_a_location() {
        let e = parse("@server\n", "config.yml").unwrap_err();
        assert!(
            matches!(e, ConfigError::Syntax { line: Some(1), .. }),
            "{e:?}"
        );
        let e = parse("server:\n  sip_port: '5060\n", "config.yml").unwrap_err();
        assert!(
            matches!(e, ConfigError::Syntax { line: Some(_), .. }),
            "{e:?}"
        );
        // A well-formed value of the wrong shape is a type error at its path.
        let e = parse("server: [1]\n", "config.yml").unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { path, .. } if path == "server"),
            "{e:?}"
        );
        // An unquoted `sqlite::memory:` is a YAML error inside a mapping.
        let e = parse("database:\n  url: sqlite::memory:\n", "config.yml").unwrap_err();
        assert!(
            matches!(e, ConfigError::Syntax { line: Some(2), .. }),
            "{e:?}"
        );
        assert!(!e.to_string().contains('?'), "{e}");
        let e = parse("- just\n- a list\n", "config.yml").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
    }

    #[test]
    fn unknown_keys_are_warnings_with_full_paths() {
        let loaded = ok(
            "server:\n  server_name: X\n  sip_port: 5070\nfoo: 1\nextensions:\n  - number: '1001'\n    name: A\n    password: longenough\n    colour: red\n",
        );
        assert_eq!(loaded.config.server.sip_port, 5070);
        assert_eq!(
            loaded.warnings,
            [
                "unknown key server.server_name (ignored)",
                "unknown key foo (ignored)",
                "unknown key extensions[0].colour (ignored)",
            ]
        );
    }

    #[test]
    fn bad_extension_names_the_path() {
        let mut text = String::from("extensions:\n");
        for (n, pw) in [
            ("1001", "longenough"),
            ("1002", "longenough"),
            ("1003", "longenough"),
            ("1004", "short"),
        ] {
            text.push_str(&format!(
                "  - number: '{n}'\n    name: X\n    password: {pw}\n"
            ));
        }
        assert_eq!(
            err(&text),
            "config.yml: extensions[3].password: must be at least 8 characters"
        );
    }

    #[test]
    fn validation_collects_every_problem() {
        let text = "\
server:
  rtp_port_range_start: 20000
  rtp_port_range_end: 10000
registrar:
  min_expires: 60
  default_expires: 30
  max_expires: 3600
logging:
  level: loud
database:
  url: mysql://x
api:
  tokens: ['']
  admin_password: short
extensions:
  - number: '1'
    name: A
    password: longenough
  - number: 12a4
    name: B
    password: longenough
    transport: sctp
    max_contacts: 0
    email: nobody
  - number: '1001'
    name: C
    password: longenough
  - number: 1001
    name: D
    password: longenough
    codecs: [ulaw, ULAW]
";
        let e = parse(text, "config.yml").unwrap_err();
        let ConfigError::Validation { errors, .. } = &e else {
            panic!("{e:?}")
        };
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        for expected in [
            "server.rtp_port_range_end",
            "registrar.default_expires",
            "logging.level",
            "database.url",
            "api.tokens[0]",
            "api.admin_password",
            "extensions[0].number",
            "extensions[1].number",
            "extensions[1].transport",
            "extensions[1].max_contacts",
            "extensions[1].email",
            "extensions[3].number",
            "extensions[3].codecs[1]",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {paths:?}"
            );
        }
        let dup = errors
            .iter()
            .find(|e| e.path == "extensions[3].number")
            .unwrap();
        assert_eq!(
            dup.message,
            "duplicate extension number 1001 (also extensions[2])"
        );
        // The display has one line per problem, each naming the file.
        let shown = e.to_string();
        assert_eq!(shown.lines().count(), errors.len());
        assert!(shown.lines().all(|l| l.starts_with("config.yml: ")));
    }

    #[test]
    fn expires_order_and_ports() {
        let e = err("registrar:\n  min_expires: 4000\n");
        assert_eq!(
            e,
            "config.yml: registrar.min_expires: must not exceed registrar.max_expires (3600)"
        );
        let e = err("server:\n  sip_port: 8080\n");
        assert_eq!(
            e,
            "config.yml: api.port: TCP port 8080 is already used by server.sip_port"
        );
        // Without SIP over TCP the ports may coincide.
        ok("server:\n  sip_port: 8080\nsip:\n  tcp: false\n");
        // Distinct concrete addresses do not clash.
        ok("ami:\n  host: 127.0.0.1\n  port: 9000\napi:\n  host: 127.0.0.2\n  port: 9000\n");
        let e = err("sip:\n  t1_ms: 500\n  t2_ms: 100\n");
        assert_eq!(e, "config.yml: sip.t2_ms: must be at least sip.t1_ms (500)");
    }

    #[test]
    fn numbers_keep_their_text() {
        let loaded = ok(
            "extensions:\n  - number: 0100\n    name: A\n    password: 12345678\n    voicemail_pin: 0042\n",
        );
        let ext = &loaded.config.extensions[0];
        assert_eq!(ext.number, "0100");
        assert_eq!(ext.password.expose(), "12345678");
        assert_eq!(ext.voicemail_pin.as_ref().map(Secret::expose), Some("0042"));
    }

    #[test]
    fn normalises_level_and_database() {
        let loaded = ok("logging:\n  level: WARNING\ndatabase:\n  type: sqlite\n  path: pbx.db\n");
        assert_eq!(loaded.config.logging.level, "warn");
        assert_eq!(loaded.config.database.url(), "sqlite://pbx.db");
        let loaded = ok("database:\n  url: 'sqlite::memory:'\n  path: ignored.db\n");
        assert_eq!(loaded.config.database.url(), "sqlite::memory:");
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(
            ok("database:\n  url: postgres://u@h/db\n")
                .warnings
                .is_empty()
        );
    }

    #[test]
    fn extension_record_from_config() {
        let loaded = ok("\
registrar:
  qualify_frequency_default: 30
extensions:
  - number: '1001'
    name: Alice
    email: alice@example.com
    password: alice-secret
    allow_external: true
    voicemail_pin: '1234'
    codecs: [ALAW, ulaw]
    transport: TCP
    max_contacts: 3
  - number: '1002'
    name: Bob
    password: bob-secret
    enabled: false
    context: office
    qualify_frequency: 0
");
        let exts = loaded.config.seed_extensions();
        let a = &exts[0];
        assert_eq!(
            (a.number.as_str(), a.name.as_str(), a.secret.as_str()),
            ("1001", "Alice", "alice-secret")
        );
        assert_eq!(a.email.as_deref(), Some("alice@example.com"));
        assert!(a.allow_external && a.enabled && a.voicemail_enabled);
        assert_eq!(a.voicemail_pin.as_deref(), Some("1234"));
        assert_eq!(a.codecs, ["alaw", "ulaw"]);
        assert_eq!(a.transport.as_deref(), Some("tcp"));
        assert_eq!(a.max_contacts, 3);
        assert_eq!(a.qualify_frequency, 30);
        assert_eq!(a.context, "from-internal");
        let b = &exts[1];
        assert!(!b.enabled && !b.voicemail_enabled && !b.allow_external);
        assert_eq!(b.context, "office");
        assert_eq!(b.codecs, ["ulaw", "alaw", "g722"]);
        assert_eq!(b.qualify_frequency, 0);
        assert_eq!(b.id, 0);
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let loaded = ok(DEFAULT_CONFIG_YML);
        let shown = format!("{:?}", loaded.config);
        assert!(!shown.contains(DEFAULT_ADMIN_PASSWORD));
        for ext in &loaded.config.extensions {
            assert!(!shown.contains(ext.password.expose()));
        }
        let e = err("api:\n  admin_password: hunter2\n");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn admin_password_change_is_detected() {
        let loaded = ok("api:\n  admin_password: a-better-password\n");
        assert!(!loaded.config.uses_default_admin_password());
        assert!(Config::default().uses_default_admin_password());
    }

    #[test]
    fn ami_users() {
        let loaded = ok(
            "ami:\n  users:\n    - username: mon\n      secret: mon-secret\n      read: system,call\n",
        );
        let u = &loaded.config.ami.users[0];
        assert_eq!(
            (u.username.as_str(), u.read.as_str(), u.write.as_str()),
            ("mon", "system,call", "all")
        );
        let e = err("ami:\n  users:\n    - username: mon\n      secret: x\n");
        assert_eq!(
            e,
            "config.yml: ami.users[0].secret: must be at least 8 characters"
        );
    }

    #[test]
    fn ami_manager_alias_acl_and_filters() {
        let loaded = ok(
            "manager:\n  bind: 127.0.0.2\n  port: 0\n  users:\n    - username: mon\n      secret: mon-secret\n      deny: [0.0.0.0/0]\n      permit: [127.0.0.1/255.0.0.0]\n      eventfilter: ['!Event: VarSet']\n",
        );
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(
            loaded.config.ami.host,
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))
        );
        assert_eq!(loaded.config.ami.users[0].permit, ["127.0.0.1/255.0.0.0"]);
        let e = err(
            "ami:\n  users:\n    - username: mon\n      secret: mon-secret\n      read: system,bogus\n      deny: [10.0.0.0/33]\n      eventfilter: ['(unclosed']\n",
        );
        assert!(
            e.contains("ami.users[0].read: unknown permission class bogus"),
            "{e}"
        );
        assert!(
            e.contains("ami.users[0].deny[0]: 10.0.0.0/33: prefix longer than 32"),
            "{e}"
        );
        assert!(
            e.contains("ami.users[0].eventfilter[0]: eventfilter: bad regex"),
            "{e}"
        );
    }

    #[test]
    fn load_reads_a_file_and_reports_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yml");
        std::fs::write(&path, "server:\n  sip_port: abc\n").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}: server.sip_port: invalid type",
                path.display()
            )),
            "{e}"
        );
        std::fs::write(&path, DEFAULT_CONFIG_YML).unwrap();
        assert_eq!(load(&path).unwrap().config, Config::default());
        let missing = dir.path().join("nope.yml");
        assert!(matches!(load(&missing), Err(ConfigError::Read { .. })));
    }
}
