//! Asterisk's `manager.conf` as a source of AMI settings and users (sans-IO: it works on a
//! [`Conf`] parsed by [`crate::pjsip_conf`], so `#include`, templates and `(+)` behave as in
//! Asterisk's config loader).
//!
//! `[general]` gives `enabled`, `port`, `bindaddr`, `timestampevents`, `disabledevents` and
//! `authtimeout`; every other section is a user named after it, with `secret`, `read`, `write`
//! (both default to nothing, as in Asterisk's manager.c), `deny`/`permit` in order and
//! `eventfilter` lines in both syntaxes. Settings Dialtone does not have (`acl`, `setvar`,
//! `channelvars`, TLS, `webenabled`, ...) are reported as warnings; values it cannot use (an
//! unknown permission class, a bad network, a bad filter, a port that is not a number) are
//! errors naming `file:line`, and nothing is applied.

use std::net::IpAddr;

use super::filter::EventFilters;
use super::perms::{Net, unknown_perms};
use crate::config::{AmiUser, Secret};
use crate::pjsip_conf::{Conf, Loc};

/// What a manager.conf says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManagerConf {
    /// `[general] enabled` (Asterisk's default is `no`; None when the file does not say).
    pub enabled: Option<bool>,
    pub port: Option<u16>,
    pub bindaddr: Option<IpAddr>,
    pub timestampevents: Option<bool>,
    pub disabledevents: Vec<String>,
    /// `authtimeout`, seconds.
    pub authtimeout: Option<u32>,
    pub users: Vec<AmiUser>,
    /// Settings accepted but not applied, and users skipped, each with `file:line`.
    pub warnings: Vec<String>,
}

/// A value manager.conf cannot have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{loc}: {message}")]
pub struct ManagerConfError {
    pub loc: Loc,
    pub message: String,
}

/// Asterisk's `ast_true`.
fn ast_true(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "yes" | "true" | "y" | "t" | "1" | "on"
    )
}

fn ast_bool(v: &str, loc: &Loc, name: &str) -> Result<bool, ManagerConfError> {
    let l = v.trim().to_ascii_lowercase();
    if ast_true(&l) {
        return Ok(true);
    }
    if matches!(l.as_str(), "no" | "false" | "n" | "f" | "0" | "off") {
        return Ok(false);
    }
    Err(ManagerConfError {
        loc: loc.clone(),
        message: format!("{name} = {v}: expected yes or no"),
    })
}

/// Interpret a parsed manager.conf.
pub fn from_conf(conf: &Conf) -> Result<ManagerConf, ManagerConfError> {
    let mut out = ManagerConf::default();
    for w in &conf.warnings {
        out.warnings.push(w.to_string());
    }
    for cat in conf.objects() {
        if cat.name.eq_ignore_ascii_case("general") {
            general(cat, &mut out)?;
        } else {
            user(cat, &mut out)?;
        }
    }
    Ok(out)
}

fn general(
    cat: &crate::pjsip_conf::parse::Category,
    out: &mut ManagerConf,
) -> Result<(), ManagerConfError> {
    for v in &cat.vars {
        let err = |message: String| ManagerConfError {
            loc: v.loc.clone(),
            message,
        };
        let value = v.value.trim();
        match v.name.to_ascii_lowercase().as_str() {
            "enabled" => out.enabled = Some(ast_bool(value, &v.loc, "enabled")?),
            "port" => {
                out.port = Some(value.parse::<u16>().map_err(|_| {
                    err(format!(
                        "port = {value}: not a TCP port (0-65535; 0 = any free port)"
                    ))
                })?)
            }
            "bindaddr" => {
                out.bindaddr = Some(
                    value
                        .parse::<IpAddr>()
                        .map_err(|_| err(format!("bindaddr = {value}: not an IP address")))?,
                )
            }
            "timestampevents" => {
                out.timestampevents = Some(ast_bool(value, &v.loc, "timestampevents")?)
            }
            "disabledevents" => out.disabledevents.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            ),
            "authtimeout" => {
                out.authtimeout = Some(
                    value
                        .parse::<u32>()
                        .ok()
                        .filter(|t| *t > 0)
                        .ok_or_else(|| {
                            err(format!("authtimeout = {value}: expected seconds (> 0)"))
                        })?,
                )
            }
            // Accepted: Dialtone behaves this way anyway, or they only tune Asterisk itself.
            "displayconnects" | "allowmultiplelogin" | "authlimit" | "httptimeout"
            | "webenabled" | "debug" | "brokeneventsaction" | "block-sockets" => {}
            other => out.warnings.push(format!(
                "{}: [general] {other} is not supported by Dialtone (ignored)",
                v.loc
            )),
        }
    }
    Ok(())
}

