//! One client's reader loop: frames in, [`router::route`] for each
//! message, keepalive and the half-sent-message limit while it is quiet.
//! Its replies and events go out through its [`Outbox`] and writer thread.

use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvirt_remote::consts::VIR_NET_MESSAGE_NUM_FDS_MAX;
use rvirt_remote::keepalive::{KeepaliveAction, KeepaliveProc};
use rvirt_remote::{FrameDecoder, Message, MessageType};

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
    let mut fds = VecDeque::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_data = Instant::now();
    let tick = drivers.connection.keepalive.0.min(Duration::from_secs(1));
    stream.set_read_timeout(Some(tick))?;
    loop {
        let n = match recv(stream, &mut buf, &mut fds) {
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
            let want = passed_count(&msg);
            if want > 0 {
                // The descriptors follow the message, each with one byte
                // (virNetSocketSendFD); the call waits for them, as
                // libvirtd reads them before dispatching.
                frames.skip(want);
                let deadline = Instant::now() + PARTIAL_MESSAGE_TIMEOUT;
                while fds.len() < want {
                    if Instant::now() > deadline {
                        tracing::warn!("client never sent the descriptors of its call; closing it");
                        return Ok(());
                    }
                    match recv(stream, &mut buf, &mut fds) {
                        Ok(0) => return Ok(()),
                        Ok(n) => frames.push(&buf[..n]),
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock
                                    | io::ErrorKind::TimedOut
                                    | io::ErrorKind::Interrupted
                            ) => {}
                        Err(e) => return Err(e),
                    }
                }
                *client.passed_fds.borrow_mut() = fds.drain(..want).collect();
            }
            let go_on = router::route(drivers, client, &msg);
            client.passed_fds.borrow_mut().clear();
            if !go_on {
                return Ok(());
            }
        }
    }
}

/// Descriptors a client may have sent ahead of the call that takes them;
/// more are closed on arrival.
const MAX_PENDING_FDS: usize = VIR_NET_MESSAGE_NUM_FDS_MAX as usize;

/// How many descriptors follow `msg`: a CALL_WITH_FDS's count (its first
/// word), none for anything else or a count past libvirt's limit, which
/// the router refuses.
fn passed_count(msg: &Message) -> usize {
    if msg.header.type_ != MessageType::CallWithFds {
        return 0;
    }
    let Some(word) = msg.payload.get(..4) else {
        return 0;
    };
    let n = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
    if n > VIR_NET_MESSAGE_NUM_FDS_MAX {
        return 0;
    }
    n as usize
}

/// Reads what the client sent, keeping the descriptors that came with it
/// (SCM_RIGHTS) in `fds`; std's `read` would close them.
fn recv(stream: &UnixStream, buf: &mut [u8], fds: &mut VecDeque<OwnedFd>) -> io::Result<usize> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::mem::MaybeUninit;
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        stream,
        &mut [io::IoSliceMut::new(buf)],
        &mut cmsg,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(passed) = m {
            for fd in passed {
                if fds.len() < MAX_PENDING_FDS {
                    fds.push_back(fd);
                }
            }
        }
    }
    Ok(got.bytes)
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
