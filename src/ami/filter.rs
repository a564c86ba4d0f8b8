//! manager.conf `eventfilter`: legacy regex filters (`!` = exclude) and the advanced
//! `eventfilter(action(…),name(…),header(…),method(…)) = value` form.

use regex::Regex;

use super::events::AmiEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Regex,
    Exact,
    StartsWith,
    EndsWith,
    Contains,
    None,
}

#[derive(Debug, Clone)]
struct Filter {
    include: bool,
    name: Option<String>,
    header: Option<String>,
    method: Method,
    value: String,
    regex: Option<Regex>,
}

/// A user's filters.
#[derive(Debug, Clone, Default)]
pub struct EventFilters {
    filters: Vec<Filter>,
}

fn criterion<'a>(spec: &'a str, key: &str) -> Result<Option<&'a str>, String> {
    let mut rest = spec;
    while let Some(pos) = rest.find(&format!("{key}(")) {
        let before = rest[..pos].chars().last();
        let start = pos + key.len() + 1;
        if before.is_none_or(|c| c == ',' || c == ' ') {
            let end = rest[start..]
                .find(')')
                .ok_or_else(|| format!("unclosed {key}( in eventfilter"))?;
            return Ok(Some(&rest[start..start + end]));
        }
        rest = &rest[start..];
    }
    Ok(None)
}

impl EventFilters {
    /// Parse the filters of one user, reporting the first bad one.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<EventFilters, String> {
        let mut filters = Vec::new();
        for s in specs {
            filters.push(Self::parse_one(s.as_ref())?);
        }
        Ok(EventFilters { filters })
    }

    fn parse_one(spec: &str) -> Result<Filter, String> {
        let spec = spec.trim();
        let advanced = spec
            .strip_prefix("eventfilter(")
            .map(|r| ("(", r))
            .or_else(|| {
                ["action(", "name(", "header(", "method("]
                    .iter()
                    .any(|p| spec.starts_with(p))
                    .then_some(("", spec))
            });
        if let Some((_, body)) = advanced {
            // criteria ... [)] = value
            let (crit, value) = match body.rfind(") =").or_else(|| body.rfind(")=")) {
                Some(i) => (&body[..=i], body[i + 1..].trim_start()),
                None => (body, ""),
            };
            let value = value.strip_prefix('=').unwrap_or(value).trim().to_string();
            let include = match criterion(crit, "action")? {
                None | Some("include") => true,
                Some("exclude") => false,
                Some(o) => return Err(format!("eventfilter: unknown action({o})")),
            };
            let method = match criterion(crit, "method")? {
                None => {
                    if value.is_empty() {
                        Method::None
                    } else {
                        Method::Regex
                    }
                }
                Some("regex") => Method::Regex,
                Some("exact") => Method::Exact,
                Some("starts_with") => Method::StartsWith,
                Some("ends_with") => Method::EndsWith,
                Some("contains") => Method::Contains,
                Some("none") => Method::None,
                Some(o) => return Err(format!("eventfilter: unknown method({o})")),
            };
            let regex = if method == Method::Regex {
                Some(Regex::new(&value).map_err(|e| format!("eventfilter: bad regex: {e}"))?)
            } else {
                None
            };
            return Ok(Filter {
                include,
                name: criterion(crit, "name")?.map(str::to_string),
                header: criterion(crit, "header")?.map(|h| h.trim_end_matches(':').to_string()),
                method,
                value,
                regex,
            });
        }
        let (include, pattern) = match spec.strip_prefix('!') {
            Some(p) => (false, p),
            None => (true, spec),
        };
        let regex =
            Regex::new(pattern).map_err(|e| format!("eventfilter: bad regex {pattern:?}: {e}"))?;
        Ok(Filter {
            include,
            name: None,
            header: None,
            method: Method::Regex,
            value: pattern.to_string(),
            regex: Some(regex),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    fn matches(f: &Filter, ev: &AmiEvent, text: &str) -> bool {
        if let Some(n) = &f.name
            && !n.eq_ignore_ascii_case(&ev.name)
        {
            return false;
        }
        let subject = match &f.header {
            Some(h) if h.eq_ignore_ascii_case("Event") => &*ev.name,
            Some(h) => match ev.header(h) {
                Some(v) => v,
                None => return false,
            },
            None => text,
        };
        match f.method {
            Method::None => true,
            Method::Regex => f.regex.as_ref().is_some_and(|r| r.is_match(subject)),
            Method::Exact => subject == f.value,
            Method::StartsWith => subject.starts_with(&f.value),
            Method::EndsWith => subject.ends_with(&f.value),
            Method::Contains => subject.contains(&f.value),
        }
    }

    /// Whether `ev` passes: no filters → yes; includes → one must match; excludes → none may.
    pub fn allows(&self, ev: &AmiEvent, wire: &str) -> bool {
        if self.filters.is_empty() {
            return true;
        }
        let mut has_include = false;
        let mut included = false;
        for f in self.filters.iter().filter(|f| f.include) {
            has_include = true;
            if Self::matches(f, ev, wire) {
                included = true;
                break;
            }
        }
        if has_include && !included {
            return false;
        }
        !self
            .filters
            .iter()
            .filter(|f| !f.include)
            .any(|f| Self::matches(f, ev, wire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ami::events::{AmiEvent, DeviceState, device_state_change};
    use crate::ami::perms;

    fn ev(name: &'static str, chan: &str) -> AmiEvent {
        AmiEvent::new(name, perms::CALL).kv("Channel", chan)
    }

    fn ok(f: &EventFilters, e: &AmiEvent) -> bool {
        f.allows(e, &e.to_wire())
    }

    #[test]
    fn legacy_filters() {
        let f = EventFilters::parse(&["!Event: (Newexten|VarSet)"]).unwrap();
        assert!(!ok(&f, &ev("Newexten", "x")));
        assert!(ok(&f, &ev("Newchannel", "x")));
        let f = EventFilters::parse(&["Event: DeviceStateChange"]).unwrap();
        assert!(ok(&f, &device_state_change("PJSIP/1", DeviceState::InUse)));
        assert!(!ok(&f, &ev("Newchannel", "x")));
        assert!(EventFilters::parse(&["(unclosed"]).is_err());
        assert!(ok(&EventFilters::default(), &ev("Hangup", "x")));
    }

    #[test]
    fn advanced_filters() {
        let f = EventFilters::parse(&[
            "eventfilter(action(exclude),name(Newchannel),header(Channel),method(starts_with)) = Local/",
        ])
        .unwrap();
        assert!(!ok(&f, &ev("Newchannel", "Local/1@x")));
        assert!(ok(&f, &ev("Newchannel", "PJSIP/1001-00000001")));
        assert!(ok(&f, &ev("Hangup", "Local/1@x")));
        let f = EventFilters::parse(&["action(include),name(Hangup)"]).unwrap();
        assert!(ok(&f, &ev("Hangup", "a")));
        assert!(!ok(&f, &ev("Newchannel", "a")));
        // both: includes first, then excludes
        let f = EventFilters::parse(&["Event: (Hangup|Newchannel)", "!Channel: Local/"]).unwrap();
        assert!(ok(&f, &ev("Hangup", "PJSIP/1")));
        assert!(!ok(&f, &ev("Hangup", "Local/1")));
        assert!(!ok(&f, &ev("Newstate", "PJSIP/1")));
        assert!(EventFilters::parse(&["action(maybe),name(X)"]).is_err());
    }
}
