//! User-mode networking: the `dhcp` guest under `-netdev user` (rvirt-vmm
//! runs passt) gets its lease and its datagram reaches a UDP socket on the
//! host, with the same lines as under QEMU 7.2's `-netdev user` (slirp) in
//! the same test; passt ends with the VMM, even a killed one; `-netdev
//! stream` follows its peer (the link goes down with it and comes back with
//! `reconnect=`); bad input gets one line. passt copies the network of the
//! namespace it starts in, so its tests run in a private one with a dummy
//! uplink and a default route (rvirt-testkit's `netns`): the traffic stays
//! on its loopback.

mod common;

use std::io::Read;
use std::net::UdpSocket;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

fn have(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
            panic!("{program} is required (RVIRT_REQUIRE_REFERENCE is set): run scripts/setup.sh");
        }
        eprintln!("{program} is not installed: skipped");
    }
    found
}

fn host_socket() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

fn datagram(s: &UdpSocket) -> String {
    let mut buf = [0u8; 2048];
    let (n, from) = s.recv_from(&mut buf).unwrap();
    assert!(from.ip().is_loopback(), "{from}");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The lines both VMMs must print alike: all but where the device sits,
/// the lease time (slirp: 86400 s, passt: infinite), the router's MAC
/// and how the VM ends.
fn comparable(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| {
            !["NET_DEVICE", "DHCP_LEASE_TIME", "ARP ", "POWEROFF", "DONE"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(String::from)
        .collect()
}

/// The pids of the processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

/// passt's pid file directory names the VMM and the netdev.
fn passt_marker(vmm_pid: i32, netdev: &str) -> String {
    format!("rvirt-vmm-{vmm_pid}-passt-{netdev}")
}

/// Runs `f` in a private network namespace with a default route.
fn in_routed_netns(f: impl FnOnce() + Send + 'static) {
    rvirt_testkit::netns::in_netns(move || {
        rvirt_testkit::netns::routed();
        f();
    });
}

#[test]
fn dhcp_guest_under_passt_prints_what_it_prints_under_qemu_slirp() {
    if have("passt") {
        in_routed_netns(dhcp_guest_both_ways);
    }
}

fn dhcp_guest_both_ways() {
    let kernel = Guest::Dhcp.path();
    let kernel = kernel.to_str().unwrap();
    let (host, port) = host_socket();
    let append = format!("net.udp=router:{port} net.token=rvirt");
    let child = spawn(&[
        "-M",
        "microvm",
        "-m",
        "128",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        "stdio",
        "-netdev",
        "user,id=n0",
        "-device",
        "virtio-net-device,netdev=n0",
        "-kernel",
        kernel,
        "-append",
        &append,
    ]);
    let pid = child.pid();
    let run = wait(child, LIMIT);
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("DHCP_LEASE_TIME infinite"),
        "{}",
        run.stdout
    );
    assert_eq!(datagram(&host), "rvirt dhcp guest 10.0.2.15 rvirt");
    assert!(
        processes_with(&passt_marker(pid, "n0")).is_empty(),
        "passt outlived the VMM"
    );
    let ours = comparable(&run.stdout);
    assert_eq!(
        ours.last().map(String::as_str),
        Some(&*format!("UDP_SENT 10.0.2.2:{port} 32"))
    );

    if !have("qemu-system-x86_64") {
        return;
    }
    let append = format!("net.udp=router:{port} net.token=qemu7");
    let qemu = Spawned::start(
        die_with_test(&mut Command::new("qemu-system-x86_64"))
            .args([
                "-M",
                "microvm,acpi=off",
                "-enable-kvm",
                "-cpu",
                "qemu64,-pni",
            ])
            .args(["-global", "virtio-mmio.force-legacy=false", "-m", "128"])
            .args([
                "-nodefaults",
                "-no-reboot",
                "-display",
                "none",
                "-serial",
                "stdio",
            ])
            .args(["-device", "isa-debug-exit", "-netdev", "user,id=n0"])
            .args(["-device", "virtio-net-device,netdev=n0", "-kernel", kernel])
            .args(["-append", &append])
            .stdin(Stdio::null()),
    )
    .output(LIMIT);
    let qout = String::from_utf8_lossy(&qemu.stdout);
    assert_eq!(
        qemu.status.code(),
        Some(1),
        "QEMU leaves by isa-debug-exit: {qemu:?}"
    );
    assert!(qout.contains("DHCP_LEASE_TIME 86400"), "{qout}");
    assert_eq!(datagram(&host), "rvirt dhcp guest 10.0.2.15 qemu7");
    assert_eq!(
        ours,
        comparable(&qout),
        "rvirt-vmm with passt vs QEMU with slirp"
    );
}

#[test]
fn user_networking_options_reach_passt() {
    if have("passt") {
        in_routed_netns(options_reach_passt);
    }
}

fn options_reach_passt() {
    // A network of its own, and a forward whose port the test then finds
    // bound by passt.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fwd = probe.local_addr().unwrap().port();
    drop(probe);
    let (host, port) = host_socket();
    let kernel = Guest::Dhcp.path();
    let append = format!("net.udp=router:{port}");
    let netdev = format!(
        "user,id=u1,net=192.168.76.0/24,host=192.168.76.1,dhcpstart=192.168.76.9,\
         dns=192.168.76.53,hostfwd=tcp:127.0.0.1:{fwd}-:22,ipv6=off"
    );
    let dir = tempfile::tempdir().unwrap();
    let serial = dir.path().join("serial");
    let serial_arg = format!("file:{}", serial.display());
    let mut child = Spawned::start(
        die_with_test(&mut Command::new(vmm()))
            .args([
                "-M",
                "microvm",
                "-m",
                "128",
                "-nodefaults",
                "-no-reboot",
                "-S",
            ])
            .args(["-serial", &serial_arg, "-netdev", &netdev])
            .args(["-device", "virtio-net-device,netdev=u1", "-kernel"])
            .arg(&kernel)
            .args(["-append", &append, "-qmp", "stdio"])
            .stdin(Stdio::piped()),
    );
    // Under -S, passt is up before the guest runs: its forward listens.
    let greeting = child.line_with("QMP", LIMIT);
    assert!(greeting.contains("\"QMP\""), "{greeting}");
    std::net::TcpStream::connect(("127.0.0.1", fwd)).expect("hostfwd's port is bound by passt");
    let pids = processes_with(&passt_marker(child.pid(), "u1"));
    assert_eq!(pids.len(), 1, "one passt");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pids[0])).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    for want in [
        "--address 192.168.76.9 --netmask 24",
        "--gateway 192.168.76.1",
        "--dns 192.168.76.53 --dns-forward 192.168.76.53",
        "--ipv4-only",
        &format!("--tcp-ports 127.0.0.1/{fwd}:22"),
    ] {
        assert!(cmdline.contains(want), "{want:?} in {cmdline}");
    }
    std::io::Write::write_all(
        child.stdin(),
        b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"cont\"}\n",
    )
    .unwrap();
    let run = wait(child, LIMIT);
    assert!(run.status.success(), "{}", run.stderr);
    let out = std::fs::read_to_string(&serial).unwrap();
    assert!(out.contains("DHCP_LEASE 192.168.76.9/24"), "{out}");
    assert!(out.contains("DHCP_ROUTER 192.168.76.1"), "{out}");
    assert!(out.contains("DHCP_DNS 192.168.76.53"), "{out}");
    assert_eq!(datagram(&host), "rvirt dhcp guest 192.168.76.9 -");
}

