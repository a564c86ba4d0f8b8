//! Asterisk 22 CLI emulation for `Action: Command`: pure formatting of a [`Snapshot`] in the
//! layouts tools scrape (`pjsip show …`, `core show …`, `dialplan show …`).

use super::events::ChannelSnapshot;
use super::model::{Aor, Contact, DialplanContext, Endpoint, Snapshot, Transport};
use super::{AMI_VERSION, ASTERISK_VERSION};

/// What a CLI command printed, and whether it succeeded (`Response: Success`/`Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliOutput {
    pub text: String,
    pub ok: bool,
}

impl CliOutput {
    fn ok(text: String) -> CliOutput {
        CliOutput { text, ok: true }
    }
}

/// A command that reloads something: the runtime performs it, [`reload_output`] prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliReload {
    /// `module reload <name>` / `pjsip reload` / `dialplan reload`; `None` = everything.
    Module(Option<String>),
}

fn words(cmd: &str) -> Vec<String> {
    cmd.split_whitespace().map(str::to_string).collect()
}

fn lower(w: &[String]) -> Vec<String> {
    w.iter().map(|s| s.to_ascii_lowercase()).collect()
}

/// Whether `cmd` is a reload command (it needs the backend first).
pub fn reload_command(cmd: &str) -> Option<CliReload> {
    let w = lower(&words(cmd));
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["pjsip", "reload"] => Some(CliReload::Module(Some("res_pjsip.so".into()))),
        ["dialplan", "reload"] => Some(CliReload::Module(Some("pbx_config.so".into()))),
        ["module", "reload"] | ["reload"] | ["core", "reload"] => Some(CliReload::Module(None)),
        ["module", "reload", m] => Some(CliReload::Module(Some((*m).to_string()))),
        _ => None,
    }
}

/// The text a reload command prints once the runtime answered (`Ok` = reloaded, `Err` = the
/// module is unknown).
pub fn reload_output(cmd: &str, result: Result<(), String>) -> CliOutput {
    let w = lower(&words(cmd));
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    let text = match (w.as_slice(), &result) {
        (["dialplan", "reload"], Ok(())) => "Dialplan reloaded.\n".to_string(),
        (["pjsip", "reload"], Ok(())) => String::new(),
        (["module", "reload", m], Ok(())) => format!("Module '{m}' reloaded successfully.\n"),
        (["module", "reload", m], Err(_)) => format!("No such module '{m}'\n"),
        (_, Ok(())) => String::new(),
        (_, Err(e)) => format!("{e}\n"),
    };
    // A pjsip.conf that does not load is an error (the command's exit status says so).
    if result.is_err() && w.as_slice() == ["pjsip", "reload"] {
        return CliOutput { text, ok: false };
    }
    CliOutput::ok(text)
}

