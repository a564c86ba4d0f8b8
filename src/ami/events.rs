//! AMI events: the channel and bridge blocks of §2.0 and one constructor per event, each
//! writing Asterisk 22's field order. The runtime turns engine events into these and fans
//! them out; sessions decide per user whether to deliver them.

use std::borrow::Cow;

use super::frame::push_kv;
use super::perms::{self, authority_to_str};

/// One async event: name, class (the `Privilege`), body headers in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmiEvent {
    pub name: Cow<'static, str>,
    pub class: u32,
    pub body: Vec<(Cow<'static, str>, String)>,
}

impl AmiEvent {
    pub fn new(name: impl Into<Cow<'static, str>>, class: u32) -> AmiEvent {
        AmiEvent {
            name: name.into(),
            class,
            body: Vec::with_capacity(16),
        }
    }

    /// Append a header (builder style).
    pub fn kv(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.push(key, value);
        self
    }

    pub fn push(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        self.body.push((key.into(), value.into()));
    }

    /// The first value of a body header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.body
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The wire form of an async event: `Event`, `Privilege`, body, blank line.
    pub fn to_wire(&self) -> String {
        let mut out = String::with_capacity(64 + self.body.len() * 32);
        push_kv(&mut out, "Event", &self.name);
        push_kv(&mut out, "Privilege", &authority_to_str(self.class));
        for (k, v) in &self.body {
            push_kv(&mut out, k, v);
        }
        out.push_str("\r\n");
        out
    }

    /// The event as a list item of an action (no Privilege; `ActionID` after the name).
    pub fn to_list_item(&self, action_id: Option<&str>) -> String {
        let mut out = String::with_capacity(64 + self.body.len() * 32);
        push_kv(&mut out, "Event", &self.name);
        if let Some(id) = action_id {
            push_kv(&mut out, "ActionID", id);
        }
        for (k, v) in &self.body {
            push_kv(&mut out, k, v);
        }
        out.push_str("\r\n");
        out
    }
}

/// `ast_escape_c`: one header never spans lines.
pub fn escape_c(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '?' => out.push_str("\\?"),
            c => out.push(c),
        }
    }
    out
}

/// A header value that must stay on one line (raw values with CR/LF are cut there).
fn one_line(s: &str) -> String {
    s.split(['\r', '\n']).next().unwrap_or("").to_string()
}

/// `ast_channel_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelState {
    #[default]
    Down = 0,
    Rsrvd = 1,
    OffHook = 2,
    Dialing = 3,
    Ring = 4,
    Ringing = 5,
    Up = 6,
    Busy = 7,
    DialingOffhook = 8,
    PreRing = 9,
    Unknown = 10,
}

impl ChannelState {
    pub fn desc(self) -> &'static str {
        match self {
            ChannelState::Down => "Down",
            ChannelState::Rsrvd => "Rsrvd",
            ChannelState::OffHook => "OffHook",
            ChannelState::Dialing => "Dialing",
            ChannelState::Ring => "Ring",
            ChannelState::Ringing => "Ringing",
            ChannelState::Up => "Up",
            ChannelState::Busy => "Busy",
            ChannelState::DialingOffhook => "Dialing Offhook",
            ChannelState::PreRing => "Pre-ring",
            ChannelState::Unknown => "Unknown",
        }
    }

    pub fn number(self) -> u8 {
        self as u8
    }
}

/// `PJSIP/<endpoint>-%08x`.
pub fn channel_name(endpoint: &str, counter: u32) -> String {
    format!("PJSIP/{endpoint}-{counter:08x}")
}

/// Uniqueid `epoch.seq`.
pub fn uniqueid(epoch_secs: i64, seq: u64) -> String {
    format!("{epoch_secs}.{seq}")
}

