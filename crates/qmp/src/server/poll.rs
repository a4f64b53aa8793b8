//! A thin `poll(2)` wrapper. Each monitor thread watches at most four
//! descriptors, so poll is simpler than epoll and needs no registration.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

pub(crate) const READABLE: i16 = libc::POLLIN;
pub(crate) const WRITABLE: i16 = libc::POLLOUT;

/// One descriptor to watch; `fd < 0` entries are ignored by the kernel.
pub(crate) fn entry(fd: RawFd, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd: if events == 0 { -1 } else { fd },
        events,
        revents: 0,
    }
}

/// Waits until an entry is ready or `timeout` passes (`None`: forever).
/// EINTR counts as a spurious wake-up.
pub(crate) fn wait(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<()> {
    let ms = timeout.map_or(-1, |t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX));
    let nfds = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
    // SAFETY: `fds` is a valid, exclusively borrowed array of `nfds` pollfd.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), nfds, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// Whether the entry reported anything: readiness, hang-up or error.
pub(crate) fn ready(p: &libc::pollfd) -> bool {
    p.revents != 0
}
