//! SDP (RFC 8866, formerly RFC 4566) and the offer/answer model (RFC 3264) for a B2BUA that
//! relays media. Sans-IO: pure data and pure functions, no sockets, no clock.
//!
//! - [`SessionDescription::parse`] / [`SessionDescription::print`]: a tolerant parser (LF-only
//!   line ends, trailing white space, lines out of the RFC order, unknown line types kept
//!   verbatim and in order) and a canonical printer (CRLF, RFC 8866 §5 order). For every
//!   parsed `x`, `parse(print(x)) == x`. The parser never panics; what cannot be SDP (no
//!   `v=0`, a malformed `o=`/`m=`/`c=`/`b=`/`t=` line, a line that is not `<letter>=<text>`)
//!   is an [`SdpError`], answered with 400 and a `Warning: 399` header.
//! - [`codec`]: Asterisk codec names (`ulaw`, `alaw`, `g722`, ...) ↔ SDP encodings, and the
//!   RFC 3551 static payload type table.
//! - [`negotiate`]: [`filter_offer`] (the B-leg offer limited to the callee's codecs),
//!   [`check_answer`] (RFC 3264 §6), [`rewrite_for_relay`] (c=/m=/o=/a=rtcp to the relay,
//!   ICE removed), telephone-event payload type mapping ([`dtmf_pt`], [`DtmfPtMapping`]) and
//!   hold detection ([`is_hold`]).
//!
//! The B2BUA path (names of the call side are illustrative):
//!
//! ```text
//! let a_offer = SessionDescription::parse(invite_body)?;        // SdpError → 400, Warning 399
//! let mut b_offer = filter_offer(&a_offer, &callee.codecs)?;    // NoCommonCodec → 488, Warning 305
//! rewrite_for_relay(&mut b_offer, relay_ip_b, &b_ports, &mut call.b_origin, false)?;
//! // ... 200 OK from B
//! let b_answer = SessionDescription::parse(ok_body)?;
//! check_answer(&b_offer, &b_answer)?;                           // → BYE B, 488 to A
//! let mut a_answer = b_answer.clone();                          // same m= lines as a_offer
//! rewrite_for_relay(&mut a_answer, relay_ip_a, &a_ports, &mut call.a_origin, false)?;
//! // re-INVITE: same steps, `session_version_bump` = !new.content_eq(&previous)
//! ```
//!
//! Where the model is lenient on purpose:
//! - Single-valued lines that appear twice (a second `o=`, `c=`, `i=`, ...) keep the first
//!   occurrence typed; the repeats are kept verbatim with the unknown lines of their section.
//! - A missing `s=` reads as `s=-`, a missing `t=` as no time description (the relay rewrite
//!   adds `t=0 0`). Byte sequences that are not UTF-8 are replaced (U+FFFD), not rejected.
//! - Unknown lines (and the repeats above) are printed at the end of their section (session
//!   or media), in their original order.

pub mod codec;
mod model;
pub mod negotiate;
mod parse;
mod print;

pub use codec::{Codec, MediaKind};
pub use model::{
    AddrType, Attribute, Bandwidth, Connection, Direction, MediaDescription, Origin, RtpMap,
    SessionDescription, Timing,
};
pub use negotiate::{
    DtmfPtMapping, LocalOrigin, NegotiateError, OFFER_TELEPHONE_EVENT_PT, build_offer,
    check_answer, dtmf_pt, filter_offer, filter_offer_in_place, is_hold, rewrite_for_relay,
};
pub use parse::SdpError;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod fuzz_tests;
