//! Presence and device state (sans-IO): the state of an extension as BLF keys and buddy lists
//! see it, and the NOTIFY bodies that carry it — RFC 4235 dialog-info, RFC 3863 PIDF (with
//! RFC 4480 RPID activities), the pre-standard XPIDF some phones still ask for, and RFC 3842
//! message-summary.

use std::fmt::Write as _;

/// Asterisk's device states (`ast_device_state`), as AMI `DeviceStateChange` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceState {
    NotInUse,
    InUse,
    Busy,
    Unavailable,
    Ringing,
    RingInUse,
    OnHold,
}

impl DeviceState {
    /// `NOT_INUSE`, `INUSE`, … (AMI `DeviceStateChange`, `DeviceStateList`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::NotInUse => "NOT_INUSE",
            DeviceState::InUse => "INUSE",
            DeviceState::Busy => "BUSY",
            DeviceState::Unavailable => "UNAVAILABLE",
            DeviceState::Ringing => "RINGING",
            DeviceState::RingInUse => "RINGINUSE",
            DeviceState::OnHold => "ONHOLD",
        }
    }

    /// The extension state of a hint on this device (`ast_extension_state`: AMI
    /// `ExtensionStatus` `Status:` 0 idle, 1 in use, 2 busy, 4 unavailable, 8 ringing,
    /// 9 in use + ringing, 16 on hold).
    pub fn extension_status(self) -> i32 {
        match self {
            DeviceState::NotInUse => 0,
            DeviceState::InUse => 1,
            DeviceState::Busy => 2,
            DeviceState::Unavailable => 4,
            DeviceState::Ringing => 8,
            DeviceState::RingInUse => 9,
            DeviceState::OnHold => 16,
        }
    }

    /// `Idle`, `InUse`, … (AMI `ExtensionStatus` `StatusText`).
    pub fn extension_status_text(self) -> &'static str {
        match self {
            DeviceState::NotInUse => "Idle",
            DeviceState::InUse => "InUse",
            DeviceState::Busy => "Busy",
            DeviceState::Unavailable => "Unavailable",
            DeviceState::Ringing => "Ringing",
            DeviceState::RingInUse => "InUse&Ringing",
            DeviceState::OnHold => "Hold",
        }
    }
}

/// The presence status a user sets (REST `POST /api/presence/set`, or a phone's PUBLISH).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PresenceStatus {
    #[default]
    Available,
    Busy,
    Away,
    DoNotDisturb,
    InMeeting,
    Offline,
}

impl PresenceStatus {
    pub const ALL: [PresenceStatus; 6] = [
        PresenceStatus::Available,
        PresenceStatus::Busy,
        PresenceStatus::Away,
        PresenceStatus::DoNotDisturb,
        PresenceStatus::InMeeting,
        PresenceStatus::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PresenceStatus::Available => "available",
            PresenceStatus::Busy => "busy",
            PresenceStatus::Away => "away",
            PresenceStatus::DoNotDisturb => "do_not_disturb",
            PresenceStatus::InMeeting => "in_meeting",
            PresenceStatus::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<PresenceStatus> {
        PresenceStatus::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Asterisk's presence state names (AMI `PresenceStateChange` `Status:`).
    pub fn asterisk_name(self) -> &'static str {
        match self {
            PresenceStatus::Available => "available",
            PresenceStatus::Busy => "busy",
            PresenceStatus::Away => "away",
            PresenceStatus::DoNotDisturb => "dnd",
            PresenceStatus::InMeeting => "unavailable",
            PresenceStatus::Offline => "unavailable",
        }
    }

    /// RFC 4480 activity for the PIDF person element.
    fn rpid_activity(self) -> Option<&'static str> {
        match self {
            PresenceStatus::Available | PresenceStatus::Offline => None,
            PresenceStatus::Busy | PresenceStatus::DoNotDisturb => Some("busy"),
            PresenceStatus::Away => Some("away"),
            PresenceStatus::InMeeting => Some("meeting"),
        }
    }
}

/// RFC 4235 dialog states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialogState {
    Trying,
    Proceeding,
    Early,
    Confirmed,
    Terminated,
}

impl DialogState {
    pub fn as_str(self) -> &'static str {
        match self {
            DialogState::Trying => "trying",
            DialogState::Proceeding => "proceeding",
            DialogState::Early => "early",
            DialogState::Confirmed => "confirmed",
            DialogState::Terminated => "terminated",
        }
    }
}

/// One party of a dialog in a dialog-info body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Party {
    /// `sip:1001@host`
    pub uri: String,
    pub display: Option<String>,
}

