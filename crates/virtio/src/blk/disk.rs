//! Disk backends: where a block device's sectors live.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// Positioned I/O on a disk image. Implementations must be safe to call with
/// any offset and length: the caller has checked them against [`len`], but a
/// file can shrink underneath.
///
/// [`len`]: DiskBackend::len
pub trait DiskBackend: Send {
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
        let zeroes = vec![0u8; CHUNK.min(len) as usize];
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
}