/// Run a (non-reload) CLI command against a snapshot.
pub fn run(cmd: &str, snap: &Snapshot) -> CliOutput {
    let orig = words(cmd);
    let w = lower(&orig);
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    let arg = |i: usize| orig.get(i).map(String::as_str).unwrap_or("");
    match w.as_slice() {
        ["pjsip", "show", "endpoints"] | ["pjsip", "list", "endpoints"] => {
            CliOutput::ok(show_endpoints(snap))
        }
        ["pjsip", "show", "endpoint", _] => CliOutput::ok(show_endpoint(snap, arg(3))),
        ["pjsip", "show", "contacts"] | ["pjsip", "list", "contacts"] => {
            CliOutput::ok(show_contacts(snap))
        }
        ["pjsip", "show", "aors"] | ["pjsip", "list", "aors"] => CliOutput::ok(show_aors(snap)),
        ["pjsip", "show", "auths"] | ["pjsip", "list", "auths"] => CliOutput::ok(show_auths(snap)),
        ["pjsip", "show", "transports"] | ["pjsip", "list", "transports"] => {
            CliOutput::ok(show_transports(&snap.transports))
        }
        ["pjsip", "show", "registrations"] | ["pjsip", "list", "registrations"] => {
            CliOutput::ok(show_registrations())
        }
        ["core", "show", "version"] => CliOutput::ok(format!("{}\n", version_line())),
        ["core", "show", "channels"] => CliOutput::ok(show_channels(snap)),
        ["core", "show", "channels", "concise"] => CliOutput::ok(show_channels_concise(snap)),
        ["core", "show", "channels", "verbose"] => CliOutput::ok(show_channels_verbose(snap)),
        ["core", "show", "channels", "count"] => CliOutput::ok(channel_trailer(snap)),
        ["core", "show", "calls"] => CliOutput::ok(calls_trailer(snap)),
        ["core", "show", "hints"] => CliOutput::ok(show_hints(snap)),
        ["core", "show", "uptime"] => CliOutput::ok(show_uptime(snap, false)),
        ["core", "show", "uptime", "seconds"] => CliOutput::ok(show_uptime(snap, true)),
        ["core", "show", "settings"] => CliOutput::ok(show_settings(snap)),
        ["dialplan", "show"] => CliOutput::ok(show_dialplan(snap, None, None)),
        ["dialplan", "show", _] => {
            let a = arg(2);
            match a.split_once('@') {
                Some((e, c)) => CliOutput::ok(show_dialplan(
                    snap,
                    Some(c).filter(|c| !c.is_empty()),
                    Some(e),
                )),
                None => CliOutput::ok(show_dialplan(snap, Some(a), None)),
            }
        }
        ["module", "show"] => CliOutput::ok(show_modules("")),
        ["module", "show", "like", _] => CliOutput::ok(show_modules(arg(3))),
        _ => CliOutput {
            text: format!(
                "No such command '{0}' (type 'core show help {0}' for other possible commands)\n",
                orig.join(" ")
            ),
            ok: false,
        },
    }
}

/// `core show version`.
pub fn version_line() -> String {
    format!(
        "Asterisk {ASTERISK_VERSION} built by dialtone @ dialtone-{} on a {} running {} on 2025-01-01 00:00:00 UTC",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        match std::env::consts::OS {
            "linux" => "Linux",
            "macos" => "Darwin",
            "freebsd" => "FreeBSD",
            other => other,
        }
    )
}

// ------------------------------------------------------------------ pjsip table engine

const MAX_WIDTH: usize = 90;
const LAST_TABSTOP: usize = 62;

fn indent(level: usize) -> usize {
    level * 2 + 1 + 8
}

fn dotted(label: &str, width: usize) -> String {
    let mut s = label.to_string();
    while s.len() < width {
        s.push('.');
    }
    s
}

/// `%*s:  <label....>suffix` filling the line to `total` columns.
fn header(level: usize, title: &str, label: &str, suffix: &str, total: usize) -> String {
    let i = indent(level);
    let width = total.saturating_sub(i + 5 + suffix.len());
    format!("{title:>i$}:  <{}>{suffix}\n", dotted(label, width))
}

