//! AMI actions other than the session's own (Login, Logoff, Challenge, Events): each reads the
//! request, asks for what it needs ([`Outcome::Need`]) and formats the answer from the reply.

use std::borrow::Cow;

use regex::Regex;

use super::backend::{
    Control, ControlError, ControlOk, OriginateRequest, RedirectRequest, Reply, Request,
};
use super::cli::{self, CliReload};
use super::events::{self, AmiEvent, ChannelSnapshot, OriginateTarget, push_channel};
use super::frame::{self, Frame, end, list_ack, list_complete, push_kv, response_head};
use super::model::{Contact, Endpoint, Snapshot, to_camel_case};
use super::perms::{self, CALL, COMMAND, CONFIG, ORIGINATE, REPORTING, SYSTEM, USER};
use super::{AMI_VERSION, ASTERISK_VERSION};

/// The result of running an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The complete answer.
    Done(String),
    /// Run the request, then call the action again with the reply.
    Need(Request),
}

/// Who runs the action.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub write: u32,
    pub now_unix: f64,
    pub system_name: &'a str,
}

/// One action: name, required write classes (any one suffices; 0 = anyone), synopsis.
pub struct ActionDef {
    pub name: &'static str,
    pub authority: u32,
    pub synopsis: &'static str,
}

const fn def(name: &'static str, authority: u32, synopsis: &'static str) -> ActionDef {
    ActionDef {
        name,
        authority,
        synopsis,
    }
}

/// Every action Dialtone answers.
pub const ACTIONS: &[ActionDef] = &[
    def("Login", 0, "Login Manager."),
    def("Logoff", 0, "Logoff Manager."),
    def("Challenge", 0, "Generate Challenge for MD5 Auth."),
    def("Ping", 0, "Keepalive command."),
    def("Events", 0, "Control Event Flow."),
    def("ListCommands", 0, "List available manager commands."),
    def(
        "CoreSettings",
        SYSTEM | REPORTING,
        "Show PBX core settings (version etc).",
    ),
    def(
        "CoreStatus",
        SYSTEM | REPORTING,
        "Show PBX core status variables.",
    ),
    def(
        "CoreShowChannels",
        SYSTEM | REPORTING,
        "List currently active channels.",
    ),
    def("Status", SYSTEM | CALL | REPORTING, "List channel status."),
    def("Hangup", SYSTEM | CALL, "Hangup channel."),
    def("Originate", ORIGINATE, "Originate a call."),
    def("Redirect", CALL, "Redirect (transfer) a call."),
    def(
        "BlindTransfer",
        CALL,
        "Blind transfer channel(s) to the given destination",
    ),
    def(
        "Getvar",
        CALL | REPORTING,
        "Gets a channel variable or function value.",
    ),
    def("Setvar", CALL, "Sets a channel variable or function value."),
    def(
        "ExtensionState",
        CALL | REPORTING,
        "Check Extension Status.",
    ),
    def(
        "ExtensionStateList",
        CALL | REPORTING,
        "List the current known extension states.",
    ),
    def("PresenceState", CALL | REPORTING, "Check Presence State."),
    def(
        "PresenceStateList",
        CALL | REPORTING,
        "List the current known presence states.",
    ),
    def(
        "DeviceStateList",
        CALL | REPORTING,
        "List the current known device states.",
    ),
    def("Reload", CONFIG | SYSTEM, "Send a reload event."),
    def("Command", COMMAND, "Execute Asterisk CLI Command."),
    def("PJSIPShowEndpoints", SYSTEM, "Lists PJSIP endpoints."),
    def(
        "PJSIPShowEndpoint",
        SYSTEM,
        "Detail listing of an endpoint and its objects.",
    ),
    def("PJSIPShowContacts", SYSTEM, "Lists PJSIP Contacts."),
    def("PJSIPShowAors", SYSTEM, "Lists PJSIP AORs."),
    def("PJSIPShowAuths", SYSTEM, "Lists PJSIP Auths."),
    def(
        "PJSIPShowRegistrationsInbound",
        SYSTEM,
        "Lists PJSIP inbound registrations.",
    ),
    def(
        "PJSIPShowRegistrationInboundContactStatuses",
        SYSTEM,
        "Lists ContactStatuses for PJSIP inbound registrations.",
    ),
    def(
        "PJSIPShowRegistrationsOutbound",
        SYSTEM | REPORTING,
        "Lists PJSIP outbound registrations.",
    ),
    def("UserEvent", USER, "Send an arbitrary event."),
    def("MailboxStatus", CALL | REPORTING, "Check mailbox."),
    def(
        "MailboxCount",
        CALL | REPORTING,
        "Check Mailbox Message Count.",
    ),
];

/// Look an action up by name (case-insensitive).
pub fn find(name: &str) -> Option<&'static ActionDef> {
    ACTIONS.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// `(writeperm & authority) != 0 || authority == 0`.
pub fn permitted(def: &ActionDef, write: u32) -> bool {
    def.authority == 0 || write & def.authority != 0
}

/// `ListCommands`.
pub fn list_commands(action_id: Option<&str>, write: u32) -> String {
    let mut out = response_head("Success", action_id, None);
    for a in ACTIONS.iter().filter(|a| permitted(a, write)) {
        out.push_str(&format!(
            "{}: {} (Priv: {})\r\n",
            a.name,
            a.synopsis,
            perms::authority_to_str(a.authority)
        ));
    }
    end(out)
}

fn snapshot(reply: Option<&Reply>) -> Option<&Snapshot> {
    match reply {
        Some(Reply::Snapshot(s)) => Some(s),
        _ => None,
    }
}

