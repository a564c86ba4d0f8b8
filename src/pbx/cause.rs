//! Hangup causes: ISDN Q.850 cause values, their Asterisk texts, and the SIP status ↔ cause
//! mapping of RFC 3398 §7.2.4 / §8.2.6 (with Asterisk's deviations where tools expect them).

/// Q.850 cause values Dialtone uses (Asterisk's `AST_CAUSE_*`).
pub mod q850 {
    pub const UNALLOCATED: u8 = 1;
    pub const NO_ROUTE_DESTINATION: u8 = 3;
    pub const NORMAL_CLEARING: u8 = 16;
    pub const USER_BUSY: u8 = 17;
    pub const NO_USER_RESPONSE: u8 = 18;
    pub const NO_ANSWER: u8 = 19;
    pub const CALL_REJECTED: u8 = 21;
    pub const NUMBER_CHANGED: u8 = 22;
    pub const DESTINATION_OUT_OF_ORDER: u8 = 27;
    pub const INVALID_NUMBER_FORMAT: u8 = 28;
    pub const NORMAL_UNSPECIFIED: u8 = 31;
    pub const CONGESTION: u8 = 34;
    pub const NETWORK_OUT_OF_ORDER: u8 = 38;
    pub const NORMAL_TEMPORARY_FAILURE: u8 = 41;
    pub const SWITCH_CONGESTION: u8 = 42;
    pub const BEARERCAPABILITY_NOTAVAIL: u8 = 58;
    pub const FACILITY_NOT_IMPLEMENTED: u8 = 69;
    pub const BEARERCAPABILITY_NOTIMPL: u8 = 65;
    pub const SERVICE_NOT_IMPLEMENTED: u8 = 79;
    pub const RECOVERY_ON_TIMER_EXPIRE: u8 = 102;
    pub const INTERWORKING: u8 = 127;
    pub const EXCHANGE_ROUTING_ERROR: u8 = 25;
}

/// The Q.850 cause for a SIP final status (RFC 3398 §8.2.6.1, as Asterisk's
/// `ast_sip_hangup_sip2cause` applies it). 2xx → normal clearing.
pub fn from_sip(status: u16) -> u8 {
    use q850::*;
    match status {
        200..=299 => NORMAL_CLEARING,
        401..=403 | 407 => CALL_REJECTED,
        404 | 485 | 604 => UNALLOCATED,
        405 => 63,
        406 | 415 | 501 => SERVICE_NOT_IMPLEMENTED,
        408 => NO_USER_RESPONSE,
        410 => NUMBER_CHANGED,
        414 | 484 => INVALID_NUMBER_FORMAT,
        480 => NO_ANSWER,
        482 | 483 => EXCHANGE_ROUTING_ERROR,
        486 | 600 => USER_BUSY,
        // A caller who gives up (CANCEL): Asterisk reports normal clearing.
        487 => NORMAL_CLEARING,
        488 | 606 => BEARERCAPABILITY_NOTAVAIL,
        500 | 400 | 481 => NORMAL_TEMPORARY_FAILURE,
        502 => NETWORK_OUT_OF_ORDER,
        503 => CONGESTION,
        504 => RECOVERY_ON_TIMER_EXPIRE,
        603 => CALL_REJECTED,
        _ => INTERWORKING,
    }
}

/// The SIP status Dialtone answers with for a Q.850 cause (RFC 3398 §7.2.4.1).
pub fn to_sip(cause: u8) -> u16 {
    use q850::*;
    match cause {
        UNALLOCATED | NO_ROUTE_DESTINATION => 404,
        USER_BUSY => 486,
        NO_USER_RESPONSE => 408,
        NO_ANSWER => 480,
        CALL_REJECTED => 603,
        NUMBER_CHANGED => 410,
        DESTINATION_OUT_OF_ORDER => 502,
        INVALID_NUMBER_FORMAT => 484,
        CONGESTION | SWITCH_CONGESTION => 503,
        NETWORK_OUT_OF_ORDER => 500,
        NORMAL_TEMPORARY_FAILURE => 503,
        BEARERCAPABILITY_NOTAVAIL | BEARERCAPABILITY_NOTIMPL => 488,
        SERVICE_NOT_IMPLEMENTED | FACILITY_NOT_IMPLEMENTED => 501,
        RECOVERY_ON_TIMER_EXPIRE => 504,
        _ => 480,
    }
}

/// Asterisk's text for a cause (`ast_cause2str`), as AMI `Cause-txt` and the CDR show it.
pub fn text(cause: u8) -> &'static str {
    match cause {
        1 => "Unallocated (unassigned) number",
        2 => "No route to specified transmit network",
        3 => "No route to destination",
        6 => "Channel unacceptable",
        7 => "Call awarded and being delivered in an established channel",
        16 => "Normal Clearing",
        17 => "User busy",
        18 => "No user responding",
        19 => "User alerting, no answer",
        20 => "Subscriber absent",
        21 => "Call Rejected",
        22 => "Number changed",
        23 => "Redirected to new destination",
        26 => "Answered elsewhere",
        27 => "Destination out of order",
        28 => "Invalid number format",
        29 => "Facility rejected",
        30 => "Response to STATus ENQuiry",
        31 => "Normal, unspecified",
        34 => "Circuit/channel congestion",
        38 => "Network out of order",
        41 => "Temporary failure",
        42 => "Switching equipment congestion",
        43 => "Access information discarded",
        44 => "Requested channel not available",
        50 => "Facility not subscribed",
        52 => "Outgoing call barred",
        54 => "Incoming call barred",
        57 => "Bearer capability not authorized",
        58 => "Bearer capability not available",
        65 => "Bearer capability not implemented",
        66 => "Channel not implemented",
        69 => "Facility not implemented",
        81 => "Invalid call reference value",
        88 => "Incompatible destination",
        95 => "Invalid message unspecified",
        96 => "Mandatory information element is missing",
        97 => "Message type nonexist.",
        98 => "Wrong message",
        99 => "Info. element nonexist or not implemented",
        100 => "Invalid information element contents",
        101 => "Message not compatible with call state",
        102 => "Recover on timer expiry",
        103 => "Mandatory IE length error",
        111 => "Protocol error, unspecified",
        127 => "Interworking, unspecified",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3398_core_rows() {
        assert_eq!(from_sip(404), 1);
        assert_eq!(from_sip(486), 17);
        assert_eq!(from_sip(480), 19);
        assert_eq!(from_sip(408), 18);
        assert_eq!(from_sip(503), 34);
        assert_eq!(from_sip(200), 16);
        assert_eq!(from_sip(488), 58);
        assert_eq!(from_sip(603), 21);
        assert_eq!(from_sip(799), 127);
        assert_eq!(to_sip(17), 486);
        assert_eq!(to_sip(1), 404);
        assert_eq!(to_sip(16), 480);
        assert_eq!(text(16), "Normal Clearing");
        assert_eq!(text(17), "User busy");
        assert_eq!(text(250), "Unknown");
    }

    #[test]
    fn round_trip_for_the_statuses_a_pbx_sends() {
        for s in [404u16, 486, 480, 408, 503, 488, 501, 484, 410, 504] {
            let c = from_sip(s);
            assert_eq!(from_sip(to_sip(c)), c, "status {s}");
        }
    }
}
