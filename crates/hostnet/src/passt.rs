//! passt (Debian's `passt`), the user-mode network back-end: what it is
//! told on its command line, and how its start-up is waited for.
//!
//! rvirt-vmm runs it for `-netdev user` on one end of a socketpair
//! (`--fd`); rvirtd runs it, jailed, for every `<interface type='user'>`
//! on one end of a socketpair too, the VMM getting the other. Both build
//! its arguments here from typed options, so passt's spelling lives in one
//! place.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The variable that names the passt program (tests point it elsewhere);
/// else `passt` on the `PATH`.
pub const PROGRAM_VAR: &str = "RVIRT_PASST";

/// The passt program to run.
pub fn program() -> PathBuf {
    std::env::var_os(PROGRAM_VAR)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("passt"))
}

/// A port range of a forward, as libvirt's `<range>` has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRange {
    pub start: u16,
    /// Inclusive end, if a range.
    pub end: Option<u16>,
    /// Where `start` goes in the guest (the range moves with it).
    pub to: Option<u16>,
    /// `~`: leave these out of the forward.
    pub exclude: bool,
}

/// Host ports passt forwards to the guest (`--tcp-ports`/`--udp-ports`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    pub udp: bool,
    /// The host address to bind, if not all.
    pub address: Option<IpAddr>,
    /// The host interface to bind to, if any.
    pub dev: Option<String>,
    /// Empty: every port (`all`).
    pub ranges: Vec<PortRange>,
}

impl PortForward {
    /// passt's SPEC: `[ADDR][%DEV]/` then `all` or the ranges, each
    /// `[~]START[-END][:TO[-TOEND]]`, comma-separated (libvirt's
    /// formatting).
    pub fn spec(&self) -> String {
        let mut s = String::new();
        if let Some(a) = self.address {
            s.push_str(&a.to_string());
        }
        if let Some(d) = &self.dev {
            s.push('%');
            s.push_str(d);
        }
        if !s.is_empty() {
            s.push('/');
        }
        if self.ranges.is_empty() {
            s.push_str("all");
        }
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            if r.exclude {
                s.push('~');
            }
            s.push_str(&r.start.to_string());
            if let Some(end) = r.end {
                s.push_str(&format!("-{end}"));
            }
            if let Some(to) = r.to {
                s.push_str(&format!(":{to}"));
                if let Some(end) = r.end {
                    let to_end = u32::from(end) + u32::from(to) - u32::from(r.start);
                    s.push_str(&format!("-{to_end}"));
                }
            }
        }
        s
    }
}

/// How the VMM reaches passt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `--fd N`: a connected socket passt inherits as descriptor N.
    Fd(i32),
    /// `--socket PATH`: passt listens there for one client.
    Socket(PathBuf),
}

/// What passt gives the guest. `None`s leave passt's defaults: the host's
/// own addresses, gateway and resolvers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasstOptions {
    /// `--address` (IPv4 and/or IPv6), each with its IPv4 `--netmask` bits.
    pub addresses: Vec<(IpAddr, Option<u8>)>,
    /// `--gateway`.
    pub gateway: Option<Ipv4Addr>,
    /// `--dns`, in order.
    pub dns: Vec<IpAddr>,
    /// `--dns-forward`: queries the guest sends there go to the host's
    /// resolver (slirp's 10.0.2.3).
    pub dns_forward: Option<Ipv4Addr>,
    /// `--mtu`: what DHCP and NDP tell the guest.
    pub mtu: Option<u32>,
    /// `--interface`: the host interface whose addresses and routes it
    /// copies.
    pub interface: Option<String>,
    pub forwards: Vec<PortForward>,
    /// `--ipv4-only`.
    pub ipv4_only: bool,
    /// `--ipv6-only`.
    pub ipv6_only: bool,
    /// `--log-file`: passt's own log, else its messages go to stderr.
    pub log_file: Option<PathBuf>,
}