/// Run `def` (already permitted) for `f`.
pub fn run(def: &ActionDef, ctx: Ctx<'_>, f: &Frame, reply: Option<&Reply>) -> Outcome {
    let id = f.action_id();
    let need_snapshot = || Outcome::Need(Request::Snapshot);
    macro_rules! with_snapshot {
        ($s:ident => $body:expr) => {
            match snapshot(reply) {
                Some($s) => Outcome::Done($body),
                None => need_snapshot(),
            }
        };
    }
    match def.name {
        "Ping" => {
            let mut out = response_head("Success", id, None);
            push_kv(&mut out, "Ping", "Pong");
            push_kv(&mut out, "Timestamp", &timestamp(ctx.now_unix));
            Outcome::Done(end(out))
        }
        "ListCommands" => Outcome::Done(list_commands(id, ctx.write)),
        "CoreSettings" => Outcome::Done(core_settings(id, ctx.system_name)),
        "CoreStatus" => with_snapshot!(s => core_status(id, s)),
        "CoreShowChannels" => with_snapshot!(s => core_show_channels(id, s)),
        "Status" => with_snapshot!(s => status(id, f, s, ctx)),
        "PJSIPShowEndpoints" => with_snapshot!(s => pjsip_show_endpoints(id, s)),
        "PJSIPShowEndpoint" => {
            let name = f.get("Endpoint");
            if name.is_empty() {
                return Outcome::Done(frame::error(
                    id,
                    "PJSIPShowEndpoint requires an endpoint name",
                ));
            }
            with_snapshot!(s => pjsip_show_endpoint(id, name, s))
        }
        "PJSIPShowContacts" => with_snapshot!(s => pjsip_show_contacts(id, s)),
        "PJSIPShowAors" => with_snapshot!(s => pjsip_show_aors(id, s)),
        "PJSIPShowAuths" => with_snapshot!(s => pjsip_show_auths(id, s)),
        "PJSIPShowRegistrationsInbound" => {
            with_snapshot!(s => pjsip_show_registrations_inbound(id, s))
        }
        "PJSIPShowRegistrationInboundContactStatuses" => {
            with_snapshot!(s => pjsip_show_contact_statuses(id, s))
        }
        "PJSIPShowRegistrationsOutbound" => Outcome::Done(
            list_ack(id, "Following are Events for each Outbound registration")
                + &list_complete(
                    "OutboundRegistrationDetailComplete",
                    id,
                    0,
                    &[("Registered", "0".into()), ("NotRegistered", "0".into())],
                ),
        ),
        "DeviceStateList" => with_snapshot!(s => device_state_list(id, s)),
        "ExtensionState" => {
            let exten = f.get("Exten");
            if exten.is_empty() {
                return Outcome::Done(frame::error(id, "Extension not specified"));
            }
            with_snapshot!(s => extension_state(id, f, s))
        }
        "ExtensionStateList" => with_snapshot!(s => extension_state_list(id, s)),
        "PresenceState" => Outcome::Done(presence_state(id, f.get("Provider"))),
        "PresenceStateList" => Outcome::Done(
            list_ack(id, "Presence State Changes will follow")
                + &list_complete("PresenceStateListComplete", id, 0, &[]),
        ),
        "Getvar" => getvar(id, f, ctx, snapshot(reply)),
        "Setvar" => setvar(id, f, reply),
        "Reload" => reload(id, f, reply),
        "Command" => command(id, f, reply),
        "Hangup" => hangup(id, f, reply),
        "Originate" => originate(id, f, ctx, reply),
        "Redirect" => redirect(id, f, reply),
        "UserEvent" => user_event(id, f, reply),
        "BlindTransfer" => blind_transfer(id, f, reply),
        "MailboxStatus" | "MailboxCount" => Outcome::Done(mailbox(id, def.name, f)),
        _ => Outcome::Done(frame::error(
            id,
            &format!(
                "Invalid/unknown command: {}. Use Action: ListCommands to show available commands.",
                def.name
            ),
        )),
    }
}

/// `sec.usec` (6 digits).
pub fn timestamp(unix: f64) -> String {
    let secs = unix.floor();
    let usec = ((unix - secs) * 1_000_000.0).round().min(999_999.0) as u64;
    format!("{}.{usec:06}", secs as i64)
}

/// `(YYYY-MM-DD, HH:MM:SS)` in UTC for unix seconds.
pub fn date_time(unix: i64) -> (String, String) {
    let days = unix.div_euclid(86_400);
    let rem = unix.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, (rem / 60) % 60, rem % 60),
    )
}

fn core_settings(id: Option<&str>, system_name: &str) -> String {
    let mut out = response_head("Success", id, None);
    for (k, v) in [
        ("AMIversion", AMI_VERSION),
        ("AsteriskVersion", ASTERISK_VERSION),
        ("SystemName", system_name),
        ("CoreMaxCalls", "0"),
        ("CoreMaxLoadAvg", "0.000000"),
        ("CoreRunUser", "dialtone"),
        ("CoreRunGroup", "dialtone"),
        ("CoreMaxFilehandles", "0"),
        ("CoreRealTimeEnabled", "No"),
        ("CoreCDRenabled", "Yes"),
        ("CoreHTTPenabled", "No"),
        ("SoundsSearchCustomDir", "No"),
    ] {
        push_kv(&mut out, k, v);
    }
    end(out)
}

fn core_status(id: Option<&str>, s: &Snapshot) -> String {
    let (sd, st) = date_time(s.started_unix as i64);
    let (rd, rt) = date_time(s.last_reload_unix as i64);
    let mut out = response_head("Success", id, None);
    push_kv(&mut out, "CoreStartupDate", &sd);
    push_kv(&mut out, "CoreStartupTime", &st);
    push_kv(&mut out, "CoreReloadDate", &rd);
    push_kv(&mut out, "CoreReloadTime", &rt);
    push_kv(&mut out, "CoreCurrentCalls", &s.channels.len().to_string());
    push_kv(
        &mut out,
        "CoreProcessedCalls",
        &s.processed_calls.to_string(),
    );
    end(out)
}

