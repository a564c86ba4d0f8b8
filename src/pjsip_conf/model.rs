//! res_pjsip's sorcery mapping (spec §5.2) and Dialtone's import model.
//!
//! Every enabled, non-template section with `type=` is one object. An endpoint whose name is
//! an extension number (2–20 digits, or RayanPBX's alternative names such as `endpoint101`)
//! and that has an auth (its `auth=`, else an auth section named after the number: `101`,
//! `101-auth`, `auth101`, ...) becomes an [`Extension`] together with that auth and its aor.
//! All other objects — transports, `[global]`, `[system]`, trunks, identify, registration,
//! acl, endpoints without auth — are kept verbatim as [`PjsipObject`]s so an export writes
//! them back. Options Dialtone does not implement are listed in the [`ImportReport`].

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::options::{KNOWN_TYPES, is_known};
use super::parse::{Category, Conf};
use super::{ConfError, ErrorKind, Loc, Warning, parse_bool};
use crate::pbx::directory::{Extension, PjsipExtra};

/// Codec names `allow=all` expands to (Asterisk names, Dialtone's preference order).
pub const ALL_CODECS: &[&str] = &[
    "ulaw", "alaw", "g722", "g729", "opus", "gsm", "ilbc", "speex", "h264", "vp8",
];

/// `dtmf_mode` values Asterisk accepts.
pub const DTMF_MODES: &[&str] = &["rfc4733", "inband", "info", "auto", "auto_info", "none"];

/// Endpoint options mapped to typed [`Extension`] fields.
const ENDPOINT_TYPED: &[&str] = &[
    "type",
    "context",
    "allow",
    "disallow",
    "transport",
    "auth",
    "aors",
    "callerid",
    "direct_media",
    "rtp_symmetric",
    "force_rport",
    "rewrite_contact",
    "dtmf_mode",
    "mailboxes",
    "subscribe_context",
    "device_state_busy_at",
];
const AOR_TYPED: &[&str] = &[
    "type",
    "max_contacts",
    "remove_existing",
    "qualify_frequency",
];

/// Options Dialtone acts on (everything else is stored and exported, not in effect).
const IN_EFFECT: &[(&str, &str)] = &[
    ("endpoint", "type"),
    ("endpoint", "context"),
    ("endpoint", "allow"),
    ("endpoint", "disallow"),
    ("endpoint", "auth"),
    ("endpoint", "aors"),
    ("endpoint", "callerid"),
    ("endpoint", "transport"),
    ("auth", "type"),
    ("auth", "auth_type"),
    ("auth", "username"),
    ("auth", "password"),
    ("aor", "type"),
    ("aor", "max_contacts"),
    ("aor", "remove_existing"),
    ("aor", "qualify_frequency"),
];

/// A pjsip object Dialtone keeps verbatim (templates resolved; `type` not included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PjsipObject {
    /// The sorcery type (`transport`, `global`, `endpoint`, `identify`, ...).
    pub kind: String,
    /// The section name (object id).
    pub name: String,
    /// Options in order, repeats kept.
    pub options: Vec<(String, String)>,
    /// Comment lines before the section.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<String>,
}

impl PjsipObject {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.options
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// A transport, typed (NAT keys from `[global]` applied where the transport has none:
/// RayanPBX writes them there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transport {
    pub name: String,
    pub protocol: String,
    pub bind: Option<String>,
    pub external_media_address: Option<String>,
    pub external_signaling_address: Option<String>,
    pub local_net: Vec<String>,
}

/// An `identify` object (future trunks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identify {
    pub name: String,
    pub endpoint: Option<String>,
    pub matches: Vec<String>,
}

/// An outbound `registration` object (future trunks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    pub name: String,
    pub server_uri: Option<String>,
    pub client_uri: Option<String>,
    pub outbound_auth: Option<String>,
    pub transport: Option<String>,
    pub expiration: u32,
    pub retry_interval: u32,
}

