//! Opening a disk image the way QEMU's `-drive` options ask.
//!
//! `cache=` picks the open flags: `none` and `directsync` bypass the host
//! page cache (O_DIRECT), `writethrough` and `directsync` make each write
//! durable when it completes (O_DSYNC), `unsafe` turns guest flushes into
//! no-ops, `writeback` (the default) is plain buffered I/O. `aio=` picks the
//! engine that runs requests; `discard=` whether guest discards reach the
//! file.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use super::disk::{Alignment, DiskBackend, GuestSlice, RawFile};
use super::engine::Engine;

/// QEMU's `cache=` modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheMode {
    #[default]
    Writeback,
    /// O_DIRECT.
    None,
    /// O_DSYNC.
    Writethrough,
    /// O_DIRECT | O_DSYNC.
    Directsync,
    /// Buffered, and guest flushes do nothing.
    Unsafe,
}

impl CacheMode {
    /// Whether the image is opened with O_DIRECT (QEMU's cache.direct).
    pub fn direct(self) -> bool {
        matches!(self, CacheMode::None | CacheMode::Directsync)
    }
}

/// QEMU's `aio=` modes, plus the synchronous engine rvirt keeps as the
/// baseline (not a QEMU value: it runs requests on the event-loop thread).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AioMode {
    /// A pool of worker threads (QEMU's default).
    #[default]
    Threads,
    /// QEMU's Linux AIO. rvirt submits through io_uring here too: one
    /// asynchronous interface to maintain, and io_uring also covers
    /// buffered I/O and fdatasync, which Linux AIO does not. QEMU's rule that
    /// it needs cache.direct=on is kept.
    Native,
    /// io_uring.
    IoUring,
    /// Inline pread/pwrite on the event-loop thread.
    Sync,
}

/// `discard=`: whether guest discards punch holes in the image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DiscardMode {
    /// QEMU's default: discards succeed and keep the data.
    #[default]
    Ignore,
    /// Discards punch holes (fallocate PUNCH_HOLE).
    Unmap,
}

/// A `-drive` option value that is not one QEMU knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {option} value '{value}'")]
pub struct ParseModeError {
    pub option: &'static str,
    pub value: String,
}

impl FromStr for CacheMode {
    type Err = ParseModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "writeback" => CacheMode::Writeback,
            "none" => CacheMode::None,
            "writethrough" => CacheMode::Writethrough,
            "directsync" => CacheMode::Directsync,
            "unsafe" => CacheMode::Unsafe,
            _ => {
                return Err(ParseModeError {
                    option: "cache",
                    value: s.into(),
                })
            }
        })
    }
}

impl FromStr for AioMode {
    type Err = ParseModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "threads" => AioMode::Threads,
            "native" => AioMode::Native,
            "io_uring" => AioMode::IoUring,
            _ => {
                return Err(ParseModeError {
                    option: "aio",
                    value: s.into(),
                })
            }
        })
    }
}

impl FromStr for DiscardMode {
    type Err = ParseModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ignore" | "off" => DiscardMode::Ignore,
            "unmap" | "on" => DiscardMode::Unmap,
            _ => {
                return Err(ParseModeError {
                    option: "discard",
                    value: s.into(),
                })
            }
        })
    }
}

/// How to open a disk image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskOpenOptions {
    /// Open read-only at the OS level (the device's RO feature is
    /// [`super::BlockOptions::read_only`]).
    pub read_only: bool,
    pub cache: CacheMode,
    pub aio: AioMode,
    pub discard: DiscardMode,
}

