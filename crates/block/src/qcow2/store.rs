//! imago's storage trait over rvirt's own host files.
//!
//! imago reads and writes an image's metadata (and the data it moves
//! itself: allocating writes, copy-on-write from a backing image,
//! compressed clusters) through a [`imago::Storage`]. Giving it the same
//! [`DiskBackend`] the engines use, rather than imago's own file driver,
//! keeps one descriptor per image with one set of policies: O_DIRECT and
//! its alignment, O_DSYNC, `no_flush` (cache=unsafe) and `discard` apply to
//! metadata exactly as to guest data, and the page cache sees one file.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use imago::io_buffers::{IoVector, IoVectorMut};
use imago::storage::drivers::CommonStorageHelper;

use crate::backend::DiskBackend;
use crate::buf::IoBuf;

/// A host file as imago sees it.
pub struct Store {
    disk: Arc<dyn DiskBackend>,
    path: PathBuf,
    helper: CommonStorageHelper,
    /// For a writable qcow2 image: the writes that wait for the refcounts.
    anchors: Option<Arc<Anchors>>,
}

/// The qcow2 structures the header anchors (the header itself, the L1
/// table, the refcount table) and the writes to them held back.
///
/// imago 0.2 keeps new refcounts in its refblock cache but writes an L1
/// entry for a new L2 table (and a refcount table entry for a new
/// refblock, and the header when a table moves) at once. A process killed
/// in between (SIGKILL: nothing of the cache is written) leaves a table
/// the image reaches whose cluster has refcount 0, which `qemu-img check`
/// calls corruption, and a later allocation could reuse that cluster.
/// QEMU writes the refcounts first. rvirt restores that order below imago:
/// writes to these structures wait here until imago's caches have been
/// written ([`Anchors::apply`], called by the format after imago's flush);
/// reads see them meanwhile. Only writes that a guest's allocation makes
/// wait, and only until the allocating request completes.
pub struct Anchors {
    state: Mutex<AnchorState>,
    cluster_size: u64,
}

#[derive(Default)]
struct AnchorState {
    /// The L1 table and the refcount table, as (offset, bytes).
    l1: (u64, u64),
    rt: (u64, u64),
    /// Held-back writes, in the order imago made them.
    pending: Vec<(u64, crate::aligned::AlignedBuf)>,
}

/// Bytes of the header a write must miss to go straight through.
const HEADER: u64 = 512;

impl AnchorState {
    /// Reads the tables' places from header bytes at file offset 0.
    fn parse(&mut self, header: &[u8], cluster_size: u64) {
        if header.len() < 60 {
            return;
        }
        let be32 = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().unwrap()) as u64;
        let be64 = |at: usize| u64::from_be_bytes(header[at..at + 8].try_into().unwrap());
        self.l1 = (be64(40), be32(36) * 8);
        self.rt = (be64(48), be32(56) * cluster_size);
    }

    fn anchored(&self, offset: u64, len: u64) -> bool {
        let hits = |(at, n): (u64, u64)| offset < at + n && at < offset + len;
        offset < HEADER || hits(self.l1) || hits(self.rt)
    }
}

impl Anchors {
    /// Reads the header of `disk` to learn where the tables are.
    pub fn new(disk: &dyn DiskBackend, cluster_size: u64) -> io::Result<Self> {
        let align = disk.alignment();
        let mut buf =
            crate::aligned::AlignedBuf::with_len(align.memory.max(1), align.offset.max(512));
        disk.read_at(buf.as_mut_slice(), 0)?;
        let mut state = AnchorState::default();
        state.parse(buf.as_slice(), cluster_size);
        Ok(Anchors {
            state: Mutex::new(state),
            cluster_size,
        })
    }

    fn lock(&self) -> MutexGuard<'_, AnchorState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes held back so far.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Writes the first `n` held-back writes (those made before the caller
    /// flushed imago's caches) to `disk`.
    pub fn apply(&self, disk: &dyn DiskBackend, n: usize) -> io::Result<()> {
        let mut state = self.lock();
        let n = n.min(state.pending.len());
        for (offset, buf) in &state.pending[..n] {
            disk.write_at(buf.as_slice(), *offset)?;
        }
        state.pending.drain(..n);
        Ok(())
    }
}

impl Store {
    pub fn new(disk: Arc<dyn DiskBackend>, path: &Path) -> Self {
        Store {
            disk,
            path: path.to_path_buf(),
            helper: CommonStorageHelper::default(),
            anchors: None,
        }
    }

    /// Holds back writes to the anchored structures (see [`Anchors`]).
    pub(crate) fn anchored(mut self, anchors: Arc<Anchors>) -> Self {
        self.anchors = Some(anchors);
        self
    }

    /// The backend the engines use for the same file.
    pub fn disk(&self) -> &Arc<dyn DiskBackend> {
        &self.disk
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())
    }
}

/// imago's vectors as the backend's buffers.
///
/// # Safety
///
/// The iovecs must stay valid while the returned buffers are used; the
/// callers use them only within the call that lent the vector.
unsafe fn bufs(iov: &[libc::iovec]) -> Vec<IoBuf> {
    iov.iter()
        // SAFETY: each iovec describes memory imago lent us for this call
        // (the caller's promise above).
        .map(|v| unsafe { IoBuf::new(v.iov_base.cast(), v.iov_len) })
        .collect()
}

impl imago::Storage for Store {
    fn mem_align(&self) -> usize {
        self.disk.alignment().memory.max(1)
    }

    fn req_align(&self) -> usize {
        self.disk.alignment().offset.max(1)
    }

    fn size(&self) -> io::Result<u64> {
        self.disk.len()
    }

    fn get_filename(&self) -> Option<PathBuf> {
        Some(self.path.clone())
    }

