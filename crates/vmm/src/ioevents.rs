//! ioeventfds for a transport's notify regions: registered at the
//! transport's base when it is placed, and registered again at the new
//! base when its window moves (a PCI BAR the guest reprograms), so a queue
//! kick keeps reaching the event loop without a return to the vCPU thread.

use std::io;

use kvm_ioctls::{IoEventAddress, NoDatamatch, VmFd};
use rvirt_virtio::NotifyRegion;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Which address space a window is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IoSpace {
    Mmio,
    /// A PCI I/O BAR's (none of rvirt's functions has one yet).
    #[allow(dead_code)]
    Pio,
}

fn kvm(e: kvm_ioctls::Error) -> io::Error {
    io::Error::from_raw_os_error(e.errno())
}

/// The ioeventfds of one transport's notify regions. Moving them
/// ([`Notifiers::place`]) is for windows that move, PCI BARs; virtio-mmio
/// slots stay put.
pub(crate) struct Notifiers {
    space: IoSpace,
    /// Where they are registered now; `None`: nowhere (a BAR that does
    /// not decode).
    base: Option<u64>,
    entries: Vec<(NotifyRegion, EventFd)>,
}

/// Registers or unregisters `evt` for `region` at `base`. The datamatch's
/// width is the access's: KVM matches a 4-byte write of the queue index.
fn ioevent(
    vm: &VmFd,
    space: IoSpace,
    base: u64,
    region: &NotifyRegion,
    evt: &EventFd,
    register: bool,
) -> io::Result<()> {
    let at = base + region.offset;
    let addr = match space {
        IoSpace::Mmio => IoEventAddress::Mmio(at),
        IoSpace::Pio => IoEventAddress::Pio(at),
    };
    let result = match (region.datamatch, region.len) {
        (None, _) if register => vm.register_ioevent(evt, &addr, NoDatamatch),
        (None, _) => vm.unregister_ioevent(evt, &addr, NoDatamatch),
        (Some(d), 1) if register => vm.register_ioevent(evt, &addr, d as u8),
        (Some(d), 1) => vm.unregister_ioevent(evt, &addr, d as u8),
        (Some(d), 2) if register => vm.register_ioevent(evt, &addr, d as u16),
        (Some(d), 2) => vm.unregister_ioevent(evt, &addr, d as u16),
        (Some(d), 4) if register => vm.register_ioevent(evt, &addr, d as u32),
        (Some(d), 4) => vm.unregister_ioevent(evt, &addr, d as u32),
        (Some(d), 8) if register => vm.register_ioevent(evt, &addr, d),
        (Some(d), 8) => vm.unregister_ioevent(evt, &addr, d),
        (Some(_), len) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("notify region of {len} bytes with a datamatch"),
            ))
        }
    };
    result.map_err(kvm)
}

impl Notifiers {
    /// One eventfd per region, registered nowhere yet.
    pub(crate) fn new(space: IoSpace, regions: &[NotifyRegion]) -> io::Result<Self> {
        let entries = regions
            .iter()
            .map(|r| Ok((*r, EventFd::new(EFD_NONBLOCK)?)))
            .collect::<io::Result<_>>()?;
        Ok(Notifiers {
            space,
            base: None,
            entries,
        })
    }

    /// Creates one eventfd per region and registers them at `base`.
    pub(crate) fn register(
        vm: &VmFd,
        space: IoSpace,
        base: u64,
        regions: &[NotifyRegion],
    ) -> io::Result<Self> {
        let mut n = Self::new(space, regions)?;
        n.place(vm, Some(base))?;
        Ok(n)
    }

    /// The window is at `base` now (`None`: it decodes nowhere): every
    /// region is registered there and no longer where it was. On failure
    /// the regions not yet moved stay where they were.
    pub(crate) fn place(&mut self, vm: &VmFd, base: Option<u64>) -> io::Result<()> {
        if base == self.base {
            return Ok(());
        }
        for (region, evt) in &self.entries {
            if let Some(new) = base {
                ioevent(vm, self.space, new, region, evt, true)?;
            }
            if let Some(old) = self.base {
                if let Err(error) = ioevent(vm, self.space, old, region, evt, false) {
                    tracing::warn!(%error, "cannot unregister a moved ioeventfd");
                }
            }
        }
        self.base = base;
        Ok(())
    }

    /// The window moved to `base`.
    #[cfg(test)]
    pub(crate) fn relocate(&mut self, vm: &VmFd, base: u64) -> io::Result<()> {
        self.place(vm, Some(base))
    }

    /// Where the window is now.
    #[cfg(test)]
    pub(crate) fn base(&self) -> Option<u64> {
        self.base
    }

    /// A descriptor per region (sharing its eventfd), with the queue it
    /// kicks, for the event loop.
    pub(crate) fn kicks(&self) -> io::Result<Vec<(u16, EventFd)>> {
        self.entries
            .iter()
            .map(|(r, evt)| Ok((r.queue, evt.try_clone()?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_ioctls::Kvm;

    /// A kick lands on the eventfd at the new base after a move, and not at
    /// the old one; writes with another queue index match nothing.
    #[test]
    fn ioeventfds_follow_a_moved_window() {
        let vm = Kvm::new().expect("/dev/kvm").create_vm().unwrap();
        let regions = [NotifyRegion {
            offset: 0x50,
            len: 4,
            datamatch: Some(1),
            queue: 1,
        }];
        let mut n = Notifiers::register(&vm, IoSpace::Mmio, 0xd000_0000, &regions).unwrap();
        assert_eq!(n.base(), Some(0xd000_0000));
        n.relocate(&vm, 0xe000_0000).unwrap();
        assert_eq!(n.base(), Some(0xe000_0000));
        // Registering the same fd, address and datamatch twice fails with
        // EEXIST: the new place is taken, the old one is free again.
        let (_, evt) = &n.entries[0];
        let at_new = ioevent(&vm, IoSpace::Mmio, 0xe000_0000, &regions[0], evt, true);
        assert_eq!(at_new.unwrap_err().raw_os_error(), Some(libc::EEXIST));
        ioevent(&vm, IoSpace::Mmio, 0xd000_0000, &regions[0], evt, true).unwrap();
        ioevent(&vm, IoSpace::Mmio, 0xd000_0000, &regions[0], evt, false).unwrap();
        assert_eq!(n.kicks().unwrap().len(), 1);
        let odd = NotifyRegion {
            len: 3,
            ..regions[0]
        };
        assert!(Notifiers::register(&vm, IoSpace::Pio, 0x1000, &[odd]).is_err());
        // Taken off the bus and put back, as a BAR whose decode toggles.
        let evt = evt.try_clone().unwrap();
        n.place(&vm, None).unwrap();
        ioevent(&vm, IoSpace::Mmio, 0xe000_0000, &regions[0], &evt, true).unwrap();
        ioevent(&vm, IoSpace::Mmio, 0xe000_0000, &regions[0], &evt, false).unwrap();
        n.place(&vm, Some(0xf000_0000)).unwrap();
        assert_eq!(n.base(), Some(0xf000_0000));
    }
}
