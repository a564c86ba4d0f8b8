//! Export: pjsip.conf (RayanPBX's or FreePBX's layout) and extensions.conf, spec §5.4/§5.5 and
//! seed-systems.md §5 rules 10–11.
//!
//! Everything Dialtone writes sits between `; BEGIN DIALTONE MANAGED` and
//! `; END DIALTONE MANAGED`. [`merge_into`] puts a new block into an existing file: it keeps
//! every line Dialtone does not manage (comments, templates, other sections, includes) and
//! drops the old block, legacy RayanPBX `; BEGIN MANAGED - …` blocks and the sections the new
//! block redefines.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use md5::{Digest, Md5};

use super::ConfError;
use super::model::{PjsipObject, derived_callerid, extension_number};
use super::parse::{NoFiles, ParseOptions, parse_str};
use crate::pbx::directory::Extension;

pub const BEGIN_MARKER: &str = "; BEGIN DIALTONE MANAGED";
pub const END_MARKER: &str = "; END DIALTONE MANAGED";

/// File layout of the pjsip.conf export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// One pjsip.conf; `[101]` endpoint, auth and aor share the name (RayanPBX, Asterisk sample).
    #[default]
    Rayanpbx,
    /// FreePBX: pjsip.conf including pjsip.transports.conf, pjsip.endpoint.conf, ...;
    /// the auth of 101 is `[101-auth]`.
    Freepbx,
}

/// How auth sections carry the secret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// `auth_type=userpass` + `password=`.
    #[default]
    Plaintext,
    /// `auth_type=md5` + `md5_cred=md5(number:realm:secret)`.
    Md5 { realm: String },
}

#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    pub layout: Layout,
    pub auth: AuthMode,
    /// Transports written when the store has none (built from config.yml by the caller).
    pub default_transports: Vec<PjsipObject>,
}

/// One output file. `create_only`: FreePBX's empty `*_custom.conf` files, written only when
/// missing (they belong to the user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    pub name: String,
    pub content: String,
    pub create_only: bool,
}

fn esc(v: &str) -> String {
    v.replace(';', "\\;")
}

fn yn(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Writes sections; a disabled section is written commented out (`;[101]`, `;key=value`).
struct W<'a> {
    out: &'a mut String,
    prefix: &'static str,
}

impl W<'_> {
    fn header(&mut self, comments: &[String], name: &str, kind: &str) {
        for c in comments {
            let _ = writeln!(self.out, ";{c}");
        }
        let _ = writeln!(self.out, "{}[{name}]", self.prefix);
        self.kv("type", kind);
    }

    fn kv(&mut self, k: &str, v: &str) {
        let _ = writeln!(self.out, "{}{k}={}", self.prefix, esc(v));
    }

    fn end(&mut self) {
        self.out.push('\n');
    }
}

fn object(out: &mut String, o: &PjsipObject) {
    let mut w = W { out, prefix: "" };
    w.header(&o.comments, &o.name, &o.kind);
    for (k, v) in &o.options {
        w.kv(k, v);
    }
    w.end();
}

/// The auth section name of an extension in a layout.
pub fn auth_name(number: &str, layout: Layout) -> String {
    match layout {
        Layout::Rayanpbx => number.to_owned(),
        Layout::Freepbx => format!("{number}-auth"),
    }
}

fn endpoint(out: &mut String, e: &Extension, layout: Layout) {
    let x = &e.pjsip_extra;
    let mut w = W {
        out,
        prefix: if e.enabled { "" } else { ";" },
    };
    w.header(&x.comments, &e.number, "endpoint");
    w.kv("context", &e.context);
    w.kv("disallow", "all");
    for c in &e.codecs {
        w.kv("allow", c);
    }
    if let Some(t) = &x.transport_name {
        w.kv("transport", t);
    } else if let Some(p) = &e.transport {
        w.kv("transport", &format!("transport-{p}"));
    }
    w.kv("auth", &auth_name(&e.number, layout));
    w.kv("aors", &e.number);
    match &e.caller_id {
        Some(c) => w.kv("callerid", c),
        None if e.name != e.number => w.kv("callerid", &derived_callerid(&e.name, &e.number)),
        None => {}
    }
    w.kv("direct_media", yn(e.direct_media));
    w.kv("rtp_symmetric", yn(e.rtp_symmetric));
    w.kv("force_rport", yn(e.force_rport));
    w.kv("rewrite_contact", yn(e.rewrite_contact));
    w.kv("dtmf_mode", &e.dtmf_mode);
    if let Some(m) = &e.mailboxes {
        w.kv("mailboxes", m);
    }
    if let Some(s) = &e.subscribe_context {
        w.kv("subscribe_context", s);
    }
    w.kv("device_state_busy_at", &e.device_state_busy_at.to_string());
    for (k, v) in &x.endpoint {
        w.kv(k, v);
    }
    w.end();
}