/// A channel as AMI shows it (the §2.0 channel block plus what actions and the CLI need).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChannelSnapshot {
    /// `PJSIP/1001-00000001` (see [`channel_name`]).
    pub name: String,
    pub state: ChannelState,
    pub caller_id_num: String,
    pub caller_id_name: String,
    pub connected_line_num: String,
    pub connected_line_name: String,
    pub language: String,
    pub account_code: String,
    pub context: String,
    pub exten: String,
    pub priority: i32,
    pub uniqueid: String,
    pub linkedid: String,
    // Not in the block: actions and the CLI.
    /// Current application (`Dial`, `AppDial`, ...); empty = none.
    pub application: String,
    pub app_data: String,
    /// Unix seconds of creation.
    pub created_unix: f64,
    pub bridge_id: String,
    pub dnid: String,
    pub peer_account: String,
    /// 3 = DOCUMENTATION.
    pub ama_flags: u8,
    /// `(ulaw|alaw)`.
    pub native_formats: String,
    pub read_format: String,
    pub write_format: String,
    /// Channel variables (Getvar/Status).
    pub variables: Vec<(String, String)>,
    /// The endpoint the channel belongs to (`1001`).
    pub endpoint: String,
}

impl ChannelSnapshot {
    /// A channel with Asterisk's usual defaults (language `en`, priority 1, AMA 3).
    pub fn new(name: impl Into<String>, uniqueid: impl Into<String>) -> ChannelSnapshot {
        let uniqueid = uniqueid.into();
        ChannelSnapshot {
            name: name.into(),
            language: "en".into(),
            priority: 1,
            linkedid: uniqueid.clone(),
            uniqueid,
            ama_flags: 3,
            native_formats: "(ulaw)".into(),
            read_format: "ulaw".into(),
            write_format: "ulaw".into(),
            ..ChannelSnapshot::default()
        }
    }

    /// Seconds since creation at `now_unix`.
    pub fn age(&self, now_unix: f64) -> u64 {
        (now_unix - self.created_unix).max(0.0) as u64
    }
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "<unknown>" } else { s }
}

/// Append the channel block with a prefix (`""`, `Dest`, ...).
pub fn push_channel(ev: &mut AmiEvent, prefix: &str, ch: &ChannelSnapshot) {
    let k = |name: &str| -> Cow<'static, str> {
        if prefix.is_empty() {
            Cow::Owned(name.to_string())
        } else {
            Cow::Owned(format!("{prefix}{name}"))
        }
    };
    ev.push(k("Channel"), one_line(&ch.name));
    ev.push(k("ChannelState"), ch.state.number().to_string());
    ev.push(k("ChannelStateDesc"), ch.state.desc());
    ev.push(k("CallerIDNum"), one_line(or_unknown(&ch.caller_id_num)));
    ev.push(k("CallerIDName"), escape_c(or_unknown(&ch.caller_id_name)));
    ev.push(
        k("ConnectedLineNum"),
        one_line(or_unknown(&ch.connected_line_num)),
    );
    ev.push(
        k("ConnectedLineName"),
        escape_c(or_unknown(&ch.connected_line_name)),
    );
    ev.push(k("Language"), one_line(&ch.language));
    ev.push(k("AccountCode"), one_line(&ch.account_code));
    ev.push(k("Context"), one_line(&ch.context));
    ev.push(k("Exten"), one_line(&ch.exten));
    ev.push(k("Priority"), ch.priority.to_string());
    ev.push(k("Uniqueid"), one_line(&ch.uniqueid));
    ev.push(k("Linkedid"), one_line(&ch.linkedid));
}

/// A bridge as AMI shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSnapshot {
    pub uniqueid: String,
    /// `basic`.
    pub bridge_type: String,
    /// `simple_bridge`, `native_rtp`, ...
    pub technology: String,
    pub creator: String,
    pub name: String,
    pub num_channels: u32,
    /// `none`.
    pub video_source_mode: String,
    pub video_source: String,
}

impl BridgeSnapshot {
    /// A two-party bridge as `Dial` makes it.
    pub fn basic(uniqueid: impl Into<String>, num_channels: u32) -> BridgeSnapshot {
        BridgeSnapshot {
            uniqueid: uniqueid.into(),
            bridge_type: "basic".into(),
            technology: "simple_bridge".into(),
            creator: String::new(),
            name: String::new(),
            num_channels,
            video_source_mode: "none".into(),
            video_source: String::new(),
        }
    }
}

