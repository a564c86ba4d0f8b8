//! Test support: start a server on loopback with a temporary store, and a minimal SIP phone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use dialtone::config;
use dialtone::runtime::Server;

pub struct TestServer {
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
    /// The YAML the server was started with.
    pub yaml: String,
}

impl TestServer {
    /// Start with extensions 1001..=1003 (password `secret100N`) plus `extra` YAML appended
    /// at top level.
    pub async fn start(extra: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, extra).await
    }

    pub async fn start_in(dir: tempfile::TempDir, extra: &str) -> TestServer {
        Self::start_full(dir, "", extra).await
    }

    /// Like [`TestServer::start`], with `server_keys` (indented YAML lines) added to the
    /// `server:` section.
    pub async fn start_with_server(server_keys: &str, extra: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_full(dir, server_keys, extra).await
    }

    async fn start_full(dir: tempfile::TempDir, server_keys: &str, extra: &str) -> TestServer {
        let db = dir.path().join("dialtone.db");
        // An `ami:` block in `extra` replaces the default (AMI off).
        let ami_off = if extra.lines().any(|l| l.starts_with("ami:")) {
            ""
        } else {
            "ami:\n  enabled: false\n"
        };
        // Likewise the compat listener (RayanPBX/ISPBX APIs, port 8000 by default) is off
        // unless `extra` has a `compat_api:` block.
        let compat_off = if extra.lines().any(|l| l.starts_with("compat_api:")) {
            ""
        } else {
            "compat_api:\n  enabled: false\n"
        };
        let yaml = format!(
            r#"
server:
  sip_host: 127.0.0.1
  sip_port: 0
{server_keys}
api:
  host: 127.0.0.1
  port: 0
  require_authentication: true
  tokens: ["test-token-123456"]
{ami_off}{compat_off}database:
  url: "sqlite://{}"
sip:
  realm: test.local
extensions:
  - {{ number: "1001", name: "Alice", password: "secret1001" }}
  - {{ number: "1002", name: "Bob", password: "secret1002" }}
  - {{ number: "1003", name: "Carol", password: "secret1003" }}
{extra}
"#,
            db.display()
        );
        let loaded = config::parse(&yaml, "test config").expect("test config parses");
        let server = Server::start(&loaded.config).await.expect("server starts");
        TestServer {
            server: Some(server),
            dir,
            yaml,
        }
    }

    pub fn udp(&self) -> SocketAddr {
        self.server.as_ref().unwrap().udp_addr()
    }
    pub fn tcp(&self) -> SocketAddr {
        self.server
            .as_ref()
            .unwrap()
            .tcp_addr()
            .expect("tcp enabled")
    }
    pub fn ami(&self) -> SocketAddr {
        self.server
            .as_ref()
            .unwrap()
            .ami_addr()
            .expect("ami enabled")
    }
    pub fn api(&self) -> SocketAddr {
        self.server
            .as_ref()
            .unwrap()
            .api_addr()
            .expect("api enabled")
    }

    pub fn compat(&self) -> SocketAddr {
        self.server
            .as_ref()
            .unwrap()
            .compat_addr()
            .expect("compat api enabled")
    }

    /// Graceful stop; the temp dir (and its database) stays for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.server
            .take()
            .unwrap()
            .shutdown()
            .await
            .expect("shutdown");
        self.dir
    }

    /// Write the server's config to a file (for the CLI, which reads the same store).
    pub fn write_config(&self) -> PathBuf {
        let p = self.dir.path().join("config.yml");
        std::fs::write(&p, &self.yaml).expect("write config");
        p
    }
}

/// A parsed SIP response (just what tests look at).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub raw: String,
}

impl Resp {
    pub fn parse(raw: &str) -> Resp {
        let mut lines = raw.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.get(8..11))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut headers = Vec::new();
        for l in lines {
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        Resp {
            status,
            headers,
            raw: raw.to_string(),
        }
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// Number of contacts listed (Contact headers may hold several, comma separated).
    pub fn contact_count(&self) -> usize {
        self.all("contact")
            .iter()
            .map(|v| v.matches("<sip").count())
            .sum()
    }
}

enum Link {
    Udp(UdpSocket),
    Tcp(TcpStream, Vec<u8>),
}

/// A minimal SIP phone.
pub struct Phone {
    link: Link,
    server: SocketAddr,
    pub local: SocketAddr,
    call_id: String,
    cseq: u32,
    branch: u64,
    pub contact_user: String,
}

fn md5hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn auth_params(v: &str) -> HashMap<String, String> {
    let v = v.trim_start_matches("Digest").trim();
    let mut out = HashMap::new();
    let mut rest = v;
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let value;
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            value = r[..end].to_string();
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start_matches(',').trim_start();
        out.insert(key, value);
    }
    out
}

impl Phone {
    pub async fn udp(server: SocketAddr, user: &str) -> Phone {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = sock.local_addr().unwrap();
        Phone::new(Link::Udp(sock), server, local, user)
    }

    pub async fn tcp(server: SocketAddr, user: &str) -> Phone {
        let s = TcpStream::connect(server).await.unwrap();
        let local = s.local_addr().unwrap();
        Phone::new(Link::Tcp(s, Vec::new()), server, local, user)
    }

    fn new(link: Link, server: SocketAddr, local: SocketAddr, user: &str) -> Phone {
        Phone {
            link,
            server,
            local,
            call_id: format!("{}-{}@test", user, rand::random::<u32>()),
            cseq: 0,
            branch: rand::random::<u32>() as u64,
            contact_user: user.to_string(),
        }
    }