fn hms(secs: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

fn chan_body(ch: &ChannelSnapshot) -> AmiEvent {
    let mut ev = AmiEvent::new("x", 0);
    push_channel(&mut ev, "", ch);
    ev
}

fn pairs(ev: AmiEvent) -> Vec<(String, String)> {
    ev.body
        .into_iter()
        .map(|(k, v)| (k.into_owned(), v))
        .collect()
}

fn core_show_channels(id: Option<&str>, s: &Snapshot) -> String {
    let mut out = list_ack(id, "Channels will follow");
    for ch in &s.channels {
        let ev = chan_body(ch)
            .kv("Application", ch.application.clone())
            .kv("ApplicationData", ch.app_data.clone())
            .kv("Duration", hms(ch.age(s.now_unix)))
            .kv("BridgeId", ch.bridge_id.clone());
        out += &frame::list_item("CoreShowChannel", id, &pairs(ev));
    }
    out + &list_complete("CoreShowChannelsComplete", id, s.channels.len(), &[])
}

fn status(id: Option<&str>, f: &Frame, s: &Snapshot, ctx: Ctx<'_>) -> String {
    let wanted = f.get("Channel");
    let variables = f.get("Variables");
    if !variables.is_empty()
        && ctx.write & SYSTEM == 0
        && (variables.to_ascii_uppercase().contains("SHELL")
            || variables.to_ascii_uppercase().contains("EVAL"))
    {
        return frame::error(id, "Status Access Forbidden: Variables");
    }
    let chans: Vec<&ChannelSnapshot> = if wanted.is_empty() {
        s.channels.iter().collect()
    } else {
        match s.channel(wanted) {
            Some(c) => vec![c],
            None => return frame::error(id, "No such channel"),
        }
    };
    let all_vars = f.get("AllVariables").eq_ignore_ascii_case("true");
    let mut out = list_ack(id, "Channel status will follow");
    for ch in &chans {
        let mut ev = AmiEvent::new("Status", 0).kv("Privilege", "Call");
        push_channel(&mut ev, "", ch);
        let eff = |v: &str| {
            if v.is_empty() {
                "<unknown>".to_string()
            } else {
                v.to_string()
            }
        };
        ev = ev
            .kv("Type", "PJSIP")
            .kv("DNID", ch.dnid.clone())
            .kv("EffectiveConnectedLineNum", eff(&ch.connected_line_num))
            .kv(
                "EffectiveConnectedLineName",
                events::escape_c(&eff(&ch.connected_line_name)),
            )
            .kv("TimeToHangup", "0")
            .kv("BridgeID", ch.bridge_id.clone())
            .kv("Application", ch.application.clone())
            .kv("Data", ch.app_data.clone())
            .kv("Nativeformats", ch.native_formats.clone())
            .kv("Readformat", ch.read_format.clone())
            .kv("Readtrans", "")
            .kv("Writeformat", ch.write_format.clone())
            .kv("Writetrans", "")
            .kv("Callgroup", "0")
            .kv("Pickupgroup", "0")
            .kv("Seconds", ch.age(s.now_unix).to_string());
        if all_vars {
            for (k, v) in &ch.variables {
                ev.push("Variable", format!("{k}={v}"));
            }
        } else {
            for name in variables
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
            {
                let v = channel_value(ch, name).unwrap_or_default();
                ev.push("Variable", format!("{name}={v}"));
            }
        }
        if let Some(id) = id {
            ev.push("ActionID", id);
        }
        out += &frame::list_item("Status", None, &pairs(ev));
    }
    let n = chans.len();
    out + &list_complete("StatusComplete", id, n, &[("Items", n.to_string())])
}

// ------------------------------------------------------------------ PJSIP

fn object(kind: &str, name: &str, options: &[(String, String)]) -> AmiEvent {
    let mut ev = AmiEvent::new("x", 0)
        .kv("ObjectType", kind.to_string())
        .kv("ObjectName", name.to_string());
    for (k, v) in options {
        ev.push(Cow::Owned(to_camel_case(k)), v.clone());
    }
    ev
}

fn pjsip_show_endpoints(id: Option<&str>, s: &Snapshot) -> String {
    if s.endpoints.is_empty() {
        return frame::error(id, "No endpoints found");
    }
    let mut out = list_ack(
        id,
        "A listing of Endpoints follows, presented as EndpointList events",
    );
    for e in &s.endpoints {
        let mut ev = AmiEvent::new("EndpointList", 0)
            .kv("ObjectType", "endpoint")
            .kv("ObjectName", e.id.clone())
            .kv("Transport", e.transport.clone())
            .kv("Aor", e.aors_str())
            .kv(
                "Auths",
                super::model::join_ids(e.auths.iter().map(|a| a.id.as_str())),
            )
            .kv(
                "OutboundAuths",
                super::model::join_ids(e.outbound_auths.iter().map(|a| a.id.as_str())),
            );
        if e.aors.is_empty() {
            ev.push("Contacts", "");
        }
        for a in &e.aors {
            let list: String = a
                .contacts
                .iter()
                .map(|c| format!("{}/{},", a.id, c.uri))
                .collect();
            ev.push("Contacts", list);
        }
        ev = ev
            .kv("DeviceState", e.device_state.human())
            .kv("ActiveChannels", e.active_channels.to_string());
        out += &ev.to_list_item(id);
    }
    out + &list_complete("EndpointListComplete", id, s.endpoints.len(), &[])
}

fn contact_status_detail(c: &Contact, endpoint: &str) -> AmiEvent {
    let mut ev = AmiEvent::new("ContactStatusDetail", 0)
        .kv("AOR", c.aor.clone())
        .kv("URI", c.uri.clone())
        .kv("UserAgent", c.user_agent.clone())
        .kv("RegExpire", c.expiration_unix.to_string());
    if !c.via_addr.is_empty() {
        let via = if c.via_port != 0 {
            format!("{}:{}", c.via_addr, c.via_port)
        } else {
            c.via_addr.clone()
        };
        ev.push("ViaAddress", via);
    }
    if !c.call_id.is_empty() {
        ev.push("CallID", c.call_id.clone());
    }
    ev.kv("Status", c.status.as_str())
        .kv("RoundtripUsec", c.rtt_text())
        .kv("EndpointName", endpoint.to_string())
        .kv("ID", c.id())
        .kv(
            "AuthenticateQualify",
            u8::from(c.authenticate_qualify).to_string(),
        )
        .kv("OutboundProxy", c.outbound_proxy.clone())
        .kv("Path", c.path.clone())
        .kv("QualifyFrequency", c.qualify_frequency.to_string())
        .kv("QualifyTimeout", format!("{:.3}", c.qualify_timeout))
        .kv("Qualify2xxOnly", u8::from(c.qualify_2xx_only).to_string())
}

fn endpoint_detail_events(e: &Endpoint, s: &Snapshot) -> Vec<AmiEvent> {
    let mut evs = Vec::new();
    let mut ev = object("endpoint", &e.id, &e.options);
    ev.name = "EndpointDetail".into();
    evs.push(
        ev.kv("DeviceState", e.device_state.human())
            .kv("ActiveChannels", e.active_channels.to_string()),
    );
    for a in e.auths.iter().chain(e.outbound_auths.iter()) {
        let mut ev = object("auth", &a.id, &a.options).kv("EndpointName", e.id.clone());
        ev.name = "AuthDetail".into();
        evs.push(ev);
    }
    if let Some(t) = s.transports.iter().find(|t| t.id == e.transport) {
        let mut ev = object("transport", &t.id, &t.options).kv("EndpointName", e.id.clone());
        ev.name = "TransportDetail".into();
        evs.push(ev);
    }
    for a in &e.aors {
        let permanent = a.contacts.iter().filter(|c| c.permanent).count();
        let list: Vec<String> = a
            .contacts
            .iter()
            .map(|c| format!("{}/{}", a.id, c.uri))
            .collect();
        let mut ev = object("aor", &a.id, &a.options)
            .kv("Contacts", list.join(","))
            .kv("TotalContacts", a.contacts.len().to_string())
            .kv(
                "ContactsRegistered",
                (a.contacts.len() - permanent).to_string(),
            )
            .kv("EndpointName", e.id.clone());
        ev.name = "AorDetail".into();
        evs.push(ev);
    }
    for c in e.aors.iter().flat_map(|a| a.contacts.iter()) {
        evs.push(contact_status_detail(c, &e.id));
    }
    for i in &e.identifies {
        let mut ev = AmiEvent::new("IdentifyDetail", 0)
            .kv("ObjectType", "identify")
            .kv("ObjectName", i.id.clone())
            .kv("Endpoint", i.endpoint.clone())
            .kv("Match", i.matches.join(","))
            .kv("EndpointName", e.id.clone());
        ev.class = 0;
        evs.push(ev);
    }
    evs
}

fn pjsip_show_endpoint(id: Option<&str>, name: &str, s: &Snapshot) -> String {
    let name = name.strip_prefix("PJSIP/").unwrap_or(name);
    let Some(e) = s.endpoint(name) else {
        return frame::error(id, &format!("Unable to retrieve endpoint {name}"));
    };
    let mut out = list_ack(
        id,
        "Following are Events for each object associated with the Endpoint",
    );
    let evs = endpoint_detail_events(e, s);
    for ev in &evs {
        out += &ev.to_list_item(id);
    }
    out + &list_complete("EndpointDetailComplete", id, evs.len(), &[])
}

fn contact_list_item(c: &Contact) -> AmiEvent {
    AmiEvent::new("ContactList", 0)
        .kv("ObjectType", "contact")
        .kv("ObjectName", c.id())
        .kv("Uri", c.uri.clone())
        .kv("ExpirationTime", c.expiration_unix.to_string())
        .kv("QualifyFrequency", c.qualify_frequency.to_string())
        .kv("QualifyTimeout", format!("{:.6}", c.qualify_timeout))
        .kv(
            "Qualify2xxOnly",
            if c.qualify_2xx_only { "true" } else { "false" },
        )
        .kv(
            "AuthenticateQualify",
            if c.authenticate_qualify { "yes" } else { "no" },
        )
        .kv("OutboundProxy", c.outbound_proxy.clone())
        .kv("Path", c.path.clone())
        .kv("UserAgent", c.user_agent.clone())
        .kv("Endpoint", c.endpoint.clone())
        .kv("RegServer", c.reg_server.clone())
        .kv("ViaAddr", c.via_addr.clone())
        .kv("ViaPort", c.via_port.to_string())
        .kv("CallId", c.call_id.clone())
        .kv("PruneOnBoot", "no")
        .kv("Status", c.status.as_str())
        .kv("RoundtripUsec", c.rtt_text())
}

fn pjsip_show_contacts(id: Option<&str>, s: &Snapshot) -> String {
    let contacts: Vec<&Contact> = s.contacts().collect();
    if contacts.is_empty() {
        return frame::error(id, "No Contacts found");
    }
    let mut out = list_ack(
        id,
        "A listing of Contacts follows, presented as ContactList events",
    );
    for c in &contacts {
        out += &contact_list_item(c).to_list_item(id);
    }
    out + &list_complete("ContactListComplete", id, contacts.len(), &[])
}

fn pjsip_show_aors(id: Option<&str>, s: &Snapshot) -> String {
    let aors = s.aors();
    if aors.is_empty() {
        return frame::error(id, "No AORs found");
    }
    let mut out = list_ack(id, "A listing of AORs follows, presented as AorList events");
    for a in &aors {
        let statics: Vec<&str> = a
            .contacts
            .iter()
            .filter(|c| c.permanent)
            .map(|c| c.uri.as_str())
            .collect();
        let mut ev = object("aor", &a.id, &a.options).kv("Contacts", statics.join(","));
        ev.name = "AorList".into();
        out += &ev.to_list_item(id);
    }
    out + &list_complete("AorListComplete", id, aors.len(), &[])
}

fn pjsip_show_auths(id: Option<&str>, s: &Snapshot) -> String {
    let auths = s.auths();
    if auths.is_empty() {
        return frame::error(id, "No Auths found");
    }
    let mut out = list_ack(
        id,
        "A listing of Auths follows, presented as AuthList events",
    );
    for a in &auths {
        let mut ev = object("auth", &a.id, &a.options);
        ev.name = "AuthList".into();
        out += &ev.to_list_item(id);
    }
    out + &list_complete("AuthListComplete", id, auths.len(), &[])
}

fn pjsip_show_registrations_inbound(id: Option<&str>, s: &Snapshot) -> String {
    let mut out = list_ack(id, "Following are Events for each Inbound registration");
    let mut n = 0;
    for e in &s.endpoints {
        for a in &e.aors {
            let dynamic: Vec<&Contact> = a.contacts.iter().filter(|c| !c.permanent).collect();
            if dynamic.is_empty() {
                continue;
            }
            let list: String = dynamic
                .iter()
                .map(|c| format!("{}/{},", a.id, c.uri))
                .collect();
            let mut ev = object("aor", &a.id, &a.options).kv("Contacts", list);
            ev.name = "InboundRegistrationDetail".into();
            out += &ev.to_list_item(id);
            n += 1;
        }
    }
    out + &list_complete("InboundRegistrationDetailComplete", id, n, &[])
}

fn pjsip_show_contact_statuses(id: Option<&str>, s: &Snapshot) -> String {
    let mut out = list_ack(
        id,
        "Following are ContactStatusEvents for each Inbound registration",
    );
    let mut n = 0;
    for e in &s.endpoints {
        for c in e
            .aors
            .iter()
            .flat_map(|a| a.contacts.iter())
            .filter(|c| !c.permanent)
        {
            out += &contact_status_detail(c, &e.id).to_list_item(id);
            n += 1;
        }
    }
    out + &list_complete("ContactStatusDetailComplete", id, n, &[])
}

// ------------------------------------------------------------------ states

fn device_state_list(id: Option<&str>, s: &Snapshot) -> String {
    let mut out = list_ack(id, "Device State Changes will follow");
    for e in &s.endpoints {
        out += &events::device_state_change(&format!("PJSIP/{}", e.id), e.device_state)
            .to_list_item(id);
    }
    out + &list_complete("DeviceStateListComplete", id, s.endpoints.len(), &[])
}

fn extension_state(id: Option<&str>, f: &Frame, s: &Snapshot) -> String {
    let exten = f.get("Exten");
    let context = Some(f.get("Context"))
        .filter(|c| !c.is_empty())
        .unwrap_or("default");
    let hint = s
        .hints
        .iter()
        .find(|h| h.exten == exten && h.context == context);
    let (hint_text, status) = match hint {
        Some(h) => (h.hint.as_str(), h.state),
        None => ("", -1),
    };
    let mut out = response_head("Success", id, Some("Extension Status"));
    push_kv(&mut out, "Exten", exten);
    push_kv(&mut out, "Context", context);
    push_kv(&mut out, "Hint", hint_text);
    push_kv(&mut out, "Status", &status.to_string());
    push_kv(&mut out, "StatusText", events::extension_state_text(status));
    end(out)
}

fn extension_state_list(id: Option<&str>, s: &Snapshot) -> String {
    let hints: Vec<_> = s
        .hints
        .iter()
        .filter(|h| !h.exten.starts_with('_'))
        .collect();
    if hints.is_empty() {
        return frame::error(id, "No dialplan hints are available");
    }
    let mut out = list_ack(id, "Extension Statuses will follow");
    for h in &hints {
        let hint = if h.hint.is_empty() { "None" } else { &h.hint };
        out += &events::extension_status(&h.exten, &h.context, hint, h.state).to_list_item(id);
    }
    out + &list_complete("ExtensionStateListComplete", id, hints.len(), &[])
}

/// `BlindTransfer`: as if `Channel` transferred its bridge peer to `Exten` (Asterisk's
/// messages for each outcome).
fn blind_transfer(id: Option<&str>, f: &Frame, reply: Option<&Reply>) -> Outcome {
    let err = |m: &str| Outcome::Done(frame::error(id, m));
    let channel = f.get("Channel");
    if channel.is_empty() {
        return err("No channel specified");
    }
    let exten = f.get("Exten");
    if exten.is_empty() {
        return err("No extension specified");
    }
    let context = Some(f.get("Context")).filter(|c| !c.is_empty());
    match control_reply(reply) {
        None => Outcome::Need(Request::Control(Control::BlindTransfer {
            channel: channel.to_string(),
            exten: exten.to_string(),
            context: context.map(str::to_string),
        })),
        Some(Ok(_)) => Outcome::Done(frame::success(id, "Transfer succeeded")),
        Some(Err(ControlError::NoSuchChannel)) => err("Channel specified does not exist"),
        Some(Err(ControlError::ChannelNotUp)) => err("Transfer invalid"),
        Some(Err(ControlError::Unsupported(m))) => err(m),
        Some(Err(_)) => err("Transfer failed"),
    }
}

/// `UserEvent`: every request header but `Action` (ActionID included) follows
/// `UserEvent: <name>` in the broadcast event, as Asterisk does.
fn user_event(id: Option<&str>, f: &Frame, reply: Option<&Reply>) -> Outcome {
    let name = f.get("UserEvent");
    if name.is_empty() {
        return Outcome::Done(frame::error(id, "UserEvent header missing"));
    }
    match control_reply(reply) {
        None => {
            let mut body = vec![("UserEvent".to_string(), name.to_string())];
            for line in &f.lines {
                let Some((k, v)) = line.split_once(':') else {
                    continue;
                };
                let k = k.trim();
                if k.eq_ignore_ascii_case("Action") || k.eq_ignore_ascii_case("UserEvent") {
                    continue;
                }
                body.push((k.to_string(), v.trim_start().to_string()));
            }
            Outcome::Need(Request::Control(Control::UserEvent { body }))
        }
        Some(Ok(_)) => Outcome::Done(frame::success(id, "Event Sent")),
        Some(Err(ControlError::Unsupported(m))) => Outcome::Done(frame::error(id, m)),
        Some(Err(_)) => Outcome::Done(frame::error(id, "Failed to send event")),
    }
}

/// `MailboxStatus` / `MailboxCount`: Dialtone has no voicemail store yet, so every mailbox is
/// empty (the same 0/0 its MWI NOTIFYs carry).
fn mailbox(id: Option<&str>, action: &str, f: &Frame) -> String {
    let mailbox = f.get("Mailbox");
    if mailbox.is_empty() {
        return frame::error(id, "Mailbox not specified");
    }
    if action.eq_ignore_ascii_case("MailboxStatus") {
        let mut out = response_head("Success", id, Some("Mailbox Status"));
        push_kv(&mut out, "Mailbox", mailbox);
        push_kv(&mut out, "Waiting", "0");
        end(out)
    } else {
        let mut out = response_head("Success", id, Some("Mailbox Message Count"));
        push_kv(&mut out, "Mailbox", mailbox);
        push_kv(&mut out, "UrgMessages", "0");
        push_kv(&mut out, "NewMessages", "0");
        push_kv(&mut out, "OldMessages", "0");
        end(out)
    }
}

fn presence_state(id: Option<&str>, provider: &str) -> String {
    if provider.is_empty() {
        return frame::error(id, "No provider specified");
    }
    match provider.split_once(':') {
        Some((p, _)) if p.eq_ignore_ascii_case("CustomPresence") => {
            let mut out = response_head("Success", id, Some("Presence State"));
            push_kv(&mut out, "State", "not_set");
            end(out)
        }
        _ => frame::error(
            id,
            &format!("Invalid provider {provider} or provider in invalid state"),
        ),
    }
}

// ------------------------------------------------------------------ variables

/// A channel variable or a function Dialtone knows.
fn channel_value(ch: &ChannelSnapshot, name: &str) -> Option<String> {
    let upper = name.to_ascii_uppercase();
    let v = match upper.as_str() {
        "CALLERID(NUM)" | "CALLERIDNUM" => ch.caller_id_num.clone(),
        "CALLERID(NAME)" | "CALLERIDNAME" => ch.caller_id_name.clone(),
        "CONNECTEDLINE(NUM)" => ch.connected_line_num.clone(),
        "CONNECTEDLINE(NAME)" => ch.connected_line_name.clone(),
        "CHANNEL" | "CHANNEL(NAME)" => ch.name.clone(),
        "CHANNEL(STATE)" => ch.state.desc().to_string(),
        "CHANNEL(LANGUAGE)" | "LANGUAGE()" => ch.language.clone(),
        "CHANNEL(ACCOUNTCODE)" => ch.account_code.clone(),
        "CHANNEL(LINKEDID)" | "LINKEDID" => ch.linkedid.clone(),
        "UNIQUEID" | "CHANNEL(UNIQUEID)" => ch.uniqueid.clone(),
        "EXTEN" => ch.exten.clone(),
        "CONTEXT" => ch.context.clone(),
        "PRIORITY" => ch.priority.to_string(),
        _ => {
            return ch
                .variables
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone());
        }
    };
    Some(v)
}

