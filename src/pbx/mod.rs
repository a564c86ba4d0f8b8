//! PBX logic (sans-IO): the extension directory, the registrar, later calls and presence.

pub mod directory;
pub mod engine;
pub mod peer;
pub mod registrar;

pub use engine::Pbx;

#[cfg(test)]
mod call_tests;
#[cfg(test)]
mod engine_tests;
