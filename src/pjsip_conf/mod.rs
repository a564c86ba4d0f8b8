//! pjsip.conf / extensions.conf compatibility (sans-IO).
//!
//! - [`parse`]: the Asterisk config-file grammar (main/config.c): sections, templates `(!)`,
//!   inheritance `(a,b)`, append `(+)`, `=` / `=>` / `+=`, `;` and nested `;-- --;` comments,
//!   `\;`, `#include` / `#tryinclude` with globs, RayanPBX's commented-out (disabled) sections
//!   and legacy `; BEGIN MANAGED` markers. Errors carry `file:line`.
//! - [`model`]: res_pjsip's sorcery mapping of sections to objects, and the import model:
//!   endpoint + auth + aor → [`Extension`](crate::pbx::directory::Extension); every other
//!   object (transports, global, trunks, identify, registration, ...) kept verbatim as a
//!   [`PjsipObject`](model::PjsipObject). [`model::diff`] gives added/changed/removed per object
//!   (imports and, later, live reload).
//! - [`export`]: pjsip.conf in RayanPBX's or FreePBX's layout and extensions.conf, optionally
//!   merged into an existing file (only Dialtone's managed block is replaced).
//!
//! Nothing here touches the filesystem: files are read through a [`ConfSource`] that the
//! caller passes (the std::fs one lives in `store::conf_fs`).

pub mod export;
pub mod model;
mod options;
pub mod parse;
pub mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use export::{AuthMode, ExportOptions, Layout};
pub use model::{Changes, ImportModel, ImportReport, PjsipObject};
pub use parse::{Category, Conf, Var};

/// Where config text comes from. `read` gets a path as produced by joining an `#include`
/// argument to the including file's directory; `glob` expands a pattern (wildcards `*`, `?`
/// and `[...]` in the last path component) to the matching files, sorted; no match = empty.
pub trait ConfSource {
    fn read(&self, path: &Path) -> io::Result<String>;
    fn glob(&self, pattern: &Path) -> Vec<PathBuf>;
}

/// An in-memory [`ConfSource`] (tests, benches, the API).
#[derive(Debug, Clone, Default)]
pub struct MemSource {
    pub files: BTreeMap<PathBuf, String>,
}

impl MemSource {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        self.files.insert(path.into(), text.into());
        self
    }
}

impl ConfSource for MemSource {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }

    fn glob(&self, pattern: &Path) -> Vec<PathBuf> {
        let (dir, pat) = split_pattern(pattern);
        self.files
            .keys()
            .filter(|p| {
                p.parent().unwrap_or(Path::new("")) == dir
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| wildcard_match(&pat, n))
            })
            .cloned()
            .collect()
    }
}

/// Split a glob pattern into its directory and its last component.
pub fn split_pattern(pattern: &Path) -> (PathBuf, String) {
    let dir = pattern.parent().map(Path::to_path_buf).unwrap_or_default();
    let pat = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, pat)
}

/// Whether a file name contains glob wildcards.
pub fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// glob(3)-style match of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`.
/// A leading `.` is only matched by a literal `.` (as glob(3) does).
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    wm(&p, &n)
}

fn wm(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|i| wm(&p[1..], &n[i..])),
        Some('?') => !n.is_empty() && wm(&p[1..], &n[1..]),
        Some('[') => {
            let Some(c) = n.first() else { return false };
            let Some(end) = p.iter().skip(2).position(|&x| x == ']').map(|i| i + 2) else {
                return c == &'[' && wm(&p[1..], &n[1..]);
            };
            let mut set = &p[1..end];
            let negate = matches!(set.first(), Some('!' | '^'));
            if negate {
                set = &set[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == '-' {
                    hit |= set[i] <= *c && *c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == *c;
                    i += 1;
                }
            }
            hit != negate && wm(&p[end + 1..], &n[1..])
        }
        Some(x) => n.first() == Some(x) && wm(&p[1..], &n[1..]),
    }
}

/// A place in a config file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Loc {
    pub file: Arc<str>,
    /// 1-based.
    pub line: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A config error: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{loc}: {kind}")]
pub struct ConfError {
    pub loc: Loc,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("#include {0}: file not found")]
    IncludeMissing(String),
    #[error("#include nested deeper than {0} levels")]
    IncludeDepth(usize),
    #[error("'{0}' outside of any section (No category context)")]
    NoCategory(String),
    #[error("section header without closing ']'")]
    UnclosedHeader,
    #[error("section options without closing ')'")]
    UnclosedOptions,
    #[error("[{name}] inherits from '{parent}', which is not defined before it")]
    UnknownTemplate { name: String, parent: String },
    #[error("[{0}](+): no earlier section of that name to append to")]
    AppendNoMatch(String),
    #[error("configuration contains a duplicate object: [{name}] type={kind} (first at {first})")]
    Duplicate {
        name: String,
        kind: String,
        first: String,
    },
    #[error("[{section}] {option}={value}: {reason}")]
    InvalidValue {
        section: String,
        option: String,
        value: String,
        reason: String,
    },
}

impl ConfError {
    pub fn new(loc: Loc, kind: ErrorKind) -> Self {
        ConfError { loc, kind }
    }
}

/// A non-fatal finding (the file still loads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub loc: Loc,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.loc, self.message)
    }
}

/// Asterisk's `ast_true`.
pub fn ast_true(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "yes" | "true" | "y" | "t" | "1" | "on"
    )
}

/// Asterisk's `ast_false`.
pub fn ast_false(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "no" | "false" | "n" | "f" | "0" | "off"
    )
}

/// A boolean option value, or None when it is neither ast_true nor ast_false.
pub fn parse_bool(s: &str) -> Option<bool> {
    if ast_true(s) {
        Some(true)
    } else if ast_false(s) {
        Some(false)
    } else {
        None
    }
}

/// Parse a pjsip `local_net` value: `10.0.0.0/8`, `10.0.0.0/255.0.0.0` or a bare address.
pub fn parse_local_net(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    if let Ok(n) = s.parse::<ipnet::IpNet>() {
        return Some(n.trunc());
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Some(ipnet::IpNet::from(ip));
    }
    let (addr, mask) = s.split_once('/')?;
    let addr: std::net::Ipv4Addr = addr.trim().parse().ok()?;
    let mask: std::net::Ipv4Addr = mask.trim().parse().ok()?;
    let prefix = ipnet::ipv4_mask_to_prefix(mask).ok()?;
    ipnet::Ipv4Net::new(addr, prefix)
        .ok()
        .map(|n| ipnet::IpNet::V4(n.trunc()))
}