fn dangerous(s: &str) -> bool {
    let u = s.to_ascii_uppercase();
    u.contains("SHELL") || u.contains("EVAL")
}

fn getvar(id: Option<&str>, f: &Frame, ctx: Ctx<'_>, snap: Option<&Snapshot>) -> Outcome {
    let var = f.get("Variable");
    if var.is_empty() {
        return Outcome::Done(frame::error(id, "No variable specified"));
    }
    if ctx.write & SYSTEM == 0 && dangerous(var) {
        return Outcome::Done(frame::error(id, "GetVar Access Forbidden: Variable"));
    }
    let Some(s) = snap else {
        return Outcome::Need(Request::Snapshot);
    };
    let channel = f.get("Channel");
    let value = if channel.is_empty() {
        s.globals
            .iter()
            .find(|(k, _)| k == var)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    } else {
        match s.channel(channel) {
            Some(ch) => channel_value(ch, var).unwrap_or_default(),
            None => return Outcome::Done(frame::error(id, "No such channel")),
        }
    };
    let mut out = response_head("Success", id, None);
    push_kv(&mut out, "Variable", var);
    push_kv(&mut out, "Value", &value);
    Outcome::Done(end(out))
}

fn control_reply(reply: Option<&Reply>) -> Option<&Result<ControlOk, ControlError>> {
    match reply {
        Some(Reply::Control(r)) => Some(r),
        _ => None,
    }
}

