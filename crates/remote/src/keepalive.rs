//! virkeepaliveprotocol.x: PING and PONG, empty MESSAGEs of their own
//! program, serial 0. Either side may ping once feature 10 was agreed; the
//! other answers PONG.

use std::time::{Duration, Instant};

use crate::consts::{KEEPALIVE_PROGRAM, KEEPALIVE_PROTOCOL_VERSION};
use crate::message::{Header, Message, MessageStatus, MessageType};

/// `KEEPALIVE_PROC_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepaliveProc {
    Ping = 1,
    Pong = 2,
}

impl KeepaliveProc {
    /// The procedure with this number.
    pub fn from_i32(v: i32) -> Option<Self> {
        match v {
            1 => Some(Self::Ping),
            2 => Some(Self::Pong),
            _ => None,
        }
    }

    /// The 28-byte message.
    pub fn message(self) -> Message {
        Message {
            header: Header {
                prog: KEEPALIVE_PROGRAM,
                vers: KEEPALIVE_PROTOCOL_VERSION,
                proc_: self as i32,
                type_: MessageType::Message,
                serial: 0,
                status: MessageStatus::Ok,
            },
            payload: Vec::new(),
        }
    }

    /// The keepalive procedure of `m`, if it is a well-formed keepalive.
    pub fn of(m: &Message) -> Option<Self> {
        if m.header.is_keepalive() && m.header.type_ == MessageType::Message {
            Self::from_i32(m.header.proc_)
        } else {
            None
        }
    }
}

/// libvirtd's default `keepalive_interval`: seconds of silence before a PING.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// libvirtd's default `keepalive_count`: unanswered PINGs before giving up.
pub const DEFAULT_COUNT: u32 = 5;

/// What the owner of a connection should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepaliveAction {
    /// Nothing until [`KeepaliveTracker::deadline`].
    Wait,
    /// Send a PING.
    SendPing,
    /// The peer has been silent for `interval * (count + 1)`: close.
    Close,
}

/// libvirt's keepalive rule as a clock-driven state machine: after
/// `interval` without hearing anything from the peer, PING it; after
/// `count` PINGs without hearing anything, the peer is dead. Any message
/// from the peer counts as a sign of life, not just PONG.
#[derive(Debug, Clone)]
pub struct KeepaliveTracker {
    interval: Duration,
    count: u32,
    last_heard: Instant,
    last_ping: Option<Instant>,
    unanswered: u32,
}

impl KeepaliveTracker {
    /// Starts tracking at `now`.
    pub fn new(interval: Duration, count: u32, now: Instant) -> Self {
        KeepaliveTracker {
            interval,
            count,
            last_heard: now,
            last_ping: None,
            unanswered: 0,
        }
    }

    /// Anything arrived from the peer.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.last_ping = None;
        self.unanswered = 0;
    }

    /// When [`Self::poll`] next has something to do.
    pub fn deadline(&self) -> Instant {
        self.last_ping.unwrap_or(self.last_heard) + self.interval
    }

    /// What to do at `now`; call it at or after [`Self::deadline`].
    pub fn poll(&mut self, now: Instant) -> KeepaliveAction {
        if now < self.deadline() {
            return KeepaliveAction::Wait;
        }
        if self.unanswered >= self.count {
            return KeepaliveAction::Close;
        }
        self.unanswered += 1;
        self.last_ping = Some(now);
        KeepaliveAction::SendPing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_then_gives_up_unless_heard() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut k = KeepaliveTracker::new(5 * s, 2, t0);
        assert_eq!(k.poll(t0 + 4 * s), KeepaliveAction::Wait);
        assert_eq!(k.poll(t0 + 5 * s), KeepaliveAction::SendPing);
        assert_eq!(k.poll(t0 + 6 * s), KeepaliveAction::Wait);
        assert_eq!(k.poll(t0 + 10 * s), KeepaliveAction::SendPing);
        assert_eq!(k.deadline(), t0 + 15 * s);
        assert_eq!(k.poll(t0 + 15 * s), KeepaliveAction::Close);

        let mut k = KeepaliveTracker::new(5 * s, 2, t0);
        assert_eq!(k.poll(t0 + 5 * s), KeepaliveAction::SendPing);
        k.heard(t0 + 7 * s);
        assert_eq!(k.poll(t0 + 11 * s), KeepaliveAction::Wait);
        assert_eq!(k.poll(t0 + 12 * s), KeepaliveAction::SendPing);
    }

    #[test]
    fn ping_bytes() {
        let b = KeepaliveProc::Ping.message().to_bytes().unwrap();
        assert_eq!(&b[..12], &[0, 0, 0, 28, 0x6b, 0x65, 0x65, 0x70, 0, 0, 0, 1]);
        assert_eq!(&b[12..20], &[0, 0, 0, 1, 0, 0, 0, 2]);
        let m = Message::from_frame(&b).unwrap();
        assert_eq!(KeepaliveProc::of(&m), Some(KeepaliveProc::Ping));
    }
}
