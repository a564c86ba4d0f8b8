//! Engine events → AMI events. Registration and qualify changes become `ContactStatus`; the
//! endpoint's availability (any usable contact) drives `PeerStatus`, `DeviceStateChange` and,
//! for endpoints with a hint, `ExtensionStatus`. Call state (in use, ringing) is folded in
//! through [`EndpointTracker::set_call_state`].

use std::collections::HashMap;

use super::events::{self, AmiEvent, ContactState, DeviceState};
use crate::pbx::engine::PbxEvent;
use crate::pbx::registrar::QualifyStatus;

#[derive(Debug, Default)]
struct EndpointState {
    contacts: HashMap<String, ContactState>,
    /// Call state from the call engine (`InUse`, `Ringing`, ...); `None` = idle.
    call: Option<DeviceState>,
    /// The engine's own device state (`PbxEvent::DeviceState`): once one arrived it wins
    /// over the state derived here from registrations and channels.
    engine: Option<DeviceState>,
    /// The last device state reported.
    reported: Option<DeviceState>,
    /// `(exten, context)` of its hint.
    hint: Option<(String, String)>,
}

impl EndpointState {
    fn available(&self) -> bool {
        self.contacts.values().any(|s| s.is_available())
    }

    fn device_state(&self) -> DeviceState {
        if let Some(s) = self.engine {
            return s;
        }
        match (self.available(), self.call) {
            (_, Some(c)) => c,
            (true, None) => DeviceState::NotInUse,
            (false, None) => DeviceState::Unavailable,
        }
    }
}

/// Keeps what AMI needs to turn engine events into Asterisk's events (one per runtime).
#[derive(Debug, Default)]
pub struct EndpointTracker {
    endpoints: HashMap<String, EndpointState>,
}

/// The AMI token of an engine device state.
pub fn device_state(s: crate::pbx::presence::DeviceState) -> DeviceState {
    use crate::pbx::presence::DeviceState as P;
    match s {
        P::NotInUse => DeviceState::NotInUse,
        P::InUse => DeviceState::InUse,
        P::Busy => DeviceState::Busy,
        P::Unavailable => DeviceState::Unavailable,
        P::Ringing => DeviceState::Ringing,
        P::RingInUse => DeviceState::RingInUse,
        P::OnHold => DeviceState::OnHold,
    }
}

/// The AMI status of a qualify result.
pub fn contact_state(q: QualifyStatus) -> ContactState {
    match q {
        QualifyStatus::Unknown => ContactState::Unknown,
        QualifyStatus::Reachable => ContactState::Reachable,
        QualifyStatus::Unreachable => ContactState::Unreachable,
    }
}

impl EndpointTracker {
    pub fn new() -> EndpointTracker {
        EndpointTracker::default()
    }

    /// Declare a hint `exten@context` → `PJSIP/<endpoint>` (ExtensionStatus on changes).
    pub fn set_hint(&mut self, endpoint: &str, exten: &str, context: &str) {
        self.endpoints.entry(endpoint.to_string()).or_default().hint =
            Some((exten.to_string(), context.to_string()));
    }

    /// Drop the hint of an endpoint (its extension is gone): `ExtensionStatus` -1.
    pub fn remove_hint(&mut self, endpoint: &str) -> Vec<AmiEvent> {
        let Some((exten, context)) = self.endpoints.get_mut(endpoint).and_then(|e| e.hint.take())
        else {
            return Vec::new();
        };
        vec![events::extension_status(
            &exten,
            &context,
            &format!("PJSIP/{endpoint}"),
            -1,
        )]
    }

    /// Know a contact without reporting it (bindings restored at start-up).
    pub fn seed_contact(&mut self, aor: &str, uri: &str, state: ContactState) {
        let e = self.endpoints.entry(aor.to_string()).or_default();
        e.contacts.insert(uri.to_string(), state);
        e.reported = Some(e.device_state());
    }