/// Append the bridge block with a prefix (`""`, `Orig`, `Second`, `To`, `From`).
pub fn push_bridge(ev: &mut AmiEvent, prefix: &str, b: &BridgeSnapshot) {
    let k = |name: &str| -> Cow<'static, str> { Cow::Owned(format!("{prefix}{name}")) };
    ev.push(k("BridgeUniqueid"), b.uniqueid.clone());
    ev.push(k("BridgeType"), b.bridge_type.clone());
    ev.push(k("BridgeTechnology"), b.technology.clone());
    ev.push(k("BridgeCreator"), or_unknown(&b.creator).to_string());
    ev.push(k("BridgeName"), or_unknown(&b.name).to_string());
    ev.push(k("BridgeNumChannels"), b.num_channels.to_string());
    ev.push(k("BridgeVideoSourceMode"), b.video_source_mode.clone());
    if b.video_source_mode != "none" && !b.video_source.is_empty() {
        ev.push(k("BridgeVideoSource"), b.video_source.clone());
    }
}

/// `ast_cause2str` (Q.850 cause → text).
pub fn cause_text(cause: u8) -> &'static str {
    crate::pbx::cause::text(cause)
}

/// The Q.850 cause Asterisk's chan_pjsip derives from a SIP final status (`hangup_sip2cause`).
pub fn sip_to_cause(status: u16) -> u8 {
    match status {
        200 => 16,
        401 | 402 | 403 | 407 => 21,
        404 => 1,
        405 => 63,
        408 => 102,
        410 => 22,
        413 | 414 => 127,
        415 | 420 => 127,
        416 => 21,
        480 => 18,
        481 => 127,
        482 | 483 => 25,
        484 | 485 => 28,
        486 | 600 => 17,
        487 => 127,
        488 | 606 => 58,
        500 => 41,
        501 => 79,
        502 => 38,
        503 => 34,
        504 => 102,
        505 => 127,
        603 => 21,
        604 => 1,
        _ if status < 300 => 16,
        _ => 31,
    }
}

/// `DeviceStateChange State:` tokens and their human forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceState {
    #[default]
    Unknown,
    NotInUse,
    InUse,
    Busy,
    Invalid,
    Unavailable,
    Ringing,
    RingInUse,
    OnHold,
}

impl DeviceState {
    pub fn token(self) -> &'static str {
        match self {
            DeviceState::Unknown => "UNKNOWN",
            DeviceState::NotInUse => "NOT_INUSE",
            DeviceState::InUse => "INUSE",
            DeviceState::Busy => "BUSY",
            DeviceState::Invalid => "INVALID",
            DeviceState::Unavailable => "UNAVAILABLE",
            DeviceState::Ringing => "RINGING",
            DeviceState::RingInUse => "RINGINUSE",
            DeviceState::OnHold => "ONHOLD",
        }
    }

    pub fn human(self) -> &'static str {
        match self {
            DeviceState::Unknown => "Unknown",
            DeviceState::NotInUse => "Not in use",
            DeviceState::InUse => "In use",
            DeviceState::Busy => "Busy",
            DeviceState::Invalid => "Invalid",
            DeviceState::Unavailable => "Unavailable",
            DeviceState::Ringing => "Ringing",
            DeviceState::RingInUse => "Ring+Inuse",
            DeviceState::OnHold => "On Hold",
        }
    }

    /// The hint (extension) state for this device state (`ast_devstate_to_extenstate`).
    pub fn extension_state(self) -> i32 {
        match self {
            DeviceState::NotInUse | DeviceState::Unknown => 0,
            DeviceState::InUse => 1,
            DeviceState::Busy => 2,
            DeviceState::Invalid | DeviceState::Unavailable => 4,
            DeviceState::Ringing => 8,
            DeviceState::RingInUse => 9,
            DeviceState::OnHold => 16,
        }
    }
}

