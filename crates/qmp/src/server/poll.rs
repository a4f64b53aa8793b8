//! `poll(2)` through rustix. Each monitor thread watches at most four
//! descriptors, so poll is simpler than epoll and needs no registration.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};

pub(crate) const READABLE: PollFlags = PollFlags::IN;
pub(crate) const WRITABLE: PollFlags = PollFlags::OUT;
/// Nothing wanted: the entry is left out of the poll.
pub(crate) const NOTHING: PollFlags = PollFlags::empty();

/// One descriptor to watch, and what it reported.
pub(crate) struct Entry<'a> {
    fd: BorrowedFd<'a>,
    events: PollFlags,
    revents: PollFlags,
}

/// Watches `fd` for `events` ([`NOTHING`]: not at all).
pub(crate) fn entry(fd: BorrowedFd<'_>, events: PollFlags) -> Entry<'_> {
    Entry {
        fd,
        events,
        revents: PollFlags::empty(),
    }
}

/// Waits until an entry is ready or `timeout` passes (`None`: forever).
/// EINTR counts as a spurious wake-up. Entries that want nothing are not
/// passed to the kernel at all: it would still report their hang-ups.
pub(crate) fn wait(entries: &mut [Entry<'_>], timeout: Option<Duration>) -> io::Result<()> {
    let mut fds: Vec<PollFd<'_>> = entries
        .iter()
        .filter(|e| !e.events.is_empty())
        .map(|e| PollFd::from_borrowed_fd(e.fd, e.events))
        .collect();
    let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
    match rustix::event::poll(&mut fds, timeout.as_ref()) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => {}
        Err(e) => return Err(e.into()),
    }
    let mut polled = fds.iter();
    for e in entries.iter_mut().filter(|e| !e.events.is_empty()) {
        e.revents = polled.next().map_or(PollFlags::empty(), |p| p.revents());
    }
    Ok(())
}

/// Whether the entry reported anything: readiness, hang-up or error.
pub(crate) fn ready(e: &Entry<'_>) -> bool {
    !e.revents.is_empty()
}

/// Whether the entry reported a hang-up or an error.
pub(crate) fn broken(e: &Entry<'_>) -> bool {
    e.revents.intersects(PollFlags::ERR | PollFlags::HUP)
}