fn user(
    cat: &crate::pjsip_conf::parse::Category,
    out: &mut ManagerConf,
) -> Result<(), ManagerConfError> {
    let mut secret: Option<String> = None;
    // Asterisk: a manager.conf user has no permission until `read`/`write` say so.
    let mut read = String::new();
    let mut write = String::new();
    let mut deny = Vec::new();
    let mut permit = Vec::new();
    let mut filters = Vec::new();
    for v in &cat.vars {
        let err = |message: String| ManagerConfError {
            loc: v.loc.clone(),
            message,
        };
        let name = v.name.trim().to_ascii_lowercase();
        let value = v.value.trim();
        match name.as_str() {
            "secret" => secret = Some(value.to_string()),
            "read" | "write" => {
                let unknown = unknown_perms(value);
                if !unknown.is_empty() {
                    return Err(err(format!(
                        "[{}] {name} = {value}: unknown permission class {}",
                        cat.name,
                        unknown.join(", ")
                    )));
                }
                if name == "read" {
                    read = value.to_string();
                } else {
                    write = value.to_string();
                }
            }
            "deny" | "permit" => {
                // `permit = a/m, b/m` lists are accepted as Asterisk's ast_append_ha does.
                for net in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    Net::parse(net)
                        .map_err(|e| err(format!("[{}] {name} = {net}: {e}", cat.name)))?;
                    if name == "deny" {
                        deny.push(net.to_string());
                    } else {
                        permit.push(net.to_string());
                    }
                }
            }
            "eventfilter" => filters.push((value.to_string(), v.loc.clone())),
            n if n.starts_with("eventfilter(") && n.ends_with(')') => {
                // Advanced syntax: the criteria are in the name.
                let criteria = &v.name.trim()["eventfilter(".len()..v.name.trim().len() - 1];
                filters.push((format!("{criteria} = {value}"), v.loc.clone()));
            }
            "displayconnects" | "allowmultiplelogin" | "writetimeout" => {}
            other => out.warnings.push(format!(
                "{}: [{}] {other} is not supported by Dialtone (ignored)",
                v.loc, cat.name
            )),
        }
    }
    for (f, loc) in &filters {
        EventFilters::parse(std::slice::from_ref(f)).map_err(|e| ManagerConfError {
            loc: loc.clone(),
            message: format!("[{}] eventfilter {f}: {e}", cat.name),
        })?;
    }
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        out.warnings.push(format!(
            "{}: [{}] has no secret: the user cannot log in (skipped)",
            cat.loc, cat.name
        ));
        return Ok(());
    };
    if secret.chars().count() < crate::config::MIN_SECRET_LEN {
        out.warnings.push(format!(
            "{}: [{}] has a secret shorter than {} characters: change it",
            cat.loc,
            cat.name,
            crate::config::MIN_SECRET_LEN
        ));
    }
    if let Some(prev) = out.users.iter().position(|u| u.username == cat.name) {
        // A repeated section (without `(+)`) redefines the user, as Asterisk does.
        out.users.remove(prev);
    }
    out.users.push(AmiUser {
        username: cat.name.clone(),
        secret: Secret::new(secret),
        read,
        write,
        deny,
        permit,
        eventfilter: filters.into_iter().map(|(f, _)| f).collect(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pjsip_conf::parse::{ParseOptions, parse_file};
    use crate::pjsip_conf::{ConfSource, MemSource};
    use std::path::Path;

    fn load(files: &[(&str, &str)]) -> Result<ManagerConf, String> {
        let mut src = MemSource::default();
        for (p, t) in files {
            src.files.insert(Path::new(p).to_path_buf(), t.to_string());
        }
        let conf = parse_file(
            &src as &dyn ConfSource,
            Path::new(files[0].0),
            ParseOptions::default(),
        )
        .map_err(|e| e.to_string())?;
        from_conf(&conf).map_err(|e| e.to_string())
    }

    #[test]
    fn freepbx_layout_with_includes() {
        let m = load(&[
            (
                "/etc/asterisk/manager.conf",
                "[general]\nenabled = yes\nport = 5038\nbindaddr = 127.0.0.1\n\
                 displayconnects=no\ntimestampevents = yes\ndisabledevents = Newexten, VarSet\n\n\
                 [admin]\nsecret = amp111\ndeny=0.0.0.0/0.0.0.0\npermit=127.0.0.1/255.255.255.0\n\
                 read = system,call,log,verbose,command,agent,user,config,dtmf,reporting,cdr,dialplan\n\
                 write = system,call,log,verbose,command,agent,user,config,dtmf,reporting,cdr,dialplan,originate,message\n\
                 writetimeout = 5000\n\n\
                 #include manager_additional.conf\n#include manager_custom.conf\n",
            ),
            (
                "/etc/asterisk/manager_additional.conf",
                "[crm]\nsecret = crm-secret-1\nread = call\nwrite = originate,call\n\
                 eventfilter = !Event: (Newexten|VarSet)\n\
                 eventfilter(action(exclude),name(Newchannel),header(Channel),method(starts_with)) = Local/\n",
            ),
            ("/etc/asterisk/manager_custom.conf", "; nothing here\n"),
        ])
        .unwrap();
        assert_eq!(m.enabled, Some(true));
        assert_eq!(m.port, Some(5038));
        assert_eq!(m.bindaddr, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(m.timestampevents, Some(true));
        assert_eq!(m.disabledevents, ["Newexten", "VarSet"]);
        assert_eq!(m.users.len(), 2);
        let admin = &m.users[0];
        assert_eq!(admin.username, "admin");
        assert_eq!(admin.secret.expose(), "amp111");
        assert_eq!(admin.deny, ["0.0.0.0/0.0.0.0"]);
        assert_eq!(admin.permit, ["127.0.0.1/255.255.255.0"]);
        assert!(admin.write.contains("originate"));
        // amp111 works (migration) but is called out.
        assert!(
            m.warnings
                .iter()
                .any(|w| w.contains("manager.conf:9") && w.contains("[admin]")),
            "{:?}",
            m.warnings
        );
        let crm = &m.users[1];
        assert_eq!(crm.read, "call");
        assert_eq!(
            crm.eventfilter,
            [
                "!Event: (Newexten|VarSet)",
                "action(exclude),name(Newchannel),header(Channel),method(starts_with) = Local/"
            ]
        );
    }

    #[test]
    fn defaults_and_skips_like_asterisk() {
        let m = load(&[(
            "m.conf",
            "[general]\nchannelvars = A,B\n\n[nosecret]\nread = all\n\n\
             [quiet]\nsecret = quiet-secret-1\nacl = office\n",
        )])
        .unwrap();
        assert_eq!(m.enabled, None);
        // No read/write lines: no permissions.
        assert_eq!(m.users.len(), 1);
        assert_eq!(
            (m.users[0].read.as_str(), m.users[0].write.as_str()),
            ("", "")
        );
        let w = m.warnings.join("\n");
        assert!(w.contains("m.conf:2: [general] channelvars"), "{w}");
        assert!(w.contains("m.conf:4: [nosecret] has no secret"), "{w}");
        assert!(w.contains("m.conf:9: [quiet] acl"), "{w}");
    }

    #[test]
    fn bad_values_name_file_and_line() {
        let cases = [
            ("[general]\nport = fifty\n", "m.conf:2: port = fifty"),
            ("[general]\nenabled = maybe\n", "m.conf:2: enabled = maybe"),
            ("[general]\nbindaddr = localhost:1\n", "m.conf:2: bindaddr"),
            (
                "[u]\nsecret = s3cret-long\nread = call,telepathy\n",
                "m.conf:3: [u] read = call,telepathy: unknown permission class telepathy",
            ),
            (
                "[u]\nsecret = s3cret-long\npermit = 10.0.0.300/8\n",
                "m.conf:3: [u] permit = 10.0.0.300/8",
            ),
            (
                "[u]\nsecret = s3cret-long\neventfilter = Event: (unclosed\n",
                "m.conf:3: [u] eventfilter",
            ),
        ];
        for (text, want) in cases {
            let e = load(&[("m.conf", text)]).unwrap_err();
            assert!(e.starts_with(want), "{e} / {want}");
        }
        // A missing include is an error with its location, like pjsip.conf.
        let e = load(&[("m.conf", "[general]\n#include nowhere.conf\n")]).unwrap_err();
        assert!(e.contains("m.conf:2"), "{e}");
    }
}