fn setvar(id: Option<&str>, f: &Frame, reply: Option<&Reply>) -> Outcome {
    let var = f.get("Variable");
    if var.is_empty() {
        return Outcome::Done(frame::error(id, "No variable specified"));
    }
    match control_reply(reply) {
        None => Outcome::Need(Request::Control(Control::Setvar {
            channel: Some(f.get("Channel"))
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            variable: var.to_string(),
            value: f.get("Value").to_string(),
        })),
        Some(Ok(_)) => Outcome::Done(frame::success(id, "Variable Set")),
        Some(Err(ControlError::NoSuchChannel)) => {
            Outcome::Done(frame::error(id, "No such channel"))
        }
        Some(Err(ControlError::Unsupported(m))) => Outcome::Done(frame::error(id, m)),
        Some(Err(_)) => Outcome::Done(frame::error(id, "Variable not set")),
    }
}

fn reload(id: Option<&str>, f: &Frame, reply: Option<&Reply>) -> Outcome {
    let module = f.get("Module");
    let module = if module.is_empty() {
        None
    } else {
        match cli::known_module(module) {
            Some(m) => Some(m.to_string()),
            None => return Outcome::Done(frame::error(id, "No such module")),
        }
    };
    match control_reply(reply) {
        None => Outcome::Need(Request::Control(Control::Reload { module })),
        Some(Ok(_)) => Outcome::Done(frame::success(id, "Module Reloaded")),
        Some(Err(ControlError::NoSuchModule)) => Outcome::Done(frame::error(id, "No such module")),
        Some(Err(ControlError::Unsupported(_))) => {
            Outcome::Done(frame::error(id, "Module does not support reload"))
        }
        Some(Err(_)) => Outcome::Done(frame::error(id, "An unknown error occurred")),
    }
}

