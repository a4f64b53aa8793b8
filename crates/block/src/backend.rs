//! Storage: where a disk image's bytes live on the host (a file or a block
//! device), with positioned I/O on it.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;

use crate::aligned::AlignedBuf;
use crate::buf::{iovecs, IoBuf};

/// What O_DIRECT asks of buffers and file offsets; 1 when nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alignment {
    /// Buffer addresses (and each buffer's length) must be multiples of this.
    pub memory: usize,
    /// File offsets and transfer lengths must be multiples of this.
    pub offset: usize,
}

impl Alignment {
    /// Buffered I/O: anything goes.
    pub const NONE: Alignment = Alignment {
        memory: 1,
        offset: 1,
    };

    /// Whether `bufs` can be handed to the file as they are.
    pub fn fits(&self, bufs: &[IoBuf]) -> bool {
        let m = self.memory.max(1);
        self.memory <= 1
            || bufs
                .iter()
                .all(|b| (b.as_ptr() as usize).is_multiple_of(m) && b.len().is_multiple_of(m))
    }
}

impl Default for Alignment {
    fn default() -> Self {
        Alignment::NONE
    }
}

/// Positioned I/O on a disk image's storage. Implementations must be safe
/// to call with any offset and length: the caller has checked them against
/// [`len`], but a file can shrink underneath.
///
/// [`len`]: DiskBackend::len
pub trait DiskBackend: Send + Sync {
    /// Size in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the size is zero.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes written data durable.
    fn flush(&self) -> io::Result<()>;
    /// Gives the range back to the host (reads return zeroes afterwards).
    fn discard(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Makes the range read as zeroes, keeping it allocated.
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()>;

    /// Writes all of `buf` at `offset` and makes it durable before
    /// returning (a FUA write). The default writes, then flushes, as
    /// QEMU emulates FUA.
    fn write_at_durable(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.write_at(buf, offset)?;
        self.flush()
    }

    /// Reads exactly the buffers' total length at `offset`, straight into
    /// them. The default goes through a temporary buffer and [`read_at`].
    ///
    /// [`read_at`]: DiskBackend::read_at
    fn read_vectored_at(&self, bufs: &[IoBuf], offset: u64) -> io::Result<()> {
        let mut tmp = vec![0; crate::buf::total_len(bufs) as usize];
        self.read_at(&mut tmp, offset)?;
        crate::buf::scatter(bufs, 0, &tmp);
        Ok(())
    }

    /// Writes all of the buffers at `offset`, straight from them, durably
    /// when `durable` (see [`write_at_durable`]). The default goes through
    /// a temporary buffer.
    ///
    /// [`write_at_durable`]: DiskBackend::write_at_durable
    fn write_vectored_at(&self, bufs: &[IoBuf], offset: u64, durable: bool) -> io::Result<()> {
        let mut tmp = vec![0; crate::buf::total_len(bufs) as usize];
        crate::buf::gather(bufs, 0, &mut tmp);
        if durable {
            self.write_at_durable(&tmp, offset)
        } else {
            self.write_at(&tmp, offset)
        }
    }

    /// What buffers and offsets must be aligned to (O_DIRECT).
    fn alignment(&self) -> Alignment {
        Alignment::NONE
    }

    /// The descriptor an engine that submits I/O itself (io_uring) reads,
    /// writes and fdatasyncs; `None` when the storage is not a plain file.
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }

    /// Whether [`flush`] does anything (false with `cache.no-flush`), so an
    /// engine that submits its own fdatasync knows to skip it.
    ///
    /// [`flush`]: DiskBackend::flush
    fn flushes(&self) -> bool {
        true
    }

    /// Whether every write is durable when it completes already (the file
    /// was opened with O_DSYNC), so nothing needs adding for a FUA write.
    fn writes_through(&self) -> bool {
        false
    }
}

/// A raw image file (or block device), accessed with pread/pwrite.
pub struct RawFile {
    file: File,
}

impl RawFile {
    pub fn new(file: File) -> Self {
        RawFile { file }
    }