/// What an import found, for the CLI / API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Extensions (endpoint + auth + aor), disabled ones included.
    pub extensions: usize,
    /// Of which commented out (`;[101]`).
    pub disabled: usize,
    /// Kept objects by type.
    pub objects: BTreeMap<String, usize>,
    pub templates: usize,
    /// Extension sections inside legacy `; BEGIN MANAGED` blocks.
    pub legacy_managed: usize,
    /// `type option` → how many objects set it: stored and exported, not in effect.
    pub not_in_effect: BTreeMap<String, usize>,
    /// `file:line: message`.
    pub warnings: Vec<String>,
}

impl ImportReport {
    /// A human-readable summary.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{} extensions ({} disabled), {} templates",
            self.extensions, self.disabled, self.templates
        );
        for (k, n) in &self.objects {
            s.push_str(&format!(", {n} {k}"));
        }
        s.push('\n');
        if self.legacy_managed > 0 {
            s.push_str(&format!(
                "{} sections inside legacy '; BEGIN MANAGED' blocks\n",
                self.legacy_managed
            ));
        }
        if !self.not_in_effect.is_empty() {
            s.push_str("kept for export, not in effect in Dialtone:\n");
            for (k, n) in &self.not_in_effect {
                s.push_str(&format!("  {k} ({n})\n"));
            }
        }
        for w in &self.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
        s
    }
}

/// The result of importing a pjsip.conf.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportModel {
    /// Ordered by number (shorter first), like the store lists them.
    pub extensions: Vec<Extension>,
    /// Other objects in file order.
    pub objects: Vec<PjsipObject>,
    pub report: ImportReport,
}

impl ImportModel {
    pub fn transports(&self) -> Vec<Transport> {
        transports(&self.objects)
    }
}

