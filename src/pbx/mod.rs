//! PBX logic (sans-IO): the extension directory, the registrar, later calls and presence.

pub mod directory;
