//! Sans-IO transaction layer (RFC 3261 §17).