/// ExtensionStatus `StatusText` for a hint state number.
pub fn extension_state_text(status: i32) -> &'static str {
    match status {
        -2 => "Removed",
        -1 => "Deactivated",
        0 => "Idle",
        1 => "InUse",
        2 => "Busy",
        4 => "Unavailable",
        8 => "Ringing",
        9 => "InUse&Ringing",
        16 => "Hold",
        17 => "InUse&Hold",
        _ => "Unknown",
    }
}

/// PJSIP contact status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContactState {
    Unreachable,
    Reachable,
    #[default]
    Unknown,
    NonQualified,
    Removed,
}

impl ContactState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContactState::Unreachable => "Unreachable",
            ContactState::Reachable => "Reachable",
            ContactState::Unknown => "Unknown",
            ContactState::NonQualified => "NonQualified",
            ContactState::Removed => "Removed",
        }
    }

    /// The CLI short form.
    pub fn short(self) -> &'static str {
        match self {
            ContactState::Unreachable => "Unavail",
            ContactState::Reachable => "Avail",
            ContactState::Unknown => "Unknown",
            ContactState::NonQualified => "NonQual",
            ContactState::Removed => "Removed",
        }
    }

    /// Whether the contact counts towards its endpoint being online.
    pub fn is_available(self) -> bool {
        matches!(
            self,
            ContactState::Reachable | ContactState::NonQualified | ContactState::Unknown
        )
    }
}

// ------------------------------------------------------------------ system events

/// `FullyBooted` as sent to a session right after login (`Uptime`, `LastReload`, `Status`).
pub fn fully_booted(uptime: u64, last_reload: u64) -> AmiEvent {
    AmiEvent::new("FullyBooted", perms::SYSTEM)
        .kv("Uptime", uptime.to_string())
        .kv("LastReload", last_reload.to_string())
        .kv("Status", "Fully Booted")
}

/// `Reload` (status 0 = success).
pub fn reload(module: &str, status: u8) -> AmiEvent {
    AmiEvent::new("Reload", perms::SYSTEM)
        .kv("Module", module)
        .kv("Status", status.to_string())
}

/// `ContactStatus` (RoundtripUsec `0` when unknown).
pub fn contact_status(
    uri: &str,
    status: ContactState,
    aor: &str,
    endpoint: &str,
    rtt_usec: Option<u64>,
) -> AmiEvent {
    AmiEvent::new("ContactStatus", perms::SYSTEM)
        .kv("URI", one_line(uri))
        .kv("ContactStatus", status.as_str())
        .kv("AOR", aor)
        .kv("EndpointName", endpoint)
        .kv("RoundtripUsec", rtt_usec.unwrap_or(0).to_string())
}

/// `PeerStatus` for a PJSIP endpoint.
pub fn peer_status(endpoint: &str, reachable: bool) -> AmiEvent {
    AmiEvent::new("PeerStatus", perms::SYSTEM)
        .kv("ChannelType", "PJSIP")
        .kv("Peer", format!("PJSIP/{endpoint}"))
        .kv(
            "PeerStatus",
            if reachable {
                "Reachable"
            } else {
                "Unreachable"
            },
        )
}

/// `DeviceStateChange` (`Device: PJSIP/1001`).
pub fn device_state_change(device: &str, state: DeviceState) -> AmiEvent {
    AmiEvent::new("DeviceStateChange", perms::CALL)
        .kv("Device", device)
        .kv("State", state.token())
}

/// `ExtensionStatus`.
pub fn extension_status(exten: &str, context: &str, hint: &str, status: i32) -> AmiEvent {
    AmiEvent::new("ExtensionStatus", perms::CALL)
        .kv("Exten", exten)
        .kv("Context", context)
        .kv("Hint", hint)
        .kv("Status", status.to_string())
        .kv("StatusText", extension_state_text(status))
}

