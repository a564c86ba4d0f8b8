//! The Asterisk config-file grammar (main/config.c `config_text_file_load` /
//! `process_text_line`), spec ami-and-pjsip-conf.md §5.1.
//!
//! The result is Asterisk's in-memory view after loading: categories in file order, each with
//! its variables in order (inherited ones first, flagged), `+=` and `(+)` already applied.
//! On top of Asterisk, it also keeps what round trips need: comment lines before a section,
//! inline comments, the line spans of each section in each file, RayanPBX's commented-out
//! sections (`;[101]` + `;key=value`, flagged `disabled`) and legacy managed markers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ConfError, ConfSource, ErrorKind, Loc, Warning, has_wildcards};

/// Longest line Asterisk reads (longer lines are skipped with a warning).
pub const MAX_LINE: usize = 8191;
/// Deepest `#include` nesting.
pub const MAX_INCLUDE_DEPTH: usize = 10;
/// Deepest block-comment nesting.
pub const MAX_COMMENT_DEPTH: u32 = 128;

/// One variable (`name = value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    pub name: String,
    pub value: String,
    /// Copied from a template / inherited category.
    pub inherited: bool,
    /// Written with `=>`.
    pub object: bool,
    /// The inline `;` comment on the line, without the `;`.
    pub comment: Option<String>,
    pub loc: Loc,
}

/// Lines `first..=last` of `file` belong to a section (header and own variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub file: Arc<str>,
    pub first: u32,
    pub last: u32,
}

/// One `[name]` section (an Asterisk category).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// The raw text between `[` and `]`.
    pub name: String,
    /// `(!)`: never instantiated as an object.
    pub template: bool,
    /// Commented out RayanPBX style (`;[name]` + `;key=value`).
    pub disabled: bool,
    /// The `(a,b)` names, in order.
    pub inherits: Vec<String>,
    pub vars: Vec<Var>,
    /// The header.
    pub loc: Loc,
    /// Where the header and own variables are (more than one with `(+)` or includes).
    pub spans: Vec<Span>,
    /// Full-line comments right before the header (no blank line between), without `;`.
    pub comments: Vec<String>,
    /// Inside a legacy `; BEGIN MANAGED - …` block.
    pub managed_hint: bool,
}

impl Category {
    /// The last value of `name` (single-valued options: last wins).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|v| v.name.eq_ignore_ascii_case(name))
            .map(|v| v.value.as_str())
    }

    /// The last variable of `name`.
    pub fn get_var(&self, name: &str) -> Option<&Var> {
        self.vars
            .iter()
            .rev()
            .find(|v| v.name.eq_ignore_ascii_case(name))
    }

    /// Every value of `name`, in order (accumulating options).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.vars
            .iter()
            .filter(move |v| v.name.eq_ignore_ascii_case(name))
            .map(|v| v.value.as_str())
    }

    /// The sorcery object type (`type=`), lowercased.
    pub fn kind(&self) -> Option<String> {
        self.get("type").map(|t| t.trim().to_ascii_lowercase())
    }
}

/// A legacy `; BEGIN MANAGED - <what>` … `; END MANAGED - <what>` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedBlock {
    pub label: String,
    pub file: Arc<str>,
    pub first: u32,
    pub last: u32,
}

/// A loaded config: categories in parse order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conf {
    pub categories: Vec<Category>,
    pub warnings: Vec<Warning>,
    pub managed_blocks: Vec<ManagedBlock>,
    /// Every file read, in order (the top-level file first).
    pub files: Vec<Arc<str>>,
}

impl Conf {
    /// Non-template, enabled categories.
    pub fn objects(&self) -> impl Iterator<Item = &Category> {
        self.categories
            .iter()
            .filter(|c| !c.template && !c.disabled)
    }
}

/// Parse options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Follow `#include` / `#tryinclude` (off: the directives are only recorded).
    pub follow_includes: bool,
    /// Recognise RayanPBX's commented-out sections.
    pub disabled_sections: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            follow_includes: true,
            disabled_sections: true,
        }
    }
}