    unsafe fn pure_readv(&self, bufv: IoVectorMut<'_>, offset: u64) -> io::Result<()> {
        // SAFETY: the iovecs point into `bufv`, alive for this whole call.
        let bufs = unsafe { bufs(bufv.as_iovec()) };
        let Some(anchors) = &self.anchors else {
            return read_full(&*self.disk, &bufs, offset);
        };
        let end = offset + crate::buf::total_len(&bufs);
        let state = anchors.lock();
        if !state
            .pending
            .iter()
            .any(|(at, d)| offset < at + d.len() as u64 && *at < end)
        {
            // Nothing held back here: no lock for the read (a write held
            // back meanwhile races with this read inside imago already).
            drop(state);
            return read_full(&*self.disk, &bufs, offset);
        }
        // Under the lock, so the held-back writes cannot land in between.
        read_full(&*self.disk, &bufs, offset)?;
        for (at, data) in &state.pending {
            let from = offset.max(*at);
            let to = end.min(at + data.len() as u64);
            if from < to {
                let src = &data.as_slice()[(from - at) as usize..(to - at) as usize];
                crate::buf::scatter(&bufs, (from - offset) as usize, src);
            }
        }
        Ok(())
    }

    unsafe fn pure_writev(&self, bufv: IoVector<'_>, offset: u64) -> io::Result<()> {
        // SAFETY: as in `pure_readv`; the backend only reads from them.
        let bufs = unsafe { bufs(bufv.as_iovec()) };
        if let Some(anchors) = &self.anchors {
            let len = crate::buf::total_len(&bufs);
            let mut state = anchors.lock();
            if state.anchored(offset, len) {
                let mut data = crate::aligned::AlignedBuf::with_len(self.mem_align(), len as usize);
                crate::buf::gather(&bufs, 0, data.as_mut_slice());
                if offset == 0 {
                    // A new header may move the tables.
                    state.parse(data.as_slice(), anchors.cluster_size);
                }
                state.pending.push((offset, data));
                return Ok(());
            }
        }
        self.disk.write_vectored_at(&bufs, offset, false)
    }

    unsafe fn pure_write_zeroes(&self, offset: u64, length: u64) -> io::Result<()> {
        write_zeroes(&*self.disk, offset, length)
    }

    unsafe fn pure_write_allocated_zeroes(&self, offset: u64, length: u64) -> io::Result<()> {
        write_zeroes(&*self.disk, offset, length)
    }

    unsafe fn pure_discard(&self, offset: u64, length: u64) -> io::Result<()> {
        self.disk.discard(offset, length)
    }

    fn flush(&self) -> io::Result<()> {
        // Nothing buffered here: every write went to the file already.
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.disk.flush()
    }

    unsafe fn invalidate_cache(&self) -> io::Result<()> {
        Ok(())
    }

    fn get_storage_helper(&self) -> &CommonStorageHelper {
        &self.helper
    }
}

/// Reads `bufs` at `offset`; what lies past the end of the file reads as
/// zeroes, as imago's storage contract has it (imago reads a table it has
/// placed at the end before writing it). The backend treats the end of a
/// file as an error (a raw disk is exactly its file), so past the first
/// short read this reads nothing more: a second read at an unaligned
/// offset would be refused under O_DIRECT.
pub(super) fn read_full(disk: &dyn DiskBackend, bufs: &[IoBuf], offset: u64) -> io::Result<()> {
    let Some(fd) = disk.raw_fd() else {
        return disk.read_vectored_at(bufs, offset);
    };
    let mut pos = offset;
    let mut eof = false;
    for b in bufs {
        let mut done = 0usize;
        while !eof && done < b.len() {
            let want = b.len() - done;
            // SAFETY: the buffer is valid for writes of its length
            // (`bufs`' contract); the kernel writes at most `want` bytes
            // from `done` on.
            let r = unsafe {
                libc::pread(
                    fd,
                    b.as_ptr().add(done).cast(),
                    want,
                    (pos + done as u64) as libc::off_t,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let r = r as usize;
            done += r;
            eof = r < want;
        }
        if done < b.len() {
            // SAFETY: as above; `done <= len`.
            unsafe { std::ptr::write_bytes(b.as_ptr().add(done), 0, b.len() - done) };
        }
        pos += b.len() as u64;
    }
    Ok(())
}

/// Zeroes `[offset, offset + len)`, growing the file where the range goes
/// past its end: the backend keeps a raw disk's size, but a cluster imago
/// zeroes at the end of an image must exist, as the engines read whole
/// clusters and take the file's end as an error. The growing is
/// fallocate's plain mode: it never shrinks the file nor touches data, so
/// it is safe beside other requests growing the file, and has no O_DIRECT
/// alignment to meet (an image's end often has none: QEMU ends headers at
/// odd sizes).
pub(super) fn write_zeroes(disk: &dyn DiskBackend, offset: u64, len: u64) -> io::Result<()> {
    let size = disk.len()?;
    let end = offset + len;
    if offset < size {
        disk.write_zeroes(offset, end.min(size) - offset)?;
    }
    if end <= size {
        return Ok(());
    }
    let from = offset.max(size);
    if let Some(fd) = disk.raw_fd() {
        // SAFETY: fallocate takes no pointers; the descriptor is open.
        let r = unsafe { libc::fallocate(fd, 0, from as libc::off_t, (end - from) as libc::off_t) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(e);
        }
    }
    // A file system without fallocate: zeroes written (past the end only
    // this request writes there).
    let zeroes = vec![0u8; ((end - from) as usize).min(1 << 20)];
    let mut at = from;
    while at < end {
        let n = ((end - at) as usize).min(zeroes.len());
        disk.write_at(&zeroes[..n], at)?;
        at += n as u64;
    }
    Ok(())
}