/// `PresenceStateChange`.
pub fn presence_state_change(
    presentity: &str,
    status: &str,
    subtype: &str,
    message: &str,
) -> AmiEvent {
    AmiEvent::new("PresenceStateChange", perms::CALL)
        .kv("Presentity", presentity)
        .kv("Status", status)
        .kv("Subtype", escape_c(subtype))
        .kv("Message", escape_c(message))
}

// ------------------------------------------------------------------ channel events

fn chan_event(name: &'static str, class: u32, ch: &ChannelSnapshot) -> AmiEvent {
    let mut ev = AmiEvent::new(name, class);
    push_channel(&mut ev, "", ch);
    ev
}

pub fn newchannel(ch: &ChannelSnapshot) -> AmiEvent {
    chan_event("Newchannel", perms::CALL, ch)
}

/// Sent when the state number changes.
pub fn newstate(ch: &ChannelSnapshot) -> AmiEvent {
    chan_event("Newstate", perms::CALL, ch)
}

/// `CID-CallingPres: 0 (Presentation Allowed, Not Screened)` for `pres` 0.
pub fn new_callerid(ch: &ChannelSnapshot, pres: u8) -> AmiEvent {
    let text = match pres {
        0x00 => "Presentation Allowed, Not Screened",
        0x01 => "Presentation Allowed, Passed Screen",
        0x02 => "Presentation Allowed, Failed Screen",
        0x03 => "Presentation Allowed, Network Number",
        0x20 => "Presentation Prohibited, Not Screened",
        0x21 => "Presentation Prohibited, Passed Screen",
        0x22 => "Presentation Prohibited, Failed Screen",
        0x23 => "Presentation Prohibited, Network Number",
        0x43 => "Number Unavailable",
        _ => "Unknown",
    };
    chan_event("NewCallerid", perms::CALL, ch).kv("CID-CallingPres", format!("{pres} ({text})"))
}

pub fn new_connected_line(ch: &ChannelSnapshot) -> AmiEvent {
    chan_event("NewConnectedLine", perms::CALL, ch)
}

fn dial_event(
    name: &'static str,
    caller: Option<&ChannelSnapshot>,
    dest: &ChannelSnapshot,
) -> AmiEvent {
    let mut ev = AmiEvent::new(name, perms::CALL);
    if let Some(c) = caller {
        push_channel(&mut ev, "", c);
    }
    push_channel(&mut ev, "Dest", dest);
    ev
}

/// `DialBegin`; `caller` is `None` for an originated call without a caller.
pub fn dial_begin(
    caller: Option<&ChannelSnapshot>,
    dest: &ChannelSnapshot,
    dial_string: &str,
) -> AmiEvent {
    let ds = if dial_string.is_empty() {
        "unknown"
    } else {
        dial_string
    };
    dial_event("DialBegin", caller, dest).kv("DialString", ds)
}

/// `DialState` (`RINGING`, `PROCEEDING`, `PROGRESS`).
pub fn dial_state(
    caller: Option<&ChannelSnapshot>,
    dest: &ChannelSnapshot,
    status: &str,
    forward: Option<&str>,
) -> AmiEvent {
    let mut ev = dial_event("DialState", caller, dest);
    if let Some(f) = forward {
        ev.push("Forward", f);
    }
    ev.kv("DialStatus", status)
}

/// `DialEnd` (`ANSWER`, `BUSY`, `NOANSWER`, `CANCEL`, `CONGESTION`, `CHANUNAVAIL`, ...).
pub fn dial_end(
    caller: Option<&ChannelSnapshot>,
    dest: &ChannelSnapshot,
    status: &str,
    forward: Option<&str>,
) -> AmiEvent {
    let mut ev = dial_event("DialEnd", caller, dest);
    if let Some(f) = forward {
        ev.push("Forward", f);
    }
    ev.kv("DialStatus", status)
}

fn bridge_event(name: &'static str, b: &BridgeSnapshot) -> AmiEvent {
    let mut ev = AmiEvent::new(name, perms::CALL);
    push_bridge(&mut ev, "", b);
    ev
}

pub fn bridge_create(b: &BridgeSnapshot) -> AmiEvent {
    bridge_event("BridgeCreate", b)
}

