//! A real tap in a private network namespace, set up as rvirtd sets up a
//! NIC's tap (MAC, the bridge's MTU, a bridge port, up), carrying frames
//! both ways with the vnet header in front. Skipped (with a message) where
//! the test cannot create a namespace or a tap, except under
//! RVIRT_REQUIRE_REFERENCE (CI), where that is a failure.

use std::io;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use rvirt_hostnet::testing::{contains, packet_socket};
use rvirt_hostnet::{Interfaces, Offloads, Tap, VNET_HDR_LEN};

const TAP: &str = "rvtest%d";
const BRIDGE: &str = "rvbr0";
const ETHERTYPE: [u8; 2] = [0x88, 0xb5]; // IEEE local experimental
const MAC: [u8; 6] = [0xfe, 0x54, 0x00, 0xab, 0xcd, 0xef];

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run() -> Result<(), String> {
    // SAFETY: unshare takes a flag; it moves only this thread into a new,
    // empty network namespace, so the host's interfaces are never touched.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {}",
            io::Error::last_os_error()
        ));
    }
    let tap = Tap::open(TAP).map_err(|e| format!("tap: {e}"))?;
    let name = tap.name().to_string();
    assert_eq!(name, "rvtest0", "the kernel completes %d");
    tap.set_offloads(Offloads {
        csum: true,
        tso4: true,
        tso6: true,
    })
    .expect("TUNSETOFFLOAD with every offload");

    let ifs = Interfaces::new().unwrap();
    ifs.set_mac(&name, MAC).unwrap();
    // `ip` runs in this thread's namespace (the child inherits it).
    ip(&[
        "link", "add", "name", BRIDGE, "mtu", "1400", "type", "bridge",
    ])?;
    let mtu = ifs.mtu(BRIDGE).unwrap();
    assert_eq!(mtu, 1400);
    ifs.set_mtu(&name, mtu).unwrap();
    ifs.add_bridge_port(BRIDGE, &name).unwrap();
    ifs.set_up(&name).unwrap();
    ifs.set_up(BRIDGE).unwrap();
    let shown = ip(&["-o", "link", "show", &name])?;
    for want in ["mtu 1400", "master rvbr0", "fe:54:00:ab:cd:ef", ",UP"] {
        assert!(shown.contains(want), "{want} missing from: {shown}");
    }
    let e = ifs.add_bridge_port("rvnobridge", &name).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENODEV));

    let pkt = packet_socket(&name).map_err(|e| format!("packet socket: {e}"))?;

    // Reader of the tap -> the link: a broadcast frame behind a plain
    // (no offload) vnet header.
    let mut frame = vec![0u8; VNET_HDR_LEN];
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&[0x52, 0x54, 0, 1, 2, 3]);
    frame.extend_from_slice(&ETHERTYPE);
    frame.extend_from_slice(b"rvirt-tap-to-link");
    assert_eq!(tap.send(&frame).unwrap(), frame.len());
    let mut buf = vec![0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "frame never reached the link");
        // SAFETY: recv writes at most buf.len() bytes into buf.
        let n = unsafe { libc::recv(pkt.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n > 0 && contains(&buf[..n as usize], b"rvirt-tap-to-link") {
            // The link sees the Ethernet frame, without the vnet header.
            assert_eq!(&buf[..6], &[0xff; 6]);
            break;
        }
    }

    // The link -> the tap's reader, with a vnet header in front. IPv6
    // chatter may come first.
    let mut eth = MAC.to_vec();
    eth.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    eth.extend_from_slice(&ETHERTYPE);
    eth.extend_from_slice(b"rvirt-link-to-tap");
    // SAFETY: send reads eth.len() bytes from eth.
    let sent = unsafe { libc::send(pkt.as_raw_fd(), eth.as_ptr().cast(), eth.len(), 0) };
    assert_eq!(sent, eth.len() as isize, "{}", io::Error::last_os_error());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "frame never reached the tap");
        match tap.recv(&mut buf) {
            Ok(n) if n == VNET_HDR_LEN + eth.len() && buf[VNET_HDR_LEN..n] == eth[..] => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("tap read: {e}"),
        }
    }

    // Its descriptor adopted again is the same tap.
    let again = Tap::from_fd(std::os::fd::OwnedFd::from(tap)).unwrap();
    assert_eq!(again.name(), name);
    Ok(())
}

#[test]
fn a_bridged_tap_in_a_private_namespace_carries_frames_both_ways() {
    match std::thread::spawn(run).join().unwrap() {
        Ok(()) => {}
        Err(why) if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() => {
            panic!("cannot set up a tap here ({why}) and RVIRT_REQUIRE_REFERENCE is set")
        }
        Err(why) => eprintln!("skipped: cannot set up a tap here ({why})"),
    }
}

/// A virtual network's bridge as the network driver makes it, checked
/// with `ip`, in a namespace of its own.
fn bridge() -> Result<(), String> {
    // SAFETY: unshare takes a flag; it moves only this thread into a new,
    // empty network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {}",
            io::Error::last_os_error()
        ));
    }
    let ifs = Interfaces::new().unwrap();
    ifs.create_bridge("rvnet0")
        .map_err(|e| format!("create bridge: {e}"))?;
    let e = ifs.create_bridge("rvnet0").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST), "a name in use");
    assert!(ifs.exists("rvnet0"));
    ifs.set_mac("rvnet0", MAC).unwrap();
    ifs.set_bridge_forward_delay("rvnet0", 3).unwrap();
    ifs.set_bridge_stp("rvnet0", true).unwrap();
    ifs.add_address("rvnet0", "10.66.0.1".parse().unwrap(), 24)
        .unwrap();
    ifs.add_address("rvnet0", "fd66::1".parse().unwrap(), 64)
        .unwrap();
    ifs.set_up("rvnet0").unwrap();
    let link = ip(&["-d", "-o", "link", "show", "rvnet0"])?;
    for want in [
        "stp_state 1",
        "forward_delay 300",
        "fe:54:00:ab:cd:ef",
        ",UP",
    ] {
        assert!(link.contains(want), "{want} missing from: {link}");
    }
    let addrs = ip(&["-o", "addr", "show", "rvnet0"])?;
    assert!(
        addrs.contains("inet 10.66.0.1/24 brd 10.66.0.255"),
        "{addrs}"
    );
    assert!(addrs.contains("inet6 fd66::1/64"), "{addrs}");
    ifs.delete_bridge("rvnet0")
        .map_err(|e| format!("delete bridge: {e}"))?;
    assert!(!ifs.exists("rvnet0"));
    Ok(())
}

#[test]
fn a_network_bridge_with_its_addresses_in_a_private_namespace() {
    match std::thread::spawn(bridge).join().unwrap() {
        Ok(()) => {}
        Err(why) if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() => {
            panic!("cannot make a bridge here ({why}) and RVIRT_REQUIRE_REFERENCE is set")
        }
        Err(why) => eprintln!("skipped: cannot make a bridge here ({why})"),
    }
}