// ------------------------------------------------------------------ Command

/// The 14+ `Command` answer: `Message: Command output follows` and one `Output:` per line.
pub fn command_response(id: Option<&str>, out: &cli::CliOutput) -> String {
    let mut r = response_head(
        if out.ok { "Success" } else { "Error" },
        id,
        Some("Command output follows"),
    );
    let text = out.text.strip_suffix('\n').unwrap_or(&out.text);
    if !out.text.is_empty() {
        for line in text.split('\n') {
            push_kv(&mut r, "Output", line.trim_end_matches('\r'));
        }
    }
    end(r)
}

fn blacklisted(cmd: &str) -> bool {
    let w: Vec<String> = cmd
        .split_whitespace()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    matches!(
        w.as_slice(),
        ["module", "load", ..] | ["module", "unload", ..] | ["restart", "gracefully", ..]
    )
}

fn command(id: Option<&str>, f: &Frame, reply: Option<&Reply>) -> Outcome {
    let cmd = f.get("Command").trim();
    if cmd.is_empty() {
        return Outcome::Done(frame::error(id, "No command provided"));
    }
    if blacklisted(cmd) {
        return Outcome::Done(frame::error(id, "Command blacklisted"));
    }
    if let Some(CliReload::Module(module)) = cli::reload_command(cmd) {
        if let Some(m) = &module
            && cli::known_module(m).is_none()
        {
            return Outcome::Done(command_response(
                id,
                &cli::reload_output(cmd, Err(format!("No such module '{m}'"))),
            ));
        }
        return match control_reply(reply) {
            None => Outcome::Need(Request::Control(Control::Reload {
                module: module.and_then(|m| cli::known_module(&m).map(str::to_string)),
            })),
            Some(r) => Outcome::Done(command_response(
                id,
                &cli::reload_output(cmd, r.as_ref().map(|_| ()).map_err(|e| e.to_string())),
            )),
        };
    }
    match snapshot(reply) {
        Some(s) => Outcome::Done(command_response(id, &cli::run(cmd, s))),
        None => Outcome::Need(Request::Snapshot),
    }
}

