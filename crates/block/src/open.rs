//! Opening a disk image with typed options.
//!
//! `direct` opens with O_DIRECT (and probes the alignment it needs);
//! `write_cache: false` makes every write durable when it completes
//! (O_DSYNC, unless `no_flush` says durability is not wanted at all);
//! `no_flush` turns flushes into no-ops; `discard` lets discards punch
//! holes; `aio` picks the engine. How QEMU spells these is the config
//! parser's business, not this crate's.

use std::fs::{File, OpenOptions as FsOpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backend::{Alignment, DiskBackend, RawFile};
use crate::buf::IoBuf;
use crate::disk::Disk;
use crate::format::{Format, Raw};
use crate::qcow2::{Backing, ImageFormat, ImageSpec};

/// The engine that runs a disk's requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AioMode {
    /// A pool of worker threads.
    #[default]
    Threads,
    /// io_uring: submissions and completions through a ring, completions
    /// signalled on an eventfd. (Also what QEMU's `aio=native` gets: one
    /// asynchronous interface to maintain, and io_uring also covers
    /// buffered I/O and fdatasync, which Linux AIO does not.)
    IoUring,
    /// Inline pread/pwrite on the caller's thread.
    Sync,
}

/// How to open a disk image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// Open read-only at the OS level.
    pub read_only: bool,
    /// Bypass the host page cache (O_DIRECT).
    pub direct: bool,
    /// Flushes do nothing: data is never made durable on request.
    pub no_flush: bool,
    /// Whether the disk starts with a volatile write cache. Without one,
    /// each write is durable when it completes; see
    /// [`Disk::set_write_cache`] for changing it later.
    pub write_cache: bool,
    /// Discards punch holes (otherwise they succeed and keep the data).
    pub discard: bool,
    pub aio: AioMode,
    /// The most requests the caller keeps in flight (its queue size):
    /// io_uring sizes its rings by it.
    pub queue_bound: u16,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            read_only: false,
            direct: false,
            no_flush: false,
            write_cache: true,
            discard: false,
            aio: AioMode::default(),
            queue_bound: crate::disk::DEFAULT_BOUND,
        }
    }
}

