//! User-mode networking through rvirtd and the real virsh and virt-install:
//! `<interface type='user'>` with `<backend type='passt'/>` (rvirtd runs
//! passt as libvirt does) and without it (libvirt's `-netdev user`, which
//! rvirtd serves with a passt told slirp's addressing). Confinement is on
//! (the default): passt is jailed as the VM's user in the VM's cgroup, the
//! VMM gets its end of passt's socket (`-netdev stream` on a passed fd). The `dhcp` guest gets its lease and its datagram reaches a
//! UDP socket on the host; no passt is left after the domain stops, however
//! it stops (power-off, destroy, kill -9 of the VMM), and a restarted
//! rvirtd adopts a running one. passt copies the network of its namespace,
//! so each test runs in a private one with a default route (rvirt-testkit's
//! `netns`).

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{have_virsh, kernel_xml, Rvirtd};
use rvirt_test_guests::Guest;
use rvirt_testkit::{netns, run, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

fn have_passt() -> bool {
    let found = Command::new(rvirt_hostnet::passt::program())
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "passt is required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("passt not installed: test skipped");
    }
    found
}

fn in_routed_netns(f: impl FnOnce() + Send + 'static) {
    netns::in_netns(move || {
        netns::routed();
        f();
    });
}

/// A daemon whose tree can be searched by passt, which drops to nobody
/// when started as root, as /run can (a test's temporary directory is
/// private).
fn daemon() -> Rvirtd {
    let d = Rvirtd::start();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// A microvm domain booting the `dhcp` guest with one user-mode NIC
/// (`backend`: extra elements in it), sending its datagram to the router's
/// `port`.
fn user_domain(name: &str, port: u16, backend: &str) -> String {
    kernel_xml(name, &Guest::Dhcp.path().to_string_lossy())
        .replace(
            "<cmdline>console=ttyS0</cmdline>",
            &format!("<cmdline>console=ttyS0 net.udp=router:{port} net.token={name}</cmdline>"),
        )
        .replace(
            "<controller type='usb' model='none'/>",
            &format!(
                "<interface type='user'>{backend}<mac address='52:54:00:0a:0b:0c'/>\
                 <model type='virtio'/></interface>\n    <controller type='usb' model='none'/>"
            ),
        )
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

/// The pids of live (not zombie) processes whose command line, its
/// arguments joined by spaces, contains `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(marker)
            })
        })
        .collect()
}

/// What passt's command line says for domain `name`'s first NIC: its pid
/// file, in the domain's own passt directory.
fn passt_socket(d: &Rvirtd, name: &str) -> String {
    format!(
        "--pid {}",
        d.root()
            .join(format!("run/rvirt/passt/{name}/{name}-net0.pid"))
            .display()
    )
}

fn wait_no_passt(marker: &str) {
    wait_for(&format!("no passt on {marker}"), LIMIT, || {
        processes_with(marker).is_empty()
    });
}

