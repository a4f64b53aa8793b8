//! What a virtual network's bridge needs from the host, as libvirt's
//! bridge driver makes it: the bridge itself, its STP and forward delay,
//! its addresses, down and gone again; and whether a link exists.
//!
//! All of it is the kernel's ioctl interface, so it works on the links of
//! the caller's network namespace (the bridge's sysfs files would name the
//! namespace /sys was mounted in, which a test namespace does not
//! remount). A netlink crate would also do; the ioctls already in this
//! crate cover everything a network needs, with no extra dependency.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::iface::Interfaces;

// From <linux/sockios.h>.
const SIOCBRADDBR: libc::c_ulong = 0x89a0;
const SIOCBRDELBR: libc::c_ulong = 0x89a1;
const SIOCDEVPRIVATE: libc::c_ulong = 0x89f0;
// The bridge's old private ioctl (<linux/if_bridge.h>), still served
// through SIOCDEVPRIVATE: its `ifr_data` points at four longs.
const BRCTL_SET_BRIDGE_FORWARD_DELAY: libc::c_ulong = 8;
const BRCTL_SET_BRIDGE_STP_STATE: libc::c_ulong = 14;

/// `struct in6_ifreq` of <linux/ipv6.h>.
#[repr(C)]
struct In6Ifreq {
    addr: [u8; 16],
    prefixlen: u32,
    ifindex: libc::c_int,
}

fn cname(name: &str) -> io::Result<std::ffi::CString> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))
}

fn sockaddr_in(a: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size (16 bytes) and
    // sockaddr is plain data, so any bit pattern of one is a valid other.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// A datagram socket of `family`, for that family's address ioctls.
fn socket(family: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket() takes plain ints and returns a new fd or -1.
    let fd = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Interfaces {
    fn raw_ioctl(&self, request: libc::c_ulong, arg: *mut libc::c_void) -> io::Result<()> {
        // SAFETY: every caller passes the argument its request reads or
        // writes (a NUL-terminated name, an ifreq, an in6_ifreq), alive
        // across the call.
        let rc = unsafe { libc::ioctl(self.fd().as_raw_fd(), request, arg) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether a link of this name exists in the caller's namespace.
    pub fn exists(&self, name: &str) -> bool {
        self.index(name).is_ok()
    }

    /// Creates bridge `name` (EEXIST when a link has that name).
    pub fn create_bridge(&self, name: &str) -> io::Result<()> {
        let n = cname(name)?;
        self.raw_ioctl(SIOCBRADDBR, n.as_ptr() as *mut libc::c_void)
    }

    /// Deletes bridge `name`, taking it down first (the kernel refuses to
    /// delete a bridge that is up).
    pub fn delete_bridge(&self, name: &str) -> io::Result<()> {
        let _ = self.set_down(name);
        let n = cname(name)?;
        self.raw_ioctl(SIOCBRDELBR, n.as_ptr() as *mut libc::c_void)
    }

    /// Clears IFF_UP.
    pub fn set_down(&self, name: &str) -> io::Result<()> {
        let mut req = crate::ifreq(name)?;
        self.raw_ioctl(libc::SIOCGIFFLAGS, (&mut req as *mut libc::ifreq).cast())?;
        // SAFETY: SIOCGIFFLAGS succeeded, so the kernel wrote the flags member.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        req.ifr_ifru.ifru_flags = flags & !(libc::IFF_UP as libc::c_short);
        self.raw_ioctl(libc::SIOCSIFFLAGS, (&mut req as *mut libc::ifreq).cast())
    }

    fn bridge_private(
        &self,
        bridge: &str,
        op: libc::c_ulong,
        value: libc::c_ulong,
    ) -> io::Result<()> {
        let mut args: [libc::c_ulong; 4] = [op, value, 0, 0];
        let mut req = crate::ifreq(bridge)?;
        req.ifr_ifru.ifru_data = args.as_mut_ptr().cast();
        self.raw_ioctl(SIOCDEVPRIVATE, (&mut req as *mut libc::ifreq).cast())
    }

    /// Turns the bridge's spanning tree protocol on or off.
    pub fn set_bridge_stp(&self, bridge: &str, on: bool) -> io::Result<()> {
        self.bridge_private(bridge, BRCTL_SET_BRIDGE_STP_STATE, libc::c_ulong::from(on))
    }

    /// Sets the bridge's forward delay, in seconds.
    pub fn set_bridge_forward_delay(&self, bridge: &str, seconds: u32) -> io::Result<()> {
        // In clock ticks of USER_HZ (100 a second), as the ioctl takes it.
        self.bridge_private(
            bridge,
            BRCTL_SET_BRIDGE_FORWARD_DELAY,
            libc::c_ulong::from(seconds) * 100,
        )
    }

    /// Gives link `name` the address `addr/prefix` (with the broadcast
    /// address of its network for IPv4, as `ip addr add … broadcast +`).
    pub fn add_address(&self, name: &str, addr: IpAddr, prefix: u8) -> io::Result<()> {
        match addr {
            IpAddr::V4(a) => {
                let mask = if prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(prefix.min(32)))
                };
                // IPv4 addresses are set through an AF_INET socket.
                let sock = socket(libc::AF_INET)?;
                for (request, value) in [
                    (libc::SIOCSIFADDR, a),
                    (libc::SIOCSIFNETMASK, Ipv4Addr::from(mask)),
                    (libc::SIOCSIFBRDADDR, Ipv4Addr::from(u32::from(a) | !mask)),
                ] {
                    let mut req = crate::ifreq(name)?;
                    req.ifr_ifru.ifru_addr = sockaddr_in(value);
                    // SAFETY: these requests read one `struct ifreq`, which
                    // `req` is, alive across the call.
                    let rc = unsafe {
                        libc::ioctl(sock.as_raw_fd(), request, &mut req as *mut libc::ifreq)
                    };
                    if rc < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            }
            IpAddr::V6(a) => self.add_ipv6(name, a, prefix),
        }
    }

    fn add_ipv6(&self, name: &str, addr: Ipv6Addr, prefix: u8) -> io::Result<()> {
        let ifindex = libc::c_int::try_from(self.index(name)?)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let sock = socket(libc::AF_INET6)?;
        let mut req = In6Ifreq {
            addr: addr.octets(),
            prefixlen: u32::from(prefix),
            ifindex,
        };
        // SAFETY: SIOCSIFADDR on an AF_INET6 socket reads one in6_ifreq,
        // which `req` is, alive across the call.
        let rc = unsafe {
            libc::ioctl(
                sock.as_raw_fd(),
                libc::SIOCSIFADDR,
                &mut req as *mut In6Ifreq,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_kernel_could_not_have_are_refused_before_any_call() {
        let ifs = Interfaces::new().unwrap();
        for bad in ["", "a-name-much-too-long-for-ifnamsiz", "a\0b"] {
            assert_eq!(
                ifs.create_bridge(bad).unwrap_err().raw_os_error(),
                Some(libc::ENODEV)
            );
        }
        assert!(ifs.exists("lo"));
        assert!(!ifs.exists("rvnosuchlink0"));
    }
}