/// Why a disk image could not be opened. Every message names the path; the
/// QEMU-compatible ones use QEMU's wording.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("Could not open '{}'", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// O_DIRECT was refused with EINVAL (ramfs, some FUSE file systems).
    #[error("Could not open '{}': filesystem does not support O_DIRECT", path.display())]
    NoDirectIo { path: PathBuf },
    /// io_uring_setup failed (kernel without io_uring, or
    /// kernel.io_uring_disabled, or a seccomp filter).
    #[error("'{}': Unable to use io_uring: failed to init linux io_uring ring", path.display())]
    IoUring {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// imago refused the image (a feature it does not support: dirty
    /// after a crash, zstd compression, extended L2 entries; or damage);
    /// its message names what.
    #[error("'{}'", path.display())]
    Format {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("'{}': qcow2 images with {feature} are not supported", path.display())]
    Feature {
        path: PathBuf,
        feature: &'static str,
    },
    #[error("'{}': backing file '{backing}' has {}; name the backing image on the command line, or set it with qemu-img rebase -F", path.display(), match format { Some(f) => format!("unknown format '{f}'"), None => "no format in the image header (rvirt does not probe backing files)".into() })]
    BackingFormat {
        path: PathBuf,
        backing: String,
        format: Option<String>,
    },
    #[error("'{}': backing chain longer than {} images", path.display(), crate::qcow2::MAX_CHAIN)]
    ChainTooLong { path: PathBuf },
    #[error("'{}': a raw image has no backing image", path.display())]
    RawBacking { path: PathBuf },
    #[error("'{}': cannot start the disk I/O threads", path.display())]
    Threads {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A raw file or device with the open options' policies on top:
/// discards kept from the file unless asked for, flushes that do nothing
/// with `no_flush`, and O_DIRECT's alignment known.
pub struct HostDisk {
    file: RawFile,
    discard: bool,
    flush: bool,
    align: Alignment,
    dsync: bool,
}

impl HostDisk {
    /// Wraps an already opened image (O_DIRECT or not, O_DSYNC or not:
    /// both are read from the open flags).
    pub fn new(file: File, discard: bool, no_flush: bool) -> io::Result<Self> {
        let align = probe_alignment(&file)?;
        let file = RawFile::new(file);
        Ok(HostDisk {
            dsync: file.writes_through(),
            file,
            discard,
            flush: !no_flush,
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
    fn write_at_durable(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.flush {
            self.file.write_at_durable(buf, offset)
        } else {
            self.file.write_at(buf, offset)
        }
    }
    fn flush(&self) -> io::Result<()> {
        if self.flush {
            self.file.flush()
        } else {
            Ok(())
        }
    }
    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        // Discarded data is undefined for the guest, so keeping it is a
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
    fn read_vectored_at(&self, bufs: &[IoBuf], offset: u64) -> io::Result<()> {
        self.file.read_vectored_at(bufs, offset)
    }
    fn write_vectored_at(&self, bufs: &[IoBuf], offset: u64, durable: bool) -> io::Result<()> {
        self.file
            .write_vectored_at(bufs, offset, durable && self.flush)
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
    fn writes_through(&self) -> bool {
        self.dsync
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

/// Whether `file` lives in memory (tmpfs, ramfs, hugetlbfs): a read or
/// write there is a memory copy that never waits for a device, so handing
/// it to a worker thread (`aio=threads`) costs two thread wake-ups and
/// gains nothing. Such disks are served inline on the caller's thread
/// instead, which bench/virtio measured at 1.3-3.4x QEMU's worker pool.
pub fn in_memory(file: &File) -> bool {
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

/// The descriptors a confining parent opened and passed for some paths
/// (`/dev/fdset/N`): `passed(path, write)` is the file for `path`, opened
/// for writing when `write`, or `None` for a path this process opens
/// itself. Every image of a chain goes through it, so a parent that
/// passes them all keeps the VMM from opening any file by name.
pub type PassedFiles<'a> = &'a dyn Fn(&Path, bool) -> Option<io::Result<File>>;

/// No passed descriptors: every path is opened.
pub fn no_passed_files(_: &Path, _: bool) -> Option<io::Result<File>> {
    None
}

/// Opens the file at `path` as `opts` say (read-only when `read_only`),
/// or takes the one passed for it, with the policies on top; says whether
/// it lives in memory.
pub(crate) fn open_host(
    path: &Path,
    opts: &OpenOptions,
    read_only: bool,
    passed: PassedFiles,
) -> Result<(HostDisk, bool), OpenError> {
    let path_buf = || path.to_path_buf();
    let file = match passed(path, !read_only) {
        Some(file) => {
            let file = file.map_err(|source| OpenError::Open {
                path: path_buf(),
                source,
            })?;
            adopt(file, path, opts, read_only)?
        }
        None => open_path(path, opts, read_only)?,
    };
    let memory = in_memory(&file);
    let host =
        HostDisk::new(file, opts.discard, opts.no_flush).map_err(|source| OpenError::Open {
            path: path_buf(),
            source,
        })?;
    Ok((host, memory))
}

fn open_path(path: &Path, opts: &OpenOptions, read_only: bool) -> Result<File, OpenError> {
    let mut flags = 0;
    if opts.direct {
        flags |= libc::O_DIRECT;
    }
    // Every write durable when it completes, unless durability is
    // not wanted at all.
    if !opts.write_cache && !opts.no_flush && !read_only {
        flags |= libc::O_DSYNC;
    }
    FsOpenOptions::new()
        .read(true)
        .write(!read_only)
        .custom_flags(flags)
        .open(path)
        .map_err(|source| {
            if opts.direct && source.raw_os_error() == Some(libc::EINVAL) {
                OpenError::NoDirectIo {
                    path: path.to_path_buf(),
                }
            } else {
                OpenError::Open {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })
}

/// Sets up `file`, which someone else opened: O_DIRECT is turned on if
/// `opts` asks for it; a writable file that must write through needs
/// O_DSYNC already (it cannot be added later).
fn adopt(file: File, path: &Path, opts: &OpenOptions, read_only: bool) -> Result<File, OpenError> {
    let path_buf = || path.to_path_buf();
    let flags = rustix::fs::fcntl_getfl(&file).map_err(|e| OpenError::Open {
        path: path_buf(),
        source: e.into(),
    })?;
    if opts.direct && !flags.contains(rustix::fs::OFlags::DIRECT) {
        rustix::fs::fcntl_setfl(&file, flags | rustix::fs::OFlags::DIRECT).map_err(|e| {
            if e == rustix::io::Errno::INVAL {
                OpenError::NoDirectIo { path: path_buf() }
            } else {
                OpenError::Open {
                    path: path_buf(),
                    source: e.into(),
                }
            }
        })?;
    }
    // rustix's OFlags::DSYNC is O_SYNC's value; the bit is O_DSYNC's.
    let dsync = flags.bits() & libc::O_DSYNC as u32 != 0;
    if !opts.write_cache && !opts.no_flush && !read_only && !dsync {
        return Err(OpenError::Open {
            path: path_buf(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "a disk without a write cache needs a descriptor opened with O_DSYNC",
            ),
        });
    }
    Ok(file)
}

impl<T: Send + 'static> Disk<T> {
    /// Opens the raw image at `path` as `opts` says.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self, OpenError> {
        Self::open_raw(path, opts, &no_passed_files)
    }

    fn open_raw(path: &Path, opts: &OpenOptions, passed: PassedFiles) -> Result<Self, OpenError> {
        let (host, memory) = open_host(path, opts, opts.read_only, passed)?;
        let format: Arc<dyn Format> = Arc::new(Raw::new(Arc::new(host)));
        Self::with_opened(path, format, memory, opts)
    }

    /// Sets up the raw image `file` that someone else opened (a descriptor
    /// a confining parent passed): O_DIRECT is turned on if `opts` asks
    /// for it; a file that must write through needs O_DSYNC already (it
    /// cannot be added later). `path` names it in errors.
    pub fn from_file(file: File, path: &Path, opts: &OpenOptions) -> Result<Self, OpenError> {
        let file = std::cell::Cell::new(Some(file));
        let passed = |_: &Path, _: bool| file.take().map(Ok);
        Self::open_raw(path, opts, &passed)
    }

    /// Opens the image `spec` describes (raw or qcow2, with its backing
    /// chain) as `opts` says.
    pub fn open_image(spec: &ImageSpec, opts: &OpenOptions) -> Result<Self, OpenError> {
        Self::open_image_with(spec, opts, &no_passed_files)
    }

    /// [`Disk::open_image`], with the files `passed` gives for their
    /// paths instead of opening them.
    pub fn open_image_with(
        spec: &ImageSpec,
        opts: &OpenOptions,
        passed: PassedFiles,
    ) -> Result<Self, OpenError> {
        let opts = OpenOptions {
            read_only: opts.read_only || spec.read_only,
            ..*opts
        };
        match spec.format {
            ImageFormat::Raw => {
                if let Backing::Image(_) = spec.backing {
                    return Err(OpenError::RawBacking {
                        path: spec.path.clone(),
                    });
                }
                Self::open_raw(&spec.path, &opts, passed)
            }
            ImageFormat::Qcow2 => {
                let q = crate::qcow2::open_qcow2(spec, &opts, passed)?;
                let memory = q.storage().raw_fd().is_some_and(fd_in_memory);
                Self::with_opened(&spec.path, Arc::new(q), memory, &opts)
            }
        }
    }

    fn with_opened(
        path: &Path,
        format: Arc<dyn Format>,
        memory: bool,
        opts: &OpenOptions,
    ) -> Result<Self, OpenError> {
        let path_buf = || path.to_path_buf();
        let aio = if opts.aio == AioMode::Threads && memory {
            AioMode::Sync
        } else {
            opts.aio
        };
        let mut disk =
            Disk::with_format(format, aio, opts.queue_bound).map_err(|source| match aio {
                AioMode::IoUring => OpenError::IoUring {
                    path: path_buf(),
                    source,
                },
                AioMode::Threads | AioMode::Sync => OpenError::Threads {
                    path: path_buf(),
                    source,
                },
            })?;
        disk.set_write_cache(opts.write_cache);
        Ok(disk)
    }
}

/// [`in_memory`] for a descriptor.
fn fd_in_memory(fd: RawFd) -> bool {
    // SAFETY: the descriptor belongs to an open image that outlives this
    // call; ManuallyDrop keeps the borrowed File from closing it.
    let file =
        std::mem::ManuallyDrop::new(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    in_memory(&file)
}