/// Load `path` (and its includes) from `src`.
pub fn parse_file(
    src: &dyn ConfSource,
    path: &Path,
    opts: ParseOptions,
) -> Result<Conf, ConfError> {
    let mut p = Parser::new(src, opts);
    let file: Arc<str> = Arc::from(path.display().to_string());
    let text = src.read(path).map_err(|e| {
        ConfError::new(
            Loc {
                file: file.clone(),
                line: 0,
            },
            ErrorKind::Read {
                path: file.to_string(),
                message: e.to_string(),
            },
        )
    })?;
    p.parse_text(&text, path, file, 0)?;
    Ok(p.finish())
}

/// Parse one text (named `name` in errors); includes are resolved through `src` relative to
/// `name`'s directory.
pub fn parse_str(
    src: &dyn ConfSource,
    name: &Path,
    text: &str,
    opts: ParseOptions,
) -> Result<Conf, ConfError> {
    let mut p = Parser::new(src, opts);
    let file: Arc<str> = Arc::from(name.display().to_string());
    p.parse_text(text, name, file, 0)?;
    Ok(p.finish())
}

/// A source with no files (for texts without includes).
pub struct NoFiles;

impl ConfSource for NoFiles {
    fn read(&self, _: &Path) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file",
        ))
    }
    fn glob(&self, _: &Path) -> Vec<PathBuf> {
        Vec::new()
    }
}

struct Parser<'s> {
    src: &'s dyn ConfSource,
    opts: ParseOptions,
    conf: Conf,
    /// Index of the category that variables go to.
    current: Option<usize>,
    /// Index of the disabled category that `;key=value` lines go to.
    disabled: Option<usize>,
    /// Comment lines waiting for the next header.
    pending_comments: Vec<String>,
    /// Open legacy managed block (label, file, first line).
    open_managed: Option<(String, Arc<str>, u32)>,
}

/// Split a line into content (comments removed, `\;` unescaped) and the `;` line comment.
/// `depth` is the block-comment nesting, carried across lines.
pub fn strip_comments<'l>(line: &'l str, depth: &mut u32) -> (String, Option<&'l str>) {
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    let mut start = 0; // start of the pending literal run
    let opens = |i: usize| b[i..].starts_with(b";--") && b.get(i + 3) != Some(&b'-');
    while i < b.len() {
        if *depth > 0 {
            if b[i..].starts_with(b"--;") {
                *depth -= 1;
                i += 3;
                start = i;
            } else if opens(i) {
                *depth = (*depth + 1).min(MAX_COMMENT_DEPTH);
                i += 3;
                start = i;
            } else {
                i += 1;
                start = i;
            }
            continue;
        }
        match b[i] {
            b'\\' if b.get(i + 1) == Some(&b';') => {
                out.push_str(&line[start..i]);
                out.push(';');
                i += 2;
                start = i;
            }
            b';' => {
                out.push_str(&line[start..i]);
                if opens(i) {
                    *depth += 1;
                    i += 3;
                    start = i;
                } else {
                    return (out, Some(&line[i + 1..]));
                }
            }
            _ => i += 1,
        }
    }
    if *depth == 0 {
        out.push_str(&line[start.min(line.len())..]);
    }
    (out, None)
}

/// `[name](opts) rest` → (name, Some(opts)) — opts only when `(` follows `]` immediately.
fn parse_header(content: &str) -> Result<(String, Option<String>), ErrorKind> {
    let rest = &content[1..];
    let close = rest.find(']').ok_or(ErrorKind::UnclosedHeader)?;
    let name = rest[..close].to_owned();
    let after = &rest[close + 1..];
    if let Some(opts) = after.strip_prefix('(') {
        let end = opts.find(')').ok_or(ErrorKind::UnclosedOptions)?;
        return Ok((name, Some(opts[..end].to_owned())));
    }
    Ok((name, None))
}