fn auth(out: &mut String, e: &Extension, layout: Layout, mode: &AuthMode) {
    let x = &e.pjsip_extra;
    let mut w = W {
        out,
        prefix: if e.enabled { "" } else { ";" },
    };
    w.header(&[], &auth_name(&e.number, layout), "auth");
    let extra = |k: &str| {
        x.auth
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    let md5 = match mode {
        AuthMode::Md5 { realm } if !e.secret.is_empty() => Some(realm),
        _ => None,
    };
    let mut skip: Vec<&str> = vec!["auth_type", "username"];
    match md5 {
        Some(realm) => {
            let user = extra("username").unwrap_or(&e.number);
            let realm = extra("realm").unwrap_or(realm);
            let cred = hex::encode(Md5::digest(format!("{user}:{realm}:{}", e.secret)));
            w.kv("auth_type", "md5");
            w.kv("username", user);
            w.kv("md5_cred", &cred);
            skip.push("md5_cred");
        }
        None => {
            w.kv("auth_type", extra("auth_type").unwrap_or("userpass"));
            w.kv("username", extra("username").unwrap_or(&e.number));
            if !e.secret.is_empty() {
                w.kv("password", &e.secret);
            }
        }
    }
    for (k, v) in &x.auth {
        if !skip.iter().any(|s| k.eq_ignore_ascii_case(s)) {
            w.kv(k, v);
        }
    }
    w.end();
}

fn aor(out: &mut String, e: &Extension) {
    let mut w = W {
        out,
        prefix: if e.enabled { "" } else { ";" },
    };
    w.header(&[], &e.number, "aor");
    w.kv("max_contacts", &e.max_contacts.to_string());
    w.kv("remove_existing", yn(e.remove_existing));
    w.kv("qualify_frequency", &e.qualify_frequency.to_string());
    for (k, v) in &e.pjsip_extra.aor {
        w.kv(k, v);
    }
    w.end();
}

fn managed(body: &str) -> String {
    format!("{BEGIN_MARKER}\n{body}{END_MARKER}\n")
}

const HEADER: &str = "; Written by Dialtone. Lines between the DIALTONE MANAGED markers are rewritten on\n\
                      ; every export (dialtone pjsip export); edit outside them.\n\n";

/// The pjsip.conf file(s) for the store's extensions and objects.
pub fn export_pjsip(
    exts: &[Extension],
    objects: &[PjsipObject],
    opts: &ExportOptions,
) -> Vec<ExportFile> {
    let has_transport = objects.iter().any(|o| o.kind == "transport");
    let transports: Vec<&PjsipObject> = if has_transport {
        objects.iter().filter(|o| o.kind == "transport").collect()
    } else {
        opts.default_transports.iter().collect()
    };
    fn of_kind<'a>(
        objects: &'a [PjsipObject],
        k: &'a str,
    ) -> impl Iterator<Item = &'a PjsipObject> {
        objects.iter().filter(move |o| o.kind == k)
    }
    let of = |k: &'static str| of_kind(objects, k);
    match opts.layout {
        Layout::Rayanpbx => {
            let mut body = String::with_capacity(exts.len() * 600 + 4096);
            for t in &transports {
                object(&mut body, t);
            }
            for o in objects
                .iter()
                .filter(|o| o.kind == "global" || o.kind == "system")
            {
                object(&mut body, o);
            }
            for e in exts {
                endpoint(&mut body, e, Layout::Rayanpbx);
                auth(&mut body, e, Layout::Rayanpbx, &opts.auth);
                aor(&mut body, e);
            }
            for o in objects
                .iter()
                .filter(|o| !["transport", "global", "system"].contains(&o.kind.as_str()))
            {
                object(&mut body, o);
            }
            vec![ExportFile {
                name: "pjsip.conf".into(),
                content: format!("{HEADER}{}", managed(&body)),
                create_only: false,
            }]
        }
        Layout::Freepbx => {
            let parts = [
                "transports",
                "endpoint",
                "aor",
                "auth",
                "registration",
                "identify",
            ];
            let mut files = Vec::new();
            let mut main = String::from(HEADER);
            let mut main_body = String::from("#include pjsip_custom.conf\n");
            for p in parts {
                let _ = writeln!(
                    main_body,
                    "#include pjsip.{p}.conf\n#include pjsip.{p}_custom_post.conf"
                );
            }
            main_body.push('\n');
            for o in objects.iter().filter(|o| {
                ![
                    "transport",
                    "endpoint",
                    "aor",
                    "auth",
                    "registration",
                    "identify",
                    "global",
                ]
                .contains(&o.kind.as_str())
            }) {
                object(&mut main_body, o);
            }
            for o in of("global") {
                object(&mut main_body, o);
            }
            main_body.push_str("#include pjsip_custom_post.conf\n");
            main.push_str(&managed(&main_body));
            files.push(ExportFile {
                name: "pjsip.conf".into(),
                content: main,
                create_only: false,
            });
            for p in parts {
                let mut body = format!("#include pjsip.{p}_custom.conf\n\n");
                match p {
                    "transports" => transports.iter().for_each(|t| object(&mut body, t)),
                    "endpoint" => {
                        exts.iter()
                            .for_each(|e| endpoint(&mut body, e, Layout::Freepbx));
                        of("endpoint").for_each(|o| object(&mut body, o));
                    }
                    "aor" => {
                        exts.iter().for_each(|e| aor(&mut body, e));
                        of("aor").for_each(|o| object(&mut body, o));
                    }
                    "auth" => {
                        exts.iter()
                            .for_each(|e| auth(&mut body, e, Layout::Freepbx, &opts.auth));
                        of("auth").for_each(|o| object(&mut body, o));
                    }
                    other => of(other).for_each(|o| object(&mut body, o)),
                }
                files.push(ExportFile {
                    name: format!("pjsip.{p}.conf"),
                    content: format!("{HEADER}{}", managed(&body)),
                    create_only: false,
                });
            }
            let mut custom = vec![
                "pjsip_custom.conf".to_owned(),
                "pjsip_custom_post.conf".to_owned(),
            ];
            for p in parts {
                custom.push(format!("pjsip.{p}_custom.conf"));
                custom.push(format!("pjsip.{p}_custom_post.conf"));
            }
            files.extend(custom.into_iter().map(|name| ExportFile {
                name,
                content: String::new(),
                create_only: true,
            }));
            files
        }
    }
}

