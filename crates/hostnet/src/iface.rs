//! The interface ioctls libvirt's QEMU driver applies to a new tap before
//! QEMU starts: the MAC, the bridge's MTU, the bridge port, up. They work
//! on any link in the caller's network namespace.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// From <linux/sockios.h>; libc does not export it for Linux.
const SIOCBRADDIF: libc::c_ulong = 0x89a2;

/// A socket to issue interface ioctls on.
#[derive(Debug)]
pub struct Interfaces(OwnedFd);

impl Interfaces {
    pub fn new() -> io::Result<Self> {
        // SAFETY: socket() takes plain ints and returns a new fd or -1.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor; nothing else owns it.
        Ok(Interfaces(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The socket the ioctls go through.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.0
    }

    fn ioctl(&self, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
        // SAFETY: every request used here reads and/or writes one `struct
        // ifreq`, which `req` is, and it lives across the call.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), request, req as *mut libc::ifreq) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sets the link's Ethernet address.
    pub fn set_mac(&self, name: &str, mac: [u8; 6]) -> io::Result<()> {
        let mut req = crate::ifreq(name)?;
        // SAFETY: sockaddr is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr = unsafe { std::mem::zeroed() };
        addr.sa_family = libc::ARPHRD_ETHER;
        for (d, s) in addr.sa_data.iter_mut().zip(mac) {
            *d = s as libc::c_char;
        }
        req.ifr_ifru.ifru_hwaddr = addr;
        self.ioctl(libc::SIOCSIFHWADDR, &mut req)
    }

    /// The link's MTU.
    pub fn mtu(&self, name: &str) -> io::Result<u32> {
        let mut req = crate::ifreq(name)?;
        self.ioctl(libc::SIOCGIFMTU, &mut req)?;
        // SAFETY: SIOCGIFMTU succeeded, so the kernel wrote the MTU member.
        let mtu = unsafe { req.ifr_ifru.ifru_mtu };
        u32::try_from(mtu).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    }

    pub fn set_mtu(&self, name: &str, mtu: u32) -> io::Result<()> {
        let mut req = crate::ifreq(name)?;
        req.ifr_ifru.ifru_mtu =
            libc::c_int::try_from(mtu).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        self.ioctl(libc::SIOCSIFMTU, &mut req)
    }

    /// The link's index.
    pub fn index(&self, name: &str) -> io::Result<u32> {
        let mut req = crate::ifreq(name)?;
        self.ioctl(libc::SIOCGIFINDEX, &mut req)?;
        // SAFETY: SIOCGIFINDEX succeeded, so the kernel wrote the index member.
        let index = unsafe { req.ifr_ifru.ifru_ifindex };
        u32::try_from(index).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    }

    /// Makes link `port` a port of `bridge`.
    pub fn add_bridge_port(&self, bridge: &str, port: &str) -> io::Result<()> {
        let index = self.index(port)?;
        let mut req = crate::ifreq(bridge)?;
        req.ifr_ifru.ifru_ifindex =
            libc::c_int::try_from(index).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        self.ioctl(SIOCBRADDIF, &mut req)
    }

    /// Sets IFF_UP.
    pub fn set_up(&self, name: &str) -> io::Result<()> {
        let mut req = crate::ifreq(name)?;
        self.ioctl(libc::SIOCGIFFLAGS, &mut req)?;
        // SAFETY: SIOCGIFFLAGS succeeded, so the kernel wrote the flags member.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        self.ioctl(libc::SIOCSIFFLAGS, &mut req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_links_are_enodev() {
        let ifs = Interfaces::new().unwrap();
        let e = ifs.mtu("rvnosuchlink0").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
        let e = ifs.add_bridge_port("rvnosuchbr0", "lo").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
        assert_eq!(ifs.mtu("").unwrap_err().raw_os_error(), Some(libc::ENODEV));
        // The loopback link always exists.
        assert!(ifs.index("lo").unwrap() > 0);
        assert!(ifs.mtu("lo").unwrap() > 0);
    }
}