/// `name [+]= [>]value` → (name, value, append, object). None when there is no `=`.
fn parse_var(content: &str) -> Option<(String, String, bool, bool)> {
    let eq = content.find('=')?;
    let mut name = content[..eq].trim_end();
    let mut value = &content[eq + 1..];
    let mut object = false;
    if let Some(v) = value.strip_prefix('>') {
        value = v;
        object = true;
    }
    let mut append = false;
    if let Some(n) = name.strip_suffix('+') {
        name = n.trim_end();
        append = true;
    }
    let name = name.trim();
    let name = name.strip_prefix('\\').unwrap_or(name);
    Some((name.to_owned(), value.trim().to_owned(), append, object))
}

/// `;key=value` inside a commented-out section: the key must follow `;` directly.
fn commented_var(comment: &str) -> Option<(String, String, bool, bool)> {
    let first = comment.chars().next()?;
    if !(first.is_ascii_alphanumeric() || first == '_') {
        return None;
    }
    let (content, _) = strip_comments(comment, &mut 0);
    let eq = content.find('=')?;
    if !content[..eq]
        .trim_end_matches('+')
        .trim()
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return None;
    }
    parse_var(content.trim())
}

impl<'s> Parser<'s> {
    fn new(src: &'s dyn ConfSource, opts: ParseOptions) -> Self {
        Parser {
            src,
            opts,
            conf: Conf::default(),
            current: None,
            disabled: None,
            pending_comments: Vec::new(),
            open_managed: None,
        }
    }

    fn finish(mut self) -> Conf {
        if let Some((label, file, line)) = self.open_managed.take() {
            self.conf.warnings.push(Warning {
                loc: Loc { file, line },
                message: format!("'; BEGIN MANAGED - {label}' has no END marker"),
            });
        }
        self.conf
    }

    fn warn(&mut self, loc: Loc, message: impl Into<String>) {
        self.conf.warnings.push(Warning {
            loc,
            message: message.into(),
        });
    }

