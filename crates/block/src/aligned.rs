//! Heap buffers aligned for O_DIRECT, used to bounce guest data whose
//! buffers the host file cannot take directly.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// Alignment of every bounce buffer: a page satisfies any logical block
/// size up to 4096, and larger ones get their own.
pub const BOUNCE_ALIGN: usize = 4096;

/// A zero-initialised, page-aligned byte buffer whose length can change.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    cap: usize,
    len: usize,
    align: usize,
}

// SAFETY: the buffer owns its allocation exclusively, like a Vec<u8>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out `&[u8]`, like a Vec<u8>.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// An empty buffer aligned to `align` (a power of two, at least
    /// [`BOUNCE_ALIGN`] is used).
    pub fn new(align: usize) -> Self {
        let align = align.max(BOUNCE_ALIGN).next_power_of_two();
        AlignedBuf {
            ptr: NonNull::dangling(),
            cap: 0,
            len: 0,
            align,
        }
    }

    /// A buffer of `len` zero bytes.
    pub fn with_len(align: usize, len: usize) -> Self {
        let mut b = AlignedBuf::new(align);
        b.resize(len);
        b
    }

    /// Sets the length to `len`, reallocating (zeroed) when it grows past the
    /// capacity. Bytes kept from before are not cleared.
    pub fn resize(&mut self, len: usize) {
        if len > self.cap {
            let layout = Layout::from_size_align(len, self.align)
                .unwrap_or_else(|_| alloc::handle_alloc_error(Layout::new::<u8>()));
            // SAFETY: `len > cap >= 0`, so the layout has a non-zero size.
            let raw = unsafe { alloc::alloc_zeroed(layout) };
            let Some(ptr) = NonNull::new(raw) else {
                alloc::handle_alloc_error(layout)
            };
            self.release();
            self.ptr = ptr;
            self.cap = len;
        }
        self.len = len;
    }

    fn release(&mut self) {
        if self.cap > 0 {
            // SAFETY: `ptr` came from `alloc_zeroed` with exactly this layout,
            // which was valid then.
            unsafe {
                alloc::dealloc(
                    self.ptr.as_ptr(),
                    Layout::from_size_align_unchecked(self.cap, self.align),
                )
            };
            self.cap = 0;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `cap >= len` initialised bytes (zeroed at
        // allocation), or dangling and well aligned with `len == 0`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The start of the buffer, for handing to the kernel.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_zeroed_and_keep_data_when_shrinking() {
        let mut b = AlignedBuf::with_len(512, 1000);
        assert_eq!(b.as_mut_ptr() as usize % BOUNCE_ALIGN, 0);
        assert!(b.as_slice().iter().all(|&x| x == 0));
        b.as_mut_slice()[999] = 7;
        b.resize(10);
        b.resize(1000);
        assert_eq!(b.as_slice()[999], 7, "no reallocation within capacity");
        b.resize(1 << 20);
        assert_eq!(b.len(), 1 << 20);
        assert_eq!(b.as_mut_ptr() as usize % BOUNCE_ALIGN, 0);
        let big = AlignedBuf::with_len(8192, 1);
        assert_eq!(big.as_slice().as_ptr() as usize % 8192, 0);
    }
}
