//! SIP message model, parser (normalising front end) and printer.
//!
//! * [`parse_datagram`] parses one message from a UDP datagram (RFC 3261 §18.3 framing),
//!   [`StreamFramer`] + [`parse_stream_message`] do the same for stream transports.
//! * The parser is the *normalising front end*: header lines are unfolded, compact names are
//!   expanded, list headers are split into one entry per value, and the values of Via, From, To,
//!   Contact and CSeq are re-rendered canonically. A message that parses has been validated
//!   (RFC 4475 torture set, see `conformance/rfc4475`).
//! * [`Message::to_bytes`] prints canonically; `parse(print(m)) == m`.
//! * [`Message::to_rsip`] bridges to rsip 0.4 by printing canonical text and letting rsip parse it.
//!
//! Sans-IO: nothing here touches sockets or the clock.

mod framer;
mod header;
mod message;
mod parser;
mod syntax;
mod types;
mod uri;
mod values;

#[cfg(test)]
mod torture_tests;

pub use framer::{FramingError, StreamFramer};
pub use header::{HeaderName, Headers};
pub use message::{Message, Request, Response};
pub use parser::{
    ErrorKind, ParseError, ReplyContext, parse_datagram, parse_datagram_bytes, parse_stream_message,
};
pub use syntax::percent_decode;
pub use types::{Method, Scheme, Transport};
pub use uri::Uri;
pub use values::{CSeq, Contact, NameAddr, Via};

/// A list of `;name[=value]` parameters, in order.
pub type Params = Vec<(String, Option<String>)>;
