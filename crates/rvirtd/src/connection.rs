//! One client connection: its reader loop (frames, keepalive, stalls),
//! its writer thread, and what each message gets in answer.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvirt_remote::consts::feature;
use rvirt_remote::error::{code, from};
use rvirt_remote::handshake::{connection_reply, ServerFeatures};
use rvirt_remote::keepalive::{KeepaliveAction, KeepaliveProc, KeepaliveTracker};
use rvirt_remote::server::{decode_incoming, error_reply, reply, Incoming, Refused};
use rvirt_remote::{Args, FrameDecoder, Message, Procedure, RemoteError};

use crate::console::Streams;
use crate::daemon::Daemon;
use crate::dispatch;
use crate::events::Subscriber;
use crate::outbox::{write_loop, Outbox};

/// How long a client may leave a message half-sent.
const PARTIAL_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves one client until it leaves or is dropped.
pub fn serve(daemon: &Arc<Daemon>, mut stream: UnixStream) -> io::Result<()> {
    let (outbox, rx) = Outbox::new(stream.try_clone()?);
    let writer = stream.try_clone()?;
    std::thread::Builder::new()
        .name("client-writer".into())
        .spawn(move || write_loop(writer, rx))?;
    let sub = Arc::new(Subscriber::new(Arc::new(outbox)));
    daemon.events.attach(&sub);
    let mut conn = Connection {
        daemon: daemon.clone(),
        sub,
        streams: Streams::default(),
        keepalive: None,
        read_only: false,
    };
    let result = conn.read_loop(&mut stream);
    conn.streams.close_all();
    conn.sub.outbox.close();
    result
}

struct Connection {
    daemon: Arc<Daemon>,
    sub: Arc<Subscriber>,
    streams: Streams,
    /// Started when the client asks whether keepalive is supported, as
    /// libvirtd starts it.
    keepalive: Option<KeepaliveTracker>,
    /// CONNECT_OPEN had VIR_CONNECT_RO.
    read_only: bool,
}

impl Connection {
    fn read_loop(&mut self, stream: &mut UnixStream) -> io::Result<()> {
        let mut frames = FrameDecoder::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut last_data = Instant::now();
        let tick = self.daemon.keepalive.0.min(Duration::from_secs(1));
        stream.set_read_timeout(Some(tick))?;
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if !self.idle(frames.buffered() > 0, last_data) {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if self.sub.outbox.is_closed() {
                return Ok(());
            }
            last_data = Instant::now();
            if let Some(k) = self.keepalive.as_mut() {
                k.heard(last_data);
            }
            frames.push(&buf[..n]);
            loop {
                let msg = match frames.next_message() {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable message; closing the client");
                        return Ok(());
                    }
                };
                if let Some(answer) = self.answer(&msg) {
                    if !self.sub.outbox.send(&answer) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Nothing arrived for a while: keepalive, and the half-sent-message
    /// limit. False when the client must go.
    fn idle(&mut self, partial: bool, last_data: Instant) -> bool {
        if let Some(k) = self.keepalive.as_mut() {
            match k.poll(Instant::now()) {
                KeepaliveAction::SendPing => {
                    self.sub.outbox.send(&KeepaliveProc::Ping.message());
                }
                KeepaliveAction::Close => {
                    tracing::info!("client stopped answering keepalive; closing it");
                    return false;
                }
                KeepaliveAction::Wait => {}
            }
        }
        if partial && last_data.elapsed() > PARTIAL_MESSAGE_TIMEOUT {
            tracing::warn!("client stalled mid-message; closing it");
            return false;
        }
        !self.sub.outbox.is_closed()
    }

    /// The message to send back for `msg`, if any.
    fn answer(&mut self, msg: &Message) -> Option<Message> {
        let d = &self.daemon;
        match decode_incoming(msg) {
            Ok(Incoming::Call { serial, args }) => self.call(msg, serial, args),
            Ok(Incoming::Keepalive(KeepaliveProc::Ping)) => Some(KeepaliveProc::Pong.message()),
            Ok(Incoming::Keepalive(_)) => None,
            Ok(Incoming::Stream {
                serial,
                status,
                data,
                ..
            }) => {
                self.streams.incoming(serial, status, &data);
                None
            }
            Err(Refused::UnknownProcedure(h))
                if h.is_remote() && self.read_only && h.proc_ == crate::extra::DOMAIN_RESET =>
            {
                Some(error_reply(&h, &crate::access::denied("virDomainReset")))
            }
            Err(Refused::UnknownProcedure(h)) if h.is_remote() => {
                // Not a dropped connection, not an RPC error: either a
                // procedure served outside rvirt-remote's table, or one
                // rvirt does not serve.
                crate::extra::reply(d, &h, &msg.payload).or_else(|| {
                    Some(error_reply(
                        &h,
                        &RemoteError::new(
                            code::NO_SUPPORT,
                            from::RPC,
                            Some(&format!("unknown procedure {}", h.proc_)),
                        ),
                    ))
                })
            }
            Err(refused) => {
                tracing::debug!(error = %refused, "message refused");
                refused.reply()
            }
        }
    }

    fn call(&mut self, msg: &Message, serial: u32, args: Args) -> Option<Message> {
        match &args {
            Args::ConnectOpen(o) => self.read_only = o.flags & crate::access::VIR_CONNECT_RO != 0,
            Args::ConnectSupportsFeature(f)
                if f.feature == feature::PROGRAM_KEEPALIVE && self.keepalive.is_none() =>
            {
                let (interval, count) = self.daemon.keepalive;
                self.keepalive = Some(KeepaliveTracker::new(interval, count, Instant::now()));
            }
            _ => {}
        }
        if self.read_only {
            if let Some(err) = crate::access::read_only_refusal(args.procedure()) {
                return Some(error_reply(&msg.header, &err));
            }
        }
        if let Args::DomainOpenConsole(a) = &args {
            return match self
                .daemon
                .open_console(&self.streams, &self.sub.outbox, serial, a)
            {
                Ok(start_pump) => {
                    // The reply goes out before the first data.
                    self.sub
                        .outbox
                        .send(&reply(Procedure::DomainOpenConsole, serial, &()));
                    start_pump();
                    None
                }
                Err(e) => Some(error_reply(&msg.header, &e)),
            };
        }
        let features = ServerFeatures::default();
        Some(
            connection_reply(&msg.header, &args, self.daemon.tree.mode, &features)
                .unwrap_or_else(|| dispatch::call(&self.daemon, &self.sub, &msg.header, args)),
        )
    }
}