impl PasstOptions {
    /// slirp's network for a `-netdev user` (`net=`, `host=`,
    /// `dhcpstart=`, `dns=`: 10.0.2.15/24, gateway 10.0.2.2 which reaches
    /// the host, DNS 10.0.2.3 forwarded to the host's resolver) and its
    /// `hostfwd=` rules in passt's words, so a guest sees the network
    /// QEMU's slirp would give it. Both rvirt-vmm (`-netdev user` by hand)
    /// and rvirtd (which runs this passt itself for a confined VMM) use it.
    pub fn slirp(u: &rvirt_vmm_config::UserNetdev) -> PasstOptions {
        PasstOptions {
            addresses: vec![(IpAddr::V4(u.guest), Some(u.prefix))],
            gateway: Some(u.host),
            dns: vec![IpAddr::V4(u.dns)],
            dns_forward: Some(u.dns),
            forwards: u
                .hostfwd
                .iter()
                .map(|f| PortForward {
                    udp: f.udp,
                    address: f.host_addr.map(IpAddr::V4),
                    dev: None,
                    ranges: vec![PortRange {
                        start: f.host_port,
                        end: None,
                        to: (f.guest_port != f.host_port).then_some(f.guest_port),
                        exclude: false,
                    }],
                })
                .collect(),
            ipv4_only: !u.ipv6,
            ipv6_only: !u.ipv4,
            ..PasstOptions::default()
        }
    }

    /// The command line: `--one-off` on `endpoint` (it ends with its one
    /// client), in the foreground (its own pid is the one supervised),
    /// `--pid pidfile` (written once it is ready, see [`wait_ready`]), then
    /// the options in libvirt's order. `runas`: the `UID:GID` it drops to
    /// when started as root (passt's own default is the user "nobody").
    pub fn args(&self, endpoint: &Endpoint, pidfile: &Path, runas: Option<&str>) -> Vec<String> {
        let mut a: Vec<String> = vec!["--one-off".into()];
        match endpoint {
            Endpoint::Fd(fd) => a.extend(["--fd".into(), fd.to_string()]),
            Endpoint::Socket(p) => a.extend(["--socket".into(), p.display().to_string()]),
        }
        a.extend(["--foreground".into(), "--quiet".into()]);
        a.extend(["--pid".into(), pidfile.display().to_string()]);
        if let Some(r) = runas {
            a.extend(["--runas".into(), r.into()]);
        }
        if let Some(mtu) = self.mtu {
            a.extend(["--mtu".into(), mtu.to_string()]);
        }
        if let Some(i) = &self.interface {
            a.extend(["--interface".into(), i.clone()]);
        }
        if let Some(l) = &self.log_file {
            a.extend(["--log-file".into(), l.display().to_string()]);
        }
        for (addr, prefix) in &self.addresses {
            a.extend(["--address".into(), addr.to_string()]);
            if let (IpAddr::V4(_), Some(p)) = (addr, prefix) {
                a.extend(["--netmask".into(), p.to_string()]);
            }
        }
        if let Some(g) = self.gateway {
            a.extend(["--gateway".into(), g.to_string()]);
        }
        for d in &self.dns {
            a.extend(["--dns".into(), d.to_string()]);
        }
        if let Some(f) = self.dns_forward {
            a.extend(["--dns-forward".into(), f.to_string()]);
        }
        if self.ipv4_only {
            a.push("--ipv4-only".into());
        }
        if self.ipv6_only {
            a.push("--ipv6-only".into());
        }
        for f in &self.forwards {
            a.push(if f.udp { "--udp-ports" } else { "--tcp-ports" }.into());
            a.push(f.spec());
        }
        a
    }
}

/// passt's lines on stderr that say nothing (it tries syslog first, which
/// a container or CI machine may not have, and says it drops privileges).
pub fn is_noise(line: &str) -> bool {
    let l = line.trim();
    l.is_empty()
        || (l.starts_with("Failed to send ") && l.ends_with(" to syslog"))
        || l.starts_with("Don't run as root.")
        || l == "Couldn't get any nameserver address"
}

