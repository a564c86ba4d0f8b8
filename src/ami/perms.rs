//! Permission classes (`EVENT_FLAG_*`) and manager.conf `deny`/`permit` ACLs.

use std::net::IpAddr;

pub const SYSTEM: u32 = 1 << 0;
pub const CALL: u32 = 1 << 1;
pub const LOG: u32 = 1 << 2;
pub const VERBOSE: u32 = 1 << 3;
pub const COMMAND: u32 = 1 << 4;
pub const AGENT: u32 = 1 << 5;
pub const USER: u32 = 1 << 6;
pub const CONFIG: u32 = 1 << 7;
pub const DTMF: u32 = 1 << 8;
pub const REPORTING: u32 = 1 << 9;
pub const CDR: u32 = 1 << 10;
pub const DIALPLAN: u32 = 1 << 11;
pub const ORIGINATE: u32 = 1 << 12;
pub const AGI: u32 = 1 << 13;
pub const CC: u32 = 1 << 15;
pub const AOC: u32 = 1 << 16;
pub const TEST: u32 = 1 << 17;
pub const SECURITY: u32 = 1 << 18;
pub const MESSAGE: u32 = 1 << 30;
/// `all` (INT_MAX).
pub const ALL: u32 = i32::MAX as u32;

/// The class names in Asterisk's `perms[]` order.
pub const CLASSES: &[(&str, u32)] = &[
    ("system", SYSTEM),
    ("call", CALL),
    ("log", LOG),
    ("verbose", VERBOSE),
    ("command", COMMAND),
    ("agent", AGENT),
    ("user", USER),
    ("config", CONFIG),
    ("dtmf", DTMF),
    ("reporting", REPORTING),
    ("cdr", CDR),
    ("dialplan", DIALPLAN),
    ("originate", ORIGINATE),
    ("agi", AGI),
    ("cc", CC),
    ("aoc", AOC),
    ("test", TEST),
    ("security", SECURITY),
    ("message", MESSAGE),
];

/// A manager.conf `read=`/`write=` list: every class named in it (`all` = every class,
/// `none` = nothing). Unknown words are ignored, as Asterisk does.
pub fn parse_perms(list: &str) -> u32 {
    let mut mask = 0;
    for word in list.split(',').map(str::trim) {
        if word.eq_ignore_ascii_case("all") {
            mask |= ALL;
        } else if let Some((_, bit)) = CLASSES.iter().find(|(n, _)| n.eq_ignore_ascii_case(word)) {
            mask |= bit;
        }
    }
    mask
}

/// Unknown words in a permission list (config validation reports them).
pub fn unknown_perms(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|w| {
            !w.is_empty()
                && !w.eq_ignore_ascii_case("all")
                && !w.eq_ignore_ascii_case("none")
                && !CLASSES.iter().any(|(n, _)| n.eq_ignore_ascii_case(w))
        })
        .map(str::to_string)
        .collect()
}

/// `authority_to_str`: the set classes, then `all`; `<none>` for 0.
pub fn authority_to_str(mask: u32) -> String {
    if mask == 0 {
        return "<none>".into();
    }
    let mut out = String::new();
    for (name, bit) in CLASSES {
        if mask & bit != 0 {
            out.push_str(name);
            out.push(',');
        }
    }
    out.push_str("all");
    out
}

fn ast_true(s: &str) -> bool {
    ["yes", "true", "y", "t", "1", "on"]
        .iter()
        .any(|w| s.eq_ignore_ascii_case(w))
}

fn ast_false(s: &str) -> bool {
    ["no", "false", "n", "f", "0", "off"]
        .iter()
        .any(|w| s.eq_ignore_ascii_case(w))
}

/// An `Events:`/`EventMask:` value: `None` for an invalid (empty) mask.
pub fn event_mask(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Some(s.parse::<u64>().map(|v| v as u32).unwrap_or(ALL));
    }
    if ast_false(s) {
        return Some(0);
    }
    if ast_true(s) {
        return Some(ALL);
    }
    Some(parse_perms(s))
}