pub fn bridge_destroy(b: &BridgeSnapshot) -> AmiEvent {
    bridge_event("BridgeDestroy", b)
}

pub fn bridge_enter(
    b: &BridgeSnapshot,
    ch: &ChannelSnapshot,
    swap_uniqueid: Option<&str>,
) -> AmiEvent {
    let mut ev = bridge_event("BridgeEnter", b);
    push_channel(&mut ev, "", ch);
    if let Some(s) = swap_uniqueid {
        ev.push("SwapUniqueid", s);
    }
    ev
}

pub fn bridge_leave(b: &BridgeSnapshot, ch: &ChannelSnapshot) -> AmiEvent {
    let mut ev = bridge_event("BridgeLeave", b);
    push_channel(&mut ev, "", ch);
    ev
}

/// `Newexten`: the channel runs a dialplan priority (`Extension` duplicates `Exten`, as
/// Asterisk still sends it).
pub fn newexten(ch: &ChannelSnapshot) -> AmiEvent {
    chan_event("Newexten", perms::DIALPLAN, ch)
        .kv("Extension", ch.exten.clone())
        .kv("Application", ch.application.clone())
        .kv("AppData", ch.app_data.clone())
}

/// `VarSet` on a channel, or of a global variable (`Channel: none`, `Uniqueid: none`).
pub fn var_set(ch: Option<&ChannelSnapshot>, variable: &str, value: &str) -> AmiEvent {
    let ev = match ch {
        Some(ch) => chan_event("VarSet", perms::DIALPLAN, ch),
        None => AmiEvent::new("VarSet", perms::DIALPLAN)
            .kv("Channel", "none")
            .kv("Uniqueid", "none"),
    };
    ev.kv("Variable", variable.to_string())
        .kv("Value", escape_c(value))
}

/// `HangupRequest` (an explicit hangup of the channel).
pub fn hangup_request(ch: &ChannelSnapshot, cause: Option<u8>) -> AmiEvent {
    let mut ev = chan_event("HangupRequest", perms::CALL, ch);
    if let Some(c) = cause {
        ev.push("Cause", c.to_string());
    }
    ev
}

/// `SoftHangupRequest` (the far side or the system ends the channel).
pub fn soft_hangup_request(ch: &ChannelSnapshot, cause: Option<u8>) -> AmiEvent {
    let mut ev = chan_event("SoftHangupRequest", perms::CALL, ch);
    if let Some(c) = cause {
        ev.push("Cause", c.to_string());
    }
    ev
}

/// `Hangup` with `Cause` and `Cause-txt`.
pub fn hangup(ch: &ChannelSnapshot, cause: u8) -> AmiEvent {
    chan_event("Hangup", perms::CALL, ch)
        .kv("Cause", cause.to_string())
        .kv("Cause-txt", cause_text(cause))
}

pub fn hold(ch: &ChannelSnapshot, music_class: Option<&str>) -> AmiEvent {
    let mut ev = chan_event("Hold", perms::CALL, ch);
    if let Some(m) = music_class {
        ev.push("MusicClass", m);
    }
    ev
}

pub fn unhold(ch: &ChannelSnapshot) -> AmiEvent {
    chan_event("Unhold", perms::CALL, ch)
}

/// DTMF direction: `Received` (from the channel's endpoint) or `Sent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfDirection {
    Received,
    Sent,
}

impl DtmfDirection {
    fn as_str(self) -> &'static str {
        match self {
            DtmfDirection::Received => "Received",
            DtmfDirection::Sent => "Sent",
        }
    }
}

pub fn dtmf_begin(ch: &ChannelSnapshot, digit: char, dir: DtmfDirection) -> AmiEvent {
    chan_event("DTMFBegin", perms::DTMF, ch)
        .kv("Digit", digit.to_string())
        .kv("Direction", dir.as_str())
}

