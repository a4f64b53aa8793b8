//! virtio-net on a host tap: the tap itself (open, adopt, vnet header,
//! offloads) is `rvirt-hostnet`'s; this is the glue from the negotiated
//! guest features to the tap's receive offloads.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use rvirt_hostnet::{Offloads, Tap};
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
};

use super::backend::NetBackend;

/// The receive offloads the guest accepts (its GUEST_* feature bits).
pub(crate) fn guest_offloads(guest_features: u64) -> Offloads {
    let has = |bit: u32| guest_features & (1 << bit) != 0;
    Offloads {
        csum: has(VIRTIO_NET_F_GUEST_CSUM),
        tso4: has(VIRTIO_NET_F_GUEST_TSO4),
        tso6: has(VIRTIO_NET_F_GUEST_TSO6),
    }
}

// rvirt-hostnet's tap uses virtio's header: the two must agree.
const _: () = assert!(rvirt_hostnet::VNET_HDR_LEN == super::HDR_LEN);

impl NetBackend for Tap {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        match Tap::send(self, frame) {
            Ok(_) => Ok(()),
            // EIO: the interface is administratively down. Like an unplugged
            // cable on the host side, frames are lost but the tap comes back
            // with `ip link set up`, so this is not a backend failure. A
            // deleted tap answers EBADFD, which takes the link down.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                tracing::trace!(tap = %self.name(), "tap is down, frame dropped");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Tap::recv(self, buf)
    }

    fn set_offloads(&mut self, guest_features: u64) -> io::Result<()> {
        Tap::set_offloads(self, guest_offloads(guest_features))
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }
}