    fn transport(&self) -> &'static str {
        match self.link {
            Link::Udp(_) => "UDP",
            Link::Tcp(..) => "TCP",
        }
    }

    pub async fn send_raw(&mut self, text: &str) {
        match &mut self.link {
            Link::Udp(s) => {
                s.send_to(text.as_bytes(), self.server).await.unwrap();
            }
            Link::Tcp(s, _) => s.write_all(text.as_bytes()).await.unwrap(),
        }
    }

    /// Next message (any), or None after 3 s.
    pub async fn recv(&mut self) -> Option<String> {
        let fut = async {
            match &mut self.link {
                Link::Udp(s) => {
                    let mut buf = vec![0u8; 65535];
                    let (n, _) = s.recv_from(&mut buf).await.ok()?;
                    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
                }
                Link::Tcp(s, pending) => loop {
                    if let Some(pos) = find(pending, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..pos]).to_string();
                        let cl = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                let k = k.trim().to_ascii_lowercase();
                                (k == "content-length" || k == "l")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if pending.len() >= pos + 4 + cl {
                            let msg: Vec<u8> = pending.drain(..pos + 4 + cl).collect();
                            return Some(String::from_utf8_lossy(&msg).into_owned());
                        }
                    }
                    let mut buf = [0u8; 8192];
                    let n = s.read(&mut buf).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    pending.extend_from_slice(&buf[..n]);
                },
            }
        };
        tokio::time::timeout(Duration::from_secs(3), fut)
            .await
            .ok()
            .flatten()
    }

    /// Next response (skips requests such as qualify OPTIONS, answering them 200).
    pub async fn recv_response(&mut self) -> Option<Resp> {
        loop {
            let m = self.recv().await?;
            if m.starts_with("SIP/2.0 ") {
                return Some(Resp::parse(&m));
            }
            self.answer_request(&m).await;
        }
    }

    /// Answer a request from the server with 200 (copying the mandatory headers).
    pub async fn answer_request(&mut self, m: &str) {
        let mut out = String::from("SIP/2.0 200 OK\r\n");
        for l in m.split("\r\n").skip(1) {
            if l.is_empty() {
                break;
            }
            let name = l
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if ["via", "from", "to", "call-id", "cseq"].contains(&name.as_str()) {
                out.push_str(l);
                out.push_str("\r\n");
            }
        }
        out.push_str("Content-Length: 0\r\n\r\n");
        self.send_raw(&out).await;
    }

    fn register_text(
        &mut self,
        user: &str,
        expires: Option<u32>,
        contact: Option<&str>,
        auth: Option<&str>,
    ) -> String {
        self.cseq += 1;
        self.branch += 1;
        let tr = self.transport();
        let contact = contact.map(str::to_string).unwrap_or_else(|| {
            format!(
                "<sip:{}@{};transport={}>",
                self.contact_user,
                self.local,
                tr.to_ascii_lowercase()
            )
        });
        let mut t = format!(
            "REGISTER sip:test.local SIP/2.0\r\n\
             Via: SIP/2.0/{tr} {local};branch=z9hG4bK{branch:x};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@test.local>;tag=f{branch:x}\r\n\
             To: <sip:{user}@test.local>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: {contact}\r\n\
             User-Agent: dialtone-it\r\n",
            local = self.local,
            branch = self.branch,
            call_id = self.call_id,
            cseq = self.cseq,
        );
        if let Some(e) = expires {
            t.push_str(&format!("Expires: {e}\r\n"));
        }
        if let Some(a) = auth {
            t.push_str(&format!("Authorization: {a}\r\n"));
        }
        t.push_str("Content-Length: 0\r\n\r\n");
        t
    }

    /// REGISTER → 401 → REGISTER with credentials → final response.
    pub async fn register(&mut self, user: &str, password: &str, expires: Option<u32>) -> Resp {
        self.register_contact(user, password, expires, None).await
    }

    pub async fn register_contact(
        &mut self,
        user: &str,
        password: &str,
        expires: Option<u32>,
        contact: Option<&str>,
    ) -> Resp {
        let t = self.register_text(user, expires, contact, None);
        self.send_raw(&t).await;
        let first = self.recv_response().await.expect("answer to REGISTER");
        if first.status != 401 {
            return first;
        }
        let chal = first.header("www-authenticate").expect("challenge");
        let auth = digest_md5(chal, user, password, "REGISTER", "sip:test.local");
        let t = self.register_text(user, expires, contact, Some(&auth));
        self.send_raw(&t).await;
        self.recv_response()
            .await
            .expect("answer to authenticated REGISTER")
    }
}

/// Build an MD5 `Authorization` value answering `challenge` (qop=auth when offered).
pub fn digest_md5(challenge: &str, user: &str, password: &str, method: &str, uri: &str) -> String {
    let p = auth_params(challenge);
    let realm = &p["realm"];
    let nonce = &p["nonce"];
    let ha1 = md5hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5hex(&format!("{method}:{uri}"));
    let qop_auth = p
        .get("qop")
        .is_some_and(|q| q.split(',').any(|x| x.trim() == "auth"));
    let mut out;
    if qop_auth {
        let cnonce = "0a4f113b";
        let nc = "00000001";
        let resp = md5hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
        out = format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\""
        );
    } else {
        let resp = md5hex(&format!("{ha1}:{nonce}:{ha2}"));
        out = format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5"
        );
    }
    if let Some(o) = p.get("opaque") {
        out.push_str(&format!(", opaque=\"{o}\""));
    }
    out
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// Poll `f` until it returns true or `secs` pass.
pub async fn eventually<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Minimal HTTP/1.1 client for the REST API (one request per connection).
pub async fn http(
    api: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(api).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    (status, json)
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, r)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || r.len() < n {
            break;
        }
        out.push_str(&r[..n]);
        rest = &r[n..];
        rest = rest.strip_prefix("\r\n").unwrap_or(rest);
    }
    out
}