    /// The device state of an endpoint now.
    pub fn device_state(&self, endpoint: &str) -> DeviceState {
        self.endpoints
            .get(endpoint)
            .map(EndpointState::device_state)
            .unwrap_or(DeviceState::Unavailable)
    }

    /// The call engine's view of an endpoint (`Some(InUse)`, `Some(Ringing)`, `None` when it
    /// has no call); returns the events for a device-state change.
    pub fn set_call_state(&mut self, endpoint: &str, call: Option<DeviceState>) -> Vec<AmiEvent> {
        let e = self.endpoints.entry(endpoint.to_string()).or_default();
        e.call = call;
        let mut out = Vec::new();
        Self::report_device(endpoint, e, &mut out);
        out
    }

    fn report_device(endpoint: &str, e: &mut EndpointState, out: &mut Vec<AmiEvent>) {
        let now = e.device_state();
        if e.reported == Some(now) {
            return;
        }
        e.reported = Some(now);
        out.push(events::device_state_change(
            &format!("PJSIP/{endpoint}"),
            now,
        ));
        if let Some((exten, context)) = &e.hint {
            out.push(events::extension_status(
                exten,
                context,
                &format!("PJSIP/{endpoint}"),
                now.extension_state(),
            ));
        }
    }

    fn update(
        &mut self,
        aor: &str,
        uri: &str,
        state: ContactState,
        rtt_usec: Option<u64>,
    ) -> Vec<AmiEvent> {
        let e = self.endpoints.entry(aor.to_string()).or_default();
        let was = e.available();
        if state == ContactState::Removed {
            e.contacts.remove(uri);
        } else {
            e.contacts.insert(uri.to_string(), state);
        }
        let mut out = vec![events::contact_status(uri, state, aor, aor, rtt_usec)];
        let is = e.available();
        if was != is {
            out.push(events::peer_status(aor, is));
        }
        Self::report_device(aor, e, &mut out);
        out
    }

