//! AMI framing: the client → server message parser (`Key: Value` lines, a blank line ends a
//! message) and the server → client writers (responses, list items), after Asterisk's
//! `get_input`/`do_message`/`astman_send_response_full`.

use thiserror::Error;

/// Longest accepted line (Asterisk's input buffer); a longer line is dropped and the message
/// answered `Failed to parse message: line too long`.
pub const MAX_LINE: usize = 1024;
/// Most headers kept per message (`AST_MAX_MANHEADERS`).
pub const MAX_HEADERS: usize = 128;
/// Bytes one message may occupy before the connection is closed.
pub const MAX_FRAME: usize = 64 * 1024;

/// A problem found inside one message; the message is answered with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameProblem {
    LineTooLong,
    TooManyLines,
}

impl FrameProblem {
    /// The `Message:` Asterisk answers.
    pub fn message(self) -> &'static str {
        match self {
            FrameProblem::LineTooLong => "Failed to parse message: line too long",
            FrameProblem::TooManyLines => "Too many lines in message or allocation failure",
        }
    }
}

/// A fatal framing error: answer it and close.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("Failed to parse message: message too large")]
    TooLarge,
}

/// One client message: its header lines in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    pub lines: Vec<String>,
    pub problem: Option<FrameProblem>,
}

impl Frame {
    /// Build a frame from `Key: Value` pairs (tests, the CLI client).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Frame {
        Frame {
            lines: pairs.iter().map(|(k, v)| format!("{k}: {v}")).collect(),
            problem: None,
        }
    }

    fn values<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.lines.iter().filter_map(move |l| {
            let head = l.get(..name.len())?;
            if !head.eq_ignore_ascii_case(name) || l.as_bytes().get(name.len()) != Some(&b':') {
                return None;
            }
            Some(l[name.len() + 1..].trim_start_matches([' ', '\t']))
        })
    }

    /// First value of `name` (case-insensitive, name immediately followed by `:`); `""` when
    /// absent, as `astman_get_header` answers.
    pub fn get(&self, name: &str) -> &str {
        self.values(name).next().unwrap_or("")
    }

    /// First non-empty value (the lookup `Action` uses).
    pub fn get_nonempty(&self, name: &str) -> &str {
        self.values(name).find(|v| !v.is_empty()).unwrap_or("")
    }

    /// Every value of a repeatable header (`Variable`).
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.values(name).collect()
    }

    /// The `ActionID`, when non-empty.
    pub fn action_id(&self) -> Option<&str> {
        Some(self.get("ActionID")).filter(|v| !v.is_empty())
    }

    /// `Variable:` headers as `name=value` pairs (comma-separated lists; pairs without `=`
    /// ignored).
    pub fn variables(&self) -> Vec<(String, String)> {
        self.get_all("Variable")
            .into_iter()
            .flat_map(|v| v.split(','))
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k.trim().to_string(), v.to_string()))
            })
            .collect()
    }
}

/// Incremental parser of client messages.
#[derive(Debug, Default)]
pub struct FrameParser {
    buf: Vec<u8>,
    cur: Frame,
    cur_bytes: usize,
    /// Inside a line that outgrew [`MAX_LINE`]: drop bytes up to its end.
    discarding: bool,
}

impl FrameParser {
    pub fn new() -> FrameParser {
        FrameParser::default()
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete message, `Ok(None)` while one is incomplete.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            let Some(pos) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_LINE {
                    // A line without end: drop what we have, keep dropping up to its LF.
                    self.cur_bytes += self.buf.len();
                    self.buf.clear();
                    self.discarding = true;
                    self.cur.problem.get_or_insert(FrameProblem::LineTooLong);
                    if self.cur_bytes > MAX_FRAME {
                        return Err(FrameError::TooLarge);
                    }
                }
                return Ok(None);
            };
            let raw: Vec<u8> = self.buf.drain(..=pos).collect();
            self.cur_bytes += raw.len();
            if self.cur_bytes > MAX_FRAME {
                return Err(FrameError::TooLarge);
            }
            if std::mem::take(&mut self.discarding) {
                continue;
            }
            let mut line = &raw[..raw.len() - 1];
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            if let Some(nul) = line.iter().position(|&b| b == 0) {
                line = &line[..nul];
            }
            if line.is_empty() {
                self.cur_bytes = 0;
                return Ok(Some(std::mem::take(&mut self.cur)));
            }
            if line.len() > MAX_LINE {
                self.cur.problem.get_or_insert(FrameProblem::LineTooLong);
                continue;
            }
            if self.cur.lines.len() >= MAX_HEADERS {
                self.cur.problem.get_or_insert(FrameProblem::TooManyLines);
                continue;
            }
            let text = String::from_utf8_lossy(line);
            self.cur.lines.push(text.trim_end().to_string());
        }
    }
}

/// Append one `Key: Value` line (CRLF).
pub fn push_kv(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push_str(": ");
    out.push_str(value);
    out.push_str("\r\n");
}

/// A response head: `Response`, `ActionID` (when given), `Message` (when given). Add headers
/// with [`push_kv`] and end with [`end`].
pub fn response_head(kind: &str, action_id: Option<&str>, message: Option<&str>) -> String {
    let mut out = String::with_capacity(128);
    push_kv(&mut out, "Response", kind);
    if let Some(id) = action_id {
        push_kv(&mut out, "ActionID", id);
    }
    if let Some(m) = message {
        push_kv(&mut out, "Message", m);
    }
    out
}

