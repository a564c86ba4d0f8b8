//! SIP message model, parser (normalising front end) and printer.