/// Waits until passt has written its pid file (it does once its socket is
/// set up and it serves), or `exited` says it is gone, or `limit` passes.
/// Ok(true) when ready, Ok(false) when it exited first; `TimedOut` past
/// the limit.
///
/// The file is looked at every few milliseconds: passt has no descriptor
/// to wait on for this (its `--fd` is the data path), and the wait is
/// short (40-60 ms here).
pub fn wait_ready(
    pidfile: &Path,
    limit: Duration,
    mut exited: impl FnMut() -> bool,
) -> io::Result<bool> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        // Complete once the line ends: passt writes "PID\n".
        if std::fs::read(pidfile).is_ok_and(|b| b.ends_with(b"\n")) {
            return Ok(true);
        }
        if exited() {
            return Ok(false);
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "passt did not come up",
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_specs_are_libvirts() {
        let r = |start, end, to, exclude| PortRange {
            start,
            end,
            to,
            exclude,
        };
        let f = PortForward {
            udp: false,
            address: None,
            dev: None,
            ranges: vec![],
        };
        assert_eq!(f.spec(), "all");
        let f = PortForward {
            udp: false,
            address: Some("192.0.2.1".parse().unwrap()),
            dev: Some("eth0".into()),
            ranges: vec![
                r(22, None, Some(2022), false),
                r(80, Some(90), Some(8080), false),
            ],
        };
        assert_eq!(f.spec(), "192.0.2.1%eth0/22:2022,80-90:8080-8090");
        let f = PortForward {
            udp: true,
            address: None,
            dev: Some("eth1".into()),
            ranges: vec![
                r(5000, Some(5020), None, false),
                r(5010, Some(5015), None, true),
            ],
        };
        assert_eq!(f.spec(), "%eth1/5000-5020,~5010-5015");
    }

    #[test]
    fn arguments_in_libvirts_order() {
        let o = PasstOptions {
            addresses: vec![
                ("10.0.2.15".parse().unwrap(), Some(24)),
                ("fd00::15".parse().unwrap(), Some(64)),
            ],
            gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
            dns: vec!["10.0.2.3".parse().unwrap()],
            dns_forward: Some(Ipv4Addr::new(10, 0, 2, 3)),
            mtu: Some(1500),
            interface: Some("eth0".into()),
            forwards: vec![PortForward {
                udp: false,
                address: None,
                dev: None,
                ranges: vec![PortRange {
                    start: 2222,
                    end: None,
                    to: Some(22),
                    exclude: false,
                }],
            }],
            ipv4_only: true,
            ipv6_only: false,
            log_file: None,
        };
        let a = o.args(
            &Endpoint::Socket("/run/x.socket".into()),
            Path::new("/run/x.pid"),
            Some("65534:65534"),
        );
        assert_eq!(
            a.join(" "),
            "--one-off --socket /run/x.socket --foreground --quiet --pid /run/x.pid \
             --runas 65534:65534 --mtu 1500 --interface eth0 --address 10.0.2.15 --netmask 24 \
             --address fd00::15 --gateway 10.0.2.2 --dns 10.0.2.3 --dns-forward 10.0.2.3 \
             --ipv4-only --tcp-ports 2222:22"
        );
        let a = PasstOptions::default().args(&Endpoint::Fd(3), Path::new("p"), None);
        assert_eq!(a.join(" "), "--one-off --fd 3 --foreground --quiet --pid p");
    }

    #[test]
    fn readiness_is_the_pid_file_or_the_exit() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("p.pid");
        let e = wait_ready(&pid, Duration::from_millis(30), || false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(!wait_ready(&pid, Duration::from_secs(5), || true).unwrap());
        std::fs::write(&pid, "12").unwrap();
        assert!(
            wait_ready(&pid, Duration::from_millis(30), || false).is_err(),
            "half written"
        );
        std::fs::write(&pid, "12\n").unwrap();
        assert!(wait_ready(&pid, Duration::from_secs(5), || false).unwrap());
    }

    #[test]
    fn noise_is_told_from_errors() {
        assert!(is_noise("Failed to send 47 bytes to syslog"));
        assert!(is_noise("Don't run as root. Changing to nobody..."));
        assert!(!is_noise("Invalid port specifier bogus"));
    }
}
