//! Waits on conditions and calls, each with a deadline.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Polls `f` every 20 ms until it holds; panics naming `what` after
/// `limit`.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    poll(
        what,
        limit,
        || if f() { Ok(()) } else { Err(String::new()) },
    )
}

/// Polls `f` every 20 ms until it returns `Ok`, and returns that value.
/// Past `limit` the test fails naming `what`, with the last `Err` as the
/// report of how far things got (what a serial port showed so far, the
/// last connection error).
pub fn poll<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                let sep = if last.is_empty() { "" } else { ":\n" };
                panic!("timed out after {limit:?} waiting for {what}{sep}{last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Waits until a Unix socket is listening at `path`: bound *and*
/// listening, which a check for the file alone does not tell (the file
/// appears at `bind`, a moment before `listen`, and a client connecting in
/// between is refused). Read from `/proc/net/unix`, so nothing connects to
/// the server to find out; it lists the path the socket was *bound* at, so
/// a server that binds under a temporary name and renames the file into
/// place (rvirtd) is waited on by its file instead. Fails naming `path`
/// after `limit`.
pub fn wait_listening(path: &Path, limit: Duration) {
    wait_for(&format!("a listener at {}", path.display()), limit, || {
        is_listening(path)
    })
}

/// Whether a Unix socket is listening at `path` now (see
/// [`wait_listening`]).
pub fn is_listening(path: &Path) -> bool {
    let want = path.as_os_str().as_bytes();
    std::fs::read("/proc/net/unix").is_ok_and(|table| {
        table
            .split(|&b| b == b'\n')
            .skip(1)
            .any(|line| listens_at(line, want))
    })
}

/// A `/proc/net/unix` row: `Num RefCount Protocol Flags Type St Inode Path`;
/// flag `__SO_ACCEPTCON` (0x10000) marks a listening socket.
fn listens_at(line: &[u8], path: &[u8]) -> bool {
    let fields: Vec<&[u8]> = line
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .collect();
    let flags = fields
        .get(3)
        .and_then(|f| std::str::from_utf8(f).ok())
        .and_then(|f| u32::from_str_radix(f, 16).ok());
    fields.len() >= 8 && fields[7..].join(&b' ') == path && flags.is_some_and(|f| f & 0x1_0000 != 0)
}

/// Runs `f` on a thread of its own and returns what it returns; fails the
/// test naming `what` if it has not returned after `limit`. For calls that
/// cannot be given a timeout (a library call blocking on a peer, a thread
/// to join): a hang costs `limit`, and the thread is left behind blocked,
/// to end with the test's process. A panic in `f` is the test's.
pub fn within<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = channel();
    let thread = std::thread::Builder::new()
        .name(what.to_string())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn a thread");
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = thread.join();
            v
        }
        Err(RecvTimeoutError::Timeout) => panic!("{what}: not done after {limit:?}"),
        Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread ended without sending"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_is_listening_only_after_listen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let sock = rustix::net::socket(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            None,
        )
        .unwrap();
        let addr = rustix::net::SocketAddrUnix::new(&path).unwrap();
        rustix::net::bind(&sock, &addr).unwrap();
        // Bound, the file is there, but nobody can connect yet.
        assert!(path.exists());
        let r = std::panic::catch_unwind(|| wait_listening(&path, Duration::from_millis(100)));
        assert!(r.is_err());
        rustix::net::listen(&sock, 1).unwrap();
        wait_listening(&path, Duration::from_secs(5));
        std::os::unix::net::UnixStream::connect(&path).unwrap();
    }

    #[test]
    fn wait_for_fails_past_its_limit() {
        let r = std::panic::catch_unwind(|| wait_for("never", Duration::from_millis(50), || false));
        assert!(r.is_err());
        wait_for("at once", Duration::from_millis(50), || true);
    }

    #[test]
    fn poll_returns_the_value_or_reports_the_last_error() {
        let mut n = 0;
        let v = poll("the third try", Duration::from_secs(10), || {
            n += 1;
            if n == 3 {
                Ok(n)
            } else {
                Err(format!("try {n}"))
            }
        });
        assert_eq!(v, 3);
        let r = std::panic::catch_unwind(|| {
            poll("nothing", Duration::from_millis(50), || -> Result<(), _> {
                Err("serial so far: BOOT".to_string())
            })
        });
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("waiting for nothing"), "{msg}");
        assert!(msg.ends_with("serial so far: BOOT"), "{msg}");
    }

    #[test]
    fn within_returns_fails_past_its_limit_and_passes_panics_on() {
        assert_eq!(within("a sum", Duration::from_secs(10), || 2 + 2), 4);
        let start = Instant::now();
        let r = std::panic::catch_unwind(|| {
            within("a sleeper", Duration::from_millis(100), || {
                std::thread::sleep(Duration::from_secs(30))
            })
        });
        assert!(start.elapsed() < Duration::from_secs(10));
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("a sleeper: not done after"), "{msg}");
        let r = std::panic::catch_unwind(|| {
            within("a panic", Duration::from_secs(10), || {
                panic!("its own words")
            })
        });
        let msg = *r.unwrap_err().downcast::<&str>().unwrap();
        assert_eq!(msg, "its own words");
    }
}
