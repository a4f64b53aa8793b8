//! One client's reader loop: frames in, [`router::route`] for each
//! message, keepalive and the half-sent-message limit while it is quiet.
//! Its replies and events go out through its [`Outbox`] and writer thread.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvirt_remote::keepalive::{KeepaliveAction, KeepaliveProc};
use rvirt_remote::FrameDecoder;

use super::events::Subscriber;
use super::outbox::{write_loop, Outbox};
use super::router::{self, Client};
use crate::driver::Drivers;

/// How long a client may leave a message half-sent.
const PARTIAL_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves one client until it leaves or is dropped.
pub fn serve(drivers: &Drivers, mut stream: UnixStream) -> io::Result<()> {
    let (outbox, rx) = Outbox::new(stream.try_clone()?);
    let writer = stream.try_clone()?;
    std::thread::Builder::new()
        .name("client-writer".into())
        .spawn(move || write_loop(writer, rx))?;
    let sub = Arc::new(Subscriber::new(Arc::new(outbox)));
    drivers.events.attach(&sub);
    let client = Client::new(sub);
    let result = read_loop(drivers, &client, &mut stream);
    drivers.domain.autodestroy(client.autodestroy.take());
    client.streams.close_all();
    client.sub.outbox.close();
    result
}

fn read_loop(drivers: &Drivers, client: &Client, stream: &mut UnixStream) -> io::Result<()> {
    let mut frames = FrameDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_data = Instant::now();
    let tick = drivers.connection.keepalive.0.min(Duration::from_secs(1));
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
                if !idle(client, frames.buffered() > 0, last_data) {
                    return Ok(());
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if client.sub.outbox.is_closed() {
            return Ok(());
        }
        last_data = Instant::now();
        if let Some(k) = client.keepalive.borrow_mut().as_mut() {
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
            if !router::route(drivers, client, &msg) {
                return Ok(());
            }
        }
    }
}

/// Nothing arrived for a while: keepalive, and the half-sent-message
/// limit. False when the client must go.
fn idle(client: &Client, partial: bool, last_data: Instant) -> bool {
    let action = client
        .keepalive
        .borrow_mut()
        .as_mut()
        .map(|k| k.poll(Instant::now()));
    match action {
        Some(KeepaliveAction::SendPing) => {
            client.sub.outbox.send(&KeepaliveProc::Ping.message());
        }
        Some(KeepaliveAction::Close) => {
            tracing::info!("client stopped answering keepalive; closing it");
            return false;
        }
        Some(KeepaliveAction::Wait) | None => {}
    }
    if partial && last_data.elapsed() > PARTIAL_MESSAGE_TIMEOUT {
        tracing::warn!("client stalled mid-message; closing it");
        return false;
    }
    !client.sub.outbox.is_closed()
}