    fn parse_text(
        &mut self,
        text: &str,
        path: &Path,
        file: Arc<str>,
        depth: usize,
    ) -> Result<(), ConfError> {
        self.conf.files.push(file.clone());
        let mut comment_depth = 0u32;
        let mut block_start = 0u32;
        // A disabled section never continues into another file.
        self.disabled = None;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i as u32 + 1;
            let raw = if i == 0 {
                raw.strip_prefix('\u{feff}').unwrap_or(raw)
            } else {
                raw
            };
            let loc = || Loc {
                file: file.clone(),
                line: line_no,
            };
            if raw.len() > MAX_LINE {
                self.warn(loc(), format!("line longer than {MAX_LINE} bytes skipped"));
                continue;
            }
            let was_in_block = comment_depth > 0;
            let (content, comment) = strip_comments(raw, &mut comment_depth);
            if !was_in_block && comment_depth > 0 {
                block_start = line_no;
            }
            let content = content.trim();
            if content.is_empty() {
                if raw.trim().is_empty() {
                    self.disabled = None;
                    self.pending_comments.clear();
                } else if let Some(c) =
                    comment.filter(|_| !was_in_block && raw.trim_start().starts_with(';'))
                {
                    self.comment_line(c, loc())?;
                }
                continue;
            }
            self.disabled = None;
            let result = if content.starts_with('[') {
                self.header(content, loc())
            } else if content.starts_with('#') {
                self.directive(content, path, loc(), depth)?;
                Ok(())
            } else {
                self.variable(content, comment, loc())
            };
            result.map_err(|kind| ConfError::new(loc(), kind))?;
        }
        if comment_depth > 0 {
            self.warn(
                Loc {
                    file: file.clone(),
                    line: block_start,
                },
                "block comment ';--' is never closed",
            );
        }
        Ok(())
    }

    /// A full-line `;` comment: legacy marker, commented-out section, or a plain comment.
    fn comment_line(&mut self, c: &str, loc: Loc) -> Result<(), ConfError> {
        let t = c.trim();
        if t == "BEGIN DIALTONE MANAGED" || t == "END DIALTONE MANAGED" {
            self.pending_comments.clear();
            self.disabled = None;
            return Ok(());
        }
        if let Some(label) = t.strip_prefix("BEGIN MANAGED") {
            let label = label.trim_start_matches([' ', '-']).trim().to_owned();
            self.open_managed = Some((label, loc.file.clone(), loc.line));
            return Ok(());
        }
        if let Some(label) = t.strip_prefix("END MANAGED") {
            let label = label.trim_start_matches([' ', '-']).trim().to_owned();
            if let Some((open, file, first)) = self.open_managed.take() {
                if open != label {
                    self.warn(
                        loc.clone(),
                        format!("'; END MANAGED - {label}' closes '{open}'"),
                    );
                }
                self.conf.managed_blocks.push(ManagedBlock {
                    label: open,
                    file,
                    first,
                    last: loc.line,
                });
            }
            return Ok(());
        }
        if self.opts.disabled_sections {
            if c.starts_with('[')
                && let Ok((name, opts)) = parse_header(c.trim_end())
                && !name.is_empty()
            {
                self.disabled_header(name, opts, loc);
                return Ok(());
            }
            if let Some(idx) = self.disabled
                && let Some((name, value, append, object)) = commented_var(c)
            {
                self.push_var(idx, name, value, append, object, None, loc);
                return Ok(());
            }
        }
        self.pending_comments.push(c.to_owned());
        Ok(())
    }

    fn disabled_header(&mut self, name: String, opts: Option<String>, loc: Loc) {
        let (template, _append, inherits) = split_opts(opts.as_deref());
        let mut cat = self.new_category(name, template, inherits.clone(), loc);
        cat.disabled = true;
        for parent in &inherits {
            // Lenient: a commented section's template may be commented too, or missing.
            if let Some(p) = self
                .conf
                .categories
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(parent))
            {
                cat.vars.extend(p.vars.iter().cloned().map(|mut v| {
                    v.inherited = true;
                    v
                }));
            }
        }
        self.conf.categories.push(cat);
        self.disabled = Some(self.conf.categories.len() - 1);
    }

    fn new_category(
        &mut self,
        name: String,
        template: bool,
        inherits: Vec<String>,
        loc: Loc,
    ) -> Category {
        Category {
            name,
            template,
            disabled: false,
            inherits,
            vars: Vec::new(),
            spans: vec![Span {
                file: loc.file.clone(),
                first: loc.line,
                last: loc.line,
            }],
            loc,
            comments: std::mem::take(&mut self.pending_comments),
            managed_hint: self.open_managed.is_some(),
        }
    }

    fn header(&mut self, content: &str, loc: Loc) -> Result<(), ErrorKind> {
        let (name, opts) = parse_header(content)?;
        let (template, append, inherits) = split_opts(opts.as_deref());
        if let Some(filter) = append {
            let idx = self
                .conf
                .categories
                .iter()
                .position(|c| {
                    !c.template
                        && !c.disabled
                        && c.name.eq_ignore_ascii_case(&name)
                        && filter_matches(c, &filter)
                })
                .ok_or_else(|| ErrorKind::AppendNoMatch(name.clone()))?;
            self.pending_comments.clear();
            self.conf.categories[idx].spans.push(Span {
                file: loc.file.clone(),
                first: loc.line,
                last: loc.line,
            });
            self.current = Some(idx);
            return Ok(());
        }
        let mut cat = self.new_category(name, template, inherits, loc);
        for parent in cat.inherits.clone() {
            let p = self
                .conf
                .categories
                .iter()
                .find(|c| !c.disabled && c.name.eq_ignore_ascii_case(&parent))
                .ok_or_else(|| ErrorKind::UnknownTemplate {
                    name: cat.name.clone(),
                    parent: parent.clone(),
                })?;
            cat.vars.extend(p.vars.iter().cloned().map(|mut v| {
                v.inherited = true;
                v
            }));
        }
        self.conf.categories.push(cat);
        self.current = Some(self.conf.categories.len() - 1);
        Ok(())
    }

    fn directive(
        &mut self,
        content: &str,
        path: &Path,
        loc: Loc,
        depth: usize,
    ) -> Result<(), ConfError> {
        let here = loc.clone();
        let err = move |kind| ConfError::new(here.clone(), kind);
        self.pending_comments.clear();
        let body = &content[1..];
        let (name, arg) = body
            .split_once(|c: char| c.is_ascii_whitespace())
            .map_or((body, ""), |(n, a)| (n, a.trim()));
        let arg = arg
            .strip_prefix('"')
            .and_then(|a| a.strip_suffix('"'))
            .or_else(|| arg.strip_prefix('<').and_then(|a| a.strip_suffix('>')))
            .unwrap_or(arg);
        let try_only = match name.to_ascii_lowercase().as_str() {
            "include" => false,
            "tryinclude" => true,
            "exec" => {
                self.warn(loc, "#exec skipped (execincludes is not enabled)");
                return Ok(());
            }
            other => {
                self.warn(loc, format!("unknown directive #{other} ignored"));
                return Ok(());
            }
        };
        if !self.opts.follow_includes {
            return Ok(());
        }
        if arg.is_empty() {
            self.warn(loc, format!("#{name} without a file name ignored"));
            return Ok(());
        }
        if depth + 1 > MAX_INCLUDE_DEPTH {
            return Err(err(ErrorKind::IncludeDepth(MAX_INCLUDE_DEPTH)));
        }
        let target = path.parent().unwrap_or(Path::new("")).join(arg);
        let files = if has_wildcards(arg) {
            self.src.glob(&target)
        } else {
            vec![target]
        };
        let mut found = false;
        for f in files {
            let text = match self.src.read(&f) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(err(ErrorKind::Read {
                        path: f.display().to_string(),
                        message: e.to_string(),
                    }));
                }
            };
            found = true;
            let file: Arc<str> = Arc::from(f.display().to_string());
            self.parse_text(&text, &f, file, depth + 1)?;
        }
        if !found && !try_only {
            return Err(err(ErrorKind::IncludeMissing(arg.to_owned())));
        }
        Ok(())
    }

    fn variable(
        &mut self,
        content: &str,
        comment: Option<&str>,
        loc: Loc,
    ) -> Result<(), ErrorKind> {
        self.pending_comments.clear();
        let Some((name, value, append, object)) = parse_var(content) else {
            self.warn(loc, format!("no '=' in line, ignored: {content}"));
            return Ok(());
        };
        let idx = self
            .current
            .ok_or_else(|| ErrorKind::NoCategory(name.clone()))?;
        let comment = comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        self.push_var(idx, name, value, append, object, comment, loc);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn push_var(
        &mut self,
        idx: usize,
        name: String,
        value: String,
        append: bool,
        object: bool,
        comment: Option<String>,
        loc: Loc,
    ) {
        let cat = &mut self.conf.categories[idx];
        if let Some(span) = cat.spans.last_mut()
            && span.file == loc.file
            && span.last < loc.line
        {
            span.last = loc.line;
        }
        if append
            && let Some(v) = cat
                .vars
                .iter_mut()
                .rev()
                .find(|v| v.name.eq_ignore_ascii_case(&name))
        {
            v.value.push_str(&value);
            return;
        }
        cat.vars.push(Var {
            name,
            value,
            inherited: false,
            object,
            comment,
            loc,
        });
    }
}

/// `!`, `+[filter]`, names → (template, append filter, inherits).
fn split_opts(opts: Option<&str>) -> (bool, Option<String>, Vec<String>) {
    let mut template = false;
    let mut append = None;
    let mut inherits = Vec::new();
    for tok in opts.unwrap_or("").split(',') {
        let tok = tok.trim();
        if tok == "!" {
            template = true;
        } else if let Some(f) = tok.strip_prefix('+') {
            append = Some(f.to_owned());
        } else if !tok.is_empty() {
            inherits.push(tok.to_owned());
        }
    }
    (template, append, inherits)
}

/// `(+type=aor&x=y)`: every `name=value` must equal the category's last value (Asterisk uses
/// regexes; exact match covers the documented use).
fn filter_matches(c: &Category, filter: &str) -> bool {
    filter
        .split('&')
        .filter(|f| !f.trim().is_empty())
        .all(|f| match f.split_once('=') {
            Some((k, v)) => c.get(k.trim()).is_some_and(|x| x == v.trim()),
            None => true,
        })
}
