//! A real TAP in a private network namespace: a guest frame reaches the
//! interface and a frame sent on the interface reaches the guest. Skipped
//! (with a message) where the test cannot create a namespace or a tap.

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

use super::super::testing::{contains, link_up, packet_socket};
use super::super::*;
use crate::test_util::*;

const IFNAME: &str = "rvtest0";
const ETHERTYPE: [u8; 2] = [0x88, 0xb5]; // IEEE local experimental
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];

fn run() -> Result<(), String> {
    // SAFETY: unshare takes a flag; it moves only this thread into a new,
    // empty network namespace, so the host's interfaces are never touched.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {}",
            io::Error::last_os_error()
        ));
    }
    let tap = Tap::open(IFNAME).map_err(|e| format!("tap: {e}"))?;
    assert_eq!(tap.name(), IFNAME);
    link_up(IFNAME).map_err(|e| format!("link up: {e}"))?;
    let pkt = packet_socket(IFNAME).map_err(|e| format!("packet socket: {e}"))?;

    let mem = memory();
    let rx = MockSplitQueue::create(&mem, GuestAddress(0), 64);
    let tx = MockSplitQueue::create(&mem, GuestAddress(0x1_0000), 64);
    let mut net = Net::new(Box::new(tap), MAC);
    activate(&mut net, &mem, &[&rx, &tx], OFFLOAD_FEATURES);
    assert!(
        net.link_up(),
        "TUNSETOFFLOAD with all guest offloads failed"
    );

    // Guest → interface: a broadcast frame with a plain (no offload) header.
    let mut frame = vec![0u8; HDR_LEN];
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&MAC);
    frame.extend_from_slice(&ETHERTYPE);
    frame.extend_from_slice(b"rvirt-guest-to-host");
    mem.write_slice(&frame, GuestAddress(DATA)).unwrap();
    add_chain(&tx, 0, &[(DATA, frame.len() as u32, 0)]);
    net.process_queue(TX_QUEUE);
    assert!(net.link_up());
    let mut buf = vec![0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(
            Instant::now() < deadline,
            "guest frame never reached the tap"
        );
        // SAFETY: recv writes at most buf.len() bytes into buf.
        let n = unsafe { libc::recv(pkt.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n > 0 && contains(&buf[..n as usize], b"rvirt-guest-to-host") {
            // The interface sees the Ethernet frame, without the vnet header.
            assert_eq!(&buf[..6], &[0xff; 6]);
            break;
        }
    }

    // Interface → guest. IPv6 chatter may come first: post many buffers
    // and look for ours.
    for i in 0..32u16 {
        add_chain(
            &rx,
            i,
            &[(DATA + 0x1_0000 + u64::from(i) * 0x1000, 2048, WRITE)],
        );
    }
    let mut eth = MAC.to_vec();
    eth.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    eth.extend_from_slice(&ETHERTYPE);
    eth.extend_from_slice(b"rvirt-host-to-guest");
    // SAFETY: send reads eth.len() bytes from eth.
    let sent = unsafe { libc::send(pkt.as_raw_fd(), eth.as_ptr().cast(), eth.len(), 0) };
    assert_eq!(sent, eth.len() as isize, "{}", io::Error::last_os_error());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(
            Instant::now() < deadline,
            "injected frame never reached the guest"
        );
        net.process_backend_rx();
        let found = (0..used_idx(&rx)).any(|i| {
            let (id, len) = used(&rx, i);
            let mut got = vec![0u8; len as usize];
            mem.read_slice(
                &mut got,
                GuestAddress(DATA + 0x1_0000 + u64::from(id) * 0x1000),
            )
            .unwrap();
            len as usize == HDR_LEN + eth.len() && got[HDR_LEN..] == eth[..]
        });
        if found {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(net.link_up());

    // The tap set down drops frames but keeps the link; the tap deleted
    // takes the link down. `ip` runs in this thread's namespace.
    let ip = |args: &[&str]| {
        rvirt_testkit::try_run(
            std::process::Command::new("ip").args(args),
            Duration::from_secs(30),
        )
        .is_ok_and(|o| o.status.success())
    };
    if !ip(&["link", "set", IFNAME, "down"]) {
        eprintln!("no usable `ip`: tap down/delete not tested");
        return Ok(());
    }
    add_chain(&tx, 1, &[(DATA, frame.len() as u32, 0)]);
    net.process_queue(TX_QUEUE);
    assert_eq!(used_idx(&tx), 2);
    assert!(
        net.link_up(),
        "a tap that is only down must not take the link down"
    );
    assert!(ip(&["link", "del", IFNAME]));
    add_chain(&tx, 2, &[(DATA, frame.len() as u32, 0)]);
    net.process_queue(TX_QUEUE);
    assert_eq!(used_idx(&tx), 3);
    assert!(!net.link_up(), "a deleted tap must take the link down");
    let mut cfg = [0u8; CONFIG_SIZE];
    net.read_config(0, &mut cfg);
    assert_eq!(&cfg[6..8], &[0, 0]);
    Ok(())
}

#[test]
fn tap_in_a_private_namespace_carries_frames_both_ways() {
    match std::thread::spawn(run).join().unwrap() {
        Ok(()) => {}
        // CI sets RVIRT_REQUIRE_REFERENCE: there a skip is a failure.
        Err(why) if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() => {
            panic!("cannot set up a tap here ({why}) and RVIRT_REQUIRE_REFERENCE is set")
        }
        Err(why) => eprintln!("skipped: cannot set up a tap here ({why})"),
    }
}
