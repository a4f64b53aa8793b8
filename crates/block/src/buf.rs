//! The host memory a request reads into or writes from.
//!
//! The block layer never sees guest memory as such: a caller (virtio-blk)
//! translates guest buffers into [`IoBuf`]s with vm-memory's checked
//! accessors and promises, by the `unsafe` constructor, that they stay
//! valid until the request is finished. The bytes may change under the
//! I/O (a guest may write to its own buffers at any time); the block layer
//! only hands them to the kernel or copies them with raw byte copies, and
//! never makes a Rust reference to them.

use std::ptr;

/// A run of host memory a request moves data to or from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoBuf {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: an IoBuf is a plain address and length; whoever made it vouched
// (in `IoBuf::new`) that the memory stays valid, whichever thread uses it.
unsafe impl Send for IoBuf {}
// SAFETY: as above; sharing the address copies nothing.
unsafe impl Sync for IoBuf {}

impl IoBuf {
    /// A buffer of `len` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len` bytes from now
    /// until the request holding this buffer is finished: its [`Done`] was
    /// returned (by [`Disk::submit`] or [`Disk::reap`]), or
    /// [`Disk::quiesce`] returned, or the [`Disk`] was dropped. The memory
    /// must be ordinary RAM (no MMIO), as the bytes are moved with plain
    /// copies and by the kernel.
    ///
    /// [`Done`]: crate::Done
    /// [`Disk`]: crate::Disk
    /// [`Disk::submit`]: crate::Disk::submit
    /// [`Disk::reap`]: crate::Disk::reap
    /// [`Disk::quiesce`]: crate::Disk::quiesce
    pub unsafe fn new(ptr: *mut u8, len: usize) -> Self {
        IoBuf { ptr, len }
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The part `[from, from + len)`; the caller keeps it inside.
    fn sub(&self, from: usize, len: usize) -> IoBuf {
        debug_assert!(from + len <= self.len);
        IoBuf {
            // `from <= len`, so the pointer stays inside the buffer (or one
            // past its end for an empty tail); wrapping_add makes no claim.
            ptr: self.ptr.wrapping_add(from),
            len,
        }
    }
}

/// Total bytes of `bufs`.
pub fn total_len(bufs: &[IoBuf]) -> u64 {
    bufs.iter().map(|b| b.len as u64).sum()
}

/// The buffers covering bytes `[from, from + len)` of `bufs` taken as
/// one stream (a mapping extent of a larger request).
pub(crate) fn slice(bufs: &[IoBuf], mut from: usize, mut len: usize) -> Vec<IoBuf> {
    let mut out = Vec::new();
    for b in bufs {
        if len == 0 {
            break;
        }
        if from >= b.len {
            from -= b.len;
            continue;
        }
        let n = (b.len - from).min(len);
        out.push(b.sub(from, n));
        len -= n;
        from = 0;
    }
    out
}

/// The iovecs for `bufs`.
pub(crate) fn iovecs(bufs: &[IoBuf]) -> Vec<libc::iovec> {
    bufs.iter()
        .map(|b| libc::iovec {
            iov_base: b.ptr.cast(),
            iov_len: b.len,
        })
        .collect()
}

/// Drops the first `n` bytes from `iov` (after a short transfer).
pub(crate) fn advance(iov: &mut Vec<libc::iovec>, mut n: usize) {
    let mut skip = 0;
    for v in iov.iter_mut() {
        if n < v.iov_len {
            v.iov_base = v.iov_base.cast::<u8>().wrapping_add(n).cast();
            v.iov_len -= n;
            break;
        }
        n -= v.iov_len;
        skip += 1;
    }
    iov.drain(..skip);
}

/// Copies `src` into the buffers, from byte `at` of their stream on;
/// returns how many bytes were copied.
pub(crate) fn scatter(bufs: &[IoBuf], at: usize, src: &[u8]) -> usize {
    let mut done = 0;
    for b in slice(bufs, at, src.len()) {
        // SAFETY: `b` lies inside an IoBuf, valid for writes while the
        // request runs (IoBuf::new's contract); `src` is ordinary memory
        // of at least `done + b.len` bytes (slice() covers at most
        // src.len() bytes) and cannot overlap memory the caller lent us.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr().add(done), b.ptr, b.len) };
        done += b.len;
    }
    done
}

/// Copies bytes of the buffers' stream from `at` on into `dst`; returns
/// how many bytes were copied.
pub(crate) fn gather(bufs: &[IoBuf], at: usize, dst: &mut [u8]) -> usize {
    let mut done = 0;
    for b in slice(bufs, at, dst.len()) {
        // SAFETY: `b` lies inside an IoBuf, valid for reads while the
        // request runs; `dst` has room for `done + b.len` bytes (slice()
        // covers at most dst.len() bytes) and is our own memory.
        unsafe { ptr::copy_nonoverlapping(b.ptr, dst.as_mut_ptr().add(done), b.len) };
        done += b.len;
    }
    done
}

/// Fills the buffers with zeroes (a read of a hole).
pub(crate) fn zero(bufs: &[IoBuf]) {
    for b in bufs {
        // SAFETY: `b` is valid for writes of `b.len` bytes while the
        // request runs (IoBuf::new's contract).
        unsafe { ptr::write_bytes(b.ptr, 0, b.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bufs(store: &mut [u8], lens: &[usize]) -> Vec<IoBuf> {
        let mut at = 0;
        lens.iter()
            .map(|&n| {
                // SAFETY: inside `store`, which outlives the test's use.
                let b = unsafe { IoBuf::new(store.as_mut_ptr().add(at), n) };
                at += n;
                b
            })
            .collect()
    }

    #[test]
    fn slices_copies_and_advances_cross_buffer_boundaries() {
        let mut store = vec![0u8; 10];
        let b = bufs(&mut store, &[3, 0, 4, 3]);
        assert_eq!(total_len(&b), 10);
        let s = slice(&b, 2, 5);
        assert_eq!(s.iter().map(IoBuf::len).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(scatter(&b, 2, &[1, 2, 3, 4, 5]), 5);
        let mut out = [0u8; 6];
        assert_eq!(gather(&b, 1, &mut out), 6);
        assert_eq!(out, [0, 1, 2, 3, 4, 5]);
        zero(&slice(&b, 3, 2));
        let mut all = [0u8; 10];
        gather(&b, 0, &mut all);
        assert_eq!(all, [0, 0, 1, 0, 0, 4, 5, 0, 0, 0]);
        let mut iov = iovecs(&b);
        advance(&mut iov, 4);
        assert_eq!(iov.iter().map(|v| v.iov_len).collect::<Vec<_>>(), [3, 3]);
        assert_eq!(iov[0].iov_base as usize, b[2].as_ptr() as usize + 1);
        assert_eq!(gather(&b, 8, &mut out), 2, "the stream ends");
    }
}
