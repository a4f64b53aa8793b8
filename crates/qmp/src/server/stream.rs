//! The two ends of a client connection: one socket, or a pair of file
//! descriptors (stdio, a pipe pair).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// A client connection with nonblocking ends.
pub(crate) enum Stream {
    Socket(UnixStream),
    Pair { input: File, output: File },
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Stream {
    pub(crate) fn socket(s: UnixStream) -> io::Result<Self> {
        s.set_nonblocking(true)?;
        Ok(Self::Socket(s))
    }

    /// Note: O_NONBLOCK is a property of the open file description, so a
    /// pair made from stdio makes the inherited stdin/stdout nonblocking,
    /// as QEMU's stdio chardev does.
    pub(crate) fn pair(input: OwnedFd, output: OwnedFd) -> io::Result<Self> {
        set_nonblocking(input.as_raw_fd())?;
        set_nonblocking(output.as_raw_fd())?;
        Ok(Self::Pair {
            input: File::from(input),
            output: File::from(output),
        })
    }

    pub(crate) fn read_fd(&self) -> RawFd {
        match self {
            Self::Socket(s) => s.as_raw_fd(),
            Self::Pair { input, .. } => input.as_raw_fd(),
        }
    }

    pub(crate) fn write_fd(&self) -> RawFd {
        match self {
            Self::Socket(s) => s.as_raw_fd(),
            Self::Pair { output, .. } => output.as_raw_fd(),
        }
    }

    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Socket(s) => (&*s).read(buf),
            Self::Pair { input, .. } => (&*input).read(buf),
        }
    }

    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Socket(s) => {
                // MSG_NOSIGNAL: a vanished client must give EPIPE, not kill
                // the VMM with SIGPIPE.
                // SAFETY: `buf` is valid for `buf.len()` bytes for the call;
                // the descriptor is owned by `s`.
                let n = unsafe {
                    libc::send(
                        s.as_raw_fd(),
                        buf.as_ptr().cast(),
                        buf.len(),
                        libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n.unsigned_abs())
                }
            }
            Self::Pair { output, .. } => (&*output).write(buf),
        }
    }
}
