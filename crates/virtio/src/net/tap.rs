//! virtio-net on a host tap: the tap itself (open, adopt, vnet header,
//! offloads) and the back-end trait are `rvirt-hostnet`'s; this is the
//! glue from the negotiated guest features to the tap's receive offloads.

use rvirt_hostnet::Offloads;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
};

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
