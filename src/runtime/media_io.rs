//! OS shell of the RTP media relay.
//!
//! [`MediaRelay::start`] spawns `workers` OS threads. Each worker owns a set of sessions (assigned
//! round-robin) with their four UDP sockets (RTP + RTCP per leg) and runs an `epoll` loop over
//! them: a readable socket is drained with `recvmmsg` (batches of 32), every datagram goes
//! through [`RelaySession::handle_packet`] in place, and the results are sent with `sendmmsg`,
//! batched per outgoing socket. The packet path never allocates, locks, logs or touches a
//! channel; control commands (open/close/set_remote/...) arrive through a `std::sync::mpsc`
//! channel plus an `eventfd` that wakes the worker's `epoll_wait`.
//!
//! [`RelayHandle`] is the cheap, cloneable async front the B2BUA uses; [`MediaEvent`]s (media
//! timeouts) are broadcast to [`RelayHandle::subscribe`]rs.

use std::collections::HashMap;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{broadcast, oneshot};
use tracing::{debug, info, warn};

use crate::media::{
    Forward, Leg, LegStats, MediaError, MediaEvent, PortAllocator, PortPair, RelaySession,
    SessionConfig, SessionId,
};

/// Datagrams per `recvmmsg`/`sendmmsg` call.
const BATCH: usize = 32;
/// Receive buffer per datagram; larger datagrams are truncated by the kernel and dropped.
const MAX_DATAGRAM: usize = 2048;
/// How often each worker checks media timeouts: a tenth of `rtp_timeout`, within these bounds
/// (the check walks every session of the worker, so not more often than needed).
const TICK_MIN: Duration = Duration::from_millis(100);
const TICK_MAX: Duration = Duration::from_secs(1);
/// epoll token of the worker's eventfd.
const WAKE_TOKEN: u64 = u64::MAX;
const MAX_WORKERS: usize = 256;

/// Relay settings (from `server.*` in config.yml).
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Local address the RTP sockets bind to.
    pub bind_ip: IpAddr,
    /// `rtp_port_range_start..rtp_port_range_end` (half-open).
    pub port_start: u16,
    pub port_end: u16,
    /// SO_RCVBUF/SO_SNDBUF per socket, bytes.
    pub socket_buffer: usize,
    /// Worker threads; 0 = one per available core.
    pub workers: usize,
    /// Media timeout; zero = off.
    pub rtp_timeout: Duration,
    /// Latch lock: packets in a row from one source...
    pub latch_packets: u32,
    /// ...or time since the first packet.
    pub latch_window: Duration,
    /// How long a released port pair rests before reuse.
    pub port_quarantine: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        let s = SessionConfig::default();
        RelayConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port_start: 10000,
            port_end: 20000,
            socket_buffer: 4 << 20,
            workers: 0,
            rtp_timeout: Duration::from_secs(60),
            latch_packets: s.latch_packets,
            latch_window: s.latch_window,
            // Long enough for stragglers of the old call to die out, short enough that a
            // 1,000+ calls/s load does not park the whole range in quarantine.
            port_quarantine: Duration::from_secs(1),
        }
    }
}

/// The local ports of a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPorts {
    pub session: SessionId,
    pub ip: IpAddr,
    pub a: PortPair,
    pub b: PortPair,
}

impl SessionPorts {
    pub fn ports(&self, leg: Leg) -> PortPair {
        match leg {
            Leg::A => self.a,
            Leg::B => self.b,
        }
    }
}

/// Totals over all workers (updated once per batch, not per packet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayCounters {
    pub received: u64,
    pub forwarded: u64,
    /// Datagrams the kernel refused to send (full buffer, unreachable).
    pub send_failed: u64,
}

type Job = Box<dyn FnOnce(Option<&mut RelaySession>, Instant) + Send>;

