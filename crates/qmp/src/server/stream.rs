//! The two ends of a client connection: one socket, or a pair of file
//! descriptors (stdio, a pipe pair).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// A client connection with nonblocking ends.
pub(crate) enum Stream {
    Socket(UnixStream),
    Pair { input: File, output: File },
}

fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)?;
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
        set_nonblocking(&input)?;
        set_nonblocking(&output)?;
        Ok(Self::Pair {
            input: File::from(input),
            output: File::from(output),
        })
    }

    pub(crate) fn read_fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Socket(s) => s.as_fd(),
            Self::Pair { input, .. } => input.as_fd(),
        }
    }

    pub(crate) fn write_fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Socket(s) => s.as_fd(),
            Self::Pair { output, .. } => output.as_fd(),
        }
    }

    /// Reads what arrived; descriptors passed with it (SCM_RIGHTS, for
    /// `getfd`) are appended to `fds`.
    pub(crate) fn read(&self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        use std::mem::MaybeUninit;
        match self {
            Self::Socket(s) => {
                let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(8))];
                let mut cmsg = RecvAncillaryBuffer::new(&mut space);
                let mut iov = [io::IoSliceMut::new(buf)];
                let got = rustix::net::recvmsg(
                    s,
                    &mut iov,
                    &mut cmsg,
                    RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
                )?;
                for msg in cmsg.drain() {
                    if let RecvAncillaryMessage::ScmRights(passed) = msg {
                        fds.extend(passed);
                    }
                }
                Ok(got.bytes)
            }
            Self::Pair { input, .. } => (&*input).read(buf),
        }
    }

    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Socket(s) => {
                // MSG_NOSIGNAL: a vanished client must give EPIPE, not kill
                // the VMM with SIGPIPE.
                use rustix::net::SendFlags;
                Ok(rustix::net::send(
                    s,
                    buf,
                    SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
                )?)
            }
            Self::Pair { output, .. } => (&*output).write(buf),
        }
    }
}
