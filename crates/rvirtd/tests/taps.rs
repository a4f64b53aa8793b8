//! The host taps rvirtd makes for a domain's NICs, through the real virsh:
//! named vnetN or `<target dev>`, MAC fe:…, up, a port of the bridge,
//! passed to the VMM as `fd=3…`, shown in the live XML, gone with the VM.
//! Failed starts (no bridge, no /dev/net/tun, a name too long, a network)
//! fail as libvirt does and leave no tap. Each test that makes links runs
//! in a private network namespace (rvirtd, its VMMs and `ip` inherit it),
//! so the host is untouched; where one cannot be made the test is skipped,
//! unless RVIRT_REQUIRE_REFERENCE is set.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{domain_xml, have_virsh, Rvirtd};
use rvirt_remote::calls::{DomainArgs, DomainDefineXmlArgs};
use rvirt_remote::error::code;
use rvirt_remote::{procs, ClientError};
use rvirt_test_guests::Guest;
use rvirt_testkit::netns::{in_namespaces, in_netns};
use rvirt_testkit::{run, wait_for};

/// How long one `ip` command may take.
const IP_LIMIT: Duration = Duration::from_secs(30);

fn ip(args: &[&str]) {
    let out = run(Command::new("ip").args(args), IP_LIMIT);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ip -d link show dev NAME` as JSON, or None when there is no such link.
fn link(name: &str) -> Option<serde_json::Value> {
    let out = run(
        Command::new("ip").args(["-j", "-d", "link", "show", "dev", name]),
        IP_LIMIT,
    );
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
    v.get(0).cloned()
}

/// The names of all links in this namespace.
fn links() -> Vec<String> {
    let out = run(Command::new("ip").args(["-j", "link", "show"]), IP_LIMIT);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect()
}

fn is_up(l: &serde_json::Value) -> bool {
    l["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == "UP"))
}

fn wait_gone(name: &str) {
    wait_for(
        &format!("{name} to go away"),
        Duration::from_secs(10),
        || link(name).is_none(),
    );
}

/// A counter guest with `nics` in its devices.
fn with_nics(name: &str, nics: &str) -> String {
    domain_xml(name, Guest::Counter).replace("</devices>", &format!("{nics}\n  </devices>"))
}

#[test]
fn bridge_nic_is_a_vnet_tap_on_the_bridge() {
    if !have_virsh() {
        return;
    }
    in_netns(|| {
        ip(&["link", "add", "br0", "type", "bridge"]);
        ip(&["link", "set", "br0", "mtu", "1400"]);
        let mut d = Rvirtd::start();
        let f = d.xml_file(
            "b.xml",
            &with_nics(
                "br",
                "<interface type='bridge'><mac address='52:54:00:12:34:56'/>\
                 <source bridge='br0'/><model type='virtio'/></interface>",
            ),
        );
        d.ok(&["define", &f]);
        d.ok(&["start", "br"]);
        d.wait_log("br", "COUNT 1");
        assert_eq!(d.state("br"), "running (booted)");
        assert!(d.log("br").contains("-netdev tap,id=hostnet0,fd=3 "));

        let l = link("vnet0").expect("vnet0 exists while the VM runs");
        assert_eq!(l["master"], "br0", "{l}");
        assert!(is_up(&l), "{l}");
        assert_eq!(l["address"], "fe:54:00:12:34:56");
        assert_eq!(l["mtu"], 1400, "the bridge's MTU, as libvirt sets it");
        assert_eq!(l["linkinfo"]["info_kind"], "tun", "{l}");

        // The live XML names the tap; the stored definition does not.
        let live = d.ok(&["dumpxml", "br"]);
        assert!(live.contains("<target dev='vnet0'/>"), "{live}");
        let inactive = d.ok(&["dumpxml", "--inactive", "br"]);
        assert!(!inactive.contains("<target dev="), "{inactive}");
        let iflist = d.ok(&["domiflist", "br"]);
        let row: Vec<&str> = iflist
            .lines()
            .find(|l| l.contains("52:54:00:12:34:56"))
            .expect("the NIC's row")
            .split_whitespace()
            .collect();
        assert_eq!(
            row,
            ["vnet0", "bridge", "br0", "virtio", "52:54:00:12:34:56"],
            "{iflist}"
        );
        // domifstat reads the tap's counters as libvirt does, swapped:
        // what the tap sent, the guest received.
        // This thread's namespace (sysfs and /proc/self show the host's).
        let tap_stat = |column: usize| -> u64 {
            std::fs::read_to_string("/proc/thread-self/net/dev")
                .unwrap()
                .lines()
                .find_map(|l| l.trim_start().strip_prefix("vnet0:"))
                .and_then(|r| r.split_whitespace().nth(column)?.parse().ok())
                .expect("vnet0 in /proc/net/dev")
        };
        let (sent, got) = (tap_stat(9), tap_stat(1));
        for name in ["vnet0", "52:54:00:12:34:56"] {
            let stats = d.ok(&["domifstat", "br", name]);
            let field = |f: &str| -> u64 {
                stats
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name} {f} ")))
                    .unwrap_or_else(|| panic!("{f} missing: {stats}"))
                    .trim()
                    .parse()
                    .unwrap()
            };
            assert!(field("rx_packets") >= sent, "{stats}");
            assert!(field("tx_packets") >= got, "{stats}");
        }
        assert!(d
            .fails(&["domifstat", "br", "vnet7"])
            .contains("'vnet7' is not a known interface"));

        // A restarted daemon adopts the VM with its live XML; the tap is
        // the VMM's alone, so it stays.
        d.kill9();
        d.spawn();
        d.wait_state("br", "running (booted)");
        assert!(d.ok(&["dumpxml", "br"]).contains("<target dev='vnet0'/>"));
        assert!(link("vnet0").is_some());

        // Defining the live XML (what `virsh edit` of a running domain
        // and `dumpxml > f; define f` do) forgets the generated name, as
        // libvirt does, so the next start gets a fresh tap.
        let live_file = d.xml_file("live.xml", &d.ok(&["dumpxml", "br"]));
        d.ok(&["define", &live_file]);
        let stored = d.ok(&["dumpxml", "--inactive", "br"]);
        assert!(!stored.contains("<target dev="), "{stored}");

        d.ok(&["destroy", "br"]);
        wait_gone("vnet0");
        assert!(!d.ok(&["dumpxml", "br"]).contains("<target dev="));
        // Started again, the kernel's first free name again.
        d.ok(&["start", "br"]);
        assert_eq!(link("vnet0").expect("vnet0 again")["master"], "br0");
        d.ok(&["destroy", "br"]);
        wait_gone("vnet0");
    });
}

#[test]
fn ethernet_nics_named_and_unnamed() {
    if !have_virsh() {
        return;
    }
    in_netns(|| {
        let d = Rvirtd::start();
        let f = d.xml_file(
            "e.xml",
            &with_nics(
                "eth",
                "<interface type='ethernet'><mac address='52:54:00:00:00:01'/>\
                 <target dev='rvtap0'/><model type='virtio'/></interface>\n\
                 <interface type='ethernet'><mac address='52:54:00:00:00:02'/>\
                 <model type='virtio'/></interface>",
            ),
        );
        d.ok(&["define", &f]);
        d.ok(&["start", "eth"]);
        d.wait_log("eth", "COUNT 1");
        let log = d.log("eth");
        assert!(log.contains("-netdev tap,id=hostnet0,fd=3 "), "{log}");
        assert!(log.contains("-netdev tap,id=hostnet1,fd=4 "), "{log}");
        assert!(!log.contains("ifname="), "{log}");

        let named = link("rvtap0").expect("rvtap0 exists");
        assert!(is_up(&named), "{named}");
        assert!(named.get("master").is_none(), "{named}");
        assert_eq!(named["address"], "fe:54:00:00:00:01");
        let unnamed = link("vnet0").expect("vnet0 exists");
        assert!(is_up(&unnamed), "{unnamed}");
        assert_eq!(unnamed["address"], "fe:54:00:00:00:02");

        let live = d.ok(&["dumpxml", "eth"]);
        assert!(live.contains("<target dev='rvtap0'/>"), "{live}");
        assert!(live.contains("<target dev='vnet0'/>"), "{live}");
        // domxml-to-native shows the derived command line, not fds.
        let native = d.ok(&["domxml-to-native", "qemu-argv", "--domain", "eth"]);
        assert!(native.contains("tap,id=hostnet0,ifname=rvtap0"), "{native}");
        assert!(!native.contains("fd="), "{native}");

        d.ok(&["destroy", "eth"]);
        wait_gone("rvtap0");
        wait_gone("vnet0");
    });
}

#[test]
fn failed_tap_setup_fails_the_start_and_leaves_no_tap() {
    if !have_virsh() {
        return;
    }
    in_netns(|| {
        let d = Rvirtd::start();
        let before = links();
        let f = d.xml_file(
            "n.xml",
            &with_nics(
                "nobr",
                "<interface type='bridge'><source bridge='br0'/><model type='virtio'/></interface>",
            ),
        );
        d.ok(&["define", &f]);
        let err = d.fails(&["start", "nobr"]);
        assert!(
            err.contains("error: Cannot get interface MTU on 'br0': No such device"),
            "{err}"
        );
        assert_eq!(d.state("nobr"), "shut off (failed)");

        let f = d.xml_file(
            "l.xml",
            &with_nics(
                "long",
                "<interface type='ethernet'><target dev='abcdefghijklmnop'/>\
                 <model type='virtio'/></interface>",
            ),
        );
        d.ok(&["define", &f]);
        let err = d.fails(&["start", "long"]);
        assert!(
            err.contains(
                "error: Network interface name 'abcdefghijklmnop' is too long: \
                 Numerical result out of range"
            ),
            "{err}"
        );
        assert_eq!(d.state("long"), "shut off (failed)");
        // The tap made before the bridge lookup failed went with it.
        wait_for("no new link", Duration::from_secs(10), || links() == before);

        // Once the bridge exists the same definition starts.
        ip(&["link", "add", "br0", "type", "bridge"]);
        d.ok(&["start", "nobr"]);
        assert_eq!(link("vnet0").expect("vnet0")["master"], "br0");
        d.ok(&["destroy", "nobr"]);
        wait_gone("vnet0");
    });
}

/// Hides /dev/net/tun from this thread (in its own mount namespace) and
/// what it starts, with an empty tmpfs over /dev/net.
fn hide_dev_net() {
    let c = |s: &str| std::ffi::CString::new(s).unwrap();
    let (root, dev_net, tmpfs) = (c("/"), c("/dev/net"), c("tmpfs"));
    // SAFETY: NUL-terminated strings that outlive the calls; the first
    // mount only changes propagation (so nothing leaks to the host's
    // namespace), the second mounts over /dev/net in this namespace only.
    unsafe {
        assert_eq!(
            libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null()
            ),
            0,
            "{}",
            std::io::Error::last_os_error()
        );
        assert_eq!(
            libc::mount(
                tmpfs.as_ptr(),
                dev_net.as_ptr(),
                tmpfs.as_ptr(),
                0,
                std::ptr::null()
            ),
            0,
            "{}",
            std::io::Error::last_os_error()
        );
    }
    assert!(!std::path::Path::new("/dev/net/tun").exists());
}

#[test]
fn missing_tun_device_fails_the_start() {
    if !have_virsh() {
        return;
    }
    in_namespaces(libc::CLONE_NEWNET | libc::CLONE_NEWNS, || {
        hide_dev_net();
        let d = Rvirtd::start();
        let f = d.xml_file(
            "t.xml",
            &with_nics(
                "notun",
                "<interface type='ethernet'><model type='virtio'/></interface>",
            ),
        );
        d.ok(&["define", &f]);
        let err = d.fails(&["start", "notun"]);
        assert!(
            err.contains(
                "error: Unable to open /dev/net/tun, is tun module loaded?: \
                 No such file or directory"
            ),
            "{err}"
        );
        assert_eq!(d.state("notun"), "shut off (failed)");
    });
}

/// No tap is made for a network NIC (rvirtd has no network driver), so
/// this needs no namespace.
#[test]
fn network_nic_is_libvirts_network_not_found() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let xml = with_nics(
        "net",
        "<interface type='network'><source network='default'/><model type='virtio'/></interface>",
    );
    let f = d.xml_file("net.xml", &xml);
    d.ok(&["define", &f]);
    let err = d.fails(&["start", "net"]);
    assert!(
        err.contains("error: Network not found: no network with matching name 'default'"),
        "{err}"
    );
    assert_eq!(d.state("net"), "shut off (failed)");

    let c = d.client();
    let dom = c
        .call::<procs::DomainDefineXml>(&DomainDefineXmlArgs { xml })
        .expect("define")
        .dom;
    match c.call::<procs::DomainCreate>(&DomainArgs { dom }) {
        Err(ClientError::Remote(e)) => {
            assert_eq!(e.code, code::NO_NETWORK);
            // VIR_FROM_NETWORK: the network driver's lookup fails.
            assert_eq!(e.domain, 19);
        }
        other => panic!("start should fail: {other:?}"),
    }
}

/// `<interface model='e1000e'>` on a q35 domain, as virt-install gives q35
/// guests: rvirtd places it behind a root port as libvirt does, and the
/// e1000e test guest finds the card there, reads its MAC, sends a frame
/// that reaches the bridge and receives the one the test sends back.
#[test]
fn e1000e_on_q35_carries_frames_through_the_bridge() {
    use std::os::fd::AsRawFd;
    if !have_virsh() {
        return;
    }
    in_netns(|| {
        ip(&["link", "add", "br0", "type", "bridge"]);
        ip(&["link", "set", "br0", "up"]);
        let pkt = rvirt_hostnet::testing::packet_socket("br0").expect("packet socket");
        let d = Rvirtd::start();
        let xml = domain_xml("nic", Guest::E1000e)
            .replace("machine='microvm'", "machine='q35'")
            .replace(
                "</devices>",
                "<interface type='bridge'><mac address='52:54:00:12:34:56'/>\
                 <source bridge='br0'/><model type='e1000e'/></interface>\n  </devices>",
            );
        let f = d.xml_file("n.xml", &xml);
        d.ok(&["define", &f]);
        let defined = d.ok(&["dumpxml", "--inactive", "nic"]);
        assert!(defined.contains("<model type='e1000e'/>"), "{defined}");
        assert!(defined.contains("model='pcie-root-port'"), "{defined}");
        d.ok(&["start", "nic"]);
        d.wait_log("nic", "TX_DONE");
        let log = d.log("nic");
        assert!(
            log.contains(r#""driver":"e1000e","netdev":"hostnet0""#),
            "{log}"
        );
        assert!(log.contains("MAC 52:54:00:12:34:56"), "{log}");
        // The guest's broadcast on the bridge.
        let mut buf = vec![0u8; 2048];
        let payload = b"hello from the e1000e guest";
        poll_frame(&pkt, &mut buf, payload, &d);
        // The answer to its MAC, through the bridge to vnet0.
        let mut reply = vec![
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 2, 0, 0, 0, 0, 1, 0x88, 0xb5,
        ];
        reply.extend_from_slice(b"hello from the host");
        reply.resize(60, 0);
        // SAFETY: send reads reply.len() bytes from reply.
        let sent = unsafe { libc::send(pkt.as_raw_fd(), reply.as_ptr().cast(), reply.len(), 0) };
        assert_eq!(sent, reply.len() as isize);
        d.wait_log("nic", "RX_PAYLOAD hello from the host");
        d.wait_log("nic", "ICR_TXQ0 1 ICR_RXQ0 1");
    });
}

/// Waits (10 s at most) for a frame holding `payload` on `pkt`.
fn poll_frame(pkt: &std::os::fd::OwnedFd, buf: &mut [u8], payload: &[u8], d: &Rvirtd) {
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        // SAFETY: recv writes at most buf.len() bytes into buf.
        let n = unsafe {
            libc::recv(
                pkt.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n > 0 && rvirt_hostnet::testing::contains(&buf[..n as usize], payload) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no guest frame on br0; log:\n{}",
            d.log("nic")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