/// A dialog of the watched extension, as dialog-info shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogView {
    /// Unique per dialog within the extension's view.
    pub id: String,
    pub call_id: String,
    pub local_tag: Option<String>,
    pub remote_tag: Option<String>,
    /// The watched extension placed the call.
    pub initiator: bool,
    pub state: DialogState,
    /// The watched extension's side.
    pub local: Party,
    /// The other party (the caller of a ringing call: lets a phone offer call pickup).
    pub remote: Party,
    /// The watched phone put the call on hold (Asterisk marks the local target
    /// `+sip.rendering=no`).
    pub held: bool,
    /// Seconds since the dialog was answered, for confirmed dialogs.
    pub duration: Option<u64>,
}

fn xml_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    xml_escape(s, &mut o);
    o
}

/// `application/dialog-info+xml` (RFC 4235 §4), always full state. An idle extension has no
/// dialogs; `dialogs` ending in `Terminated` are shown once, after the call.
pub fn dialog_info(entity: &str, version: u32, dialogs: &[DialogView]) -> String {
    let mut s = String::with_capacity(256 + dialogs.len() * 512);
    let _ = write!(
        s,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"{version}\" \
         state=\"full\" entity=\"{}\">\r\n",
        esc(entity)
    );
    for d in dialogs {
        let _ = write!(
            s,
            " <dialog id=\"{}\" call-id=\"{}\"",
            esc(&d.id),
            esc(&d.call_id)
        );
        if let Some(t) = &d.local_tag {
            let _ = write!(s, " local-tag=\"{}\"", esc(t));
        }
        if let Some(t) = &d.remote_tag {
            let _ = write!(s, " remote-tag=\"{}\"", esc(t));
        }
        let _ = write!(
            s,
            " direction=\"{}\">\r\n  <state>{}</state>\r\n",
            if d.initiator {
                "initiator"
            } else {
                "recipient"
            },
            d.state.as_str()
        );
        if let Some(secs) = d.duration {
            let _ = write!(s, "  <duration>{secs}</duration>\r\n");
        }
        for (tag, party, held) in [("local", &d.local, d.held), ("remote", &d.remote, false)] {
            let _ = write!(s, "  <{tag}>\r\n   <identity");
            if let Some(name) = &party.display {
                let _ = write!(s, " display=\"{}\"", esc(name));
            }
            let _ = write!(
                s,
                ">{}</identity>\r\n   <target uri=\"{}\"",
                esc(&party.uri),
                esc(&party.uri)
            );
            if held {
                s.push_str(
                    ">\r\n    <param pname=\"+sip.rendering\" pvalue=\"no\"/>\r\n   </target>\r\n",
                );
            } else {
                s.push_str("/>\r\n");
            }
            let _ = write!(s, "  </{tag}>\r\n");
        }
        s.push_str(" </dialog>\r\n");
    }
    s.push_str("</dialog-info>\r\n");
    s
}

/// What a presence document says about one extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceView {
    /// The extension can be reached (registered and not `offline`).
    pub open: bool,
    pub status: PresenceStatus,
    /// On a call right now (RPID `on-the-phone`).
    pub on_the_phone: bool,
    pub note: Option<String>,
}

fn status_note(v: &PresenceView) -> String {
    match &v.note {
        Some(n) if !n.is_empty() => n.clone(),
        _ if v.on_the_phone => "On the phone".into(),
        _ => match v.status {
            PresenceStatus::Available if v.open => "Ready".into(),
            PresenceStatus::Available | PresenceStatus::Offline => "Offline".into(),
            PresenceStatus::Busy => "Busy".into(),
            PresenceStatus::Away => "Away".into(),
            PresenceStatus::DoNotDisturb => "Do not disturb".into(),
            PresenceStatus::InMeeting => "In a meeting".into(),
        },
    }
}

/// `application/pidf+xml` (RFC 3863) with the RFC 4479 person element and RFC 4480 activities.
pub fn pidf(entity: &str, contact: &str, tuple_id: &str, v: &PresenceView) -> String {
    let mut s = String::with_capacity(640);
    let _ = write!(
        s,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
         xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" \
         xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"{}\">\r\n\
         \x20<tuple id=\"{}\">\r\n  <status>\r\n   <basic>{}</basic>\r\n  </status>\r\n\
         \x20 <contact priority=\"1\">{}</contact>\r\n  <note>{}</note>\r\n </tuple>\r\n",
        esc(entity),
        esc(tuple_id),
        if v.open { "open" } else { "closed" },
        esc(contact),
        esc(&status_note(v)),
    );
    let _ = write!(s, " <dm:person id=\"p{}\">\r\n", esc(tuple_id));
    let activity = if v.on_the_phone && v.status == PresenceStatus::Available {
        Some("on-the-phone")
    } else {
        v.status.rpid_activity()
    };
    if let Some(a) = activity {
        let _ = write!(
            s,
            "  <rpid:activities>\r\n   <rpid:{a}/>\r\n  </rpid:activities>\r\n"
        );
    }
    if let Some(n) = v.note.as_ref().filter(|n| !n.is_empty()) {
        let _ = write!(s, "  <dm:note>{}</dm:note>\r\n", esc(n));
    }
    s.push_str(" </dm:person>\r\n</presence>\r\n");
    s
}