/// Why a disk image could not be opened. Every message names the path and
/// what failed; the QEMU-compatible ones use QEMU's wording.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("Could not open '{}': {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// O_DIRECT was refused with EINVAL (ramfs, some FUSE file systems).
    #[error("Could not open '{}': filesystem does not support O_DIRECT", path.display())]
    NoDirectIo { path: PathBuf },
    #[error(
        "'{}': aio=native was specified, but it requires cache.direct=on, which was not specified",
        path.display()
    )]
    NativeNeedsDirect { path: PathBuf },
    /// io_uring_setup failed (kernel without io_uring, or
    /// kernel.io_uring_disabled, or a seccomp filter).
    #[error("'{}': Unable to use io_uring: failed to init linux io_uring ring: {source}", path.display())]
    IoUring {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("'{}': cannot start the disk I/O threads: {source}", path.display())]
    Threads {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("'{}': cannot read the disk size: {source}", path.display())]
    Size {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A raw image with the `-drive` options applied on top: `discard=ignore`
/// keeps guest discards from reaching the file, `cache=unsafe` makes
/// flushes no-ops, O_DIRECT's alignment is known.
pub struct HostDisk {
    file: RawFile,
    discard: bool,
    flush: bool,
    align: Alignment,
}

impl HostDisk {
    /// Wraps an already opened image (O_DIRECT or not: the alignment is
    /// probed from the open flags).
    pub fn new(file: File, discard: DiscardMode, cache: CacheMode) -> io::Result<Self> {
        let align = probe_alignment(&file)?;
        Ok(HostDisk {
            file: RawFile::new(file),
            discard: discard == DiscardMode::Unmap,
            flush: cache != CacheMode::Unsafe,
            align,
        })
    }
}

impl DiskBackend for HostDisk {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_at(buf, offset)
    }
    fn flush(&self) -> io::Result<()> {
        if self.flush {
            self.file.flush()
        } else {
            Ok(())
        }
    }
    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        // Discarded data is undefined for the driver, so keeping it is a
        // valid discard.
        if self.discard {
            self.file.discard(offset, len)
        } else {
            Ok(())
        }
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.file.write_zeroes(offset, len)
    }
    fn read_vectored_at(&self, bufs: &[GuestSlice<'_>], offset: u64) -> io::Result<()> {
        self.file.read_vectored_at(bufs, offset)
    }
    fn write_vectored_at(&self, bufs: &[GuestSlice<'_>], offset: u64) -> io::Result<()> {
        self.file.write_vectored_at(bufs, offset)
    }
    fn alignment(&self) -> Alignment {
        self.align
    }
    fn raw_fd(&self) -> Option<RawFd> {
        self.file.raw_fd()
    }
    fn flushes(&self) -> bool {
        self.flush
    }
}

/// What O_DIRECT on `file` needs: nothing without O_DIRECT; the logical
/// block size for a block device; statx's DIO alignment for a file, or
/// 4096-byte buffers and 512-byte offsets where statx cannot tell (the
/// guest always uses 512-byte sectors, so a stricter offset rule could not
/// be met anyway).
pub fn probe_alignment(file: &File) -> io::Result<Alignment> {
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL takes no pointer argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_DIRECT == 0 {
        return Ok(Alignment::NONE);
    }
    use std::os::unix::fs::FileTypeExt;
    if file.metadata()?.file_type().is_block_device() {
        let mut size: libc::c_int = 0;
        // SAFETY: BLKSSZGET writes one int through the pointer, which points
        // at a live local.
        let ret = unsafe { libc::ioctl(fd, libc::BLKSSZGET, &mut size) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        let size = usize::try_from(size).unwrap_or(512).max(512);
        return Ok(Alignment {
            memory: size,
            offset: size,
        });
    }
    // SAFETY: statx is plain old data; all-zero is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: an empty, NUL-terminated path with AT_EMPTY_PATH asks about
    // `fd` itself; statx writes only into `stx`, a live local.
    let ret = unsafe {
        libc::statx(
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            &mut stx,
        )
    };
    if ret == 0
        && stx.stx_mask & libc::STATX_DIOALIGN != 0
        && stx.stx_dio_mem_align != 0
        && stx.stx_dio_offset_align != 0
    {
        return Ok(Alignment {
            memory: stx.stx_dio_mem_align as usize,
            offset: stx.stx_dio_offset_align as usize,
        });
    }
    Ok(Alignment {
        memory: 4096,
        offset: 512,
    })
}

/// An opened image and the engine that will run its requests: what
/// [`super::Block::with_disk`] takes.
pub struct Disk {
    pub(crate) backend: Arc<dyn DiskBackend>,
    pub(crate) engine: Engine,
}

impl Disk {
    /// Any backend with the engine `aio` asks for. io_uring needs a backend
    /// with a [`DiskBackend::raw_fd`].
    pub fn new(backend: Arc<dyn DiskBackend>, aio: AioMode) -> io::Result<Self> {
        let engine = Engine::new(&backend, aio)?;
        Ok(Disk { backend, engine })
    }

    /// The backend requests go to.
    pub fn backend(&self) -> &Arc<dyn DiskBackend> {
        &self.backend
    }
}

/// Whether `file` lives in memory (tmpfs, ramfs, hugetlbfs): a read or
/// write there is a memory copy that never waits for a device, so handing
/// it to a worker thread (`aio=threads`) costs two thread wake-ups and
/// gains nothing. Such disks are served inline on the device thread
/// instead, which bench/virtio measured at 1.3-3.4x QEMU's worker pool.
pub(crate) fn in_memory(file: &File) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: fstatfs fills the statfs it is given, which lives across the
    // call; the descriptor is open.
    if unsafe { libc::fstatfs(file.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstatfs succeeded, so it initialised the struct (and it was
    // zeroed before, a valid bit pattern for it anyway).
    let kind = unsafe { st.assume_init() }.f_type;
    // ramfs's magic (linux/magic.h), which the libc crate does not name.
    const RAMFS_MAGIC: libc::__fsword_t = 0x8584_58f6;
    [libc::TMPFS_MAGIC, RAMFS_MAGIC, libc::HUGETLBFS_MAGIC].contains(&kind)
}

/// Opens `path` as `opts` says: the call the VMM makes for each `-drive`.
pub fn open_disk(path: &Path, opts: &DiskOpenOptions) -> Result<Disk, OpenError> {
    let path_buf = || path.to_path_buf();
    let direct = opts.cache.direct();
    if opts.aio == AioMode::Native && !direct {
        return Err(OpenError::NativeNeedsDirect { path: path_buf() });
    }
    let mut flags = 0;
    if direct {
        flags |= libc::O_DIRECT;
    }
    // Every write is durable when it completes.
    if matches!(opts.cache, CacheMode::Writethrough | CacheMode::Directsync) {
        flags |= libc::O_DSYNC;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(!opts.read_only)
        .custom_flags(flags)
        .open(path)
        .map_err(|source| {
            if direct && source.raw_os_error() == Some(libc::EINVAL) {
                OpenError::NoDirectIo { path: path_buf() }
            } else {
                OpenError::Open {
                    path: path_buf(),
                    source,
                }
            }
        })?;
    let aio = if opts.aio == AioMode::Threads && in_memory(&file) {
        AioMode::Sync
    } else {
        opts.aio
    };
    let host = HostDisk::new(file, opts.discard, opts.cache).map_err(|source| OpenError::Open {
        path: path_buf(),
        source,
    })?;
    let backend: Arc<dyn DiskBackend> = Arc::new(host);
    let engine = Engine::new(&backend, aio).map_err(|source| match aio {
        AioMode::Native | AioMode::IoUring => OpenError::IoUring {
            path: path_buf(),
            source,
        },
        AioMode::Threads | AioMode::Sync => OpenError::Threads {
            path: path_buf(),
            source,
        },
    })?;
    Ok(Disk { backend, engine })
}
