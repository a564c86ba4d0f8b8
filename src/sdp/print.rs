//! The canonical printer: CRLF line ends, RFC 8866 §5 line order, unknown lines last in their
//! section.

use std::fmt::{self, Write};

use super::model::{
    Attribute, Bandwidth, Connection, MediaDescription, Origin, SessionDescription,
};

impl SessionDescription {
    /// The canonical text (CRLF, RFC 8866 order).
    pub fn print(&self) -> String {
        let mut out = String::with_capacity(self.estimated_len());
        self.write_to(&mut out)
            .expect("writing into a String cannot fail");
        out
    }

    /// The canonical text as bytes, for a SIP body.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.print().into_bytes()
    }

    fn estimated_len(&self) -> usize {
        let attrs = |a: &[Attribute]| {
            a.iter()
                .map(|a| a.name.len() + a.value.as_ref().map_or(0, |v| v.len() + 1) + 4)
                .sum::<usize>()
        };
        let media: usize = self
            .media
            .iter()
            .map(|m| 48 + m.formats.len() * 4 + attrs(&m.attributes))
            .sum();
        128 + attrs(&self.attributes) + media
    }

    /// Writes the canonical text.
    pub fn write_to<W: Write>(&self, w: &mut W) -> fmt::Result {
        w.write_str("v=0\r\n")?;
        write_origin(w, &self.origin)?;
        if self.session_name.is_empty() {
            w.write_str("s= \r\n")?;
        } else {
            line(w, "s=", &self.session_name)?;
        }
        if let Some(i) = &self.information {
            line(w, "i=", i)?;
        }
        if let Some(u) = &self.uri {
            line(w, "u=", u)?;
        }
        for e in &self.emails {
            line(w, "e=", e)?;
        }
        for p in &self.phones {
            line(w, "p=", p)?;
        }
        if let Some(c) = &self.connection {
            write_connection(w, c)?;
        }
        write_bandwidths(w, &self.bandwidths)?;
        for t in &self.times {
            write!(w, "t={} {}\r\n", t.start, t.stop)?;
            for r in &t.repeats {
                line(w, "r=", r)?;
            }
        }
        if let Some(z) = &self.zone {
            line(w, "z=", z)?;
        }
        if let Some(k) = &self.key {
            line(w, "k=", k)?;
        }
        write_attributes(w, &self.attributes)?;
        for u in &self.unknown {
            line(w, "", u)?;
        }
        for m in &self.media {
            write_media(w, m)?;
        }
        Ok(())
    }
}

impl MediaDescription {
    /// The canonical text of this m= section alone.
    pub fn print(&self) -> String {
        let mut out = String::with_capacity(256);
        write_media(&mut out, self).expect("writing into a String cannot fail");
        out
    }
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

fn line<W: Write>(w: &mut W, prefix: &str, value: &str) -> fmt::Result {
    w.write_str(prefix)?;
    w.write_str(value)?;
    w.write_str("\r\n")
}

fn write_origin<W: Write>(w: &mut W, o: &Origin) -> fmt::Result {
    w.write_str("o=")?;
    for (i, f) in [
        o.username.as_str(),
        o.sess_id.as_str(),
        o.sess_version.as_str(),
        o.net_type.as_str(),
        o.addr_type.as_str(),
        o.address.as_str(),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            w.write_char(' ')?;
        }
        w.write_str(f)?;
    }
    w.write_str("\r\n")
}

fn write_connection<W: Write>(w: &mut W, c: &Connection) -> fmt::Result {
    w.write_str("c=")?;
    w.write_str(&c.net_type)?;
    w.write_char(' ')?;
    w.write_str(c.addr_type.as_str())?;
    w.write_char(' ')?;
    w.write_str(&c.address)?;
    w.write_str("\r\n")
}

fn write_bandwidths<W: Write>(w: &mut W, bandwidths: &[Bandwidth]) -> fmt::Result {
    for b in bandwidths {
        write!(w, "b={}:{}\r\n", b.bwtype, b.bandwidth)?;
    }
    Ok(())
}

fn write_attributes<W: Write>(w: &mut W, attributes: &[Attribute]) -> fmt::Result {
    for a in attributes {
        w.write_str("a=")?;
        w.write_str(&a.name)?;
        if let Some(v) = &a.value {
            w.write_char(':')?;
            w.write_str(v)?;
        }
        w.write_str("\r\n")?;
    }
    Ok(())
}

fn write_media<W: Write>(w: &mut W, m: &MediaDescription) -> fmt::Result {
    w.write_str("m=")?;
    w.write_str(&m.media)?;
    write!(w, " {}", m.port)?;
    if let Some(n) = m.port_count {
        write!(w, "/{n}")?;
    }
    w.write_char(' ')?;
    w.write_str(&m.proto)?;
    for f in &m.formats {
        w.write_char(' ')?;
        w.write_str(f)?;
    }
    w.write_str("\r\n")?;
    if let Some(i) = &m.information {
        line(w, "i=", i)?;
    }
    if let Some(c) = &m.connection {
        write_connection(w, c)?;
    }
    write_bandwidths(w, &m.bandwidths)?;
    if let Some(k) = &m.key {
        line(w, "k=", k)?;
    }
    write_attributes(w, &m.attributes)?;
    for u in &m.unknown {
        line(w, "", u)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::model::*;

    #[test]
    fn prints_in_rfc_order_from_a_built_model() {
        let mut m = MediaDescription::new("audio", 30000, "RTP/AVP", &["0", "101"]);
        m.attributes = vec![
            Attribute::new("rtpmap", "101 telephone-event/8000"),
            Attribute::flag("sendrecv"),
        ];
        m.bandwidths.push(Bandwidth {
            bwtype: "TIAS".into(),
            bandwidth: 64000,
        });
        let s = SessionDescription {
            origin: Origin {
                username: "-".into(),
                sess_id: "1".into(),
                sess_version: "2".into(),
                net_type: "IN".into(),
                addr_type: AddrType::Ip4,
                address: "192.0.2.1".into(),
            },
            session_name: "Dialtone".into(),
            information: Some("info".into()),
            uri: Some("http://example.com/".into()),
            emails: vec!["a@example.com".into()],
            phones: vec!["+1 555 0100".into()],
            connection: Some(Connection::new("192.0.2.1".parse().unwrap())),
            bandwidths: vec![Bandwidth {
                bwtype: "AS".into(),
                bandwidth: 80,
            }],
            times: vec![Timing::unbounded()],
            zone: Some("2882844526 -1h".into()),
            key: Some("prompt".into()),
            attributes: vec![Attribute::new("tool", "x")],
            unknown: vec!["x=1".into()],
            media: vec![m],
        };
        let text = s.print();
        assert_eq!(
            text,
            "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=Dialtone\r\ni=info\r\nu=http://example.com/\r\n\
             e=a@example.com\r\np=+1 555 0100\r\nc=IN IP4 192.0.2.1\r\nb=AS:80\r\nt=0 0\r\n\
             z=2882844526 -1h\r\nk=prompt\r\na=tool:x\r\nx=1\r\n\
             m=audio 30000 RTP/AVP 0 101\r\nb=TIAS:64000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
        );
        assert_eq!(s.to_string(), text);
        assert_eq!(SessionDescription::parse(text.as_bytes()).unwrap(), s);
    }
}
