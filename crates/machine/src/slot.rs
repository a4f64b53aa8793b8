//! Device memory as a KVM memory slot: a display's VRAM in a PCI BAR,
//! which the guest reads and writes at memory speed (no exit) wherever it
//! puts the BAR, with KVM's dirty log telling what it wrote.

use std::sync::{Arc, Mutex};

use kvm_bindings::{kvm_userspace_memory_region, KVM_MEM_LOG_DIRTY_PAGES};
use kvm_ioctls::VmFd;
use vm_memory::mmap::MmapRegion;

/// The first slot number device memory takes: below are RAM (0-2) and the
/// firmware's ROM and legacy segments (3-16).
pub const FIRST_DEVICE_SLOT: u32 = 32;

/// Why device memory could not be made or moved.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("cannot map {0} bytes of device memory")]
    Map(usize, #[source] vm_memory::mmap::MmapRegionError),
    #[error("KVM SET_USER_MEMORY_REGION failed")]
    Kvm(#[source] kvm_ioctls::Error),
    #[error("KVM GET_DIRTY_LOG failed")]
    DirtyLog(#[source] kvm_ioctls::Error),
}

/// Host memory a device owns (VRAM), shared by the device model and
/// whatever boot's VM maps it: it outlives every [`MemorySlot`] over it,
/// so a guest reboot keeps its contents as hardware does.
#[derive(Debug)]
pub struct DeviceMemory {
    region: MmapRegion,
}

impl DeviceMemory {
    /// `len` bytes of anonymous memory (zero, and not counted against the
    /// host until touched).
    pub fn new(len: usize) -> Result<Arc<Self>, SlotError> {
        let region = MmapRegion::new(len).map_err(|e| SlotError::Map(len, e))?;
        Ok(Arc::new(DeviceMemory { region }))
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.region.size()
    }

    /// Whether it is empty (never, for a mapping that was made).
    pub fn is_empty(&self) -> bool {
        self.region.size() == 0
    }

    /// Copies from `offset` into `out` what lies inside the memory; returns
    /// how many bytes were copied.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len().saturating_sub(offset));
        if n > 0 {
            // SAFETY: `offset + n` is within the mapping, which lives as
            // long as `self`. The guest may write it concurrently: the
            // bytes are plain data (pixels), a torn read only shows a
            // half-drawn frame that the next update repaints.
            unsafe {
                std::ptr::copy_nonoverlapping(self.region.as_ptr().add(offset), out.as_mut_ptr(), n)
            };
        }
        n
    }

    /// Copies `data` to `offset`, clipped to the memory; returns how many
    /// bytes were written.
    pub fn write(&self, offset: usize, data: &[u8]) -> usize {
        let n = data.len().min(self.len().saturating_sub(offset));
        if n > 0 {
            // SAFETY: as in `read`; the mapping is writable and no Rust
            // reference to its bytes exists (all access is by copies).
            unsafe {
                std::ptr::copy_nonoverlapping(data.as_ptr(), self.region.as_ptr().add(offset), n)
            };
        }
        n
    }
}

/// Where a [`MemorySlot`] is now, and whether its dirty log still covers
/// everything written since the last look.
struct Placed {
    at: Option<u64>,
    /// The slot was made or moved since the last [`MemorySlot::dirty`]:
    /// KVM's log starts empty then, so the caller must assume everything
    /// changed.
    fresh: bool,
}

/// [`DeviceMemory`] as one KVM memory slot of one VM, with dirty logging,
/// placed and moved as the guest programs the BAR that holds it.
///
/// Lock order: its own mutex is a leaf (held across the KVM ioctls only).
pub struct MemorySlot {
    vm: Arc<VmFd>,
    slot: u32,
    memory: Arc<DeviceMemory>,
    placed: Mutex<Placed>,
}

impl MemorySlot {
    /// `memory` as slot number `slot` of `vm`, placed nowhere yet.
    pub fn new(vm: Arc<VmFd>, slot: u32, memory: Arc<DeviceMemory>) -> Self {
        MemorySlot {
            vm,
            slot,
            memory,
            placed: Mutex::new(Placed {
                at: None,
                fresh: true,
            }),
        }
    }

    fn set(&self, at: u64, len: u64) -> Result<(), SlotError> {
        let r = kvm_userspace_memory_region {
            slot: self.slot,
            guest_phys_addr: at,
            memory_size: len,
            userspace_addr: self.memory.region.as_ptr() as u64,
            flags: KVM_MEM_LOG_DIRTY_PAGES,
        };
        // SAFETY: the slot maps `len` (0: removes it, or the whole
        // mapping) bytes of `self.memory`'s mapping, which this struct
        // keeps alive; the slot is removed on drop, before the mapping can
        // go, and the VM fd is held here so the VM outlives it too.
        unsafe { self.vm.set_user_memory_region(r) }.map_err(SlotError::Kvm)
    }

    /// Maps the memory at guest-physical `at`, or nowhere. KVM cannot move
    /// a slot, so a move is a removal and a new slot.
    pub fn place(&self, at: Option<u64>) -> Result<(), SlotError> {
        let mut p = self.placed.lock().unwrap_or_else(|e| e.into_inner());
        if p.at == at {
            return Ok(());
        }
        if let Some(old) = p.at.take() {
            self.set(old, 0)?;
        }
        p.fresh = true;
        if let Some(new) = at {
            self.set(new, self.memory.len() as u64)?;
            p.at = Some(new);
        }
        Ok(())
    }

    /// Where it is mapped now.
    pub fn at(&self) -> Option<u64> {
        self.placed.lock().unwrap_or_else(|e| e.into_inner()).at
    }

    /// The pages (4 KiB each) the guest wrote since the previous call, as
    /// a bitmap of 64-page words (empty while the slot is mapped nowhere:
    /// the guest cannot write it); `None` when that cannot be told (the
    /// slot was mapped or moved since): take everything as changed.
    pub fn dirty(&self) -> Result<Option<Vec<u64>>, SlotError> {
        let mut p = self.placed.lock().unwrap_or_else(|e| e.into_inner());
        if p.at.is_none() {
            return Ok(Some(Vec::new()));
        }
        let bitmap = self
            .vm
            .get_dirty_log(self.slot, self.memory.len())
            .map_err(SlotError::DirtyLog)?;
        if std::mem::take(&mut p.fresh) {
            return Ok(None);
        }
        Ok(Some(bitmap))
    }
}

impl Drop for MemorySlot {
    fn drop(&mut self) {
        let at = self.placed.get_mut().map(|p| p.at).unwrap_or(None);
        if let Some(at) = at {
            if let Err(error) = self.set(at, 0) {
                tracing::warn!(%error, slot = self.slot, "device memory slot not removed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_ioctls::{Kvm, VcpuExit};

    /// A real VM: a vCPU in real mode writes two pages of device memory
    /// mapped at 0x10000; the dirty log names exactly those, and a move
    /// keeps the bytes and reports everything once.
    #[test]
    fn guest_writes_reach_the_dirty_log_and_survive_a_move() {
        let kvm = Kvm::new().expect("/dev/kvm");
        let vm = Arc::new(kvm.create_vm().unwrap());
        // RAM for the code at 0x1000.
        let ram = DeviceMemory::new(0x1000).unwrap();
        let code: &[u8] = &[
            0xb8, 0x00, 0x10, // mov ax, 0x1000
            0x8e, 0xd8, // mov ds, ax
            0xc6, 0x06, 0x00, 0x00, 0x5a, // mov byte [0x0000], 0x5a
            0xc6, 0x06, 0x00, 0x30, 0xa5, // mov byte [0x3000], 0xa5
            0xf4, // hlt
        ];
        ram.write(0, code);
        let ram_slot = MemorySlot::new(vm.clone(), 0, ram);
        ram_slot.place(Some(0x1000)).unwrap();
        let vram = DeviceMemory::new(64 << 10).unwrap();
        let slot = MemorySlot::new(vm.clone(), FIRST_DEVICE_SLOT, vram.clone());
        assert_eq!(slot.dirty().unwrap(), Some(Vec::new()), "mapped nowhere");
        slot.place(Some(0x10000)).unwrap();
        assert_eq!(slot.dirty().unwrap(), None, "just mapped: everything");
        assert_eq!(slot.dirty().unwrap(), Some(vec![0]), "nothing written");

        let mut vcpu = vm.create_vcpu(0).unwrap();
        let mut sregs = vcpu.get_sregs().unwrap();
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        vcpu.set_sregs(&sregs).unwrap();
        let regs = kvm_bindings::kvm_regs {
            rip: 0x1000,
            rflags: 2,
            ..Default::default()
        };
        vcpu.set_regs(&regs).unwrap();
        match vcpu.run().unwrap() {
            VcpuExit::Hlt => {}
            other => panic!("unexpected exit {other:?}"),
        }
        assert_eq!(slot.dirty().unwrap(), Some(vec![0b1001]), "pages 0 and 3");
        let mut b = [0u8; 1];
        vram.read(0x3000, &mut b);
        assert_eq!(b, [0xa5]);

        slot.place(Some(0x20000)).unwrap();
        assert_eq!(slot.at(), Some(0x20000));
        assert_eq!(slot.dirty().unwrap(), None, "moved: everything");
        vram.read(0, &mut b);
        assert_eq!(b, [0x5a], "the bytes move with the slot");
        slot.place(None).unwrap();
        assert_eq!(slot.dirty().unwrap(), Some(Vec::new()));
    }

    #[test]
    fn reads_and_writes_are_clipped() {
        let m = DeviceMemory::new(8192).unwrap();
        assert_eq!(m.write(8190, &[1, 2, 3, 4]), 2);
        let mut out = [0u8; 4];
        assert_eq!(m.read(8190, &mut out), 2);
        assert_eq!(out, [1, 2, 0, 0]);
        assert_eq!(m.read(9000, &mut out), 0);
        assert_eq!(m.write(usize::MAX, &[1]), 0);
    }
}