/// `application/xpidf+xml`: the pre-standard format older phones (some Polycom, Cisco, Snom
/// builds) ask for; `status` open/closed plus an MSN-style substatus, as Asterisk writes it.
pub fn xpidf(entity: &str, contact: &str, atom_id: &str, v: &PresenceView) -> String {
    let substatus = if !v.open {
        "offline"
    } else if v.on_the_phone || v.status != PresenceStatus::Available {
        match v.status {
            PresenceStatus::Away => "away",
            _ => "onthephone",
        }
    } else {
        "online"
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\r\n\
         <!DOCTYPE presence PUBLIC \"-//IETF//DTD RFCxxxx XPIDF 1.0//EN\" \"xpidf.dtd\">\r\n\
         <presence>\r\n<presentity uri=\"{};method=SUBSCRIBE\" />\r\n<atom id=\"{}\">\r\n\
         <address uri=\"{};user=ip\" priority=\"0.800000\">\r\n<status status=\"{}\" />\r\n\
         <msnsubstatus substatus=\"{substatus}\" />\r\n</address>\r\n</atom>\r\n</presence>\r\n",
        esc(entity),
        esc(atom_id),
        esc(contact),
        if v.open { "open" } else { "closed" },
    )
}

/// Voicemail counts for `message-summary` (RFC 3842). The voicemail work provides them; until
/// then every mailbox is empty.
pub trait MailboxCounts {
    /// (new, old, urgent new, urgent old) voice messages of `mailbox`.
    fn counts(&self, mailbox: &str) -> (u32, u32, u32, u32);
}

/// No voicemail yet: 0/0.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoVoicemail;

impl MailboxCounts for NoVoicemail {
    fn counts(&self, _mailbox: &str) -> (u32, u32, u32, u32) {
        (0, 0, 0, 0)
    }
}

/// `application/simple-message-summary` (RFC 3842 §5.2).
pub fn message_summary(account: &str, counts: (u32, u32, u32, u32)) -> String {
    let (new, old, unew, uold) = counts;
    format!(
        "Messages-Waiting: {}\r\nMessage-Account: {account}\r\nVoice-Message: {new}/{old} ({unew}/{uold})\r\n",
        if new > 0 { "yes" } else { "no" }
    )
}

/// What a phone's PUBLISH (RFC 3903) of a PIDF document says: basic open/closed, an RPID
/// activity and a note. Unknown elements are ignored (RFC 3863 §4.3.3 mustUnderstand aside:
/// a document we cannot read is refused with 400 by the caller).
pub fn parse_published(body: &str) -> Result<(PresenceStatus, Option<String>), String> {
    let doc = roxmltree::Document::parse(body).map_err(|e| format!("PIDF: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "presence" {
        return Err("PIDF: the root element is not <presence>".into());
    }
    let mut open = None;
    let mut activity = None;
    let mut note = None;
    for n in root.descendants().filter(|n| n.is_element()) {
        match n.tag_name().name() {
            "basic" => open = n.text().map(|t| t.trim().eq_ignore_ascii_case("open")),
            "note" if note.is_none() => {
                note = n
                    .text()
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
            }
            "activities" => {
                activity = n
                    .children()
                    .find(|c| c.is_element())
                    .map(|c| c.tag_name().name().to_owned())
            }
            _ => {}
        }
    }
    let status = match (open, activity.as_deref()) {
        (Some(false), _) => PresenceStatus::Offline,
        (_, Some("busy")) => PresenceStatus::Busy,
        (_, Some("away" | "vacation" | "holiday" | "meal" | "breakfast" | "dinner")) => {
            PresenceStatus::Away
        }
        (_, Some("meeting" | "appointment" | "presentation")) => PresenceStatus::InMeeting,
        _ => PresenceStatus::Available,
    };
    Ok((status, note))
}

#[cfg(test)]
#[path = "presence_tests.rs"]
mod tests;