// ------------------------------------------------------------------ call control

fn hangup(id: Option<&str>, f: &Frame, reply: Option<&Reply>) -> Outcome {
    let chan = f.get("Channel");
    if chan.is_empty() {
        return Outcome::Done(frame::error(id, "No channel specified"));
    }
    let cause_s = f.get("Cause");
    let cause = if cause_s.is_empty() {
        None
    } else {
        match cause_s.parse::<u8>() {
            Ok(c) if c <= 127 => Some(c),
            _ => return Outcome::Done(frame::error(id, "Invalid cause specified")),
        }
    };
    let regex = chan
        .strip_prefix('/')
        .and_then(|r| r.strip_suffix('/'))
        .filter(|r| !r.is_empty());
    let Some(pattern) = regex else {
        return match control_reply(reply) {
            None => Outcome::Need(Request::Control(Control::Hangup {
                channels: vec![chan.to_string()],
                cause,
            })),
            Some(Ok(ControlOk::Hungup(list))) if !list.is_empty() => {
                Outcome::Done(frame::success(id, "Channel Hungup"))
            }
            Some(Err(ControlError::Unsupported(m))) => Outcome::Done(frame::error(id, m)),
            Some(_) => Outcome::Done(frame::error(id, "No such channel")),
        };
    };
    let re = match Regex::new(pattern) {
        Ok(r) => r,
        Err(_) => return Outcome::Done(frame::error(id, "Invalid regex")),
    };
    match reply {
        None => Outcome::Need(Request::Snapshot),
        Some(Reply::Snapshot(s)) => Outcome::Need(Request::Control(Control::Hangup {
            channels: s
                .channels
                .iter()
                .filter(|c| re.is_match(&c.name))
                .map(|c| c.name.clone())
                .collect(),
            cause,
        })),
        Some(Reply::Control(r)) => {
            let list = match r {
                Ok(ControlOk::Hungup(l)) => l.clone(),
                _ => Vec::new(),
            };
            let mut out = list_ack(id, "Channels hung up will follow");
            for c in &list {
                let mut item = String::new();
                push_kv(&mut item, "Event", "ChannelHungup");
                push_kv(&mut item, "Channel", c);
                if let Some(id) = id {
                    push_kv(&mut item, "ActionID", id);
                }
                out += &end(item);
            }
            Outcome::Done(out + &list_complete("ChannelsHungupListComplete", id, list.len(), &[]))
        }
    }
}