/// The extension number a section name stands for: digits (2–20), or RayanPBX's alternative
/// names (`101-auth`, `101_auth`, `101auth`, `auth-101`, `auth_101`, `auth101`, `aor101`,
/// `endpoint101`, ...). `trunk123`, `transport-udp`, `my-trunk`, `global` are not numbers.
pub fn extension_number(name: &str) -> Option<&str> {
    fn digits(s: &str) -> Option<&str> {
        ((2..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
    }
    if let Some(n) = digits(name) {
        return Some(n);
    }
    let lower = name.to_ascii_lowercase();
    for word in ["auth", "aor", "endpoint"] {
        for sep in ["-", "_", ""] {
            let prefix = format!("{word}{sep}");
            if lower.starts_with(&prefix)
                && let Some(n) = digits(&name[prefix.len()..])
            {
                return Some(n);
            }
            let suffix = format!("{sep}{word}");
            if lower.ends_with(&suffix)
                && let Some(n) = digits(&name[..name.len() - suffix.len()])
            {
                return Some(n);
            }
        }
    }
    None
}

/// Apply one `allow=` / `disallow=` value to a codec preference list, in Asterisk's order
/// semantics: `all` adds every codec / clears; `!x` inverts; an allowed codec already in the
/// list keeps its place; `ulaw:20` framing is ignored.
pub fn apply_codecs(list: &mut Vec<String>, allow: bool, value: &str) {
    for tok in value.split(',') {
        let tok = tok.trim();
        let (neg, name) = match tok.strip_prefix('!') {
            Some(n) => (true, n.trim()),
            None => (false, tok),
        };
        let name = name
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        let add = allow != neg;
        if name == "all" {
            if add {
                for c in ALL_CODECS {
                    if !list.iter().any(|x| x == c) {
                        list.push((*c).to_owned());
                    }
                }
            } else {
                list.clear();
            }
        } else if add {
            if !list.contains(&name) {
                list.push(name);
            }
        } else {
            list.retain(|c| *c != name);
        }
    }
}

/// The codec list a section's allow/disallow lines give.
pub fn codecs_of(vars: &[(String, String)]) -> Vec<String> {
    let mut list = Vec::new();
    for (k, v) in vars {
        if k.eq_ignore_ascii_case("allow") {
            apply_codecs(&mut list, true, v);
        } else if k.eq_ignore_ascii_case("disallow") {
            apply_codecs(&mut list, false, v);
        }
    }
    list
}

/// The display name in a `callerid` value (`"Alice" <1001>`, `Alice <1001>`).
pub fn callerid_name(cid: &str) -> Option<String> {
    let name = match cid.find('<') {
        Some(i) => &cid[..i],
        None if cid.trim().bytes().all(|b| b.is_ascii_digit() || b == b'+') => "",
        None => cid,
    };
    let name = name.trim().trim_matches('"').trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// The `callerid` Dialtone derives from name and number when `caller_id` is None.
pub fn derived_callerid(name: &str, number: &str) -> String {
    format!("\"{name}\" <{number}>")
}

fn invalid(cat: &Category, option: &str, reason: &str) -> ConfError {
    let var = cat.get_var(option);
    ConfError::new(
        var.map_or_else(|| cat.loc.clone(), |v| v.loc.clone()),
        ErrorKind::InvalidValue {
            section: cat.name.clone(),
            option: option.to_owned(),
            value: var.map(|v| v.value.clone()).unwrap_or_default(),
            reason: reason.to_owned(),
        },
    )
}

fn get_bool(cat: &Category, option: &str, default: bool) -> Result<bool, ConfError> {
    match cat.get(option) {
        None => Ok(default),
        Some(v) => parse_bool(v).ok_or_else(|| invalid(cat, option, "not a boolean (yes/no)")),
    }
}

fn get_u32(cat: &Category, option: &str, default: u32) -> Result<u32, ConfError> {
    match cat.get(option) {
        None => Ok(default),
        Some(v) if v.trim().is_empty() => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| invalid(cat, option, "not a non-negative integer")),
    }
}

fn non_empty(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn first_item(v: &str) -> Option<&str> {
    v.split(',').map(str::trim).find(|s| !s.is_empty())
}

fn own_options(cat: &Category, skip: &[&str]) -> Vec<(String, String)> {
    cat.vars
        .iter()
        .filter(|v| !skip.iter().any(|s| v.name.eq_ignore_ascii_case(s)))
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect()
}

struct Builder<'c> {
    report: ImportReport,
    warnings: Vec<Warning>,
    cats: &'c [Category],
}

impl Builder<'_> {
    fn warn(&mut self, loc: &Loc, msg: impl Into<String>) {
        self.warnings.push(Warning {
            loc: loc.clone(),
            message: msg.into(),
        });
    }

    fn not_in_effect(&mut self, kind: &str, options: &[(String, String)]) {
        let mut seen = HashSet::new();
        for (k, _) in options {
            let k = k.to_ascii_lowercase();
            if IN_EFFECT.iter().any(|(t, o)| *t == kind && *o == k) || !seen.insert(k.clone()) {
                continue;
            }
            *self
                .report
                .not_in_effect
                .entry(format!("{kind} {k}"))
                .or_default() += 1;
        }
    }
}

/// Build the import model from a loaded config. Errors (with file:line) are what makes
/// Asterisk refuse the file or an object: duplicate objects, invalid values of the options
/// Dialtone types. Everything else is a warning in the report.
pub fn import(conf: &Conf) -> Result<ImportModel, ConfError> {
    let mut b = Builder {
        report: ImportReport::default(),
        warnings: conf.warnings.clone(),
        cats: &conf.categories,
    };
    // Objects: (index, kind); duplicates are fatal.
    let mut objects: Vec<(usize, String)> = Vec::new();
    let mut disabled: Vec<(usize, String)> = Vec::new();
    let mut seen: HashMap<(String, String), &Loc> = HashMap::new();
    for (i, cat) in conf.categories.iter().enumerate() {
        if cat.template {
            if !cat.disabled {
                b.report.templates += 1;
            }
            continue;
        }
        let Some(kind) = cat.kind() else {
            if !cat.disabled {
                b.warn(
                    &cat.loc,
                    format!("[{}] has no type=: ignored by res_pjsip", cat.name),
                );
            }
            continue;
        };
        if cat.disabled {
            disabled.push((i, kind));
            continue;
        }
        if !KNOWN_TYPES.contains(&kind.as_str()) {
            b.warn(
                &cat.loc,
                format!("[{}]: unknown type={kind} (kept for export)", cat.name),
            );
        }
        if let Some(first) = seen.insert((cat.name.clone(), kind.clone()), &cat.loc) {
            return Err(ConfError::new(
                cat.loc.clone(),
                ErrorKind::Duplicate {
                    name: cat.name.clone(),
                    kind,
                    first: first.to_string(),
                },
            ));
        }
        for v in &cat.vars {
            if !is_known(&kind, &v.name) {
                b.warn(
                    &v.loc,
                    format!(
                        "[{}] type={kind}: unknown option '{}' (Asterisk would reject this object; kept)",
                        cat.name, v.name
                    ),
                );
            }
        }
        objects.push((i, kind));
    }

    let transports_by_name: HashMap<&str, String> = objects
        .iter()
        .filter(|(_, k)| k == "transport")
        .map(|(i, _)| {
            let c = &conf.categories[*i];
            (
                c.name.as_str(),
                c.get("protocol")
                    .unwrap_or("udp")
                    .trim()
                    .to_ascii_lowercase(),
            )
        })
        .collect();

    let mut used: HashSet<usize> = HashSet::new();
    let mut extensions: BTreeMap<(usize, String), Extension> = BTreeMap::new();
    for pass_disabled in [false, true] {
        let list = if pass_disabled { &disabled } else { &objects };
        let by = |kind: &str| -> Vec<usize> {
            list.iter()
                .filter(|(_, k)| k == kind)
                .map(|(i, _)| *i)
                .collect()
        };
        // name -> first index, and extension number (alternative names) -> first index.
        let index = |list: &[usize]| {
            let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(list.len());
            let mut by_number: HashMap<&str, usize> = HashMap::with_capacity(list.len());
            for &i in list {
                let name = conf.categories[i].name.as_str();
                by_name.entry(name).or_insert(i);
                if let Some(n) = extension_number(name) {
                    by_number.entry(n).or_insert(i);
                }
            }
            (by_name, by_number)
        };
        let auths = index(&by("auth"));
        let aors = index(&by("aor"));
        for ep in by("endpoint") {
            let cat = &conf.categories[ep];
            let Some(number) = extension_number(&cat.name) else {
                continue;
            };
            let key = (number.len(), number.to_owned());
            if extensions.contains_key(&key) {
                if pass_disabled {
                    continue;
                }
                b.warn(
                    &cat.loc,
                    format!(
                        "[{}]: extension {number} defined twice; first kept",
                        cat.name
                    ),
                );
                continue;
            }
            let find = |(by_name, by_number): &(HashMap<&str, usize>, HashMap<&str, usize>),
                        reference: Option<&str>|
             -> Option<usize> {
                match reference {
                    Some(r) => by_name.get(r).copied(),
                    None => by_name
                        .get(number)
                        .or_else(|| by_number.get(number))
                        .copied(),
                }
            };
            let auth_ref = cat.get("auth").and_then(first_item);
            let Some(auth) = find(&auths, auth_ref) else {
                if !pass_disabled {
                    b.warn(
                        &cat.loc,
                        format!(
                            "endpoint [{}] has no auth{}: not an extension, kept for export (not in effect)",
                            cat.name,
                            auth_ref.map(|r| format!(" ('{r}' is not defined)")).unwrap_or_default()
                        ),
                    );
                }
                continue;
            };
            let aor_ref = cat.get("aors").and_then(first_item);
            let aor = find(&aors, aor_ref);
            if aor.is_none() && !pass_disabled {
                b.warn(
                    &cat.loc,
                    format!("endpoint [{}] has no aor: it cannot register", cat.name),
                );
            }
            if let Some(aors_v) = cat.get("aors")
                && aors_v.split(',').filter(|s| !s.trim().is_empty()).count() > 1
            {
                b.warn(
                    &cat.loc,
                    format!(
                        "endpoint [{}]: only the first of aors={aors_v} is used",
                        cat.name
                    ),
                );
            }
            let ext = match build_extension(
                &mut b,
                number,
                cat,
                &conf.categories[auth],
                aor.map(|i| &conf.categories[i]),
                &transports_by_name,
                pass_disabled,
            ) {
                Ok(e) => e,
                Err(e) if pass_disabled => {
                    b.warn(
                        &e.loc,
                        format!("commented-out extension {number} skipped: {}", e.kind),
                    );
                    continue;
                }
                Err(e) => return Err(e),
            };
            if cat.managed_hint {
                b.report.legacy_managed += 1;
            }
            used.insert(ep);
            used.insert(auth);
            if let Some(a) = aor {
                used.insert(a);
            }
            extensions.insert(key, ext);
        }
    }

    let mut kept = Vec::new();
    for (i, kind) in &objects {
        if used.contains(i) {
            continue;
        }
        let cat = &conf.categories[*i];
        let options = own_options(cat, &["type"]);
        b.not_in_effect(kind, &options);
        *b.report.objects.entry(kind.clone()).or_default() += 1;
        kept.push(PjsipObject {
            kind: kind.clone(),
            name: cat.name.clone(),
            options,
            comments: cat.comments.clone(),
        });
    }
    let extensions: Vec<Extension> = extensions.into_values().collect();
    b.report.extensions = extensions.len();
    b.report.disabled = extensions.iter().filter(|e| !e.enabled).count();
    let mut report = b.report;
    report.warnings = b.warnings.iter().map(ToString::to_string).collect();
    Ok(ImportModel {
        extensions,
        objects: kept,
        report,
    })
}

#[allow(clippy::too_many_arguments)]
fn build_extension(
    b: &mut Builder<'_>,
    number: &str,
    ep: &Category,
    auth: &Category,
    aor: Option<&Category>,
    transports: &HashMap<&str, String>,
    disabled: bool,
) -> Result<Extension, ConfError> {
    let _ = b.cats;
    let mut e = Extension::new(number, number, "");
    e.enabled = !disabled;
    let mut extra = PjsipExtra {
        comments: ep.comments.clone(),
        ..PjsipExtra::default()
    };
    // endpoint
    e.context = non_empty(ep.get("context")).unwrap_or_else(|| "default".to_owned());
    let ep_vars: Vec<(String, String)> = own_options(ep, &[]);
    e.codecs = codecs_of(&ep_vars);
    if e.codecs.is_empty() && !disabled {
        b.warn(
            &ep.loc,
            format!("endpoint [{}] allows no codec: calls will fail", ep.name),
        );
    }
    if let Some(t) = non_empty(ep.get("transport")) {
        match transports.get(t.as_str()) {
            Some(proto) => {
                e.transport = Some(proto.clone());
                if t != format!("transport-{proto}") {
                    extra.transport_name = Some(t);
                }
            }
            None => {
                let proto = t
                    .strip_prefix("transport-")
                    .filter(|p| ["udp", "tcp", "tls", "ws", "wss"].contains(p));
                if !disabled {
                    b.warn(
                        &ep.get_var("transport")
                            .map_or(ep.loc.clone(), |v| v.loc.clone()),
                        format!("endpoint [{}]: transport '{t}' is not defined", ep.name),
                    );
                }
                match proto {
                    Some(p) => e.transport = Some(p.to_owned()),
                    None => extra.transport_name = Some(t),
                }
            }
        }
    }
    let cid = non_empty(ep.get("callerid"));
    if let Some(c) = &cid {
        if let Some(name) = callerid_name(c) {
            e.name = name;
        }
        if *c != derived_callerid(&e.name, number) {
            e.caller_id = Some(c.clone());
        }
    }
    e.direct_media = get_bool(ep, "direct_media", true)?;
    e.rtp_symmetric = get_bool(ep, "rtp_symmetric", false)?;
    e.force_rport = get_bool(ep, "force_rport", true)?;
    e.rewrite_contact = get_bool(ep, "rewrite_contact", false)?;
    e.dtmf_mode = match ep.get("dtmf_mode").map(|v| v.trim().to_ascii_lowercase()) {
        None => "rfc4733".to_owned(),
        Some(m) if m == "rfc2833" => "rfc4733".to_owned(),
        Some(m) if DTMF_MODES.contains(&m.as_str()) => m,
        Some(_) => {
            return Err(invalid(
                ep,
                "dtmf_mode",
                "expected rfc4733, inband, info, auto, auto_info or none",
            ));
        }
    };
    e.mailboxes = non_empty(ep.get("mailboxes"));
    e.subscribe_context = non_empty(ep.get("subscribe_context"));
    e.device_state_busy_at = get_u32(ep, "device_state_busy_at", 0)?;
    extra.endpoint = own_options(ep, ENDPOINT_TYPED);
    // auth
    let auth_type = auth
        .get("auth_type")
        .unwrap_or("userpass")
        .trim()
        .to_ascii_lowercase();
    if !["userpass", "md5", "digest", "google_oauth"].contains(&auth_type.as_str()) {
        return Err(invalid(
            auth,
            "auth_type",
            "expected userpass, md5, digest or google_oauth",
        ));
    }
    e.secret = auth.get("password").unwrap_or("").to_owned();
    for v in &auth.vars {
        let k = v.name.to_ascii_lowercase();
        let typed = k == "type"
            || k == "password"
            || (k == "auth_type" && auth_type == "userpass")
            || (k == "username" && auth.get("username") == Some(number));
        if !typed {
            extra.auth.push((v.name.clone(), v.value.clone()));
        }
    }
    if let Some(u) = auth.get("username")
        && u != number
        && !disabled
    {
        b.warn(&auth.loc, format!("auth [{}]: username '{u}' differs from the extension number; Dialtone authenticates {number}", auth.name));
    }
    if e.secret.is_empty() && !disabled {
        if auth.get("md5_cred").is_some() {
            let realm = auth.get("realm").unwrap_or("asterisk");
            b.warn(&auth.loc, format!("auth [{}]: auth_type=md5: extension {number} authenticates with md5_cred (MD5 digest only), which works only when it was computed with Dialtone's sip.realm (this auth's realm: {realm})", auth.name));
        } else {
            b.warn(&auth.loc, format!("auth [{}]: empty password", auth.name));
        }
    }
    // aor (Asterisk defaults when there is none)
    if let Some(aor) = aor {
        e.max_contacts = get_u32(aor, "max_contacts", 0)?;
        e.remove_existing = get_bool(aor, "remove_existing", false)?;
        e.qualify_frequency = get_u32(aor, "qualify_frequency", 0)?;
        extra.aor = own_options(aor, AOR_TYPED);
    } else {
        e.max_contacts = 0;
        e.remove_existing = false;
        e.qualify_frequency = 0;
    }
    if !disabled {
        b.not_in_effect("endpoint", &own_options(ep, &[]));
        b.not_in_effect("auth", &own_options(auth, &[]));
        if let Some(aor) = aor {
            b.not_in_effect("aor", &own_options(aor, &[]));
        }
    }
    e.pjsip_extra = extra;
    Ok(e)
}

/// Typed transports; `[global]` external_* / local_net fill in transports that have none.
pub fn transports(objects: &[PjsipObject]) -> Vec<Transport> {
    let global = objects.iter().find(|o| o.kind == "global");
    let g = |k: &str| global.and_then(|g| non_empty(g.get(k)));
    let g_nets: Vec<String> = global
        .map(|g| g.get_all("local_net").flat_map(split_list).collect())
        .unwrap_or_default();
    objects
        .iter()
        .filter(|o| o.kind == "transport")
        .map(|o| {
            let nets: Vec<String> = o.get_all("local_net").flat_map(split_list).collect();
            Transport {
                name: o.name.clone(),
                protocol: o
                    .get("protocol")
                    .unwrap_or("udp")
                    .trim()
                    .to_ascii_lowercase(),
                bind: non_empty(o.get("bind")),
                external_media_address: non_empty(o.get("external_media_address"))
                    .or_else(|| g("external_media_address")),
                external_signaling_address: non_empty(o.get("external_signaling_address"))
                    .or_else(|| g("external_signaling_address")),
                local_net: if nets.is_empty() {
                    g_nets.clone()
                } else {
                    nets
                },
            }
        })
        .collect()
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Typed identify objects.
pub fn identifies(objects: &[PjsipObject]) -> Vec<Identify> {
    objects
        .iter()
        .filter(|o| o.kind == "identify")
        .map(|o| Identify {
            name: o.name.clone(),
            endpoint: non_empty(o.get("endpoint")),
            matches: o.get_all("match").flat_map(split_list).collect(),
        })
        .collect()
}

/// Typed outbound registrations.
pub fn registrations(objects: &[PjsipObject]) -> Vec<Registration> {
    let num = |o: &PjsipObject, k: &str, d: u32| {
        o.get(k).and_then(|v| v.trim().parse().ok()).unwrap_or(d)
    };
    objects
        .iter()
        .filter(|o| o.kind == "registration")
        .map(|o| Registration {
            name: o.name.clone(),
            server_uri: non_empty(o.get("server_uri")),
            client_uri: non_empty(o.get("client_uri")),
            outbound_auth: non_empty(o.get("outbound_auth")),
            transport: non_empty(o.get("transport")),
            expiration: num(o, "expiration", 3600),
            retry_interval: num(o, "retry_interval", 60),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Diff (imports now, live reload later).

/// What applying an import changes, per object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub ext_added: Vec<Extension>,
    /// (stored, new) — `new` carries the stored id and created_at.
    pub ext_changed: Vec<(Extension, Extension)>,
    pub ext_removed: Vec<Extension>,
    pub obj_added: Vec<PjsipObject>,
    pub obj_changed: Vec<(PjsipObject, PjsipObject)>,
    pub obj_removed: Vec<PjsipObject>,
    /// The object order of the import (kind, name), when it differs from the stored one.
    pub obj_order: Option<Vec<(String, String)>>,
}

impl Changes {
    /// Nothing added, changed or removed (a different object order alone does not count:
    /// Asterisk does not depend on it).
    pub fn is_empty(&self) -> bool {
        self.ext_added.is_empty()
            && self.ext_changed.is_empty()
            && self.ext_removed.is_empty()
            && self.obj_added.is_empty()
            && self.obj_changed.is_empty()
            && self.obj_removed.is_empty()
    }

    /// `added/changed/removed` lines, one per object.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for e in &self.ext_added {
            s.push_str(&format!("added    extension {}\n", e.number));
        }
        for (old, new) in &self.ext_changed {
            s.push_str(&format!(
                "changed  extension {} ({})\n",
                new.number,
                changed_fields(old, new).join(", ")
            ));
        }
        for e in &self.ext_removed {
            s.push_str(&format!("removed  extension {}\n", e.number));
        }
        for o in &self.obj_added {
            s.push_str(&format!("added    {} {}\n", o.kind, o.name));
        }
        for (_, o) in &self.obj_changed {
            s.push_str(&format!("changed  {} {}\n", o.kind, o.name));
        }
        for o in &self.obj_removed {
            s.push_str(&format!("removed  {} {}\n", o.kind, o.name));
        }
        s.push_str(&format!(
            "{} added, {} changed, {} removed\n",
            self.ext_added.len() + self.obj_added.len(),
            self.ext_changed.len() + self.obj_changed.len(),
            self.ext_removed.len() + self.obj_removed.len()
        ));
        s
    }
}

/// Names of the fields that differ (secrets named, never shown).
pub fn changed_fields(a: &Extension, b: &Extension) -> Vec<&'static str> {
    let mut out = Vec::new();
    macro_rules! cmp {
        ($($f:ident),*) => { $( if a.$f != b.$f { out.push(stringify!($f)); } )* };
    }
    cmp!(
        number,
        name,
        email,
        secret,
        enabled,
        context,
        transport,
        codecs,
        max_contacts,
        remove_existing,
        qualify_frequency,
        caller_id,
        voicemail_enabled,
        voicemail_pin,
        allow_external,
        is_admin,
        notes,
        direct_media,
        rtp_symmetric,
        force_rport,
        rewrite_contact,
        dtmf_mode,
        mailboxes,
        subscribe_context,
        device_state_busy_at,
        pjsip_extra
    );
    out
}

/// Carry what pjsip.conf does not describe (id, timestamps, email, voicemail, flags, notes)
/// from the stored record into an imported one; keep the stored name when the callerid did
/// not change.
pub fn merge_stored(stored: &Extension, imported: &mut Extension) {
    imported.id = stored.id;
    imported.created_at = stored.created_at;
    imported.updated_at = stored.updated_at;
    imported.email = stored.email.clone();
    imported.voicemail_enabled = stored.voicemail_enabled;
    imported.voicemail_pin = stored.voicemail_pin.clone();
    imported.allow_external = stored.allow_external;
    imported.is_admin = stored.is_admin;
    imported.notes = stored.notes.clone();
    let stored_cid = stored
        .caller_id
        .clone()
        .unwrap_or_else(|| derived_callerid(&stored.name, &stored.number));
    let new_cid = imported
        .caller_id
        .clone()
        .unwrap_or_else(|| derived_callerid(&imported.name, &imported.number));
    if stored_cid == new_cid {
        imported.name = stored.name.clone();
        imported.caller_id = stored.caller_id.clone();
    }
}

/// Compare the store with an import. `remove_missing`: stored extensions/objects absent from
/// the import are removed (the file is the source of truth).
pub fn diff(
    stored_exts: &[Extension],
    stored_objs: &[PjsipObject],
    model: &ImportModel,
    remove_missing: bool,
) -> Changes {
    let mut ch = Changes::default();
    let by_number: HashMap<&str, &Extension> =
        stored_exts.iter().map(|e| (e.number.as_str(), e)).collect();
    let mut seen: HashSet<&str> = HashSet::with_capacity(model.extensions.len());
    for imp in &model.extensions {
        seen.insert(imp.number.as_str());
        match by_number.get(imp.number.as_str()) {
            None => ch.ext_added.push(imp.clone()),
            Some(old) => {
                let mut new = imp.clone();
                merge_stored(old, &mut new);
                if new != **old {
                    ch.ext_changed.push(((*old).clone(), new));
                }
            }
        }
    }
    if remove_missing {
        ch.ext_removed = stored_exts
            .iter()
            .filter(|e| !seen.contains(e.number.as_str()))
            .cloned()
            .collect();
    }
    let key = |o: &PjsipObject| (o.kind.clone(), o.name.clone());
    let stored: HashMap<(String, String), &PjsipObject> =
        stored_objs.iter().map(|o| (key(o), o)).collect();
    let mut seen_o = HashSet::new();
    for o in &model.objects {
        seen_o.insert(key(o));
        match stored.get(&key(o)) {
            None => ch.obj_added.push(o.clone()),
            Some(old) if *old != o => ch.obj_changed.push(((*old).clone(), o.clone())),
            Some(_) => {}
        }
    }
    if remove_missing {
        ch.obj_removed = stored_objs
            .iter()
            .filter(|o| !seen_o.contains(&key(o)))
            .cloned()
            .collect();
    }
    let new_order: Vec<(String, String)> = model.objects.iter().map(key).collect();
    let kept_order: Vec<(String, String)> = stored_objs
        .iter()
        .map(key)
        .filter(|k| !remove_missing || seen_o.contains(k))
        .collect();
    let stored_then_added: Vec<(String, String)> = kept_order
        .iter()
        .cloned()
        .chain(ch.obj_added.iter().map(key))
        .collect();
    if remove_missing && stored_then_added != new_order {
        ch.obj_order = Some(new_order);
    }
    ch
}
