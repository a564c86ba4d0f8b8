//! `dialtone monitor-events`: the human lines RayanPBX's `rayanpbx:monitor-events` prints for
//! the AMI stream (registrations, ringing, ended calls).

/// The line for one AMI event (`header` looks a body header up), if it makes one.
pub fn line<'a>(event: &str, header: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
    let h = |k: &str| header(k).unwrap_or("");
    match event {
        "ContactStatus" => {
            let aor = h("AOR");
            if aor.is_empty() || !aor.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            match h("ContactStatus") {
                // A fresh binding is `Unknown` (not yet qualified) or `NonQualified` here.
                "Created" | "Reachable" | "Unknown" | "NonQualified" => {
                    Some(format!("✅ Extension {aor} registered"))
                }
                "Removed" | "Unreachable" => Some(format!("❌ Extension {aor} unregistered")),
                _ => None,
            }
        }
        "Newstate" => match h("ChannelStateDesc") {
            "Ring" | "Ringing" => Some(format!(
                "🔔 Extension {} ringing from {}",
                h("Exten"),
                h("CallerIDNum")
            )),
            _ => None,
        },
        "Hangup" => {
            let cause = header("Cause-txt").unwrap_or("Unknown");
            Some(format!("📞 Call ended: {} - {cause}", h("Channel")))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(event: &str, pairs: &[(&'static str, &'static str)]) -> Option<String> {
        line(event, |k| {
            pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
        })
    }

    #[test]
    fn seed_lines() {
        assert_eq!(
            run(
                "ContactStatus",
                &[("AOR", "1001"), ("ContactStatus", "Reachable")]
            )
            .as_deref(),
            Some("✅ Extension 1001 registered")
        );
        assert_eq!(
            run(
                "ContactStatus",
                &[("AOR", "1001"), ("ContactStatus", "Removed")]
            )
            .as_deref(),
            Some("❌ Extension 1001 unregistered")
        );
        assert_eq!(
            run(
                "ContactStatus",
                &[("AOR", "trunk"), ("ContactStatus", "Removed")]
            ),
            None
        );
        assert_eq!(
            run(
                "Newstate",
                &[
                    ("ChannelStateDesc", "Ringing"),
                    ("Exten", "1002"),
                    ("CallerIDNum", "1001")
                ]
            )
            .as_deref(),
            Some("🔔 Extension 1002 ringing from 1001")
        );
        assert_eq!(run("Newstate", &[("ChannelStateDesc", "Up")]), None);
        assert_eq!(
            run(
                "Hangup",
                &[
                    ("Channel", "PJSIP/1001-00000000"),
                    ("Cause-txt", "Normal Clearing")
                ]
            )
            .as_deref(),
            Some("📞 Call ended: PJSIP/1001-00000000 - Normal Clearing")
        );
    }
}
