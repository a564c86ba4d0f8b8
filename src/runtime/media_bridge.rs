//! The bridge between the engine's [`MediaCommand`]s and the media relay: one task owns the
//! call → relay-session map, applies commands in order and answers the engine through the
//! core's channel. Per call, not per packet: the relay workers forward RTP on their own.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use tokio::sync::{broadcast, mpsc};
use tracing::{debug, info, warn};

use super::core::CoreMsg;
use super::media_io::{RelayHandle, SessionPorts};
use crate::media::{self, MediaEvent, SessionId};
use crate::pbx::engine::Command;
use crate::pbx::engine::{Leg, MediaCommand, MediaPorts};
use crate::sdp::SessionDescription;
use crate::store::{CdrRow, CdrRtpStats};

/// What the core sends the bridge, in order: media commands, and finished calls' records,
/// which get their per-leg RTP statistics here (the `Close` before them left them behind)
/// before they go on to the CDR writer.
#[derive(Debug)]
pub enum BridgeMsg {
    Media(MediaCommand),
    Cdr { call: u64, row: Box<CdrRow> },
}

fn cdr_stats(s: &media::LegStats) -> CdrRtpStats {
    CdrRtpStats {
        packets: i64::try_from(s.packets).unwrap_or(i64::MAX),
        bytes: i64::try_from(s.bytes).unwrap_or(i64::MAX),
        lost: s.lost,
        jitter_ms: s.jitter_ms,
    }
}

fn relay_leg(leg: Leg) -> media::Leg {
    match leg {
        Leg::A => media::Leg::A,
        Leg::B => media::Leg::B,
    }
}

/// Where the RTP (and RTCP) of m-line `i` of `sdp` goes, if the stream is active.
fn stream_remote(
    sdp: &SessionDescription,
    i: usize,
) -> Option<(SocketAddr, Option<SocketAddr>, bool)> {
    let m = sdp.media.get(i)?;
    if m.port == 0 {
        return None;
    }
    let ip: IpAddr = sdp.connection_for(m).and_then(|c| c.ip())?;
    let rtp = SocketAddr::new(ip, m.port);
    let mux = m.rtcp_mux();
    let rtcp = m.rtcp().map(|p| SocketAddr::new(ip, p));
    Some((rtp, rtcp, mux))
}

/// Run until the command channel closes.
pub async fn run(
    relay: RelayHandle,
    mut events: broadcast::Receiver<MediaEvent>,
    mut rx: mpsc::UnboundedReceiver<BridgeMsg>,
    core: mpsc::Sender<CoreMsg>,
    cdrs: mpsc::UnboundedSender<CdrRow>,
) {
    // Stats of calls whose media closed, until their CDR passes (right after the Close).
    let mut closed: HashMap<u64, (CdrRtpStats, CdrRtpStats)> = HashMap::new();
    let mut calls: HashMap<u64, Vec<SessionPorts>> = HashMap::new();
    let mut by_session: HashMap<SessionId, u64> = HashMap::new();
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let cmd = match msg {
                    None => break,
                    Some(BridgeMsg::Cdr { call, mut row }) => {
                        if let Some((a, b)) = closed.remove(&call) {
                            row.rtp_a = a;
                            row.rtp_b = b;
                        }
                        let _ = cdrs.send(*row);
                        continue;
                    }
                    Some(BridgeMsg::Media(cmd)) => cmd,
                };
                match cmd {
                    MediaCommand::Open { call, streams } => {
                        let mut opened = Vec::with_capacity(streams.max(1));
                        let mut failed = false;
                        for _ in 0..streams.max(1) {
                            match relay.open_session(&call.to_string()).await {
                                Ok(p) => {
                                    by_session.insert(p.session, call);
                                    opened.push(p);
                                }
                                Err(e) => {
                                    warn!(call, error = %e, "media relay: no ports for the call");
                                    failed = true;
                                    break;
                                }
                            }
                        }
                        let msg = if failed {
                            for p in opened {
                                by_session.remove(&p.session);
                                let _ = relay.close_session(p.session).await;
                            }
                            Command::MediaFailed { call }
                        } else {
                            let ports = MediaPorts {
                                a: opened.iter().map(|p| p.a.rtp).collect(),
                                b: opened.iter().map(|p| p.b.rtp).collect(),
                            };
                            calls.insert(call, opened);
                            Command::MediaOpened { call, ports }
                        };
                        if core.send(CoreMsg::Command(msg)).await.is_err() {
                            break;
                        }
                    }
                    MediaCommand::SetRemote { call, leg, sdp } => {
                        let Some(sessions) = calls.get(&call) else { continue };
                        for (i, s) in sessions.iter().enumerate() {
                            let Some((rtp, rtcp, mux)) = stream_remote(&sdp, i) else { continue };
                            let l = relay_leg(leg);
                            let _ = relay.set_rtcp_mux(s.session, l, mux).await;
                            if let Some(rtcp) = rtcp.filter(|_| !mux) {
                                let _ = relay.set_remote_rtcp(s.session, l, rtcp).await;
                            }
                            if let Err(e) = relay.set_remote(s.session, l, rtp).await {
                                debug!(call, error = %e, "media relay: set_remote failed");
                            }
                        }
                    }
                    MediaCommand::SetPtMap { call, leg, from, to } => {
                        if let Some(s) = calls.get(&call).and_then(|s| s.first()) {
                            let _ = relay.set_pt_map(s.session, relay_leg(leg), from, to).await;
                        }
                    }
                    MediaCommand::SetHold { call, leg, hold } => {
                        if let Some(sessions) = calls.get(&call) {
                            for s in sessions {
                                let _ = relay.set_hold(s.session, relay_leg(leg), hold).await;
                            }
                        }
                    }
                    MediaCommand::ReplaceLeg { call, leg } => {
                        if let Some(sessions) = calls.get(&call) {
                            for s in sessions {
                                let _ = relay.replace_leg(s.session, relay_leg(leg), None).await;
                                for l in [media::Leg::A, media::Leg::B] {
                                    let _ = relay.clear_pt_map(s.session, l).await;
                                }
                            }
                        }
                    }
                    MediaCommand::Close { call } => {
                        if let Some(sessions) = calls.remove(&call) {
                            for (i, s) in sessions.into_iter().enumerate() {
                                by_session.remove(&s.session);
                                match relay.close_session(s.session).await {
                                    Ok((a, b)) => {
                                        if i == 0 {
                                            closed.insert(call, (cdr_stats(&a), cdr_stats(&b)));
                                        }
                                        info!(
                                        call,
                                        a_packets = a.packets,
                                        b_packets = b.packets,
                                        a_lost = a.lost,
                                        b_lost = b.lost,
                                        "media closed"
                                    )
                                    },
                                    Err(e) => debug!(call, error = %e, "media relay: close failed"),
                                }
                            }
                        }
                    }
                }
            }
            ev = events.recv() => match ev {
                Ok(MediaEvent::Timeout { session, idle }) => {
                    if let Some(call) = by_session.get(&session).copied() {
                        warn!(call, idle_s = idle.as_secs(), "no RTP: media timeout");
                        if core.send(CoreMsg::Command(Command::Hangup { call, status: None })).await.is_err() {
                            break;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => warn!(missed = n, "media events lagged"),
                Err(broadcast::error::RecvError::Closed) => {}
            },
        }
    }
}