fn trunc(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `%-w.ws`.
fn pad(s: &str, w: usize) -> String {
    format!("{:<w$}", trunc(s, w))
}

fn rule() -> String {
    format!("{}\n", "=".repeat(MAX_WIDTH))
}

fn endpoint_header() -> String {
    let mut h = String::new();
    h += &header(
        0,
        "Endpoint",
        "Endpoint/CID",
        "  <State.....>  <Channels.>",
        90,
    );
    h += &header(1, "I/OAuth", "AuthId/UserName", "", 90);
    h += &header(1, "Aor", "Aor", "  <MaxContact>", 77);
    h += &contact_header(2);
    h += &transport_header(1);
    h += &header(1, "Identify", "Identify/Endpoint", "", 90);
    h += &header(2, "Match", "criteria", "", 51);
    h += &header(1, "Channel", "ChannelId", "  <State.....>  <Time.....>", 90);
    let i = indent(2);
    h += &format!(
        "{:>i$}: <DialedExten...........>  CLCID: <ConnectedLineCID.......>\n",
        "Exten"
    );
    h
}

fn contact_header(level: usize) -> String {
    header(
        level,
        "Contact",
        "Aor/ContactUri",
        " <Hash....> <Status> <RTT(ms)..>",
        90,
    )
}

fn transport_header(level: usize) -> String {
    let i = indent(level);
    let head = format!(
        "{:>i$}:  <TransportId........>  <Type>  <cos>  <tos>  <",
        "Transport"
    );
    let width = MAX_WIDTH.saturating_sub(head.len() + 1);
    format!("{head}{}>\n", dotted("BindAddress", width))
}

fn endpoint_line(e: &Endpoint) -> String {
    let i = indent(0);
    let w = LAST_TABSTOP - i - 2;
    let name = if e.callerid_num.is_empty() {
        e.id.clone()
    } else {
        format!("{}/{}", e.id, e.callerid_num)
    };
    let busy = if e.device_state_busy_at == 0 {
        "inf".to_string()
    } else {
        e.device_state_busy_at.to_string()
    };
    format!(
        "{:>i$}:  {}  {}  {} of {}\n",
        "Endpoint",
        pad(&name, w),
        pad(e.device_state.human(), 12),
        e.active_channels,
        busy
    )
}

fn aor_line(level: usize, a: &Aor) -> String {
    let i = indent(level);
    let w = LAST_TABSTOP - i - 12;
    format!("{:>i$}:  {} {:>12}\n", "Aor", pad(&a.id, w), a.max_contacts)
}

fn contact_line(level: usize, c: &Contact) -> String {
    let i = indent(level);
    let w = (LAST_TABSTOP + 1).saturating_sub(i + 9 + c.aor.len());
    let rtt = match (c.status, c.rtt_usec) {
        (super::events::ContactState::Reachable, Some(u)) => format!("{:11.3}", u as f64 / 1000.0),
        _ => format!("{:>11}", "nan"),
    };
    format!(
        "{:>i$}:  {}/{} {} {} {}\n",
        "Contact",
        c.aor,
        pad(&c.uri, w),
        pad(&c.hash(), 10),
        pad(c.status.short(), 7),
        rtt
    )
}

fn transport_line(level: usize, t: &Transport) -> String {
    let i = indent(level);
    format!(
        "{:>i$}:  {:<21}  {:>6}  {:>5}  {:>5}  {}\n",
        "Transport", t.id, t.protocol, t.cos, t.tos, t.bind
    )
}

fn channel_lines(level: usize, c: &ChannelSnapshot, now: f64) -> String {
    let i = indent(level);
    let id = format!("{}/{}", c.name, c.application);
    let i2 = indent(level + 1);
    format!(
        "{:>i$}: {} {}  {}\n{:>i2$}: {}  CLCID: \"{}\" <{}>\n",
        "Channel",
        pad(&id, 51),
        pad(c.state.desc(), 12),
        pad(&hms(c.age(now)), 11),
        "Exten",
        pad(&c.exten, 24),
        c.connected_line_name,
        c.connected_line_num
    )
}

fn endpoint_body(e: &Endpoint, snap: &Snapshot) -> String {
    let mut out = endpoint_line(e);
    let i = indent(1);
    for a in &e.outbound_auths {
        out += &format!("{:>i$}:  {}/{}\n", "OutAuth", a.id, a.username);
    }
    for a in &e.auths {
        out += &format!("{:>i$}:  {}/{}\n", "InAuth", a.id, a.username);
    }
    for a in &e.aors {
        out += &aor_line(1, a);
        for c in &a.contacts {
            out += &contact_line(2, c);
        }
    }
    if let Some(t) = snap.transports.iter().find(|t| t.id == e.transport) {
        out += &transport_line(1, t);
    }
    for id in &e.identifies {
        out += &format!("{:>i$}:  {}/{}\n", "Identify", id.id, id.endpoint);
        let i2 = indent(2);
        for m in &id.matches {
            out += &format!("{:>i2$}: {m}\n", "Match");
        }
    }
    for c in snap.channels.iter().filter(|c| c.endpoint == e.id) {
        out += &channel_lines(1, c, snap.now_unix);
    }
    out
}

fn table(header: &str, bodies: Vec<String>, blank_after_each: bool) -> String {
    let mut out = format!("\n{header}{}\n", rule());
    if bodies.is_empty() {
        out += "No objects found.\n\n";
        return out;
    }
    let n = bodies.len();
    for b in bodies {
        out += &b;
        if blank_after_each {
            out.push('\n');
        }
    }
    out += &format!("\nObjects found: {n}\n\n");
    out
}

/// `pjsip show endpoints`.
pub fn show_endpoints(snap: &Snapshot) -> String {
    let bodies = snap
        .endpoints
        .iter()
        .map(|e| endpoint_body(e, snap))
        .collect();
    table(&endpoint_header(), bodies, true)
}

/// `pjsip show endpoint <id>`.
pub fn show_endpoint(snap: &Snapshot, id: &str) -> String {
    let id = id.strip_prefix("PJSIP/").unwrap_or(id);
    let Some(e) = snap.endpoint(id) else {
        return format!("Unable to find object {id}.\n\n");
    };
    let mut out = format!("\n{}{}\n", endpoint_header(), rule());
    out += &endpoint_body(e, snap);
    out += "\n\n";
    out += &option_table(&e.options);
    out
}

/// The sorted `ParameterName : ParameterValue` table.
pub fn option_table(options: &[(String, String)]) -> String {
    let mut opts: Vec<&(String, String)> = options.iter().collect();
    opts.sort_by(|a, b| a.0.cmp(&b.0));
    let nw = opts.iter().map(|(k, _)| k.len()).max().unwrap_or(0).max(13);
    let vw = opts
        .iter()
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or(0)
        .max("ParameterValue".len());
    let mut out = format!(" {:<nw$} : ParameterValue\n", "ParameterName");
    out += &format!(" {}\n", "=".repeat(nw + vw + 3));
    for (k, v) in opts {
        out += &format!(" {k:<nw$} : {v}\n");
    }
    out.push('\n');
    out
}

/// `pjsip show contacts`.
pub fn show_contacts(snap: &Snapshot) -> String {
    let bodies = snap.contacts().map(|c| contact_line(0, c)).collect();
    table(&contact_header(0), bodies, false)
}

/// `pjsip show aors`.
pub fn show_aors(snap: &Snapshot) -> String {
    let h = header(0, "Aor", "Aor", "  <MaxContact>", 77) + &contact_header(1);
    let bodies = snap
        .aors()
        .into_iter()
        .map(|a| {
            let mut b = aor_line(0, a);
            for c in &a.contacts {
                b += &contact_line(1, c);
            }
            b
        })
        .collect();
    table(&h, bodies, true)
}

/// `pjsip show auths`.
pub fn show_auths(snap: &Snapshot) -> String {
    let h = header(0, "I/OAuth", "AuthId/UserName", "", 90);
    let i = indent(0);
    let bodies = snap
        .auths()
        .into_iter()
        .map(|a| format!("{:>i$}:  {}/{}\n", "Auth", a.id, a.username))
        .collect();
    table(&h, bodies, false)
}

/// `pjsip show transports`.
pub fn show_transports(transports: &[Transport]) -> String {
    let bodies = transports.iter().map(|t| transport_line(0, t)).collect();
    table(&transport_header(0), bodies, false)
}

/// `pjsip show registrations` (Dialtone has no outbound registrations yet).
pub fn show_registrations() -> String {
    let h = " <Registration/ServerURI..............................>  <Auth....................>  <Status.......>\n";
    table(h, Vec::new(), false)
}

// ------------------------------------------------------------------ core show

fn hms(secs: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

fn plural(n: usize, word: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {many}")
    }
}

fn channel_trailer(snap: &Snapshot) -> String {
    format!(
        "{}\n{}\n{}\n",
        plural(snap.channels.len(), "active channel", "active channels"),
        plural(snap.active_calls, "active call", "active calls"),
        plural(
            snap.processed_calls as usize,
            "call processed",
            "calls processed"
        )
    )
}

fn calls_trailer(snap: &Snapshot) -> String {
    format!(
        "{}\n{}\n",
        plural(snap.active_calls, "active call", "active calls"),
        plural(
            snap.processed_calls as usize,
            "call processed",
            "calls processed"
        )
    )
}

fn app_data(c: &ChannelSnapshot) -> String {
    if c.application.is_empty() {
        "(None)".into()
    } else {
        trunc(&format!("{}({})", c.application, c.app_data), 39).to_string()
    }
}

/// `core show channels`.
pub fn show_channels(snap: &Snapshot) -> String {
    let row = |a: &str, b: &str, c: &str, d: &str| {
        format!(
            "{} {} {} {}\n",
            pad(a, 64),
            pad(b, 32),
            pad(c, 7),
            pad(d, 30)
        )
    };
    let mut out = row("Channel", "Location", "State", "Application(Data)");
    for c in &snap.channels {
        let loc = if c.exten.is_empty() || c.context.is_empty() {
            "(None)".to_string()
        } else {
            format!("{}@{}:{}", c.exten, c.context, c.priority)
        };
        out += &row(&c.name, &loc, c.state.desc(), &app_data(c));
    }
    out + &channel_trailer(snap)
}

/// `core show channels concise`.
pub fn show_channels_concise(snap: &Snapshot) -> String {
    let mut out = String::new();
    for c in &snap.channels {
        let app = if c.application.is_empty() {
            "(None)"
        } else {
            &c.application
        };
        out += &format!(
            "{}!{}!{}!{}!{}!{}!{}!{}!{}!{}!{}!{}!{}!{}\n",
            c.name,
            c.context,
            c.exten,
            c.priority,
            c.state.desc(),
            app,
            c.app_data,
            c.caller_id_num,
            c.account_code,
            c.peer_account,
            c.ama_flags,
            c.age(snap.now_unix),
            c.bridge_id,
            c.uniqueid
        );
    }
    out
}

/// `core show channels verbose`.
pub fn show_channels_verbose(snap: &Snapshot) -> String {
    #[allow(clippy::too_many_arguments)]
    fn row(
        a: &str,
        b: &str,
        c: &str,
        p: &str,
        s: &str,
        app: &str,
        d: &str,
        cid: &str,
        dur: &str,
        acc: &str,
        peer: &str,
        br: &str,
    ) -> String {
        format!(
            "{} {} {} {:>4} {} {} {} {} {:>8} {} {} {}\n",
            pad(a, 80),
            pad(b, 24),
            pad(c, 24),
            trunc(p, 4),
            pad(s, 7),
            pad(app, 12),
            pad(d, 25),
            pad(cid, 15),
            trunc(dur, 8),
            pad(acc, 11),
            pad(peer, 11),
            pad(br, 20)
        )
    }
    let mut out = row(
        "Channel",
        "Context",
        "Extension",
        "Priority",
        "State",
        "Application",
        "Data",
        "CallerID",
        "Duration",
        "Accountcode",
        "PeerAccount",
        "BridgeID",
    );
    for c in &snap.channels {
        let app = if c.application.is_empty() {
            "(None)"
        } else {
            &c.application
        };
        let data = if c.app_data.is_empty() {
            "(Empty)"
        } else {
            &c.app_data
        };
        out += &row(
            &c.name,
            &c.context,
            &c.exten,
            &c.priority.to_string(),
            c.state.desc(),
            app,
            data,
            &c.caller_id_num,
            &hms(c.age(snap.now_unix)),
            &c.account_code,
            &c.peer_account,
            &c.bridge_id,
        );
    }
    out + &channel_trailer(snap)
}

/// `core show hints`.
pub fn show_hints(snap: &Snapshot) -> String {
    if snap.hints.is_empty() {
        return "There are no registered dialplan hints\n".into();
    }
    let mut out = String::from("\n    -= Registered Asterisk Dial Plan Hints =-\n");
    for h in &snap.hints {
        let hint = if h.hint.is_empty() { "None" } else { &h.hint };
        let presence = if h.presence.is_empty() {
            "not_set"
        } else {
            &h.presence
        };
        out += &format!(
            "{}: {}  State:{} Presence:{} Watchers {:>2}\n",
            pad(&format!("{}@{}", h.exten, h.context), 30),
            pad(hint, 60),
            pad(super::events::extension_state_text(h.state), 15),
            pad(presence, 15),
            h.watchers
        );
    }
    out += "----------------\n";
    out += &format!("- {} hints registered\n", snap.hints.len());
    out
}

fn uptime_text(mut secs: u64) -> String {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 3600;
    const DAY: u64 = 86400;
    const WEEK: u64 = 7 * DAY;
    const YEAR: u64 = 365 * DAY;
    let mut parts = Vec::new();
    for (unit, name) in [
        (YEAR, "year"),
        (WEEK, "week"),
        (DAY, "day"),
        (HOUR, "hour"),
        (MINUTE, "minute"),
    ] {
        if secs >= unit {
            let n = secs / unit;
            secs %= unit;
            parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
        }
    }
    if secs > 0 || parts.is_empty() {
        parts.push(format!("{secs} second{}", if secs == 1 { "" } else { "s" }));
    }
    parts.join(", ")
}

/// `core show uptime [seconds]`.
pub fn show_uptime(snap: &Snapshot, seconds: bool) -> String {
    let (up, reload) = snap.uptime();
    if seconds {
        format!("System uptime: {up}\nLast reload: {reload}\n")
    } else {
        format!(
            "System uptime: {}\nLast reload: {}\n",
            uptime_text(up),
            uptime_text(reload)
        )
    }
}

fn show_settings(snap: &Snapshot) -> String {
    format!(
        "\nPBX Core settings\n-----------------\n  Version:                     {ASTERISK_VERSION}\n  Build Options:               \n  Maximum calls:               Not set\n  Maximum open file handles:   Not set\n  Root console verbosity:      0\n  Current console verbosity:   0\n  Debug level:                 0\n  Trace level:                 0\n  Maximum load average:        0.000000\n  Minimum free memory:         0 MB\n  Startup time:                {}\n  Last reload time:            {}\n  System name:                 {}\n  Entity ID:                   00:00:00:00:00:00\n  PBX UUID:                    dialtone\n  Default language:            en\n  Language prefix:             Enabled\n  User name and group:         /\n  Executable includes:         Disabled\n  Transcode via SLIN:          Enabled\n  Transmit silence during rec: Disabled\n  Generic PLC:                 Disabled\n  Generic PLC on equal codecs: Disabled\n  Hide Msg Chan AMI events:    Disabled\n  Sounds search custom dir:    Disabled\n  Min DTMF duration::          80\n  Cache media frames:          Enabled\n  RTP use dynamic payloads:    1\n  RTP dynamic payload start:   35\n  Channel storage backend:     ao2_legacy\n  Manager interface version:   {AMI_VERSION}\n",
        snap.started_unix as i64, snap.last_reload_unix as i64, snap.system_name
    )
}

// ------------------------------------------------------------------ dialplan

fn dialplan_rows(ctx: &DialplanContext, exten: Option<&str>) -> (String, usize, usize) {
    let mut out = String::new();
    let (mut n_ext, mut n_prio) = (0, 0);
    for e in &ctx.extensions {
        if exten.is_some_and(|x| x != e.name) {
            continue;
        }
        n_ext += 1;
        for (i, p) in e.priorities.iter().enumerate() {
            n_prio += 1;
            let first = if i == 0 {
                match &e.cid {
                    Some(cid) => format!("'{}' (CID match '{cid}') => ", e.name),
                    None => format!("'{}' =>", e.name),
                }
            } else {
                match &p.label {
                    Some(l) => format!("   [{l}]"),
                    None => String::new(),
                }
            };
            let body = if p.priority == -1 {
                format!("hint: {}", p.app)
            } else {
                format!("{}. {}({})", p.priority, p.app, p.data)
            };
            let src = match &p.source {
                Some((f, l)) => format!("[{f}:{l}]"),
                None => format!("[{}]", ctx.registrar),
            };
            out += &format!("  {first:<17} {body:<45} {src}\n");
        }
    }
    if exten.is_none() {
        for inc in &ctx.includes {
            out += &format!(
                "  Include =>        {:<45} [{}]\n",
                format!("'{inc}'"),
                ctx.registrar
            );
        }
    }
    (out, n_ext, n_prio)
}

/// `dialplan show [context]` / `dialplan show exten@context`.
pub fn show_dialplan(snap: &Snapshot, context: Option<&str>, exten: Option<&str>) -> String {
    let mut out = String::new();
    let (mut n_ext, mut n_prio, mut n_ctx) = (0, 0, 0);
    let mut ctx_found = false;
    for ctx in &snap.contexts {
        if context.is_some_and(|c| c != ctx.name) {
            continue;
        }
        ctx_found = true;
        let (rows, e, p) = dialplan_rows(ctx, exten);
        if exten.is_some() && e == 0 {
            continue;
        }
        out += &format!(
            "[ Context '{}' created by '{}' ]\n",
            ctx.name, ctx.registrar
        );
        out += &rows;
        out.push('\n');
        n_ext += e;
        n_prio += p;
        n_ctx += 1;
    }
    if let Some(c) = context
        && !ctx_found
    {
        return format!("There is no existence of '{c}' context\n");
    }
    if let Some(e) = exten
        && n_ext == 0
    {
        return match context {
            Some(c) => format!("There is no existence of {e}@{c} extension\n"),
            None => format!("There is no existence of '{e}' extension\n"),
        };
    }
    out += &format!(
        "-= {} ({}) in {}. =-\n",
        plural(n_ext, "extension", "extensions"),
        plural(n_prio, "priority", "priorities"),
        plural(n_ctx, "context", "contexts")
    );
    out
}

// ------------------------------------------------------------------ modules

/// The modules Dialtone stands in for (name, description).
pub const MODULES: &[(&str, &str)] = &[
    ("app_dial.so", "Dialing Application"),
    ("chan_pjsip.so", "PJSIP Channel Driver"),
    ("pbx_config.so", "Text Extension Configuration"),
    ("res_pjsip.so", "Basic SIP resource"),
    (
        "res_pjsip_authenticator_digest.so",
        "PJSIP authentication resource",
    ),
    ("res_pjsip_registrar.so", "PJSIP Registrar Support"),
    ("res_pjsip_session.so", "PJSIP Session resource"),
    ("res_rtp_asterisk.so", "Asterisk RTP Stack"),
];

/// `module show [like X]`.
pub fn show_modules(like: &str) -> String {
    let like = like.to_ascii_lowercase();
    let mut out = format!(
        "{:<30} {:<40} {:<10} {:<11} {:>13}\n",
        "Module", "Description", "Use Count", "Status", "Support Level"
    );
    let mut n = 0;
    for (name, desc) in MODULES {
        if !like.is_empty() && !name.contains(&like) {
            continue;
        }
        n += 1;
        out += &format!(
            "{:<30} {} {:<10} {:<11} {:>13}\n",
            name,
            pad(desc, 40),
            0,
            "Running",
            "core"
        );
    }
    out += &format!("{n} modules loaded\n");
    out
}

/// Whether `name` is a module Dialtone emulates (`res_pjsip`, `res_pjsip.so`).
pub fn known_module(name: &str) -> Option<&'static str> {
    let n = name.trim();
    MODULES
        .iter()
        .map(|(m, _)| *m)
        .find(|m| *m == n || m.strip_suffix(".so") == Some(n))
}

#[cfg(test)]
#[path = "cli_tests.rs"]
pub(crate) mod tests;