/// An IP network (`ip/mask`, `ip/bits` or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub bits: u8,
}

impl Net {
    pub fn parse(s: &str) -> Result<Net, String> {
        let s = s.trim();
        let (ip, mask) = match s.split_once('/') {
            Some((i, m)) => (i, Some(m)),
            None => (s, None),
        };
        let addr: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("{s}: not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match mask.map(str::trim) {
            None => max,
            Some(m) if m.bytes().all(|b| b.is_ascii_digit()) => {
                let b: u8 = m.parse().map_err(|_| format!("{s}: bad prefix length"))?;
                if b > max {
                    return Err(format!("{s}: prefix longer than {max}"));
                }
                b
            }
            Some(m) => {
                let IpAddr::V4(mask) = m
                    .parse::<IpAddr>()
                    .map_err(|_| format!("{s}: bad netmask"))?
                else {
                    return Err(format!("{s}: bad netmask"));
                };
                let v = u32::from(mask);
                if v.leading_ones() + v.trailing_zeros() != 32 {
                    return Err(format!("{s}: netmask is not contiguous"));
                }
                v.leading_ones() as u8
            }
        };
        Ok(Net { addr, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = if self.bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.bits))
                };
                u32::from(n) & m == u32::from(a) & m
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = if self.bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.bits))
                };
                u128::from(n) & m == u128::from(a) & m
            }
            _ => false,
        }
    }
}

/// `deny=`/`permit=` rules in order; the last matching rule wins, no match permits
/// (`ast_apply_ha`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    rules: Vec<(bool, Net)>,
}

impl Acl {
    /// All `deny` rules, then all `permit` rules (the usual manager.conf layout).
    pub fn new(deny: &[Net], permit: &[Net]) -> Acl {
        let mut rules: Vec<(bool, Net)> = deny.iter().map(|n| (false, *n)).collect();
        rules.extend(permit.iter().map(|n| (true, *n)));
        Acl { rules }
    }

    pub fn push(&mut self, permit: bool, net: Net) {
        self.rules.push((permit, net));
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let mut ok = true;
        for (permit, net) in &self.rules {
            if net.contains(ip) {
                ok = *permit;
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_and_privilege() {
        assert_eq!(parse_perms("system,call"), SYSTEM | CALL);
        assert_eq!(parse_perms("all"), ALL);
        assert_eq!(parse_perms("none"), 0);
        assert_eq!(authority_to_str(CALL), "call,all");
        assert_eq!(authority_to_str(SYSTEM | REPORTING), "system,reporting,all");
        assert_eq!(authority_to_str(0), "<none>");
        assert_eq!(unknown_perms("system, bogus"), vec!["bogus".to_string()]);
    }

    #[test]
    fn event_masks() {
        assert_eq!(event_mask(""), None);
        assert_eq!(event_mask("off"), Some(0));
        assert_eq!(event_mask("on"), Some(ALL));
        assert_eq!(event_mask("call,system"), Some(CALL | SYSTEM));
        assert_eq!(event_mask("3"), Some(3));
    }

    #[test]
    fn acl() {
        let deny = [Net::parse("0.0.0.0/0.0.0.0").unwrap()];
        let permit = [Net::parse("127.0.0.1/255.255.255.0").unwrap()];
        let acl = Acl::new(&deny, &permit);
        assert!(acl.allows("127.0.0.9".parse().unwrap()));
        assert!(!acl.allows("10.0.0.1".parse().unwrap()));
        assert!(acl.allows("::ffff:127.0.0.2".parse().unwrap()));
        assert!(Acl::default().allows("10.0.0.1".parse().unwrap()));
        assert!(Net::parse("10.0.0.0/255.0.255.0").is_err());
        assert_eq!(Net::parse("10.0.0.0/8").unwrap().bits, 8);
        assert!(
            Net::parse("::1/128")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
    }
}
