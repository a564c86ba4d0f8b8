//! Integration tests: a whole Dialtone on 127.0.0.1:0 driven over real sockets.

mod ami;
mod api;
mod calls;
mod cli;
mod compat;
mod pjsip;
mod presence;
mod redirect;
mod register;
mod support;