    /// The AMI events for one engine event, in Asterisk's order.
    pub fn handle(&mut self, ev: &PbxEvent) -> Vec<AmiEvent> {
        match ev {
            PbxEvent::Registered { aor, contact, .. } => {
                self.update(aor, contact, ContactState::Unknown, None)
            }
            PbxEvent::Unregistered { aor, contact, .. } => {
                self.update(aor, contact, ContactState::Removed, None)
            }
            PbxEvent::ContactStatus {
                aor,
                contact,
                status,
                rtt,
            } => {
                let rtt = rtt.map(|d| d.as_micros() as u64);
                self.update(aor, contact, contact_state(*status), rtt)
            }
            PbxEvent::DeviceState {
                extension, state, ..
            } => {
                let e = self.endpoints.entry(extension.clone()).or_default();
                e.engine = Some(device_state(*state));
                let mut out = Vec::new();
                Self::report_device(extension, e, &mut out);
                out
            }
            PbxEvent::Presence {
                extension,
                status,
                note,
            } => vec![events::presence_state_change(
                &format!("CustomPresence:{extension}"),
                status.asterisk_name(),
                "",
                note.as_deref().unwrap_or(""),
            )],
            PbxEvent::Directory { number, context } => match context {
                Some(ctx) => {
                    self.set_hint(number, number, ctx);
                    Vec::new()
                }
                None => self.remove_hint(number),
            },
            // Channel events and CDRs are built by the channel tracker.
            PbxEvent::Call(_) | PbxEvent::Cdr(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbx::peer::Peer;
    use crate::pbx::registrar::RemoveReason;
    use std::time::Duration;

    fn names(evs: &[AmiEvent]) -> Vec<String> {
        evs.iter()
            .map(|e| {
                let extra = e
                    .header("ContactStatus")
                    .or(e.header("PeerStatus"))
                    .or(e.header("State"))
                    .or(e.header("StatusText"))
                    .unwrap_or("");
                format!("{}:{extra}", e.name)
            })
            .collect()
    }

    #[test]
    fn register_qualify_unregister() {
        let mut t = EndpointTracker::new();
        t.set_hint("1001", "1001", "from-internal");
        let uri = "sip:1001@127.0.0.1:5070";
        let evs = t.handle(&PbxEvent::Registered {
            aor: "1001".into(),
            contact: uri.into(),
            source: Peer::udp("127.0.0.1:5070".parse().unwrap()),
            user_agent: None,
        });
        assert_eq!(
            names(&evs),
            [
                "ContactStatus:Unknown",
                "PeerStatus:Reachable",
                "DeviceStateChange:NOT_INUSE",
                "ExtensionStatus:Idle"
            ]
        );
        let evs = t.handle(&PbxEvent::ContactStatus {
            aor: "1001".into(),
            contact: uri.into(),
            status: QualifyStatus::Reachable,
            rtt: Some(Duration::from_micros(12_345)),
        });
        assert_eq!(names(&evs), ["ContactStatus:Reachable"]);
        assert_eq!(evs[0].header("RoundtripUsec"), Some("12345"));
        let evs = t.set_call_state("1001", Some(DeviceState::InUse));
        assert_eq!(
            names(&evs),
            ["DeviceStateChange:INUSE", "ExtensionStatus:InUse"]
        );
        t.set_call_state("1001", None);
        let evs = t.handle(&PbxEvent::Unregistered {
            aor: "1001".into(),
            contact: uri.into(),
            reason: RemoveReason::Unregistered,
        });
        assert_eq!(
            names(&evs),
            [
                "ContactStatus:Removed",
                "PeerStatus:Unreachable",
                "DeviceStateChange:UNAVAILABLE",
                "ExtensionStatus:Unavailable"
            ]
        );
        assert_eq!(t.device_state("1001"), DeviceState::Unavailable);
    }

    #[test]
    fn hints_follow_the_directory() {
        let mut t = EndpointTracker::new();
        let uri = "sip:1077@127.0.0.1:5070";
        let registered = PbxEvent::Registered {
            aor: "1077".into(),
            contact: uri.into(),
            source: Peer::udp("127.0.0.1:5070".parse().unwrap()),
            user_agent: None,
        };
        // Created after start-up: the hint exists before the first registration.
        let evs = t.handle(&PbxEvent::Directory {
            number: "1077".into(),
            context: Some("sales".into()),
        });
        assert!(evs.is_empty());
        let evs = t.handle(&registered);
        let es = evs.iter().find(|e| e.name == "ExtensionStatus").unwrap();
        assert_eq!(es.header("Exten"), Some("1077"));
        assert_eq!(es.header("Context"), Some("sales"));
        // Removed: one ExtensionStatus -1, then no hint any more.
        let evs = t.handle(&PbxEvent::Directory {
            number: "1077".into(),
            context: None,
        });
        assert_eq!(names(&evs), ["ExtensionStatus:Deactivated"]);
        assert_eq!(evs[0].header("Status"), Some("-1"));
        let evs = t.set_call_state("1077", Some(DeviceState::InUse));
        assert_eq!(names(&evs), ["DeviceStateChange:INUSE"]);
        assert!(
            t.handle(&PbxEvent::Directory {
                number: "1077".into(),
                context: None,
            })
            .is_empty()
        );
    }

    #[test]
    fn engine_device_state_wins() {
        use crate::pbx::presence::DeviceState as P;
        let mut t = EndpointTracker::new();
        t.set_hint("1001", "1001", "from-internal");
        let evs = t.handle(&PbxEvent::DeviceState {
            extension: "1001".into(),
            state: P::Ringing,
            dnd: false,
        });
        assert_eq!(
            names(&evs),
            ["DeviceStateChange:RINGING", "ExtensionStatus:Ringing"]
        );
        // The tracker's own call state no longer reports.
        assert!(
            t.set_call_state("1001", Some(DeviceState::InUse))
                .is_empty()
        );
        let evs = t.handle(&PbxEvent::DeviceState {
            extension: "1001".into(),
            state: P::OnHold,
            dnd: false,
        });
        assert_eq!(
            names(&evs),
            ["DeviceStateChange:ONHOLD", "ExtensionStatus:Hold"]
        );
    }
}