/// The `[context]` blocks of extensions.conf for the enabled extensions: hints, a Dial per
/// extension (VoiceMail when enabled), and RayanPBX's pattern line per number shape (`_1XX`).
pub fn export_extensions_conf(exts: &[Extension]) -> String {
    let mut contexts: Vec<&str> = Vec::new();
    for e in exts.iter().filter(|e| e.enabled) {
        if !contexts.contains(&e.context.as_str()) {
            contexts.push(&e.context);
        }
    }
    let mut body = String::with_capacity(exts.len() * 200 + 256);
    for ctx in contexts {
        let members: Vec<&Extension> = exts
            .iter()
            .filter(|e| e.enabled && e.context == ctx)
            .collect();
        let _ = writeln!(body, "[{ctx}]");
        for e in &members {
            let _ = writeln!(body, "exten => {n},hint,PJSIP/{n}", n = e.number);
        }
        body.push('\n');
        for e in &members {
            let n = &e.number;
            let _ = writeln!(body, "exten => {n},1,NoOp(Call to extension {n})");
            let _ = writeln!(body, " same => n,Dial(PJSIP/{n},30)");
            if e.voicemail_enabled {
                let mbox = e
                    .mailboxes
                    .as_deref()
                    .and_then(|m| m.split(',').next())
                    .map_or_else(|| format!("{n}@default"), str::to_owned);
                let _ = writeln!(body, " same => n,VoiceMail({mbox},u)");
            }
            let _ = writeln!(body, " same => n,Hangup()");
            body.push('\n');
        }
        let mut patterns: Vec<String> = Vec::new();
        for e in &members {
            let mut chars = e.number.chars();
            let first = chars.next().unwrap_or('X');
            let p = format!("_{first}{}", "X".repeat(chars.count()));
            if !patterns.contains(&p) {
                patterns.push(p);
            }
        }
        for p in patterns {
            let _ = writeln!(body, "exten => {p},1,NoOp(Call to extension ${{EXTEN}})");
            let _ = writeln!(body, " same => n,Dial(PJSIP/${{EXTEN}},30)");
            let _ = writeln!(body, " same => n,Hangup()");
            body.push('\n');
        }
    }
    format!("{HEADER}{}", managed(&body))
}

