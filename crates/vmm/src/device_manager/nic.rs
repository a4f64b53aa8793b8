//! The emulated NICs that are not virtio (`-device e1000|e1000e`): each opened
//! once on its netdev (the same back-ends as virtio-net's), placed on PCI
//! by [`super::pci::PciPlan`], and served by the device event loop.

use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use rvirt_nic::e1000::{Model, E1000};
use rvirt_vmm_config::{NicModel, PciNicConfig};

use super::virtio::{open_netdev, VirtioError};
use crate::event_loop::{Subscriber, DYNAMIC, DYNAMIC_OUT};
use crate::passt::Passt;

/// A card as its PCI function, the event loop and the device manager
/// share it.
pub(crate) type SharedE1000 = Arc<Mutex<E1000>>;

fn lock(m: &Mutex<E1000>) -> std::sync::MutexGuard<'_, E1000> {
    // A card that panicked mid-access left its registers as they were;
    // serving them beats stopping the VM.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A NIC built from the command line.
pub(crate) struct BuiltNic {
    pub(crate) device: SharedE1000,
    pub(crate) passt: Option<Passt>,
}

/// Opens the NIC's back-end and builds the card on it.
pub(crate) fn build(n: &PciNicConfig) -> Result<BuiltNic, VirtioError> {
    let (backend, passt) = open_netdev(&n.net)?;
    let model = match n.model {
        NicModel::E1000 => Model::E82540em,
        NicModel::E1000e => Model::E82574l,
    };
    let device =
        E1000::with_model(model, backend, n.net.mac).map_err(|source| VirtioError::Setup {
            what: "the NIC's eventfd",
            source,
        })?;
    Ok(BuiltNic {
        device: Arc::new(Mutex::new(device)),
        passt,
    })
}

/// A card as the event loop serves it: its kick eventfd (token 0), the
/// back-end while the receive ring has room, the back-end's writability
/// while it pushes back.
pub(crate) struct NicSubscriber {
    pub(crate) device: SharedE1000,
    pub(crate) kick: RawFd,
}

impl Subscriber for NicSubscriber {
    fn fixed_fds(&self) -> Vec<(RawFd, u32)> {
        vec![(self.kick, 0)]
    }

    fn dynamic_fd(&self) -> Option<RawFd> {
        lock(&self.device).poll_fd()
    }

    fn dynamic_out_fd(&self) -> Option<RawFd> {
        lock(&self.device).poll_out_fd()
    }

    fn handle(&mut self, token: u32) {
        // Every event means the same: move what can move.
        debug_assert!(token == 0 || token == DYNAMIC || token == DYNAMIC_OUT);
        lock(&self.device).process();
    }
}
