//! Transaction keys: how requests and responses are matched to transactions.
//!
//! * Server transactions (RFC 3261 §17.2.3): the `branch` of the top Via (which starts with the
//!   magic cookie `z9hG4bK`), the `sent-by` of the top Via and the method of the request, except
//!   that an ACK matches the INVITE transaction it acknowledges (the layer does that mapping; the
//!   glue builds the key with [`TxMethod::Ack`]). A CANCEL has its own transaction (its key has
//!   [`TxMethod::Cancel`]); it is matched to the INVITE it cancels by the same branch and sent-by.
//! * Client transactions (RFC 3261 §17.1.3): the `branch` of the top Via of the response and the
//!   method in its CSeq. `sent_by` is left empty.
//!
//! Branches and sent-by are tokens/host names, which RFC 3261 §7.3.1 compares case-insensitively,
//! so both are stored lowercased (in place, no extra allocation).
//!
//! Requests from RFC 2543 elements carry no branch, or a branch without the magic cookie (or just
//! the bare cookie). For those the glue supplies a fallback identifier through
//! [`TxKey::server_or_fallback`]: it should be built from Call-ID, CSeq number, From tag,
//! Request-URI and top-Via sent-by (but neither the To tag nor the CSeq method, so that the ACK
//! of a non-2xx final response still matches its INVITE, §17.2.3). The fallback is stored in
//! `branch` behind a prefix that contains a space, which no real branch token can contain, so
//! fallback keys never collide with RFC 3261 keys.

use std::fmt;

/// The magic cookie that starts every RFC 3261 branch parameter (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Prefix put in front of a caller-supplied RFC 2543 fallback key.
pub const FALLBACK_PREFIX: &str = "rfc2543 ";

/// A request method as far as the transaction layer cares. The common methods are variants so
/// that keys for them carry no extra allocation. Method names are case-sensitive (§7.1), so
/// `"invite"` is `Other("invite")`, not `Invite`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum TxMethod {
    Invite,
    Ack,
    Cancel,
    Bye,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Other(Box<str>),
}

impl TxMethod {
    /// Map a method name (exact, case-sensitive) to a `TxMethod`.
    pub fn from_name(name: &str) -> TxMethod {
        match name {
            "INVITE" => TxMethod::Invite,
            "ACK" => TxMethod::Ack,
            "CANCEL" => TxMethod::Cancel,
            "BYE" => TxMethod::Bye,
            "REGISTER" => TxMethod::Register,
            "OPTIONS" => TxMethod::Options,
            "INFO" => TxMethod::Info,
            "UPDATE" => TxMethod::Update,
            "PRACK" => TxMethod::Prack,
            "SUBSCRIBE" => TxMethod::Subscribe,
            "NOTIFY" => TxMethod::Notify,
            "REFER" => TxMethod::Refer,
            "MESSAGE" => TxMethod::Message,
            "PUBLISH" => TxMethod::Publish,
            other => TxMethod::Other(other.into()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            TxMethod::Invite => "INVITE",
            TxMethod::Ack => "ACK",
            TxMethod::Cancel => "CANCEL",
            TxMethod::Bye => "BYE",
            TxMethod::Register => "REGISTER",
            TxMethod::Options => "OPTIONS",
            TxMethod::Info => "INFO",
            TxMethod::Update => "UPDATE",
            TxMethod::Prack => "PRACK",
            TxMethod::Subscribe => "SUBSCRIBE",
            TxMethod::Notify => "NOTIFY",
            TxMethod::Refer => "REFER",
            TxMethod::Message => "MESSAGE",
            TxMethod::Publish => "PUBLISH",
            TxMethod::Other(name) => name,
        }
    }
}

impl From<&str> for TxMethod {
    fn from(name: &str) -> Self {
        TxMethod::from_name(name)
    }
}

impl fmt::Display for TxMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies a transaction. See the module documentation for the matching rules.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct TxKey {
    /// Top-Via branch, lowercased (or [`FALLBACK_PREFIX`] + an RFC 2543 fallback key).
    pub branch: String,
    /// Top-Via sent-by (`host[:port]`), lowercased; empty for client keys.
    pub sent_by: String,
    /// Request method (server) or CSeq method (client).
    pub method: TxMethod,
}

impl TxKey {
    /// `true` when `branch` is an RFC 3261 branch: the magic cookie followed by something.
    pub fn is_rfc3261_branch(branch: &str) -> bool {
        branch.len() > MAGIC_COOKIE.len() && branch.starts_with(MAGIC_COOKIE)
    }