    fn fallocate(&self, mode: libc::c_int, offset: u64, len: u64) -> io::Result<()> {
        let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len))
        else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        // SAFETY: fallocate takes no pointers; the descriptor is owned by
        // `self.file` and stays open for the duration of the call.
        let ret = unsafe { libc::fallocate(self.file.as_raw_fd(), mode, offset, len) };
        if ret == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The fallback when the file system cannot zero a range in place.
    fn write_zero_buffers(&self, mut offset: u64, len: u64) -> io::Result<()> {
        const CHUNK: u64 = 64 * 1024;
        // Aligned, so it also works on a file opened with O_DIRECT.
        let zeroes = AlignedBuf::with_len(0, CHUNK.min(len) as usize);
        let zeroes = zeroes.as_slice();
        let end = offset.saturating_add(len);
        while offset < end {
            let n = (end - offset).min(CHUNK) as usize;
            self.file.write_all_at(&zeroes[..n], offset)?;
            offset += n as u64;
        }
        Ok(())
    }
}

fn unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL)
    )
}

impl DiskBackend for RawFile {
    fn len(&self) -> io::Result<u64> {
        // Seeking works for block devices too, where metadata says 0.
        (&self.file).seek(SeekFrom::End(0))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn write_at_durable(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        // SAFETY: one iovec over `buf`, borrowed for this call.
        let b = unsafe { IoBuf::new(buf.as_ptr().cast_mut(), buf.len()) };
        rw_vectored(self.file.as_raw_fd(), &[b], offset, Dir::WriteDurable)
    }

    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        match self.fallocate(
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset,
            len,
        ) {
            // Discard is a hint; a file system without holes just keeps the data.
            Err(error) if unsupported(&error) => {
                tracing::debug!(%error, "discard not supported by the image's file system");
                Ok(())
            }
            other => other,
        }
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        match self.fallocate(
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
            offset,
            len,
        ) {
            Err(error) if unsupported(&error) => self.write_zero_buffers(offset, len),
            other => other,
        }
    }

    fn read_vectored_at(&self, bufs: &[IoBuf], offset: u64) -> io::Result<()> {
        rw_vectored(self.file.as_raw_fd(), bufs, offset, Dir::Read)
    }

    fn write_vectored_at(&self, bufs: &[IoBuf], offset: u64, durable: bool) -> io::Result<()> {
        let dir = if durable {
            Dir::WriteDurable
        } else {
            Dir::Write
        };
        rw_vectored(self.file.as_raw_fd(), bufs, offset, dir)
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }

    fn writes_through(&self) -> bool {
        // SAFETY: F_GETFL takes no pointer argument.
        let flags = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_GETFL) };
        flags >= 0 && flags & libc::O_DSYNC == libc::O_DSYNC
    }
}

/// iovecs per preadv/pwritev call (IOV_MAX on Linux).
const IOV_MAX: usize = 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Read,
    Write,
    /// pwritev2 with RWF_DSYNC: durable when it returns (a FUA write).
    WriteDurable,
}

/// preadv/pwritev until every byte moved; end of file is an error.
fn rw_vectored(fd: RawFd, bufs: &[IoBuf], mut offset: u64, dir: Dir) -> io::Result<()> {
    let mut iov = iovecs(bufs);
    iov.retain(|v| v.iov_len > 0);
    while !iov.is_empty() {
        let n = iov.len().min(IOV_MAX) as libc::c_int;
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: every iovec points into an IoBuf, valid for this call
        // (IoBuf::new's contract) for its length; the kernel only reads
        // (pwritev) or writes (preadv) those bytes.
        let ret = unsafe {
            match dir {
                Dir::Read => libc::preadv(fd, iov.as_ptr(), n, off),
                Dir::Write => libc::pwritev(fd, iov.as_ptr(), n, off),
                Dir::WriteDurable => libc::pwritev2(fd, iov.as_ptr(), n, off, libc::RWF_DSYNC),
            }
        };
        match ret {
            r if r < 0 => {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "disk ended before the request did",
                ))
            }
            r => {
                crate::buf::advance(&mut iov, r as usize);
                offset += r as u64;
            }
        }
    }
    Ok(())
}
