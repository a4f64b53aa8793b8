//! rvirt-vmm's display devices, as pure state machines over video memory
//! they do not own: nothing here touches KVM. QEMU's `bochs-display` is a
//! PCI function ([`bochs::BochsDisplay`]) with its VRAM in BAR 0 and the
//! Bochs VBE ("DISPI") registers, QEMU's extended registers and an EDID
//! block in BAR 2; [`screen::Screen`] is what the VNC server reads
//! (`rvirt_vnc::Framebuffer`): the mode the registers describe, and the rows
//! the guest changed, from the VRAM's dirty log.
//!
//! The VMM provides the [`Vram`]: host memory mapped into the guest as a
//! KVM memory slot that follows BAR 0, with KVM's dirty log.

pub mod bochs;
pub mod dispi;
pub mod edid;
pub mod screen;
pub mod stdvga;
pub mod vga;

/// A page of video memory as the dirty log counts them.
pub const PAGE_SIZE: usize = 4096;

/// Video memory as a display device sees it: host memory the guest writes
/// directly (a KVM slot), and which of its pages it wrote.
pub trait Vram: Send + Sync {
    /// Its size in bytes.
    fn len(&self) -> usize;

    /// Whether it has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies from `offset` into `out`, clipped to the memory; returns the
    /// bytes copied.
    fn read(&self, offset: usize, out: &mut [u8]) -> usize;

    /// Copies `data` to `offset`, clipped; returns the bytes copied. (The
    /// device's own path, for accesses that exit instead of reaching the
    /// slot: an implementation counts them as changes.)
    fn write(&self, offset: usize, data: &[u8]) -> usize;

    /// The pages written since the previous call, one bit per
    /// [`PAGE_SIZE`] page in 64-bit words; `None` when that cannot be told
    /// (the log was just started or the memory moved): everything changed.
    fn dirty(&self) -> Option<Vec<u64>>;
}