    /// Key of a server transaction (§17.2.3) for a request with an RFC 3261 branch.
    pub fn server(
        branch: impl Into<String>,
        sent_by: impl Into<String>,
        method: TxMethod,
    ) -> TxKey {
        let mut branch = branch.into();
        branch.make_ascii_lowercase();
        let mut sent_by = sent_by.into();
        sent_by.make_ascii_lowercase();
        TxKey {
            branch,
            sent_by,
            method,
        }
    }

    /// Key of a server transaction, falling back to a caller-built key (see the module
    /// documentation) when the request has no RFC 3261 branch (RFC 2543 peers, or a branch that
    /// is exactly the magic cookie). `fallback` is only called in that case; its result is used
    /// verbatim (not lowercased: Call-ID is case-sensitive).
    pub fn server_or_fallback(
        branch: Option<&str>,
        sent_by: &str,
        method: TxMethod,
        fallback: impl FnOnce() -> String,
    ) -> TxKey {
        match branch {
            Some(b) if TxKey::is_rfc3261_branch(b) => TxKey::server(b, sent_by, method),
            _ => {
                let fallback = fallback();
                let mut key = String::with_capacity(FALLBACK_PREFIX.len() + fallback.len());
                key.push_str(FALLBACK_PREFIX);
                key.push_str(&fallback);
                let mut sent_by = sent_by.to_owned();
                sent_by.make_ascii_lowercase();
                TxKey {
                    branch: key,
                    sent_by,
                    method,
                }
            }
        }
    }

    /// Key of a client transaction (§17.1.3): our branch and the (CSeq) method. Build the key of
    /// an incoming response the same way, from its top-Via branch and CSeq method.
    pub fn client(branch: impl Into<String>, method: TxMethod) -> TxKey {
        let mut branch = branch.into();
        branch.make_ascii_lowercase();
        TxKey {
            branch,
            sent_by: String::new(),
            method,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip_and_are_case_sensitive() {
        for name in [
            "INVITE", "ACK", "CANCEL", "BYE", "REGISTER", "PUBLISH", "FOO",
        ] {
            assert_eq!(TxMethod::from_name(name).as_str(), name);
        }
        assert_eq!(TxMethod::from_name("INVITE"), TxMethod::Invite);
        assert_eq!(
            TxMethod::from_name("invite"),
            TxMethod::Other("invite".into())
        );
        assert_eq!(TxMethod::from("REGISTER").to_string(), "REGISTER");
    }

    #[test]
    fn server_key_lowercases_branch_and_sent_by() {
        let a = TxKey::server("z9hG4bKAbC", "PBX.Example.COM:5060", TxMethod::Invite);
        let b = TxKey::server("z9hg4bkabc", "pbx.example.com:5060", TxMethod::Invite);
        assert_eq!(a, b);
        assert_eq!(a.sent_by, "pbx.example.com:5060");
        assert_ne!(
            a,
            TxKey::server("z9hG4bKAbC", "pbx.example.com:5061", TxMethod::Invite)
        );
        assert_ne!(
            a,
            TxKey::server("z9hG4bKAbC", "pbx.example.com:5060", TxMethod::Bye)
        );
    }

    #[test]
    fn rfc3261_branch_detection() {
        assert!(TxKey::is_rfc3261_branch("z9hG4bK776asdhds"));
        assert!(!TxKey::is_rfc3261_branch("z9hG4bK"));
        assert!(!TxKey::is_rfc3261_branch("776asdhds"));
        assert!(!TxKey::is_rfc3261_branch("Z9HG4BK776asdhds"));
    }

    #[test]
    fn fallback_used_only_without_rfc3261_branch() {
        let mut called = false;
        let k = TxKey::server_or_fallback(Some("z9hG4bKx1"), "h:5060", TxMethod::Bye, || {
            called = true;
            String::new()
        });
        assert!(!called);
        assert_eq!(k.branch, "z9hg4bkx1");

        for branch in [None, Some("z9hG4bK"), Some("oldbranch")] {
            let k = TxKey::server_or_fallback(branch, "H:5060", TxMethod::Invite, || {
                "CallID@h;1;fromtag".to_owned()
            });
            assert_eq!(k.branch, "rfc2543 CallID@h;1;fromtag");
            assert_eq!(k.sent_by, "h:5060");
            // The fallback can never equal a real (token) branch.
            assert!(!TxKey::is_rfc3261_branch(&k.branch));
        }
    }

    #[test]
    fn client_key_has_no_sent_by() {
        let k = TxKey::client("z9hG4bKOurs", TxMethod::Cancel);
        assert_eq!(k.branch, "z9hg4bkours");
        assert!(k.sent_by.is_empty());
        assert_ne!(k, TxKey::client("z9hG4bKOurs", TxMethod::Invite));
    }
}