/// End a message (the blank line).
pub fn end(mut out: String) -> String {
    out.push_str("\r\n");
    out
}

/// A complete `Response: Success` with an optional message.
pub fn success(action_id: Option<&str>, message: &str) -> String {
    end(response_head("Success", action_id, Some(message)))
}

/// A complete `Response: Error`.
pub fn error(action_id: Option<&str>, message: &str) -> String {
    end(response_head("Error", action_id, Some(message)))
}

/// The ack that starts an event list.
pub fn list_ack(action_id: Option<&str>, message: &str) -> String {
    let mut out = String::with_capacity(128);
    push_kv(&mut out, "Response", "Success");
    if let Some(id) = action_id {
        push_kv(&mut out, "ActionID", id);
    }
    push_kv(&mut out, "EventList", "start");
    push_kv(&mut out, "Message", message);
    end(out)
}

/// The `<Name>Complete` event closing a list (no Privilege), with extra headers.
pub fn list_complete(
    name: &str,
    action_id: Option<&str>,
    items: usize,
    extra: &[(&str, String)],
) -> String {
    let mut out = String::with_capacity(128);
    push_kv(&mut out, "Event", name);
    if let Some(id) = action_id {
        push_kv(&mut out, "ActionID", id);
    }
    push_kv(&mut out, "EventList", "Complete");
    push_kv(&mut out, "ListItems", &items.to_string());
    for (k, v) in extra {
        push_kv(&mut out, k, v);
    }
    end(out)
}

/// A list item: `Event`, `ActionID` (right after the name), then the body.
pub fn list_item(name: &str, action_id: Option<&str>, body: &[(String, String)]) -> String {
    let mut out = String::with_capacity(256);
    push_kv(&mut out, "Event", name);
    if let Some(id) = action_id {
        push_kv(&mut out, "ActionID", id);
    }
    for (k, v) in body {
        push_kv(&mut out, k, v);
    }
    end(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8]) -> Vec<Frame> {
        let mut p = FrameParser::new();
        p.push(input);
        let mut out = Vec::new();
        while let Some(f) = p.next_frame().unwrap() {
            out.push(f);
        }
        out
    }

    #[test]
    fn crlf_and_lf_lines() {
        let f = frames(b"Action: Login\r\nUsername: admin\nSecret:amp111\r\n\r\nAction: Ping\n\n");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].get("action"), "Login");
        assert_eq!(f[0].get("SECRET"), "amp111");
        assert_eq!(f[1].get("Action"), "Ping");
    }

    #[test]
    fn incomplete_frame_waits() {
        let mut p = FrameParser::new();
        p.push(b"Action: Ping\r\nActionID: 1\r\n");
        assert_eq!(p.next_frame().unwrap(), None);
        p.push(b"\r\n");
        let f = p.next_frame().unwrap().unwrap();
        assert_eq!(f.action_id(), Some("1"));
    }

    #[test]
    fn lookup_rules() {
        let f = Frame {
            lines: vec![
                "Action:".into(),
                "Action: Ping".into(),
                "ActionX: no".into(),
                "Variable: A=1,B=2".into(),
                "variable: C=3,junk".into(),
                "Key :x".into(),
            ],
            problem: None,
        };
        assert_eq!(f.get("Action"), "");
        assert_eq!(f.get_nonempty("Action"), "Ping");
        assert_eq!(f.get("Key"), "", "the name must be followed by ':' at once");
        assert_eq!(
            f.variables(),
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "2".into()),
                ("C".into(), "3".into())
            ]
        );
        assert_eq!(f.action_id(), None);
    }

    #[test]
    fn empty_message_and_nul() {
        let f = frames(b"\r\nAction: Ping\0junk\r\n\r\n");
        assert_eq!(f.len(), 2);
        assert!(f[0].lines.is_empty());
        assert_eq!(f[1].get("Action"), "Ping");
    }

    #[test]
    fn long_line_and_too_many_lines() {
        let mut input = b"Action: Ping\r\nX: ".to_vec();
        input.extend(std::iter::repeat_n(b'a', 3000));
        input.extend_from_slice(b"\r\n\r\n");
        let f = frames(&input);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].problem, Some(FrameProblem::LineTooLong));
        assert_eq!(f[0].get("Action"), "Ping");

        let mut input = Vec::new();
        for i in 0..200 {
            input.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        let f = frames(&input);
        assert_eq!(f[0].lines.len(), MAX_HEADERS);
        assert_eq!(f[0].problem, Some(FrameProblem::TooManyLines));
    }

    #[test]
    fn oversized_frame_is_fatal() {
        let mut p = FrameParser::new();
        for _ in 0..2000 {
            p.push(b"Header: 0123456789012345678901234567890123456789\r\n");
        }
        let mut r = Ok(None);
        for _ in 0..3 {
            r = p.next_frame();
            if r.is_err() {
                break;
            }
        }
        assert_eq!(r, Err(FrameError::TooLarge));
    }

    #[test]
    fn writers() {
        assert_eq!(
            success(Some("1"), "Authentication accepted"),
            "Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n"
        );
        assert_eq!(
            list_complete("EndpointListComplete", Some("L1"), 2, &[]),
            "Event: EndpointListComplete\r\nActionID: L1\r\nEventList: Complete\r\nListItems: 2\r\n\r\n"
        );
    }
}
