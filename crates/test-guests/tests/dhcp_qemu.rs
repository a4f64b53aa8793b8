//! The `dhcp` guest's network stack against QEMU 7.2's user networking
//! (slirp): it takes the lease slirp gives (10.0.2.15, router 10.0.2.2, DNS
//! 10.0.2.3) and its datagram to the router reaches a UDP socket on the
//! host's loopback, where slirp maps the router's address.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rvirt_test_guests::Guest;
use rvirt_testkit::Spawned;

const LIMIT: Duration = Duration::from_secs(60);

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| Path::new(&d).join(program).exists()))
}

#[test]
fn dhcp_guest_under_qemu_slirp() {
    if !on_path("qemu-system-x86_64") || !Path::new("/dev/kvm").exists() {
        if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
            panic!("qemu-system-x86_64 and /dev/kvm are required (RVIRT_REQUIRE_REFERENCE is set)");
        }
        eprintln!("QEMU or KVM missing: the dhcp guest did not run");
        return;
    }
    let host = UdpSocket::bind("127.0.0.1:0").unwrap();
    host.set_read_timeout(Some(LIMIT)).unwrap();
    let port = host.local_addr().unwrap().port();
    let out = Spawned::start(
        Command::new("qemu-system-x86_64")
            .args([
                "-M",
                "microvm,acpi=off",
                "-enable-kvm",
                "-cpu",
                "qemu64,-pni",
            ])
            .args(["-global", "virtio-mmio.force-legacy=false"])
            .args(["-m", "128", "-nodefaults", "-no-reboot", "-display", "none"])
            .args(["-serial", "stdio", "-device", "isa-debug-exit"])
            .args([
                "-netdev",
                "user,id=n0",
                "-device",
                "virtio-net-device,netdev=n0",
            ])
            .arg("-kernel")
            .arg(Guest::Dhcp.path())
            .args(["-append", &format!("net.udp=router:{port} net.token=slirp")])
            .stdin(Stdio::null()),
    )
    .output(LIMIT);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("NET_DEVICE"))
        .collect();
    // isa-debug-exit: QEMU's status is (0 << 1) | 1.
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        lines,
        [
            "NET_MAC 52:54:00:12:34:56",
            "DHCP_DISCOVER 1",
            "DHCP_OFFER 10.0.2.15 server 10.0.2.2",
            "DHCP_REQUEST 10.0.2.15",
            "DHCP_ACK 10.0.2.15",
            "DHCP_LEASE 10.0.2.15/24",
            "DHCP_ROUTER 10.0.2.2",
            "DHCP_DNS 10.0.2.3",
            "DHCP_LEASE_TIME 86400",
            "DHCP_OK",
            "ARP 10.0.2.2 is 52:55:0a:00:02:02",
            &format!("UDP_SENT 10.0.2.2:{port} 32"),
        ]
    );
    let mut buf = [0u8; 2048];
    let (n, from) = host.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"rvirt dhcp guest 10.0.2.15 slirp");
    assert!(from.ip().is_loopback(), "{from}");
}