pub fn dtmf_end(
    ch: &ChannelSnapshot,
    digit: char,
    duration_ms: u32,
    dir: DtmfDirection,
) -> AmiEvent {
    chan_event("DTMFEnd", perms::DTMF, ch)
        .kv("Digit", digit.to_string())
        .kv("DurationMs", duration_ms.to_string())
        .kv("Direction", dir.as_str())
}

/// The fields of a `Cdr` event (times already in local `%Y-%m-%d %H:%M:%S`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CdrFields {
    pub account_code: String,
    pub source: String,
    pub destination: String,
    pub destination_context: String,
    /// `"Name" <num>`.
    pub caller_id: String,
    pub channel: String,
    pub destination_channel: String,
    pub last_application: String,
    pub last_data: String,
    pub start_time: String,
    /// Empty when unanswered.
    pub answer_time: String,
    pub end_time: String,
    pub duration: u64,
    pub billable_seconds: u64,
    /// `ANSWERED`, `NO ANSWER`, `BUSY`, `FAILED`, `CONGESTION`.
    pub disposition: String,
    /// `DOCUMENTATION`.
    pub ama_flags: String,
    pub unique_id: String,
    pub user_field: String,
}

pub fn cdr(c: &CdrFields) -> AmiEvent {
    AmiEvent::new("Cdr", perms::CDR)
        .kv("AccountCode", c.account_code.clone())
        .kv("Source", c.source.clone())
        .kv("Destination", c.destination.clone())
        .kv("DestinationContext", c.destination_context.clone())
        .kv("CallerID", one_line(&c.caller_id))
        .kv("Channel", c.channel.clone())
        .kv("DestinationChannel", c.destination_channel.clone())
        .kv("LastApplication", c.last_application.clone())
        .kv("LastData", one_line(&c.last_data))
        .kv("StartTime", c.start_time.clone())
        .kv("AnswerTime", c.answer_time.clone())
        .kv("EndTime", c.end_time.clone())
        .kv("Duration", c.duration.to_string())
        .kv("BillableSeconds", c.billable_seconds.to_string())
        .kv("Disposition", c.disposition.clone())
        .kv("AMAFlags", c.ama_flags.clone())
        .kv("UniqueID", c.unique_id.clone())
        .kv("UserField", c.user_field.clone())
}

/// Where an originated call went: a dialplan location or an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginateTarget {
    Exten { context: String, exten: String },
    App { application: String, data: String },
}

/// What an `OriginateResponse` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginateReport {
    /// The Originate's ActionID (written first).
    pub action_id: Option<String>,
    pub success: bool,
    pub channel: String,
    pub target: OriginateTarget,
    /// 0 failure, 1 hangup, 3 ringing (timeout), 4 answered, 5 busy, 8 congestion.
    pub reason: u8,
    pub uniqueid: String,
    pub caller_id_num: String,
    pub caller_id_name: String,
}

/// `OriginateResponse` (broadcast, with the Originate's ActionID first).
pub fn originate_response(r: &OriginateReport) -> AmiEvent {
    let mut ev = AmiEvent::new("OriginateResponse", perms::CALL);
    if let Some(id) = &r.action_id {
        ev.push("ActionID", id.clone());
    }
    ev.push("Response", if r.success { "Success" } else { "Failure" });
    ev.push("Channel", r.channel.clone());
    match &r.target {
        OriginateTarget::Exten { context, exten } => {
            ev.push("Context", context.clone());
            ev.push("Exten", exten.clone());
        }
        OriginateTarget::App { application, data } => {
            ev.push("Application", application.clone());
            ev.push("Data", data.clone());
        }
    }
    ev.push("Reason", r.reason.to_string());
    let uid = if r.uniqueid.is_empty() {
        "<null>"
    } else {
        r.uniqueid.as_str()
    };
    ev.push("Uniqueid", uid);
    ev.push("CallerIDNum", or_unknown(&r.caller_id_num));
    ev.push("CallerIDName", escape_c(or_unknown(&r.caller_id_name)));
    ev
}

#[cfg(test)]
#[path = "events_tests.rs"]
pub(crate) mod tests;
