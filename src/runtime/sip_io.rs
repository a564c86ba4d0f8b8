//! SIP sockets: the UDP socket (large buffers, batched reads in the core task) and the TCP
//! listener with one reader/writer task pair per connection.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::core::CoreMsg;
use crate::pbx::peer::{ConnId, Peer};
use crate::sip::StreamFramer;

/// Bind the SIP UDP socket with `buffer` bytes of send and receive buffer. The socket is
/// returned as a std socket so it can be registered with the core thread's own reactor.
pub fn bind_udp(addr: SocketAddr, buffer: usize) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    socket.set_reuse_address(true)?;
    // The kernel may cap these (net.core.rmem_max); what we get is logged by the caller.
    let _ = socket.set_recv_buffer_size(buffer);
    let _ = socket.set_send_buffer_size(buffer);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Effective UDP buffer sizes (receive, send) as the kernel reports them.
pub fn udp_buffers(sock: &std::net::UdpSocket) -> (usize, usize) {
    let s = socket2::SockRef::from(sock);
    (
        s.recv_buffer_size().unwrap_or(0),
        s.send_buffer_size().unwrap_or(0),
    )
}

/// Bind the SIP TCP listener.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Settings for stream connections.
#[derive(Debug, Clone, Copy)]
pub struct TcpSettings {
    pub max_message: usize,
    pub idle_timeout: Duration,
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Bytes a stream connection may have queued for writing before it counts as stalled and is
/// closed (a slow reader must not grow the core's memory without bound).
pub const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

/// The core's handle on one connection's writer task. Sending never blocks the core.
#[derive(Debug, Clone)]
pub struct ConnWriter {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    close: Arc<tokio::sync::Notify>,
}

/// Why a write was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The connection is gone.
    Closed,
    /// The peer does not read: more than [`MAX_QUEUED_BYTES`] wait.
    Stalled,
}

impl ConnWriter {
    /// Ask the connection's tasks to end (the reader reports `ConnClosed`).
    pub fn close(&self) {
        self.close.notify_one();
    }

    pub fn send(&self, bytes: Bytes) -> Result<(), (WriteError, Bytes)> {
        let len = bytes.len();
        if self.queued.load(Ordering::Relaxed) + len > MAX_QUEUED_BYTES {
            return Err((WriteError::Stalled, bytes));
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
        self.tx.send(bytes).map_err(|e| {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            (WriteError::Closed, e.0)
        })
    }
}

/// Accept TCP connections until the core goes away.
pub async fn accept_loop(
    listener: TcpListener,
    core: mpsc::Sender<CoreMsg>,
    settings: TcpSettings,
) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                spawn_connection(stream, addr, core.clone(), settings);
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if core.is_closed() {
            return;
        }
    }
}

/// Open an outgoing TCP connection to `addr` and attach it like an accepted one.
pub async fn connect(
    addr: SocketAddr,
    core: mpsc::Sender<CoreMsg>,
    settings: TcpSettings,
) -> io::Result<ConnId> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    Ok(spawn_connection(stream, addr, core, settings))
}

fn spawn_connection(
    stream: TcpStream,
    addr: SocketAddr,
    core: mpsc::Sender<CoreMsg>,
    settings: TcpSettings,
) -> ConnId {
    let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let writer = ConnWriter {
        tx,
        queued: Arc::new(AtomicUsize::new(0)),
        close: Arc::new(tokio::sync::Notify::new()),
    };
    let close = writer.close.clone();
    let queued = writer.queued.clone();
    let peer = Peer::tcp(addr, id);
    // Register before reading so responses can find the writer.
    if core
        .try_send(CoreMsg::ConnOpened {
            id,
            addr,
            writer: writer.clone(),
        })
        .is_err()
    {
        return id;
    }
    let core_r = core.clone();
    tokio::spawn(async move {
        // Writer: everything for this connection, in order, coalesced into few syscalls.
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        while let Some(first) = rx.recv().await {
            buf.clear();
            buf.extend_from_slice(&first);
            while buf.len() < 256 * 1024 {
                match rx.try_recv() {
                    Ok(more) => buf.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            let n = buf.len();
            let r = wr.write_all(&buf).await;
            queued.fetch_sub(n, Ordering::Relaxed);
            if let Err(e) = r {
                debug!(%addr, error = %e, "TCP write failed");
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    tokio::spawn(async move {
        let mut framer = StreamFramer::new(settings.max_message);
        let mut buf = vec![0u8; 16 * 1024];
        let reason = loop {
            let n = tokio::select! {
                r = tokio::time::timeout(settings.idle_timeout, rd.read(&mut buf)) => match r {
                    Err(_) => break "idle timeout",
                    Ok(Err(_)) => break "read error",
                    Ok(Ok(0)) => break "closed by peer",
                    Ok(Ok(n)) => n,
                },
                () = close.notified() => break "closed by the core",
            };
            framer.push(&buf[..n]);
            let mut fatal = None;
            loop {
                match framer.next_message() {
                    Ok(Some(msg)) => {
                        if core_r
                            .send(CoreMsg::Inbound { peer, bytes: msg })
                            .await
                            .is_err()
                        {
                            fatal = Some("core gone");
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        debug!(%addr, error = %e, "TCP framing error, closing");
                        fatal = Some("framing error");
                        break;
                    }
                }
            }
            // RFC 5626 keep-alive: answer each CRLFCRLF ping with a CRLF pong.
            let pings = framer.take_pings();
            for _ in 0..pings {
                let _ = writer.send(Bytes::from_static(b"\r\n"));
            }
            if let Some(r) = fatal {
                break r;
            }
        };
        debug!(%addr, reason, "TCP connection ends");
        let _ = core_r.send(CoreMsg::ConnClosed { id }).await;
    });
    id
}

/// Drain up to `max` datagrams that are ready now into the core, without awaiting.
pub fn recv_batch(
    sock: &UdpSocket,
    buf: &mut [u8],
    max: usize,
    mut f: impl FnMut(SocketAddr, &[u8]),
) -> io::Result<usize> {
    let mut n = 0;
    while n < max {
        match sock.try_recv_from(buf) {
            Ok((len, from)) => {
                n += 1;
                f(from, &buf[..len]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            // ICMP port unreachable surfaces as ConnectionRefused on some systems: ignore it.
            Err(e)
                if e.kind() == io::ErrorKind::ConnectionRefused
                    || e.kind() == io::ErrorKind::ConnectionReset =>
            {
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Send one datagram now; if the socket buffer is full, wait for room.
pub async fn send_udp(sock: &Arc<UdpSocket>, to: SocketAddr, bytes: &[u8]) {
    match sock.try_send_to(bytes, to) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            if let Err(e) = sock.send_to(bytes, to).await {
                debug!(%to, error = %e, "UDP send failed");
            }
        }
        Err(e) => debug!(%to, error = %e, "UDP send failed"),
    }
}
