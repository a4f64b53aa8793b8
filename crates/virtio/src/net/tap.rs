//! The TAP backend: /dev/net/tun with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and a
//! 12-byte vnet header, so the guest's `virtio_net_hdr_v1` passes through
//! unchanged and checksum/TSO offloads reach the host kernel.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
};

use super::backend::NetBackend;
use super::HDR_LEN;

// From <linux/if_tun.h>; libc does not export all of them.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNGETIFF: libc::c_ulong = 0x8004_54d2;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;

/// `struct ifreq` as far as TUNSETIFF/TUNGETIFF use it: the name and the
/// flags, padded to the kernel's 40 bytes.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Why a TAP could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("interface name {0:?} is empty, too long or contains NUL")]
    BadName(String),
    #[error("cannot open /dev/net/tun")]
    Open(#[source] io::Error),
    #[error("cannot attach to tap {name:?} (TUNSETIFF)")]
    SetIff {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("fd {fd} is not a tap device (TUNGETIFF)")]
    NotTap {
        fd: RawFd,
        #[source]
        source: io::Error,
    },
    #[error("tap fd {0} was opened without IFF_TAP | IFF_VNET_HDR")]
    MissingFlags(RawFd),
    #[error("cannot set the vnet header size (TUNSETVNETHDRSZ)")]
    VnetHdrSize(#[source] io::Error),
    #[error("cannot make the tap non-blocking")]
    NonBlocking(#[source] io::Error),
}

/// An open TAP device.
pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Opens (or creates, given CAP_NET_ADMIN) the tap `name`
    /// (`-netdev tap,ifname=NAME`).
    pub fn open(name: &str) -> Result<Self, TapError> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(TapError::BadName(name.to_owned()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(TapError::Open)?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
            _pad: [0; 22],
        };
        req.name[..bytes.len()].copy_from_slice(bytes);
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req` has its
        // layout and size and lives across the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req) };
        if rc < 0 {
            return Err(TapError::SetIff {
                name: name.to_owned(),
                source: io::Error::last_os_error(),
            });
        }
        let tap = Tap {
            file,
            name: ifname(&req),
        };
        tap.set_vnet_hdr_size()?;
        Ok(tap)
    }

    /// Uses a tap fd opened by someone else (`-netdev tap,fd=N`, libvirt).
    /// It must have been opened with IFF_TAP and IFF_VNET_HDR.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, TapError> {
        let raw = fd.as_raw_fd();
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: 0,
            _pad: [0; 22],
        };
        // SAFETY: TUNGETIFF writes one `struct ifreq` into `req`, which has
        // its layout; on a non-tun fd it fails without writing.
        let rc = unsafe { libc::ioctl(raw, TUNGETIFF, &mut req) };
        if rc < 0 {
            return Err(TapError::NotTap {
                fd: raw,
                source: io::Error::last_os_error(),
            });
        }
        if req.flags & (IFF_TAP | IFF_VNET_HDR) != IFF_TAP | IFF_VNET_HDR {
            return Err(TapError::MissingFlags(raw));
        }
        // SAFETY: `fd` is an owned, open descriptor whose ownership moves
        // into the File.
        let file = unsafe { File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(fd)) };
        // SAFETY: F_GETFL/F_SETFL on an open fd take and return plain ints.
        let ok = unsafe {
            let fl = libc::fcntl(raw, libc::F_GETFL);
            fl >= 0 && libc::fcntl(raw, libc::F_SETFL, fl | libc::O_NONBLOCK) >= 0
        };
        if !ok {
            return Err(TapError::NonBlocking(io::Error::last_os_error()));
        }
        let tap = Tap {
            file,
            name: ifname(&req),
        };
        tap.set_vnet_hdr_size()?;
        Ok(tap)
    }

    /// The interface name the kernel gave the tap.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn set_vnet_hdr_size(&self) -> Result<(), TapError> {
        let size: libc::c_int = HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), TUNSETVNETHDRSZ, &size) };
        if rc < 0 {
            return Err(TapError::VnetHdrSize(io::Error::last_os_error()));
        }
        Ok(())
    }
}

fn ifname(req: &IfReq) -> String {
    let end = req
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(req.name.len());
    String::from_utf8_lossy(&req.name[..end]).into_owned()
}

/// TUN_F_* flags for the offloads the guest accepts on receive.
pub(crate) fn tun_offloads(guest_features: u64) -> libc::c_uint {
    let mut f = 0;
    if guest_features & (1 << VIRTIO_NET_F_GUEST_CSUM) != 0 {
        f |= TUN_F_CSUM;
        // TSO without checksum offload is refused by the kernel.
        if guest_features & (1 << VIRTIO_NET_F_GUEST_TSO4) != 0 {
            f |= TUN_F_TSO4;
        }
        if guest_features & (1 << VIRTIO_NET_F_GUEST_TSO6) != 0 {
            f |= TUN_F_TSO6;
        }
    }
    f
}

impl NetBackend for Tap {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        // A tap write is one frame; a short write does not happen.
        match self.file.write(frame) {
            Ok(_) => Ok(()),
            // EIO: the interface is administratively down. Like an unplugged
            // cable on the host side, frames are lost but the tap comes back
            // with `ip link set up`, so this is not a backend failure. A
            // deleted tap answers EBADFD, which takes the link down.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                tracing::trace!(tap = %self.name, "tap is down, frame dropped");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }

    fn set_offloads(&mut self, guest_features: u64) -> io::Result<()> {
        let flags = tun_offloads(guest_features);
        // SAFETY: TUNSETOFFLOAD takes its unsigned int argument by value.
        let rc =
            unsafe { libc::ioctl(self.file.as_raw_fd(), TUNSETOFFLOAD, flags as libc::c_ulong) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }
}