#[test]
fn passt_goes_when_the_vmm_is_killed() {
    if have("passt") {
        in_routed_netns(passt_goes_with_a_killed_vmm);
    }
}

fn passt_goes_with_a_killed_vmm() {
    let kernel = Guest::Dhcp.path();
    let mut child = spawn(&[
        "-M",
        "microvm",
        "-m",
        "128",
        "-nodefaults",
        "-S",
        "-serial",
        "null",
        "-netdev",
        "user,id=k0",
        "-device",
        "virtio-net-device,netdev=k0",
        "-kernel",
        kernel.to_str().unwrap(),
        "-qmp",
        "stdio",
    ]);
    child.line_with("QMP", LIMIT);
    let marker = passt_marker(child.pid(), "k0");
    let pids = processes_with(&marker);
    assert_eq!(pids.len(), 1, "one passt");
    child.signal(libc::SIGKILL);
    child.wait(LIMIT);
    wait_for("passt to go after kill -9 of the VMM", LIMIT, || {
        !Path::new(&format!("/proc/{}", pids[0])).exists()
            || std::fs::read_to_string(format!("/proc/{}/stat", pids[0]))
                .is_ok_and(|s| s.contains(") Z "))
    });
}

#[test]
fn a_stream_peer_that_goes_takes_the_link_down_and_reconnect_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let kernel = Guest::Dhcp.path();
    let netdev = format!(
        "stream,id=s0,server=off,addr.type=unix,addr.path={},reconnect=1",
        path.display()
    );
    let mut child = spawn(&[
        "-M",
        "microvm",
        "-m",
        "128",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        "stdio",
        "-netdev",
        &netdev,
        "-device",
        "virtio-net-device,netdev=s0",
        "-kernel",
        kernel.to_str().unwrap(),
    ]);
    // The first DISCOVER arrives framed: its length, then a broadcast
    // frame from the guest's MAC.
    let discover = |listener: &UnixListener| {
        let mut peer = within_accept(listener);
        peer.set_read_timeout(Some(LIMIT)).unwrap();
        let mut len = [0u8; 4];
        peer.read_exact(&mut len).unwrap();
        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
        peer.read_exact(&mut frame).unwrap();
        assert_eq!(&frame[..6], &[0xff; 6]);
        assert_eq!(&frame[6..12], &[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4");
        assert_eq!(frame.len(), 14 + 20 + 8 + 300, "a DHCP DISCOVER");
        peer
    };
    child.line_with("DHCP_DISCOVER 1", LIMIT);
    let peer = discover(&listener);
    // The peer goes: the VMM stays, and with reconnect=1 comes back for a
    // later attempt.
    drop(peer);
    let again = discover(&listener);
    drop(again);
    drop(listener);
    // Nobody answers: the guest gives up and powers off; the VMM is fine.
    child.line_with("DHCP_FAILED no lease", LIMIT);
    let run = wait(child, LIMIT);
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
}

/// Accepts one connection within the test's limit.
fn within_accept(l: &UnixListener) -> std::os::unix::net::UnixStream {
    let l = l.try_clone().unwrap();
    rvirt_testkit::within("a connection from the VMM", LIMIT, move || {
        l.accept().map(|(s, _)| s)
    })
    .unwrap()
}

#[test]
fn bad_input_gets_one_line() {
    let kernel = Guest::Hello.path();
    let kernel = kernel.to_str().unwrap();
    let fail = |netdev: &str, env: Option<(&str, &str)>| -> String {
        let mut cmd = Command::new(vmm());
        cmd.args(["-M", "microvm", "-nodefaults", "-netdev", netdev])
            .args(["-device", "virtio-net-device,netdev=n0", "-kernel", kernel]);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = rvirt_testkit::run(die_with_test(&mut cmd), LIMIT);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        err.trim_end().to_string()
    };
    assert_eq!(
        fail("user,id=n0,hostfwd=tcp::2222:22", None),
        "rvirt-vmm: -netdev: Invalid host forwarding rule 'tcp::2222:22' (Bad host port separator)"
    );
    assert_eq!(
        fail("user,id=n0", Some(("RVIRT_PASST", "/nonexistent/passt"))),
        "rvirt-vmm: -netdev: netdev 'n0': cannot run /nonexistent/passt \
         (user networking needs Debian's passt): No such file or directory (os error 2)"
    );
    assert_eq!(
        fail(
            "stream,id=n0,addr.type=unix,addr.path=/nonexistent/peer.sock",
            None
        ),
        "rvirt-vmm: -netdev: netdev 'n0': cannot connect to /nonexistent/peer.sock: \
         No such file or directory (os error 2)"
    );
}
