//! Digest authentication (RFC 7616/8760, RFC 3261 §22).
