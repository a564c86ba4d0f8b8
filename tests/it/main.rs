//! Integration tests: a whole Dialtone on 127.0.0.1:0 driven over real sockets.

mod ami;
mod api;
mod calls;
mod cli;
mod presence;
mod compat;
mod pjsip;
mod register;
mod support;
