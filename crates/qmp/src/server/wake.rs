//! A nonblocking eventfd through rustix: one thread writes to wake another
//! out of poll. (vmm-sys-util's `EventFd` does the same but lends no
//! `BorrowedFd` for rustix's poll.)

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::EventfdFlags;

/// A counter another thread's poll can wait on.
pub(crate) struct Wake(OwnedFd);

impl Wake {
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Wake(rustix::event::eventfd(
            0,
            EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC,
        )?))
    }

    /// Adds `n` to the counter: the descriptor becomes readable.
    pub(crate) fn write(&self, n: u64) -> io::Result<()> {
        rustix::io::write(&self.0, &n.to_ne_bytes())?;
        Ok(())
    }

    /// Takes the counter (`WouldBlock` when it is zero).
    pub(crate) fn read(&self) -> io::Result<u64> {
        let mut b = [0u8; 8];
        rustix::io::read(&self.0, &mut b)?;
        Ok(u64::from_ne_bytes(b))
    }
}

impl AsFd for Wake {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
