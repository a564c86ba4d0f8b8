//! pjsip.conf checks for `/api/validate/pjsip` (seed-systems.md §5 rule 8): errors make the
//! file unusable (grammar errors, two objects with the same name *and* type); warnings are the
//! usual causes of "my phone does not register / BLF does not work". The same name with
//! different types is normal and not reported (RayanPBX gets this wrong, §9 #4).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

use serde::Serialize;

use super::model::codecs_of;
use super::parse::{NoFiles, ParseOptions, parse_str};

/// The result of a validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Validation {
    pub valid: bool,
    /// `line N: message` (the text has no file name).
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// Validate pjsip.conf text (includes are not followed).
pub fn validate_pjsip(text: &str) -> Validation {
    let mut v = Validation::default();
    let opts = ParseOptions {
        follow_includes: false,
        disabled_sections: true,
    };
    let conf = match parse_str(&NoFiles, Path::new("pjsip.conf"), text, opts) {
        Ok(c) => c,
        Err(e) => {
            v.errors.push(format!("line {}: {}", e.loc.line, e.kind));
            return v;
        }
    };
    for w in &conf.warnings {
        v.warnings
            .push(format!("line {}: {}", w.loc.line, w.message));
    }
    let mut seen: HashMap<(String, String), u32> = HashMap::new();
    let mut names: HashMap<String, HashSet<String>> = HashMap::new();
    for c in conf.objects() {
        let Some(kind) = c.kind() else {
            v.warnings
                .push(format!("line {}: [{}] has no type=", c.loc.line, c.name));
            continue;
        };
        if let Some(first) = seen.insert((c.name.clone(), kind.clone()), c.loc.line) {
            v.errors.push(format!(
                "line {}: duplicate section [{}] with type={kind} (first at line {first})",
                c.loc.line, c.name
            ));
        }
        names.entry(kind).or_default().insert(c.name.clone());
    }
    let has = |kind: &str, name: &str| names.get(kind).is_some_and(|s| s.contains(name));
    let list = |v: Option<&str>| -> Vec<String> {
        v.unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    for c in conf.objects() {
        let at = c.loc.line;
        match c.kind().as_deref() {
            Some("endpoint") => {
                let auths = list(c.get("auth"));
                if auths.is_empty() && c.get("outbound_auth").is_none() {
                    v.warnings
                        .push(format!("line {at}: endpoint [{}] has no auth", c.name));
                }
                for a in auths.iter().chain(list(c.get("outbound_auth")).iter()) {
                    if !has("auth", a) {
                        v.warnings.push(format!(
                            "line {at}: endpoint [{}] references auth '{a}', which is not defined",
                            c.name
                        ));
                    }
                }
                let aors = list(c.get("aors"));
                if aors.is_empty() {
                    v.warnings
                        .push(format!("line {at}: endpoint [{}] has no aor", c.name));
                }
                for a in &aors {
                    if !has("aor", a) {
                        v.warnings.push(format!(
                            "line {at}: endpoint [{}] references aor '{a}', which is not defined",
                            c.name
                        ));
                    }
                }
                let vars: Vec<(String, String)> = c
                    .vars
                    .iter()
                    .map(|x| (x.name.clone(), x.value.clone()))
                    .collect();
                if codecs_of(&vars).is_empty() {
                    v.warnings
                        .push(format!("line {at}: endpoint [{}] allows no codecs", c.name));
                }
                if c.get("subscribe_context")
                    .is_none_or(|s| s.trim().is_empty())
                {
                    v.warnings.push(format!(
                        "line {at}: endpoint [{}] has no subscribe_context (BLF will not work)",
                        c.name
                    ));
                }
                if let Some(t) = c.get("transport").map(str::trim).filter(|t| !t.is_empty())
                    && !has("transport", t)
                {
                    v.warnings.push(format!(
                        "line {at}: endpoint [{}] uses transport '{t}', which is not defined",
                        c.name
                    ));
                }
            }
            Some("aor") => {
                for (i, contact) in c.get_all("contact").enumerate() {
                    for uri in contact.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        if !valid_contact(uri) {
                            let line = c
                                .vars
                                .iter()
                                .filter(|x| x.name.eq_ignore_ascii_case("contact"))
                                .nth(i)
                                .map_or(at, |x| x.loc.line);
                            v.warnings.push(format!(
                                "line {line}: aor [{}]: bad contact '{uri}'",
                                c.name
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    v.valid = v.errors.is_empty();
    v
}

/// `sip:[user@]host[:port][;params]` (or sips:) with a valid host.
pub fn valid_contact(uri: &str) -> bool {
    let lower = uri.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("sip:")
        .or_else(|| lower.strip_prefix("sips:"))
    else {
        return false;
    };
    let rest = rest.split([';', '?']).next().unwrap_or("");
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, p)) => {
                if h.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (None, p.strip_prefix(':'))
            }
            None => return false,
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(hostport), None),
        }
    };
    if let Some(p) = port
        && p.parse::<u16>().map_or(true, |p| p == 0)
    {
        return false;
    }
    match host {
        None => true,
        Some(h) if h.parse::<IpAddr>().is_ok() => true,
        Some(h) => {
            let looks_numeric = h.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit()));
            !h.is_empty()
                && !looks_numeric
                && h.len() <= 253
                && h.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_8_warnings_and_errors() {
        let text = "\
[transport-udp]
type=transport

[101]
type=endpoint
auth=101
aors=101
allow=ulaw
transport=transport-tls

[101]
type=auth
password=x

[101]
type=aor
contact=sip:101@999.1.1.1:5060
contact=sip:101@192.0.2.1:5060

[102]
type=endpoint
disallow=all
subscribe_context=from-internal

[102]
type=endpoint
";
        let v = validate_pjsip(text);
        assert!(!v.valid);
        assert_eq!(v.errors.len(), 1, "{v:?}");
        assert!(
            v.errors[0].starts_with(
                "line 25: duplicate section [102] with type=endpoint (first at line 20)"
            )
        );
        let w = v.warnings.join("\n");
        assert!(
            w.contains("line 4: endpoint [101] has no subscribe_context"),
            "{w}"
        );
        assert!(
            w.contains("transport 'transport-tls', which is not defined"),
            "{w}"
        );
        assert!(
            w.contains("line 17: aor [101]: bad contact 'sip:101@999.1.1.1:5060'"),
            "{w}"
        );
        assert!(!w.contains("192.0.2.1"), "{w}");
        assert!(w.contains("endpoint [102] has no auth"), "{w}");
        assert!(w.contains("endpoint [102] has no aor"), "{w}");
        assert!(w.contains("endpoint [102] allows no codecs"), "{w}");
        // Same name, different types: fine.
        assert!(!v.errors.iter().any(|e| e.contains("[101]")));
        let ok = validate_pjsip("[1]\ntype=aor\n");
        assert!(ok.valid && ok.errors.is_empty());
        let bad = validate_pjsip("x=1\n");
        assert_eq!(
            bad.errors,
            ["line 1: 'x' outside of any section (No category context)"]
        );
    }

    #[test]
    fn contacts() {
        for ok in [
            "sip:host.example.com",
            "sip:1001@10.0.0.1:5060;transport=tcp",
            "sips:[2001:db8::1]:5061",
            "sip:a@b-c.d",
        ] {
            assert!(valid_contact(ok), "{ok}");
        }
        for bad in [
            "http://x",
            "sip:",
            "sip:1001@",
            "sip:h:0",
            "sip:h:99999",
            "sip:-x.com",
            "sip:[zz]",
            "sip:1.2.3",
        ] {
            assert!(!valid_contact(bad), "{bad}");
        }
    }
}