/// A line of /proc/PID/status, without its name.
fn status_field(pid: i32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// passt runs as its VM's user and group (not root, not nobody, as
/// unconfined), in its VM's cgroup, as rvirtd confines it. (Its
/// capabilities say nothing here: passt's own user namespace gives it a
/// full set inside.)
fn assert_confined_beside_its_vmm(passt: i32, vmm: i32) {
    let uid = status_field(vmm, "Uid:");
    assert!(!uid.starts_with("0\t"), "the VMM runs as root: {uid}");
    assert_eq!(status_field(passt, "Uid:"), uid);
    assert_eq!(status_field(passt, "Gid:"), status_field(vmm, "Gid:"));
    let cgroup = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(cgroup(passt), cgroup(vmm));
    assert!(cgroup(passt).contains("/rvirt/"), "{}", cgroup(passt));
}

/// The VMM's pid from `virsh dominfo`'s runtime record, read from the tree.
fn vmm_pid(d: &Rvirtd, name: &str) -> i32 {
    let rec =
        std::fs::read_to_string(d.root().join(format!("run/rvirt/qemu/{name}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&rec).unwrap();
    v["pid"].as_i64().unwrap() as i32
}

#[test]
fn passt_backend_gives_a_lease_and_goes_with_the_domain() {
    if !have_virsh() || !have_passt() {
        return;
    }
    in_routed_netns(|| {
        let d = daemon();
        let (host, port) = host_socket();
        let xml = user_domain("up", port, "<backend type='passt'/>");
        d.ok(&["define", &d.xml_file("up.xml", &xml)]);
        d.ok(&["start", "up"]);
        // passt copies the namespace's network: the guest gets its address
        // and router, and the router's address reaches the host.
        assert_eq!(datagram(&host), "rvirt dhcp guest 192.0.2.2 up");
        d.wait_log("up", "UDP_SENT 192.0.2.1");
        let log = d.log("up");
        assert!(log.contains("DHCP_LEASE 192.0.2.2/24"), "{log}");
        assert!(log.contains("DHCP_ROUTER 192.0.2.1"), "{log}");
        // libvirt's passt command line, in the domain log.
        let socket = passt_socket(&d, "up");
        assert!(
            log.contains(&format!(
                "passt --one-off --fd 3 --foreground --quiet {socket}"
            )),
            "{log}"
        );
        // The VMM gets its end of passt's socket, no path.
        assert!(
            log.contains(r#"-netdev {"type":"stream","addr":{"type":"fd","str":"#),
            "{log}"
        );
        // The guest powers off: the domain stops and its passt is gone.
        d.wait_state("up", "shut off (shutdown)");
        wait_no_passt(&socket);

        // destroy of a paused domain.
        d.ok(&["start", "--paused", "up"]);
        assert_eq!(processes_with(&socket).len(), 1, "one passt");
        assert_confined_beside_its_vmm(processes_with(&socket)[0], vmm_pid(&d, "up"));
        d.ok(&["destroy", "up"]);
        wait_no_passt(&socket);

        // kill -9 of the VMM: the domain crashed, and no passt is left.
        d.ok(&["start", "--paused", "up"]);
        let vmm = vmm_pid(&d, "up");
        // SAFETY: kill only sends a signal to the VMM's pid.
        assert_eq!(unsafe { libc::kill(vmm, libc::SIGKILL) }, 0);
        d.wait_state("up", "shut off (crashed)");
        wait_no_passt(&socket);
    });
}

#[test]
fn a_restarted_rvirtd_adopts_passt_with_the_vm() {
    if !have_virsh() || !have_passt() {
        return;
    }
    in_routed_netns(|| {
        let mut d = daemon();
        let xml = user_domain("ad", 9, "<backend type='passt'/>");
        d.ok(&["define", &d.xml_file("ad.xml", &xml)]);
        d.ok(&["start", "--paused", "ad"]);
        let socket = passt_socket(&d, "ad");
        let before = processes_with(&socket);
        assert_eq!(before.len(), 1, "one passt");
        d.kill9();
        d.spawn();
        d.wait_state("ad", "paused (user)");
        assert_eq!(processes_with(&socket), before, "the same passt, adopted");
        // The VMM dies while rvirtd is away: the restarted daemon marks it
        // crashed and stops the passt it left.
        let vmm = vmm_pid(&d, "ad");
        d.kill9();
        // SAFETY: kill only sends a signal to the VMM's pid.
        assert_eq!(unsafe { libc::kill(vmm, libc::SIGKILL) }, 0);
        d.spawn();
        d.wait_state("ad", "shut off (crashed)");
        wait_no_passt(&socket);
    });
}

#[test]
fn user_without_passt_backend_is_slirps_network() {
    if !have_virsh() || !have_passt() {
        return;
    }
    in_routed_netns(|| {
        let d = daemon();
        let (host, port) = host_socket();
        let xml = user_domain(
            "us",
            port,
            "<ip family='ipv4' address='10.0.9.0' prefix='24'/>",
        );
        d.ok(&["define", &d.xml_file("us.xml", &xml)]);
        let native = d.ok(&["domxml-to-native", "qemu-argv", "--domain", "us"]);
        assert!(
            native.contains(r#"{"type":"user","net":"10.0.9.0/24","id":"hostnet0"}"#),
            "{native}"
        );
        d.ok(&["start", "--paused", "us"]);
        // rvirtd runs this passt too, jailed beside the confined VMM (which
        // could not run it), told slirp's addressing.
        let marker = passt_socket(&d, "us");
        assert_eq!(processes_with(&marker).len(), 1, "one passt");
        assert_confined_beside_its_vmm(processes_with(&marker)[0], vmm_pid(&d, "us"));
        d.ok(&["resume", "us"]);
        assert_eq!(datagram(&host), "rvirt dhcp guest 10.0.9.15 us");
        d.wait_state("us", "shut off (shutdown)");
        wait_no_passt(&marker);
        let log = d.log("us");
        assert!(log.contains("DHCP_ROUTER 10.0.9.2"), "{log}");
        assert!(
            log.contains("--address 10.0.9.15 --netmask 24 --gateway 10.0.9.2 --dns 10.0.9.3"),
            "{log}"
        );
        assert!(!log.contains(r#""type":"user""#), "{log}");
    });
}

#[test]
fn virt_install_network_user_creates_a_domain_that_starts() {
    if !have_virsh() || !have_passt() {
        return;
    }
    let found = run(Command::new("virt-install").arg("--version"), LIMIT)
        .status
        .success();
    if !found {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "virt-install is required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("virt-install not installed: test skipped");
        return;
    }
    in_routed_netns(|| {
        let d = daemon();
        let (host, port) = host_socket();
        let kernel = Guest::Dhcp.path();
        let boot = format!(
            "kernel={},kernel_args=console=ttyS0 net.udp=router:{port} net.token=vi",
            kernel.display()
        );
        let out = run(
            Command::new("virt-install")
                .args(["--connect", &d.uri(), "--name", "vi", "--memory", "128"])
                .args(["--osinfo", "generic", "--network", "user,model=virtio"])
                // virt-install's own choice is the host model's name from
                // the domain capabilities, which rvirt-vmm does not know.
                .args(["--cpu", "qemu64"])
                .args([
                    "--boot",
                    &boot,
                    "--import",
                    "--disk",
                    "none",
                    "--graphics",
                    "none",
                ])
                .arg("--noautoconsole"),
            LIMIT,
        );
        assert!(
            out.status.success(),
            "virt-install: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            d.daemon_log_tail()
        );
        assert_eq!(datagram(&host), "rvirt dhcp guest 10.0.2.15 vi");
        let xml = d.ok(&["dumpxml", "vi"]);
        assert!(xml.contains("<interface type='user'>"), "{xml}");
        assert!(Path::new(&d.root().join("etc/rvirt/qemu/vi.xml")).exists());
    });
}

#[test]
fn bad_user_networking_is_refused_with_its_reason() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start_with_env(&[], &[("RVIRT_PASST", "/nonexistent/passt")]);
    // A malformed <portForward> is refused at define, with its line, and
    // nothing is defined.
    let bad = user_domain(
        "bf",
        9,
        "<backend type='passt'/>\
         <portForward proto='sctp'><range start='2222'/></portForward>",
    );
    let err = d.fails(&["define", &d.xml_file("bf.xml", &bad)]);
    assert!(
        err.contains("invalid protocol 'sctp' in <portForward>"),
        "{err}"
    );
    assert!(err.contains("line "), "{err}");
    d.fails(&["dominfo", "bf"]);
    // passt missing: the start fails naming it in one line, and the
    // domain stays shut off with no VMM started.
    let xml = user_domain("np", 9, "<backend type='passt'/>");
    d.ok(&["define", &d.xml_file("np.xml", &xml)]);
    let err = d.fails(&["start", "np"]);
    let reason: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("Could not start 'passt'"))
        .collect();
    assert_eq!(reason.len(), 1, "{err}");
    assert!(reason[0].contains("/nonexistent/passt"), "{err}");
    assert_eq!(d.state("np"), "shut off (failed)");
    assert!(!d.root().join("run/rvirt/qemu/np.json").exists());
    let socket = passt_socket(&d, "np");
    assert!(processes_with(&socket).is_empty());
}

#[test]
fn passt_log_file_is_lent_to_the_vm_and_unconfined_passt_still_serves() {
    if !have_virsh() || !have_passt() {
        return;
    }
    in_routed_netns(|| {
        // Confined: a <backend logFile> is created, given to the VM's user
        // while it runs (passt opens it inside its jail), and given back.
        let d = daemon();
        let logs = tempfile::tempdir().unwrap();
        let file = logs.path().join("passt.log");
        let xml = user_domain(
            "lf",
            9,
            &format!("<backend type='passt' logFile='{}'/>", file.display()),
        );
        d.ok(&["define", &d.xml_file("lf.xml", &xml)]);
        d.ok(&["start", "--paused", "lf"]);
        let marker = passt_socket(&d, "lf");
        assert_eq!(processes_with(&marker).len(), 1, "one passt");
        use std::os::unix::fs::MetadataExt;
        let uid = status_field(vmm_pid(&d, "lf"), "Uid:");
        let owner = std::fs::metadata(&file).unwrap().uid();
        assert!(uid.starts_with(&format!("{owner}\t")), "{owner} vs {uid}");
        d.ok(&["destroy", "lf"]);
        wait_no_passt(&marker);
        assert_eq!(std::fs::metadata(&file).unwrap().uid(), 0);

        // Unconfined: the same passt, unjailed, on a socketpair.
        let d = Rvirtd::start_with(&["--unconfined"]);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let (host, port) = host_socket();
        let xml = user_domain("uc", port, "");
        d.ok(&["define", &d.xml_file("uc.xml", &xml)]);
        d.ok(&["start", "uc"]);
        assert_eq!(datagram(&host), "rvirt dhcp guest 10.0.2.15 uc");
        d.wait_state("uc", "shut off (shutdown)");
        wait_no_passt(&passt_socket(&d, "uc"));
    });
}