fn parse_priority(s: &str) -> Option<i32> {
    s.trim().parse::<i32>().ok().filter(|p| *p >= 1)
}

fn originate(id: Option<&str>, f: &Frame, ctx: Ctx<'_>, reply: Option<&Reply>) -> Outcome {
    let err = |m: &str| Outcome::Done(frame::error(id, m));
    let channel = f.get("Channel");
    if channel.is_empty() {
        return err("Channel not specified");
    }
    let priority_s = f.get("Priority");
    let priority = if priority_s.is_empty() {
        1
    } else {
        match parse_priority(priority_s) {
            Some(p) => p,
            None => return err("Invalid priority"),
        }
    };
    let timeout_s = f.get("Timeout");
    let timeout_ms = if timeout_s.is_empty() {
        30_000
    } else {
        match timeout_s.trim().parse::<u64>() {
            Ok(t) if t > 0 => t,
            _ => return err("Invalid timeout"),
        }
    };
    match channel.split_once('/') {
        Some((tech, res)) if !tech.is_empty() && !res.is_empty() => {}
        _ => return err("Invalid channel"),
    }
    let app = f.get("Application");
    let exten = f.get("Exten");
    let target = if !app.is_empty() {
        let data = f.get("Data");
        let a = app.to_ascii_lowercase();
        if ctx.write & SYSTEM == 0
            && (a.contains("system") || a.contains("exec") || dangerous(data) || dangerous(app))
        {
            return err("Originate Access Forbidden: app or data blacklisted");
        }
        OriginateTarget::App {
            application: app.to_string(),
            data: data.to_string(),
        }
    } else {
        let context = f.get("Context");
        if exten.is_empty() || context.is_empty() || priority_s.is_empty() {
            return err("Originate with 'Exten' requires 'Context' and 'Priority'");
        }
        OriginateTarget::Exten {
            context: context.to_string(),
            exten: exten.to_string(),
        }
    };
    let is_async = ["yes", "true", "y", "t", "1", "on"]
        .iter()
        .any(|w| f.get("Async").eq_ignore_ascii_case(w));
    let opt = |k: &str| Some(f.get(k)).filter(|v| !v.is_empty()).map(str::to_string);
    match control_reply(reply) {
        None => Outcome::Need(Request::Control(Control::Originate(Box::new(
            OriginateRequest {
                channel: channel.to_string(),
                target,
                priority,
                timeout_ms,
                caller_id: opt("CallerID"),
                variables: f.variables(),
                account: f.get("Account").to_string(),
                early_media: ["yes", "true", "1", "on"]
                    .iter()
                    .any(|w| f.get("EarlyMedia").eq_ignore_ascii_case(w)),
                is_async,
                action_id: id.map(str::to_string),
                channel_id: opt("ChannelId"),
                other_channel_id: opt("OtherChannelId"),
                codecs: opt("Codecs"),
            },
        )))),
        Some(Ok(_)) => Outcome::Done(frame::success(id, "Originate successfully queued")),
        Some(Err(ControlError::Unsupported(m))) => err(m),
        Some(Err(_)) => err("Originate failed"),
    }
}

fn redirect(id: Option<&str>, f: &Frame, reply: Option<&Reply>) -> Outcome {
    let err = |m: &str| Outcome::Done(frame::error(id, m));
    let channel = f.get("Channel");
    if channel.is_empty() {
        return err("Channel not specified");
    }
    let exten = f.get("Exten");
    if exten.is_empty() {
        return err("Exten not specified");
    }
    let context = f.get("Context");
    if context.is_empty() {
        return err("Context not specified");
    }
    let prio = f.get("Priority");
    if prio.is_empty() {
        return err("Priority not specified");
    }
    let Some(priority) = parse_priority(prio) else {
        return err("Priority is invalid");
    };
    let extra_chan = f.get("ExtraChannel");
    let extra = if extra_chan.is_empty() {
        None
    } else {
        let ep = f.get("ExtraPriority");
        let ep = if ep.is_empty() {
            priority
        } else {
            match parse_priority(ep) {
                Some(p) => p,
                None => return err("Priority is invalid"),
            }
        };
        let or = |v: &str, d: &str| {
            if v.is_empty() {
                d.to_string()
            } else {
                v.to_string()
            }
        };
        Some((
            extra_chan.to_string(),
            or(f.get("ExtraExten"), exten),
            or(f.get("ExtraContext"), context),
            ep,
        ))
    };
    let dual = extra.is_some();
    match control_reply(reply) {
        None => Outcome::Need(Request::Control(Control::Redirect(Box::new(
            RedirectRequest {
                channel: channel.to_string(),
                exten: exten.to_string(),
                context: context.to_string(),
                priority,
                extra,
            },
        )))),
        Some(Ok(_)) if dual => Outcome::Done(frame::success(id, "Dual Redirect successful")),
        Some(Ok(_)) => Outcome::Done(frame::success(id, "Redirect successful")),
        Some(Err(ControlError::NoSuchChannel)) => err("No such channel"),
        Some(Err(ControlError::ChannelNotUp)) => err("Redirect failed, channel not up."),
        Some(Err(ControlError::Unsupported(m))) => err(m),
        Some(Err(_)) => err("Redirect failed"),
    }
}
