//! Sockets, pipes and ptys read with a deadline.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Reads from `r` until what was read contains `needle`; returns all of it
/// (lossily decoded; bytes after the needle included). Fails the test past
/// `limit`, or when the stream ends first, with what arrived so far.
pub fn read_until<R: Read + AsFd>(r: &mut R, needle: &str, limit: Duration) -> String {
    let (got, _) = read_while(r, limit, &format!("{needle:?}"), usize::MAX, false, |got| {
        !contains(got, needle.as_bytes())
    });
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads from `r` until its end (the peer closed it); returns all of it,
/// lossily decoded. Fails the test past `limit` with what arrived so far.
pub fn read_to_end<R: Read + AsFd>(r: &mut R, limit: Duration) -> String {
    let (got, _) = read_while(r, limit, "end of the stream", usize::MAX, true, |_| true);
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads exactly `n` bytes from `r`; fails the test past `limit`, or when
/// the stream ends first, with what arrived so far.
pub fn read_exact<R: Read + AsFd>(r: &mut R, n: usize, limit: Duration) -> Vec<u8> {
    read_while(r, limit, &format!("{n} bytes"), n, false, |got| {
        got.len() < n
    })
    .0
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Reads while `more` holds of what was read, `cap` bytes at most; the end
/// of the stream fails the test unless `end_ok`, and then ends the read.
fn read_while<R: Read + AsFd>(
    r: &mut R,
    limit: Duration,
    what: &str,
    cap: usize,
    end_ok: bool,
    mut more: impl FnMut(&[u8]) -> bool,
) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while more(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !readable(r.as_fd(), left) {
            panic!(
                "no {what} within {limit:?}; got {:?}",
                String::from_utf8_lossy(&got)
            );
        }
        let want = buf.len().min(cap - got.len());
        match r.read(&mut buf[..want]) {
            Ok(0) if end_ok => return (got, true),
            Ok(0) => panic!(
                "the stream ended before {what}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!(
                "reading for {what}: {e}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    (got, false)
}

/// Whether `fd` has data (or its end, or an error) within `limit`.
fn readable(fd: std::os::fd::BorrowedFd<'_>, limit: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = limit.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: poll reads and writes the one pollfd passed, which lives on
    // this stack frame for the call.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n > 0
}

/// Shuts a socket down (both ways) if it is still armed past a deadline,
/// so that code the test cannot give a timeout (a client library blocking
/// on its peer's reply) gets an error instead of hanging, and the test
/// fails on it. Dropping the guard disarms it; a guard that fired fails
/// the test when dropped, in case the code under it swallowed the error.
pub struct SocketDeadline {
    what: String,
    limit: Duration,
    disarm: Option<Sender<()>>,
    watcher: Option<JoinHandle<()>>,
    fired: Arc<AtomicBool>,
}

impl SocketDeadline {
    /// Arms a deadline of `limit` on `sock`, named `what` in the report.
    pub fn arm(sock: &impl AsFd, what: &str, limit: Duration) -> Self {
        Self::arm_reporting(sock, what, limit, String::new)
    }

    /// [`SocketDeadline::arm`] that also prints what `report` returns
    /// when it fires: the state of the peer that did not answer.
    pub fn arm_reporting(
        sock: &impl AsFd,
        what: &str,
        limit: Duration,
        report: impl FnOnce() -> String + Send + 'static,
    ) -> Self {
        let sock = UnixStream::from(
            sock.as_fd()
                .try_clone_to_owned()
                .expect("duplicate the socket"),
        );
        let (disarm, disarmed) = channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let watcher = {
            let fired = fired.clone();
            let what = what.to_string();
            std::thread::spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = disarmed.recv_timeout(limit) {
                    fired.store(true, Ordering::SeqCst);
                    eprintln!(
                        "{what}: still waiting after {limit:?}: its socket is shut down\n{}",
                        report()
                    );
                    let _ = sock.shutdown(std::net::Shutdown::Both);
                }
            })
        };
        SocketDeadline {
            what: what.to_string(),
            limit,
            disarm: Some(disarm),
            watcher: Some(watcher),
            fired,
        }
    }

    /// Whether the deadline passed and the socket was shut down.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for SocketDeadline {
    fn drop(&mut self) {
        drop(self.disarm.take());
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        if self.fired() && !std::thread::panicking() {
            panic!("{}: no answer within {:?}", self.what, self.limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn panic_text(r: std::thread::Result<impl Sized>) -> String {
        *r.err()
            .expect("it must fail")
            .downcast::<String>()
            .expect("a formatted panic")
    }

    #[test]
    fn read_until_returns_everything_up_to_the_needle() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"boot\nREADY 1\nmore").unwrap();
        let got = read_until(&mut a, "READY", Duration::from_secs(10));
        assert!(got.starts_with("boot\nREADY"), "{got:?}");
    }

    #[test]
    fn read_until_fails_past_its_limit_with_what_came() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"partial").unwrap();
        let start = Instant::now();
        let msg = panic_text(std::panic::catch_unwind(move || {
            read_until(&mut a, "DONE", Duration::from_millis(200))
        }));
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(msg.contains("no \"DONE\" within"), "{msg}");
        assert!(msg.contains("partial"), "{msg}");
    }

    #[test]
    fn read_until_fails_at_the_end_of_the_stream() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"last words").unwrap();
        drop(b);
        let msg = panic_text(std::panic::catch_unwind(move || {
            read_until(&mut a, "DONE", Duration::from_secs(10))
        }));
        assert!(msg.contains("ended before"), "{msg}");
        assert!(msg.contains("last words"), "{msg}");
    }

    #[test]
    fn read_to_end_reads_until_the_peer_closes() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"all of it").unwrap();
        drop(b);
        assert_eq!(read_to_end(&mut a, Duration::from_secs(10)), "all of it");
        let (mut a, _b) = UnixStream::pair().unwrap();
        let r = std::panic::catch_unwind(move || read_to_end(&mut a, Duration::from_millis(100)));
        assert!(panic_text(r).contains("no end of the stream within"));
    }

    #[test]
    fn read_exact_reads_no_more_than_asked() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"abcdef").unwrap();
        assert_eq!(read_exact(&mut a, 3, Duration::from_secs(10)), b"abc");
        assert_eq!(read_exact(&mut a, 3, Duration::from_secs(10)), b"def");
        let r = std::panic::catch_unwind(move || read_exact(&mut a, 1, Duration::from_millis(100)));
        assert!(panic_text(r).contains("no 1 bytes within"));
    }

    #[test]
    fn a_socket_deadline_unblocks_a_read_without_a_timeout() {
        let (a, _b) = UnixStream::pair().unwrap();
        let start = Instant::now();
        let r = std::panic::catch_unwind(move || {
            let guard = SocketDeadline::arm(&a, "a silent peer", Duration::from_millis(200));
            let mut buf = [0u8; 1];
            // Blocks: no timeout, and the peer never writes.
            let n = (&a).read(&mut buf).unwrap();
            assert_eq!(n, 0, "the shut-down socket reads its end");
            assert!(guard.fired());
            drop(guard);
        });
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(panic_text(r).contains("a silent peer: no answer within"));
    }

    #[test]
    fn a_disarmed_socket_deadline_leaves_the_socket_alone() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let guard = SocketDeadline::arm(&a, "a quick peer", Duration::from_secs(10));
        b.write_all(b"x").unwrap();
        assert_eq!(read_exact(&mut a, 1, Duration::from_secs(10)), b"x");
        drop(guard);
        b.write_all(b"y").unwrap();
        assert_eq!(read_exact(&mut a, 1, Duration::from_secs(10)), b"y");
    }
}
