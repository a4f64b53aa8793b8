//! Taps: `/dev/net/tun` with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and a
//! 12-byte vnet header (`virtio_net_hdr_v1`), so a virtio-net guest's
//! checksum and segmentation requests pass through unchanged and
//! checksum/TSO offloads reach the host kernel.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

// From <linux/if_tun.h>; libc does not export them all.
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

/// The vnet header size a tap is given: `struct virtio_net_hdr_v1`, what
/// modern virtio-net always uses.
pub const VNET_HDR_LEN: usize = 12;

/// Why a tap could not be set up. Each message names the step; the
/// system error is the source, printed once by whoever reports the chain.
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

/// The receive offloads a tap may hand to its reader: what the guest
/// driver said it accepts (virtio-net's GUEST_CSUM/GUEST_TSO4/GUEST_TSO6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offloads {
    /// Partially checksummed frames.
    pub csum: bool,
    /// TCP segmentation offload over IPv4.
    pub tso4: bool,
    /// TCP segmentation offload over IPv6.
    pub tso6: bool,
}

impl Offloads {
    /// The TUN_F_* flags. TSO without checksum offload is refused by the
    /// kernel, so it is only passed on with `csum`.
    pub fn tun_flags(self) -> libc::c_uint {
        let mut f = 0;
        if self.csum {
            f |= TUN_F_CSUM;
            if self.tso4 {
                f |= TUN_F_TSO4;
            }
            if self.tso6 {
                f |= TUN_F_TSO6;
            }
        }
        f
    }
}

/// An open, non-blocking tap.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Opens (or creates, given CAP_NET_ADMIN) the tap `name`; a `%d` in it
    /// lets the kernel pick the number (`vnet%d` gives vnet0, vnet1…).
    /// The tap is not persistent: it goes away with its last descriptor.
    pub fn open(name: &str) -> Result<Self, TapError> {
        let mut req = crate::ifreq(name).map_err(|_| TapError::BadName(name.to_owned()))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(TapError::Open)?;
        req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `req`
        // is, and it lives across the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req) };
        if rc < 0 {
            return Err(TapError::SetIff {
                name: name.to_owned(),
                source: io::Error::last_os_error(),
            });
        }
        let tap = Tap {
            file,
            name: crate::ifreq_name(&req),
        };
        tap.set_vnet_hdr_len(VNET_HDR_LEN)?;
        Ok(tap)
    }

    /// Uses a tap opened by someone else (`-netdev tap,fd=N`, as libvirt
    /// passes it). It must have been opened with IFF_TAP and IFF_VNET_HDR;
    /// it is made non-blocking and given [`VNET_HDR_LEN`].
    pub fn from_fd(fd: OwnedFd) -> Result<Self, TapError> {
        let raw = fd.as_raw_fd();
        // SAFETY: ifreq is plain data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        // SAFETY: TUNGETIFF writes one `struct ifreq` into `req`; on a
        // descriptor that is not a tun device it fails without writing.
        let rc = unsafe { libc::ioctl(raw, TUNGETIFF, &mut req) };
        if rc < 0 {
            return Err(TapError::NotTap {
                fd: raw,
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: TUNGETIFF succeeded, so the kernel wrote the flags member.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        if flags & (IFF_TAP | IFF_VNET_HDR) != IFF_TAP | IFF_VNET_HDR {
            return Err(TapError::MissingFlags(raw));
        }
        // SAFETY: `fd` is an owned, open descriptor whose ownership moves
        // into the File.
        let file = unsafe { File::from_raw_fd(fd.into_raw_fd()) };
        // SAFETY: F_GETFL/F_SETFL on an open descriptor take and return
        // plain ints.
        let ok = unsafe {
            let fl = libc::fcntl(raw, libc::F_GETFL);
            fl >= 0 && libc::fcntl(raw, libc::F_SETFL, fl | libc::O_NONBLOCK) >= 0
        };
        if !ok {
            return Err(TapError::NonBlocking(io::Error::last_os_error()));
        }
        let tap = Tap {
            file,
            name: crate::ifreq_name(&req),
        };
        tap.set_vnet_hdr_len(VNET_HDR_LEN)?;
        Ok(tap)
    }

    /// The interface name the kernel gave the tap.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the vnet header the tap expects in front of every frame.
    pub fn set_vnet_hdr_len(&self, len: usize) -> Result<(), TapError> {
        let size = libc::c_int::try_from(len)
            .map_err(|_| TapError::VnetHdrSize(io::Error::from_raw_os_error(libc::EINVAL)))?;
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), TUNSETVNETHDRSZ, &size) };
        if rc < 0 {
            return Err(TapError::VnetHdrSize(io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Tells the kernel which offloads the reader accepts on receive.
    pub fn set_offloads(&self, offloads: Offloads) -> io::Result<()> {
        let flags = offloads.tun_flags();
        // SAFETY: TUNSETOFFLOAD takes its unsigned int argument by value.
        let rc =
            unsafe { libc::ioctl(self.file.as_raw_fd(), TUNSETOFFLOAD, flags as libc::c_ulong) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Writes one frame (vnet header first). A tap write is one frame; a
    /// short write does not happen.
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        (&self.file).write(frame)
    }

    /// Reads one frame (vnet header first); `WouldBlock` when none waits.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl From<Tap> for OwnedFd {
    /// The tap's descriptor, to hand to another process.
    fn from(t: Tap) -> OwnedFd {
        t.file.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offload_flags() {
        assert_eq!(Offloads::default().tun_flags(), 0);
        let all = Offloads {
            csum: true,
            tso4: true,
            tso6: true,
        };
        assert_eq!(all.tun_flags(), 0x7);
        // TSO without checksum offload is not passed on.
        let tso = Offloads {
            csum: false,
            tso4: true,
            tso6: true,
        };
        assert_eq!(tso.tun_flags(), 0);
    }

    #[test]
    fn open_errors_are_reported() {
        assert!(matches!(Tap::open(""), Err(TapError::BadName(_))));
        assert!(matches!(
            Tap::open("a-name-much-too-long-for-ifnamsiz"),
            Err(TapError::BadName(_))
        ));
        assert!(matches!(Tap::open("a\0b"), Err(TapError::BadName(_))));
        // A regular file is not a tap.
        let f = tempfile::tempfile().unwrap();
        assert!(matches!(
            Tap::from_fd(OwnedFd::from(f)),
            Err(TapError::NotTap { .. })
        ));
    }
}
