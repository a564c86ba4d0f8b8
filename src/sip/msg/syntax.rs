//! Low-level lexical helpers shared by the typed values and the parser (RFC 3261 §25.1).

/// `token` characters: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~".
pub(crate) const fn is_token_char(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~')
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

#[inline]
pub(crate) const fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

#[inline]
const fn is_lws_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims SP/HTAB (and, defensively, CR/LF) on both sides.
#[inline]
pub(crate) fn trim_lws(s: &str) -> &str {
    trim_lws_end(trim_lws_start(s))
}

#[inline]
pub(crate) fn trim_lws_start(s: &str) -> &str {
    let n = s.bytes().take_while(|&b| is_lws_byte(b)).count();
    // ASCII bytes were skipped, so `n` is a char boundary
    s.get(n..).unwrap_or("")
}

#[inline]
pub(crate) fn trim_lws_end(s: &str) -> &str {
    let n = s.bytes().rev().take_while(|&b| is_lws_byte(b)).count();
    s.get(..s.len() - n).unwrap_or("")
}

pub(crate) fn trim_bytes(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if is_wsp(*first) {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if is_wsp(*last) {
            b = rest;
        } else {
            break;
        }
    }
    b
}

/// Absolute index of the first byte equal to `x` or `y` at or after `from`
/// (8 bytes at a time).
pub(crate) fn find_any2(b: &[u8], from: usize, x: u8, y: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let (mx, my) = (LO * u64::from(x), LO * u64::from(y));
    let mut i = from;
    while i + 8 <= b.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        let w = u64::from_le_bytes(w);
        let (a, c) = (w ^ mx, w ^ my);
        // lowest set bit marks the first matching byte exactly
        let z = (a.wrapping_sub(LO) & !a & HI) | (c.wrapping_sub(LO) & !c & HI);
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    (i..b.len()).find(|&k| b[k] == x || b[k] == y)
}

/// Splits a list header value on top-level commas (outside quoted strings and `<...>`).
/// Every element is trimmed; empty elements are kept (validation decides about them).
pub(crate) fn split_list(s: &str, mut f: impl FnMut(&str)) {
    let b = s.as_bytes();
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if in_quotes => i += 1,
            b'"' => in_quotes = !in_quotes,
            b'<' if !in_quotes => in_angle = true,
            b'>' if !in_quotes => in_angle = false,
            b',' if !in_quotes && !in_angle => {
                f(trim_lws(&s[start..i]));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    f(trim_lws(s.get(start..).unwrap_or("")));
}

/// Length of the quoted-string at the start of `b` including both quotes, if terminated.
pub(crate) fn quoted_len(b: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// Appends `s` as a quoted-string, escaping `"`, `\` and control characters.
/// CR and LF cannot be carried by a quoted-pair; they are replaced by SP.
pub(crate) fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => out.push(' '),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes once (RFC 3261 §19.1.2, no recursive unescaping). Invalid escapes are
/// kept literally. NUL octets are kept.
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex_val),
                b.get(i + 2).copied().and_then(hex_val),
            )
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Case-insensitive comparison of a parameter name with `%` escapes resolved.
pub(crate) fn param_name_eq(written: &str, wanted: &str) -> bool {
    if written.eq_ignore_ascii_case(wanted) {
        return true;
    }
    written.contains('%') && percent_decode(written).eq_ignore_ascii_case(wanted.as_bytes())
}

/// Parses `*( LWS ";" LWS name [ LWS "=" LWS value ] )` covering all of `s`, calling `f`
/// for each parameter. Values are token-ish (anything but LWS, `;`, `,`, `"`, `<`, `>`) or a
/// quoted-string kept with its quotes. Returns whether the text is already canonical (no LWS).
pub(crate) fn scan_params<'a>(
    s: &'a str,
    mut f: impl FnMut(&'a str, Option<&'a str>),
) -> Result<bool, &'static str> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut canonical = true;
    let skip_ws = |mut i: usize, canonical: &mut bool| {
        let st = i;
        while i < b.len() && is_wsp(b[i]) {
            i += 1;
        }
        if i != st {
            *canonical = false;
        }
        i
    };
    loop {
        i = skip_ws(i, &mut canonical);
        if i >= b.len() {
            return Ok(canonical);
        }
        if b[i] != b';' {
            return Err("junk where a ';' parameter was expected");
        }
        i = skip_ws(i + 1, &mut canonical);
        let ns = i;
        while i < b.len() && is_token_char(b[i]) {
            i += 1;
        }
        if i == ns {
            return Err("empty parameter");
        }
        let name = &s[ns..i];
        i = skip_ws(i, &mut canonical);
        if i < b.len() && b[i] == b'=' {
            i = skip_ws(i + 1, &mut canonical);
            let vs = i;
            if i < b.len() && b[i] == b'"' {
                let Some(n) = quoted_len(&b[i..]) else {
                    return Err("unterminated quoted parameter value");
                };
                i += n;
            } else {
                while i < b.len()
                    && b[i] > b' '
                    && b[i] != 0x7f
                    && !matches!(b[i], b';' | b',' | b'"' | b'<' | b'>')
                {
                    i += 1;
                }
            }
            if i == vs {
                return Err("empty parameter value");
            }
            f(name, Some(&s[vs..i]));
        } else {
            f(name, None);
        }
    }
}

