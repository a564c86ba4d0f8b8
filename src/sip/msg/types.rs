//! Small enumerations: request methods, transports, URI schemes.

use std::fmt;
use std::str::FromStr;

use super::parser::{ErrorKind, ParseError};
use super::syntax::is_token;

/// A SIP request method (RFC 3261 §7.1 plus extensions). Method names are case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Subscribe,
    Notify,
    Publish,
    Refer,
    Info,
    Message,
    Prack,
    Update,
    /// An extension method, spelled as received.
    Other(String),
}

impl Method {
    /// Parses a method token. Case-sensitive: `invite` and `RE%47IST%45R` are extension methods.
    pub fn parse(s: &str) -> Result<Method, ParseError> {
        Ok(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "PUBLISH" => Method::Publish,
            "REFER" => Method::Refer,
            "INFO" => Method::Info,
            "MESSAGE" => Method::Message,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            other if is_token(other) => Method::Other(other.to_owned()),
            _ => return Err(ParseError::Syntax(ErrorKind::InvalidMethod)),
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Publish => "PUBLISH",
            Method::Refer => "REFER",
            Method::Info => "INFO",
            Method::Message => "MESSAGE",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Other(s) => s,
        }
    }
}

impl FromStr for Method {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::parse(s)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transport named in a Via header (RFC 3261 §20.42). Parsed case-insensitively; printed
/// in upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Sctp,
    Ws,
    Wss,
    /// Unknown transport, stored in upper case.
    Other(String),
}

impl Transport {
    pub fn parse(s: &str) -> Transport {
        if s.eq_ignore_ascii_case("UDP") {
            Transport::Udp
        } else if s.eq_ignore_ascii_case("TCP") {
            Transport::Tcp
        } else if s.eq_ignore_ascii_case("TLS") {
            Transport::Tls
        } else if s.eq_ignore_ascii_case("SCTP") {
            Transport::Sctp
        } else if s.eq_ignore_ascii_case("WS") {
            Transport::Ws
        } else if s.eq_ignore_ascii_case("WSS") {
            Transport::Wss
        } else {
            Transport::Other(s.to_ascii_uppercase())
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Sctp => "SCTP",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
            Transport::Other(s) => s,
        }
    }

    /// Reliable (stream/association) transports.
    pub fn is_reliable(&self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Other(s) if s.bytes().any(|b| b.is_ascii_lowercase()) => {
                f.write_str(&s.to_ascii_uppercase())
            }
            t => f.write_str(t.as_str()),
        }
    }
}

/// A URI scheme. `sip`, `sips` and `tel` are recognised case-insensitively; anything else is
/// kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    Other(String),
}

impl Scheme {
    pub fn parse(s: &str) -> Scheme {
        if s.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if s.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if s.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other(s.to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }

    /// `sip:` or `sips:` (structured URIs with user/host/params).
    pub fn is_sip(&self) -> bool {
        matches!(self, Scheme::Sip | Scheme::Sips)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_case_sensitive() {
        assert_eq!(Method::parse("REGISTER").unwrap(), Method::Register);
        assert_eq!(
            Method::parse("RE%47IST%45R").unwrap(),
            Method::Other("RE%47IST%45R".into())
        );
        assert_eq!(
            Method::parse("invite").unwrap(),
            Method::Other("invite".into())
        );
        assert!(Method::parse("IN VITE").is_err());
        assert!(Method::parse("").is_err());
        assert_eq!(Method::Other("FOO".into()).to_string(), "FOO");
    }

    #[test]
    fn transports_case_insensitive() {
        assert_eq!(Transport::parse("udp"), Transport::Udp);
        assert_eq!(Transport::parse("wss"), Transport::Wss);
        assert_eq!(Transport::parse("unknown").to_string(), "UNKNOWN");
        assert_eq!(Transport::Other("quic".into()).to_string(), "QUIC");
        assert_eq!(Scheme::parse("SIPS"), Scheme::Sips);
        assert_eq!(
            Scheme::parse("soap.beep"),
            Scheme::Other("soap.beep".into())
        );
    }
}
