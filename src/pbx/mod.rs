//! PBX logic (sans-IO): the extension directory, the registrar, calls (the B2BUA in
//! [`engine::call`]), presence and BLF ([`engine::subscribe`], [`presence`]).

pub mod cause;
pub mod directory;
pub mod engine;
pub mod peer;
pub mod presence;
pub mod registrar;

pub use engine::Pbx;

#[cfg(test)]
mod call_tests;
#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod redirect_tests;
#[cfg(test)]
mod subscribe_tests;