enum Cmd {
    Open {
        session: Box<RelaySession>,
        call_id: Box<str>,
        sockets: [UdpSocket; 4],
        reply: oneshot::Sender<io::Result<()>>,
    },
    Run {
        id: SessionId,
        job: Job,
    },
    Close {
        id: SessionId,
        reply: oneshot::Sender<Option<(LegStats, LegStats)>>,
    },
    Shutdown,
}

struct WorkerLink {
    tx: mpsc::Sender<Cmd>,
    wake: Arc<OwnedFd>,
}

struct Shared {
    cfg: RelayConfig,
    tick: Duration,
    session_cfg: SessionConfig,
    ports: Mutex<PortAllocator>,
    workers: Vec<WorkerLink>,
    next_worker: AtomicUsize,
    next_id: AtomicU64,
    events: broadcast::Sender<MediaEvent>,
    received: AtomicU64,
    forwarded: AtomicU64,
    send_failed: AtomicU64,
}

/// The running relay; stops its workers when dropped.
pub struct MediaRelay {
    handle: RelayHandle,
    threads: Vec<JoinHandle<()>>,
}

/// Cheap cloneable front of the relay.
#[derive(Clone)]
pub struct RelayHandle {
    shared: Arc<Shared>,
}

impl MediaRelay {
    /// Create the workers (epoll + eventfd each) and start their threads.
    pub fn start(cfg: RelayConfig) -> Result<MediaRelay, MediaError> {
        raise_nofile_limit();
        let n = match cfg.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .min(MAX_WORKERS);
        let (events, _) = broadcast::channel(1024);
        let mut links = Vec::with_capacity(n);
        let mut parts = Vec::with_capacity(n);
        for _ in 0..n {
            let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
            let epfd = unsafe { OwnedFd::from_raw_fd(epfd) };
            let wake = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
            let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(wake) });
            epoll_add(epfd.as_raw_fd(), wake.as_raw_fd(), WAKE_TOKEN)?;
            let (tx, rx) = mpsc::channel();
            links.push(WorkerLink {
                tx,
                wake: wake.clone(),
            });
            parts.push((epfd, wake, rx));
        }
        let rtp_timeout = (!cfg.rtp_timeout.is_zero()).then_some(cfg.rtp_timeout);
        let shared = Arc::new(Shared {
            tick: match cfg.rtp_timeout {
                t if t.is_zero() => TICK_MAX,
                t => (t / 10).clamp(TICK_MIN, TICK_MAX),
            },
            session_cfg: SessionConfig {
                latch_packets: cfg.latch_packets.max(1),
                latch_window: cfg.latch_window,
                rtp_timeout,
            },
            ports: Mutex::new(PortAllocator::with_quarantine(
                cfg.port_start,
                cfg.port_end,
                cfg.port_quarantine,
            )),
            cfg,
            workers: links,
            next_worker: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            events,
            received: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            send_failed: AtomicU64::new(0),
        });
        let mut threads = Vec::with_capacity(n);
        for (index, (epfd, wake, rx)) in parts.into_iter().enumerate() {
            let shared = shared.clone();
            let t = std::thread::Builder::new()
                .name(format!("rtp-relay-{index}"))
                .spawn(move || {
                    let mut w = Worker::new(epfd, wake, rx, shared);
                    w.run();
                })?;
            threads.push(t);
        }
        info!(
            workers = n,
            ports = %format!("{}..{}", shared.cfg.port_start, shared.cfg.port_end),
            "media relay started"
        );
        Ok(MediaRelay {
            handle: RelayHandle { shared },
            threads,
        })
    }

    pub fn handle(&self) -> RelayHandle {
        self.handle.clone()
    }

    /// Stop the workers and wait for them. Open sessions are dropped with their sockets.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for w in &self.handle.shared.workers {
            let _ = send_cmd(w, Cmd::Shutdown);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for MediaRelay {
    fn drop(&mut self) {
        self.stop();
    }
}