/// [`scan_params`] collecting owned parameters.
pub(crate) fn parse_params(
    s: &str,
    out: &mut Vec<(String, Option<String>)>,
) -> Result<(), &'static str> {
    scan_params(s, |n, v| out.push((n.to_owned(), v.map(str::to_owned)))).map(|_| ())
}

pub(crate) fn push_params(out: &mut String, params: &[(String, Option<String>)]) {
    for (n, v) in params {
        out.push(';');
        out.push_str(n);
        if let Some(v) = v {
            out.push('=');
            out.push_str(v);
        }
    }
}

pub(crate) fn find_param<'a>(
    params: &'a [(String, Option<String>)],
    name: &str,
) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(n, _)| param_name_eq(n, name))
        .map(|(_, v)| v.as_deref())
}

pub(crate) fn set_param(
    params: &mut Vec<(String, Option<String>)>,
    name: &str,
    value: Option<String>,
) {
    if let Some(slot) = params.iter_mut().find(|(n, _)| param_name_eq(n, name)) {
        slot.1 = value;
    } else {
        params.push((name.to_owned(), value));
    }
}

/// Appends the decimal form of `n`.
pub(crate) fn push_num(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(char::from(b));
    }
}

/// Parses 1*DIGIT into a u32, rejecting overflow.
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    let mut v: u32 = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    Some(v)
}

/// Parses 1*DIGIT saturating at `u32::MAX` (delta-seconds, RFC 4475 §3.1.2.4).
pub(crate) fn parse_u32_saturating(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(parse_u32(s).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_quotes_and_angles() {
        let mut v = Vec::new();
        split_list(r#""a,\"b" <sip:x;a=1,2>, <sip:y> , ,"#, |s| {
            v.push(s.to_owned())
        });
        assert_eq!(v, [r#""a,\"b" <sip:x;a=1,2>"#, "<sip:y>", "", ""]);
    }

    #[test]
    fn params_with_lws_and_quotes() {
        let mut p = Vec::new();
        parse_params(r#" ; tag = 1 ;lr; x="a;b""#, &mut p).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0], ("tag".into(), Some("1".into())));
        assert_eq!(p[1], ("lr".into(), None));
        assert_eq!(p[2].1.as_deref(), Some(r#""a;b""#));
        assert!(parse_params(";;", &mut Vec::new()).is_err());
        assert!(parse_params(";a=", &mut Vec::new()).is_err());
        assert!(parse_params("junk", &mut Vec::new()).is_err());
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(quoted_len(br#""J Rosenberg \\\"" <x>"#), Some(18));
        assert_eq!(quoted_len(b"\"abc"), None);
        assert_eq!(quoted_len(b"\"a\\"), None);
        let mut out = String::new();
        push_quoted(&mut out, "a\"b\\c\0\r");
        assert_eq!(out, "\"a\\\"b\\\\c\\\0 \"");
    }

    #[test]
    fn find_any2_matches_naive() {
        let hay: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        for from in 0..hay.len() {
            for (x, y) in [(b'\r', b'\n'), (0, 0x80), (250, 7)] {
                let naive = (from..hay.len()).find(|&k| hay[k] == x || hay[k] == y);
                assert_eq!(find_any2(&hay, from, x, y), naive);
            }
        }
    }

    #[test]
    fn decode_and_numbers() {
        assert_eq!(percent_decode("null-%00-null"), b"null-\0-null");
        assert_eq!(percent_decode("v%61lue%25%34%31"), b"value%41");
        assert_eq!(percent_decode("%Z%4"), b"%Z%4");
        assert_eq!(parse_u32("0009"), Some(9));
        assert_eq!(parse_u32("4294967296"), None);
        assert_eq!(parse_u32_saturating("280297596632815"), Some(u32::MAX));
        assert_eq!(parse_u32_saturating("-1"), None);
    }
}
