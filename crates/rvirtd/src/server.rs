//! The RPC socket: accept loop, one reader thread and one writer thread
//! per client. What one client sends (garbage, oversized frames, a stall
//! mid-message) only ends or blocks that client.

use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvirt_remote::consts::feature;
use rvirt_remote::error::{code, from};
use rvirt_remote::handshake::{connection_reply, ServerFeatures};
use rvirt_remote::keepalive::{KeepaliveAction, KeepaliveProc, KeepaliveTracker};
use rvirt_remote::server::reply;
use rvirt_remote::server::{decode_incoming, error_reply, Incoming, Refused};
use rvirt_remote::{Args, FrameDecoder, Procedure, RemoteError};

use crate::console::Streams;
use crate::daemon::Daemon;
use crate::dispatch;
use crate::events::Subscriber;
use crate::outbox::{write_loop, Outbox};

/// More clients than this at once are turned away.
const MAX_CLIENTS: usize = 1024;

/// How long a client may leave a message half-sent.
const PARTIAL_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

static CLIENTS: AtomicUsize = AtomicUsize::new(0);

/// Binds the socket (replacing a stale one: the caller holds the tree
/// lock, so no live daemon owns it) with mode 0600.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves clients until the listener fails.
pub fn serve(listener: UnixListener, daemon: Arc<Daemon>) -> io::Result<()> {
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        if CLIENTS.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
            CLIENTS.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("too many clients; connection refused");
            continue;
        }
        let d = daemon.clone();
        let spawned = std::thread::Builder::new()
            .name("client".into())
            .spawn(move || {
                if let Err(e) = client(&d, stream) {
                    tracing::debug!(error = %e, "client ended");
                }
                CLIENTS.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            CLIENTS.fetch_sub(1, Ordering::SeqCst);
            tracing::error!(error = %e, "cannot start a client thread");
        }
    }
    Ok(())
}

fn client(daemon: &Arc<Daemon>, mut stream: UnixStream) -> io::Result<()> {
    let (outbox, rx) = Outbox::new(stream.try_clone()?);
    let writer = stream.try_clone()?;
    std::thread::Builder::new()
        .name("client-writer".into())
        .spawn(move || write_loop(writer, rx))?;
    let sub = Arc::new(Subscriber::new(Arc::new(outbox)));
    daemon.events.attach(&sub);
    let streams = Streams::default();
    let result = read_loop(daemon, &sub, &streams, &mut stream);
    streams.close_all();
    sub.outbox.close();
    result
}

fn read_loop(
    daemon: &Arc<Daemon>,
    sub: &Arc<Subscriber>,
    streams: &Streams,
    stream: &mut UnixStream,
) -> io::Result<()> {
    let features = ServerFeatures::default();
    let mut frames = FrameDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    // Started when the client asks whether keepalive is supported, as
    // libvirtd starts it; a client silent for too long is dropped.
    let (interval, count) = daemon.keepalive;
    let mut keepalive: Option<KeepaliveTracker> = None;
    let mut last_data = Instant::now();
    let mut read_only = false;
    stream.set_read_timeout(Some(interval.min(Duration::from_secs(1))))?;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if let Some(k) = keepalive.as_mut() {
                    match k.poll(Instant::now()) {
                        KeepaliveAction::SendPing => {
                            sub.outbox.send(&KeepaliveProc::Ping.message());
                        }
                        KeepaliveAction::Close => {
                            tracing::info!("client stopped answering keepalive; closing it");
                            return Ok(());
                        }
                        KeepaliveAction::Wait => {}
                    }
                }
                if sub.outbox.is_closed() {
                    return Ok(());
                }
                if frames.buffered() > 0 && last_data.elapsed() > PARTIAL_MESSAGE_TIMEOUT {
                    tracing::warn!("client stalled mid-message; closing it");
                    return Ok(());
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 || sub.outbox.is_closed() {
            return Ok(());
        }
        last_data = Instant::now();
        if let Some(k) = keepalive.as_mut() {
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
            let incoming = decode_incoming(&msg);
            if let Ok(Incoming::Call { args, .. }) = &incoming {
                if let Args::ConnectOpen(o) = args {
                    read_only = o.flags & crate::access::VIR_CONNECT_RO != 0;
                }
                let refusal = read_only
                    .then(|| crate::access::read_only_refusal(args.procedure()))
                    .flatten();
                if let Some(err) = refusal {
                    if !sub.outbox.send(&error_reply(&msg.header, &err)) {
                        return Ok(());
                    }
                    continue;
                }
            }
            if let Ok(Incoming::Call {
                args: Args::ConnectSupportsFeature(f),
                ..
            }) = &incoming
            {
                if f.feature == feature::PROGRAM_KEEPALIVE && keepalive.is_none() {
                    keepalive = Some(KeepaliveTracker::new(interval, count, Instant::now()));
                }
            }
            let out = match incoming {
                Ok(Incoming::Call {
                    args: Args::DomainOpenConsole(a),
                    serial,
                }) => {
                    match daemon.open_console(streams, &sub.outbox, serial, &a) {
                        Ok(start_pump) => {
                            // The reply goes out before the first data.
                            sub.outbox
                                .send(&reply(Procedure::DomainOpenConsole, serial, &()));
                            start_pump();
                            None
                        }
                        Err(e) => Some(error_reply(&msg.header, &e)),
                    }
                }
                Ok(Incoming::Call { args, .. }) => Some(
                    connection_reply(&msg.header, &args, daemon.tree.mode, &features)
                        .unwrap_or_else(|| dispatch::call(daemon, sub, &msg.header, args)),
                ),
                Ok(Incoming::Keepalive(KeepaliveProc::Ping)) => Some(KeepaliveProc::Pong.message()),
                Ok(Incoming::Keepalive(_)) => None,
                Ok(Incoming::Stream {
                    serial,
                    status,
                    data,
                    ..
                }) => {
                    streams.incoming(serial, status, &data);
                    None
                }
                Err(Refused::UnknownProcedure(h)) if h.is_remote() => {
                    // Not a dropped connection, not an RPC error: either a
                    // procedure served outside rvirt-remote's table, or one
                    // rvirt does not serve.
                    crate::extra::reply(daemon, &h, &msg.payload).or_else(|| {
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
            };
            if let Some(m) = out {
                if !sub.outbox.send(&m) {
                    return Ok(());
                }
            }
        }
    }
}