fn send_cmd(w: &WorkerLink, cmd: Cmd) -> Result<(), MediaError> {
    w.tx.send(cmd).map_err(|_| MediaError::RelayStopped)?;
    let one: u64 = 1;
    // An eventfd write only fails when the counter would overflow, i.e. it is already signalled.
    unsafe {
        libc::write(w.wake.as_raw_fd(), (&one as *const u64).cast(), 8);
    }
    Ok(())
}

impl RelayHandle {
    /// Media events (timeouts) of every session.
    pub fn subscribe(&self) -> broadcast::Receiver<MediaEvent> {
        self.shared.events.subscribe()
    }

    /// Totals over all workers.
    pub fn counters(&self) -> RelayCounters {
        RelayCounters {
            received: self.shared.received.load(Ordering::Relaxed),
            forwarded: self.shared.forwarded.load(Ordering::Relaxed),
            send_failed: self.shared.send_failed.load(Ordering::Relaxed),
        }
    }

    /// The local address of a leg's RTP port (for SDP `c=`/`m=`).
    pub fn rtp_addr(&self, ports: &SessionPorts, leg: Leg) -> SocketAddr {
        SocketAddr::new(ports.ip, ports.ports(leg).rtp)
    }

    fn worker(&self, id: SessionId) -> Result<&WorkerLink, MediaError> {
        self.shared
            .workers
            .get((id.0 & 0xff) as usize)
            .ok_or(MediaError::UnknownSession(id))
    }

    /// Allocate two port pairs, bind their sockets and hand the session to a worker.
    /// [`MediaError::PortsExhausted`] when the range is used up (answer 503).
    pub async fn open_session(&self, call_id: &str) -> Result<SessionPorts, MediaError> {
        let sh = &self.shared;
        let a = self.bind_pair()?;
        let b = match self.bind_pair() {
            Ok(b) => b,
            Err(e) => {
                self.release(&[a.0]);
                return Err(e);
            }
        };
        let w = sh.next_worker.fetch_add(1, Ordering::Relaxed) % sh.workers.len();
        let id = SessionId((sh.next_id.fetch_add(1, Ordering::Relaxed) << 8) | w as u64);
        let session = RelaySession::new(Instant::now(), id, a.0, b.0, sh.session_cfg);
        let [a_rtp, a_rtcp] = a.1;
        let [b_rtp, b_rtcp] = b.1;
        let (reply, rx) = oneshot::channel();
        let cmd = Cmd::Open {
            session: Box::new(session),
            call_id: call_id.into(),
            sockets: [a_rtp, a_rtcp, b_rtp, b_rtcp],
            reply,
        };
        let res = match send_cmd(&sh.workers[w], cmd) {
            Ok(()) => match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(MediaError::Io(e)),
                Err(_) => Err(MediaError::RelayStopped),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            self.release(&[a.0, b.0]);
            return Err(e);
        }
        debug!(%id, call_id, a = a.0.rtp, b = b.0.rtp, "media session opened");
        Ok(SessionPorts {
            session: id,
            ip: sh.cfg.bind_ip,
            a: a.0,
            b: b.0,
        })
    }

    fn release(&self, pairs: &[PortPair]) {
        let now = Instant::now();
        if let Ok(mut ports) = self.shared.ports.lock() {
            for p in pairs {
                ports.release(now, *p);
            }
        }
    }