/// The (name, type) pairs a pjsip export writes, for [`merge_into`].
pub fn written_sections(
    exts: &[Extension],
    objects: &[PjsipObject],
    opts: &ExportOptions,
) -> HashSet<(String, String)> {
    let mut set = HashSet::new();
    for e in exts {
        set.insert((e.number.clone(), "endpoint".to_owned()));
        set.insert((auth_name(&e.number, opts.layout), "auth".to_owned()));
        set.insert((e.number.clone(), "aor".to_owned()));
    }
    let transports_written = !objects.iter().any(|o| o.kind == "transport");
    for o in objects.iter().chain(
        opts.default_transports
            .iter()
            .filter(|_| transports_written),
    ) {
        set.insert((o.name.clone(), o.kind.clone()));
    }
    set
}

/// Put a freshly exported file into an existing one: the first `DIALTONE MANAGED` block of
/// `new` replaces the old block (or is appended); legacy `; BEGIN MANAGED - …` blocks and
/// sections in `redefined` (name, type) — plus endpoint/auth/aor sections of the exported
/// extension numbers under any alternative name — are dropped; every other line is kept
/// verbatim. `existing` is parsed first, so a broken file is refused (error with file:line).
pub fn merge_into(
    existing_name: &Path,
    existing: &str,
    new: &str,
    redefined: &HashSet<(String, String)>,
) -> Result<String, ConfError> {
    let block = extract_block(new);
    let conf = parse_str(
        &NoFiles,
        existing_name,
        existing,
        ParseOptions {
            follow_includes: false,
            disabled_sections: true,
        },
    )?;
    let numbers: HashSet<&str> = redefined
        .iter()
        .filter(|(_, k)| k == "endpoint")
        .filter_map(|(n, _)| extension_number(n))
        .collect();
    let lines: Vec<&str> = existing.lines().collect();
    let mut drop = vec![false; lines.len() + 1];
    let top = conf.files.first().cloned();
    for b in &conf.managed_blocks {
        if Some(&b.file) == top.as_ref() {
            for l in b.first..=b.last {
                drop[l as usize - 1] = true;
            }
        }
    }
    for c in conf.categories.iter().filter(|c| !c.template) {
        let Some(kind) = c.kind() else { continue };
        let hit = redefined.contains(&(c.name.clone(), kind.clone()))
            || (["endpoint", "auth", "aor"].contains(&kind.as_str())
                && extension_number(&c.name).is_some_and(|n| numbers.contains(n)));
        if !hit {
            continue;
        }
        for s in &c.spans {
            if Some(&s.file) == top.as_ref() {
                for l in s.first..=s.last {
                    drop[l as usize - 1] = true;
                }
            }
        }
    }
    let mut out = String::with_capacity(existing.len() + block.len());
    let mut placed = false;
    let mut in_ours = false;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t == BEGIN_MARKER {
            in_ours = true;
            if !placed {
                out.push_str(&block);
                placed = true;
            }
            continue;
        }
        if in_ours {
            if t == END_MARKER {
                in_ours = false;
            }
            continue;
        }
        if drop[i] {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !placed {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&block);
    }
    Ok(out)
}

/// The managed block (markers included) of an exported file; the whole text if it has none.
fn extract_block(new: &str) -> String {
    match (new.find(BEGIN_MARKER), new.find(END_MARKER)) {
        (Some(b), Some(e)) if e > b => {
            let end = e + END_MARKER.len();
            format!("{}\n", &new[b..end])
        }
        _ => new.to_owned(),
    }
}
