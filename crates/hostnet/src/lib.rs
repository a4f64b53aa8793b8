//! Host networking shared by the VMM and the daemon, so that neither
//! reaches into the other's crates: rvirtd opens and configures a NIC's
//! tap before the VMM starts, and rvirt-vmm uses the tap it was given (or
//! opens one by name when run by hand).
//!
//! - [`tap`]: `/dev/net/tun` taps with IFF_VNET_HDR, opened by name or
//!   adopted from a descriptor, the vnet header size and the receive
//!   offloads.
//! - [`backend`]: [`NetBackend`], what a NIC model sends frames to and
//!   receives them from, for taps, streams and test socketpairs.
//! - [`bridge`]: a virtual network's bridge (create, STP, forward delay,
//!   addresses, delete), as libvirt's bridge driver makes it.
//! - [`iface`]: the interface ioctls on any link (MAC, MTU, index, up) and
//!   bridge ports, as libvirt's QEMU driver applies them to a new tap.
//! - [`stream`]: QEMU's `-netdev stream` framing (a 4-byte big-endian
//!   length before each frame) on a UNIX stream socket, connected by path
//!   or adopted, with reconnection.
//! - [`passt`]: passt's command line from typed options, and the wait
//!   for its start-up.
//! - `testing` (feature `test-utils`): packet sockets and link helpers for
//!   tests in private network namespaces.
//!
//! The ioctls go through `libc`: neither rustix nor nix wraps TUNSETIFF,
//! TUNSETOFFLOAD or SIOCBRADDIF, and the `struct ifreq` forms are small
//! enough to keep in one place here (Cloud Hypervisor's `net_util` does the
//! same).

pub mod backend;
pub mod bridge;
pub mod iface;
pub mod passt;
pub mod stream;
pub mod tap;
#[cfg(feature = "test-utils")]
pub mod testing;

pub use backend::{NetBackend, SocketBackend};
pub use iface::Interfaces;
pub use stream::{StreamError, StreamNetdev};
pub use tap::{Offloads, Tap, TapError, VNET_HDR_LEN};

use std::io;

/// strerror's text, without the " (os error N)" Rust appends: what
/// libvirt puts after a colon in its system errors.
pub fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match (e.raw_os_error(), s.rfind(" (os error ")) {
        (Some(_), Some(i)) => s[..i].to_string(),
        _ => s,
    }
}

/// An `ifreq` naming `name`, or ENODEV for a name the kernel could not
/// have (empty, too long for IFNAMSIZ, with a NUL).
pub(crate) fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    // SAFETY: ifreq is plain data (a name and a union of plain fields);
    // all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

/// The name in an `ifreq` the kernel filled in.
pub(crate) fn ifreq_name(req: &libc::ifreq) -> String {
    let bytes: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_drops_rusts_suffix() {
        let e = io::Error::from_raw_os_error(libc::ENODEV);
        assert_eq!(strerror(&e), "No such device");
        assert_eq!(strerror(&io::Error::other("plain")), "plain");
    }

    #[test]
    fn names_the_kernel_could_not_have_are_enodev() {
        for bad in ["", "a-name-much-too-long-for-ifnamsiz", "a\0b"] {
            let e = ifreq(bad).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENODEV), "{bad:?}");
        }
        assert_eq!(ifreq_name(&ifreq("br0").unwrap()), "br0");
    }
}