    /// Allocate a pair and bind both sockets; a pair that cannot be bound (used by another
    /// program) goes back to quarantine and the next one is tried.
    fn bind_pair(&self) -> Result<(PortPair, [UdpSocket; 2]), MediaError> {
        let cfg = &self.shared.cfg;
        let mut last_err = None;
        for _ in 0..16 {
            let pair = {
                let mut ports = self
                    .shared
                    .ports
                    .lock()
                    .map_err(|_| MediaError::RelayStopped)?;
                match ports.allocate(Instant::now()) {
                    Ok(p) => p,
                    Err(e) => return Err(last_err.unwrap_or(e)),
                }
            };
            let bound = bind_udp(cfg.bind_ip, pair.rtp, cfg.socket_buffer).and_then(|rtp| {
                bind_udp(cfg.bind_ip, pair.rtcp, cfg.socket_buffer).map(|rtcp| [rtp, rtcp])
            });
            match bound {
                Ok(socks) => return Ok((pair, socks)),
                Err(e) => {
                    warn!(port = pair.rtp, error = %e, "cannot bind RTP port pair, trying another");
                    self.release(&[pair]);
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or(MediaError::PortsExhausted {
            start: cfg.port_start,
            end: cfg.port_end,
        }))
    }

    /// Run `f` on the session inside its worker.
    async fn with<R: Send + 'static>(
        &self,
        id: SessionId,
        f: impl FnOnce(&mut RelaySession, Instant) -> R + Send + 'static,
    ) -> Result<R, MediaError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |s: Option<&mut RelaySession>, now: Instant| {
            let _ = tx.send(s.map(|s| f(s, now)));
        });
        send_cmd(self.worker(id)?, Cmd::Run { id, job })?;
        rx.await
            .map_err(|_| MediaError::RelayStopped)?
            .ok_or(MediaError::UnknownSession(id))
    }

    /// Remote RTP address of `leg` from its SDP; re-opens latching.
    pub async fn set_remote(
        &self,
        session: SessionId,
        leg: Leg,
        addr: SocketAddr,
    ) -> Result<(), MediaError> {
        self.with(session, move |s, _| s.update_remote(leg, addr))
            .await
    }

    /// Explicit remote RTCP address (`a=rtcp:`).
    pub async fn set_remote_rtcp(
        &self,
        session: SessionId,
        leg: Leg,
        addr: SocketAddr,
    ) -> Result<(), MediaError> {
        self.with(session, move |s, _| s.set_remote_rtcp(leg, addr))
            .await
    }

    pub async fn set_rtcp_mux(
        &self,
        session: SessionId,
        leg: Leg,
        mux: bool,
    ) -> Result<(), MediaError> {
        self.with(session, move |s, _| s.set_rtcp_mux(leg, mux))
            .await
    }

    pub async fn set_hold(
        &self,
        session: SessionId,
        leg: Leg,
        hold: bool,
    ) -> Result<(), MediaError> {
        self.with(session, move |s, now| s.set_hold(now, leg, hold))
            .await
    }

    /// RTP clock rate of `leg`'s codec.
    pub async fn set_clock_rate(
        &self,
        session: SessionId,
        leg: Leg,
        hz: u32,
    ) -> Result<(), MediaError> {
        self.with(session, move |s, _| s.set_clock_rate(leg, hz))
            .await
    }

    /// Payload type `from` received on `leg` is forwarded as `to`. False when the table is full.
    pub async fn set_pt_map(
        &self,
        session: SessionId,
        leg: Leg,
        from: u8,
        to: u8,
    ) -> Result<bool, MediaError> {
        self.with(session, move |s, _| s.set_pt_map(leg, from, to))
            .await
    }

    /// Forget every payload-type mapping of `leg`.
    pub async fn clear_pt_map(&self, session: SessionId, leg: Leg) -> Result<(), MediaError> {
        self.with(session, move |s, _| s.clear_pt_map(leg)).await
    }

    /// The far end of `leg` changes (park, transfer); the other leg's stream stays continuous.
    pub async fn replace_leg(
        &self,
        session: SessionId,
        leg: Leg,
        addr: Option<SocketAddr>,
    ) -> Result<(), MediaError> {
        self.with(session, move |s, _| s.replace_leg(leg, addr))
            .await
    }

    /// Current statistics of both legs.
    pub async fn stats(&self, session: SessionId) -> Result<(LegStats, LegStats), MediaError> {
        self.with(session, |s, _| (s.stats(Leg::A), s.stats(Leg::B)))
            .await
    }

    /// Close the session: sockets closed, ports quarantined, final stats of legs A and B.
    pub async fn close_session(
        &self,
        session: SessionId,
    ) -> Result<(LegStats, LegStats), MediaError> {
        let (reply, rx) = oneshot::channel();
        send_cmd(self.worker(session)?, Cmd::Close { id: session, reply })?;
        rx.await
            .map_err(|_| MediaError::RelayStopped)?
            .ok_or(MediaError::UnknownSession(session))
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn epoll_add(epfd: RawFd, fd: RawFd, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    cvt(unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(|_| ())
}

fn epoll_del(epfd: RawFd, fd: RawFd) {
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    unsafe {
        libc::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, &mut ev);
    }
}

/// Raise the soft open-file limit to the hard limit (4 sockets per call).
fn raise_nofile_limit() {
    unsafe {
        let mut lim: libc::rlimit = zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn bind_udp(ip: IpAddr, port: u16, buffer: usize) -> Result<UdpSocket, MediaError> {
    let addr = SocketAddr::new(ip, port);
    let err = |source| MediaError::Bind { port, source };
    let s =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    s.set_nonblocking(true).map_err(err)?;
    if buffer > 0 {
        let v = buffer.min(i32::MAX as usize) as libc::c_int;
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            let set = |opt| unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&v as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            // The FORCE variants need CAP_NET_ADMIN; otherwise the kernel caps at *mem_max.
            if set(force) != 0 {
                set(plain);
            }
        }
    }
    s.bind(&addr.into()).map_err(err)?;
    Ok(s.into())
}

fn sockaddr_from(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 for AF_INET6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn sockaddr_into(addr: SocketAddr, ss: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin =
                unsafe { &mut *(ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            sin.sin_zero = [0; 8];
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &mut *(ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Preallocated `recvmmsg`/`sendmmsg` state of one worker. Boxed, so the pointers inside the
/// headers stay valid.
struct IoBufs {
    bufs: [[u8; MAX_DATAGRAM]; BATCH],
    recv_hdrs: [libc::mmsghdr; BATCH],
    recv_iov: [libc::iovec; BATCH],
    recv_addrs: [libc::sockaddr_storage; BATCH],
    send_hdrs: [libc::mmsghdr; BATCH],
    send_iov: [libc::iovec; BATCH],
    send_addrs: [libc::sockaddr_storage; BATCH],
}

impl IoBufs {
    fn new() -> Box<IoBufs> {
        // SAFETY: all-zero is a valid value of these plain C structs and byte arrays.
        let mut b: Box<IoBufs> = unsafe { Box::<IoBufs>::new_zeroed().assume_init() };
        for i in 0..BATCH {
            b.recv_iov[i].iov_base = b.bufs[i].as_mut_ptr().cast();
            b.recv_iov[i].iov_len = MAX_DATAGRAM;
            b.recv_hdrs[i].msg_hdr.msg_iov = &mut b.recv_iov[i];
            b.recv_hdrs[i].msg_hdr.msg_iovlen = 1;
            b.recv_hdrs[i].msg_hdr.msg_name =
                (&mut b.recv_addrs[i] as *mut libc::sockaddr_storage).cast();
            b.send_hdrs[i].msg_hdr.msg_iov = &mut b.send_iov[i];
            b.send_hdrs[i].msg_hdr.msg_iovlen = 1;
            b.send_hdrs[i].msg_hdr.msg_name =
                (&mut b.send_addrs[i] as *mut libc::sockaddr_storage).cast();
        }
        b
    }
}

struct Slot {
    session: RelaySession,
    call_id: Box<str>,
    /// A RTP, A RTCP, B RTP, B RTCP.
    sockets: [UdpSocket; 4],
}

struct Worker {
    epfd: OwnedFd,
    wake: Arc<OwnedFd>,
    rx: mpsc::Receiver<Cmd>,
    shared: Arc<Shared>,
    slots: Vec<Option<Slot>>,
    free_slots: Vec<usize>,
    by_id: HashMap<SessionId, usize>,
    io: Box<IoBufs>,
    received: u64,
    forwarded: u64,
    send_failed: u64,
}

/// Outcome of one `flush`: sent and failed counts.
fn flush(io: &mut IoBufs, fd: RawFd, n: usize) -> (u64, u64) {
    let mut off = 0usize;
    let mut failed = 0u64;
    while off < n {
        // SAFETY: headers off..n point into `io`, filled by the caller.
        let r = unsafe {
            libc::sendmmsg(
                fd,
                io.send_hdrs.as_mut_ptr().add(off),
                (n - off) as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if r > 0 {
            off += r as usize;
        } else {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The first datagram failed (full buffer, unreachable): skip it, keep the rest.
            off += 1;
            failed += 1;
        }
    }
    (n as u64 - failed, failed)
}

impl Worker {
    fn new(
        epfd: OwnedFd,
        wake: Arc<OwnedFd>,
        rx: mpsc::Receiver<Cmd>,
        shared: Arc<Shared>,
    ) -> Self {
        Worker {
            epfd,
            wake,
            rx,
            shared,
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_id: HashMap::new(),
            io: IoBufs::new(),
            received: 0,
            forwarded: 0,
            send_failed: 0,
        }
    }

    fn run(&mut self) {
        // SAFETY: zeroed epoll_event array is valid.
        let mut events: [libc::epoll_event; 256] = unsafe { zeroed() };
        let tick = self.shared.tick;
        let mut next_tick = Instant::now() + tick;
        loop {
            let wait_ms = next_tick
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(1000) as libc::c_int;
            let n = unsafe {
                libc::epoll_wait(
                    self.epfd.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as libc::c_int,
                    wait_ms,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                warn!(error = %e, "media relay epoll_wait failed; worker stops");
                return;
            }
            for ev in &events[..n as usize] {
                let token = ev.u64;
                if token == WAKE_TOKEN {
                    let mut v = 0u64;
                    unsafe {
                        libc::read(self.wake.as_raw_fd(), (&mut v as *mut u64).cast(), 8);
                    }
                    if !self.commands() {
                        return;
                    }
                } else {
                    self.drain((token >> 2) as usize, (token & 3) as usize);
                }
            }
            if self.received > 0 {
                let sh = &self.shared;
                sh.received.fetch_add(self.received, Ordering::Relaxed);
                sh.forwarded.fetch_add(self.forwarded, Ordering::Relaxed);
                sh.send_failed
                    .fetch_add(self.send_failed, Ordering::Relaxed);
                self.received = 0;
                self.forwarded = 0;
                self.send_failed = 0;
            }
            let now = Instant::now();
            if now >= next_tick {
                next_tick = now + tick;
                self.timeouts(now);
            }
        }
    }

    fn timeouts(&mut self, now: Instant) {
        for slot in self.slots.iter_mut().flatten() {
            let s = &mut slot.session;
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
            while let Some(ev) = s.poll_event() {
                let MediaEvent::Timeout { session, idle } = ev;
                info!(%session, call_id = &*slot.call_id, idle_s = idle.as_secs(), "RTP timeout");
                let _ = self.shared.events.send(ev);
            }
        }
    }

    /// Drain one readable socket; errors (EAGAIN included) just end the drain.
    fn drain(&mut self, slot_ix: usize, sock_ix: usize) {
        let Some(Some(slot)) = self.slots.get_mut(slot_ix) else {
            return;
        };
        let fd = slot.sockets[sock_ix].as_raw_fd();
        let leg = if sock_ix < 2 { Leg::A } else { Leg::B };
        let is_rtcp = sock_ix % 2 == 1;
        let io = &mut *self.io;
        // At most 8 batches per readiness event, so one flooded socket cannot starve the rest
        // (level-triggered epoll reports it again).
        for _ in 0..8 {
            for h in io.recv_hdrs.iter_mut() {
                h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_hdr.msg_flags = 0;
            }
            // SAFETY: the headers point into `io` (boxed, alive for the call).
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    io.recv_hdrs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n <= 0 {
                return;
            }
            let n = n as usize;
            let now = Instant::now();
            self.received += n as u64;
            let mut out_fd: RawFd = -1;
            let mut queued = 0usize;
            for i in 0..n {
                let h = &io.recv_hdrs[i];
                if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    continue;
                }
                let len = (h.msg_len as usize).min(MAX_DATAGRAM);
                let Some(src) = sockaddr_from(&io.recv_addrs[i]) else {
                    continue;
                };
                let fwd =
                    slot.session
                        .handle_packet(now, leg, is_rtcp, src, &mut io.bufs[i][..len]);
                if let Forward::To { leg: to, rtcp, dst } = fwd {
                    let fd = slot.sockets[to.index() * 2 + usize::from(rtcp)].as_raw_fd();
                    if fd != out_fd && queued > 0 {
                        let (ok, failed) = flush(io, out_fd, queued);
                        self.forwarded += ok;
                        self.send_failed += failed;
                        queued = 0;
                    }
                    out_fd = fd;
                    let namelen = sockaddr_into(dst, &mut io.send_addrs[queued]);
                    io.send_iov[queued].iov_base = io.bufs[i].as_mut_ptr().cast();
                    io.send_iov[queued].iov_len = len;
                    io.send_hdrs[queued].msg_hdr.msg_namelen = namelen;
                    queued += 1;
                }
            }
            if queued > 0 {
                let (ok, failed) = flush(io, out_fd, queued);
                self.forwarded += ok;
                self.send_failed += failed;
            }
            if n < BATCH {
                return;
            }
        }
    }

    /// Apply queued commands; false on shutdown.
    fn commands(&mut self) -> bool {
        let now = Instant::now();
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Cmd::Shutdown => return false,
                Cmd::Open {
                    session,
                    call_id,
                    sockets,
                    reply,
                } => {
                    let _ = reply.send(self.open(*session, call_id, sockets));
                }
                Cmd::Run { id, job } => {
                    let s = self
                        .by_id
                        .get(&id)
                        .and_then(|&ix| self.slots[ix].as_mut())
                        .map(|slot| &mut slot.session);
                    job(s, now);
                }
                Cmd::Close { id, reply } => {
                    let _ = reply.send(self.close(id, now));
                }
            }
        }
        true
    }

    fn open(
        &mut self,
        session: RelaySession,
        call_id: Box<str>,
        sockets: [UdpSocket; 4],
    ) -> io::Result<()> {
        let ix = match self.free_slots.pop() {
            Some(ix) => ix,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        for (k, s) in sockets.iter().enumerate() {
            if let Err(e) = epoll_add(
                self.epfd.as_raw_fd(),
                s.as_raw_fd(),
                ((ix as u64) << 2) | k as u64,
            ) {
                for s in &sockets[..k] {
                    epoll_del(self.epfd.as_raw_fd(), s.as_raw_fd());
                }
                self.free_slots.push(ix);
                return Err(e);
            }
        }
        self.by_id.insert(session.id(), ix);
        self.slots[ix] = Some(Slot {
            session,
            call_id,
            sockets,
        });
        Ok(())
    }

    fn close(&mut self, id: SessionId, now: Instant) -> Option<(LegStats, LegStats)> {
        let ix = self.by_id.remove(&id)?;
        let slot = self.slots.get_mut(ix)?.take()?;
        for s in &slot.sockets {
            epoll_del(self.epfd.as_raw_fd(), s.as_raw_fd());
        }
        self.free_slots.push(ix);
        let stats = (slot.session.stats(Leg::A), slot.session.stats(Leg::B));
        let pairs = [
            slot.session.local_ports(Leg::A),
            slot.session.local_ports(Leg::B),
        ];
        drop(slot);
        if let Ok(mut ports) = self.shared.ports.lock() {
            for p in pairs {
                ports.release(now, p);
            }
        }
        debug!(%id, "media session closed");
        Some(stats)
    }
}

#[cfg(test)]
#[path = "media_io_tests.rs"]
mod tests;
