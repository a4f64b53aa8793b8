//! virtio-net, virtio-console and virtio-balloon through the real binary,
//! end to end: the `virtio` test guest drives each device with its own
//! minimal virtio-mmio driver (polling, bounded waits) while the test plays
//! the host side — a tap in a private network namespace, the console's
//! chardev socket, QMP `balloon` — and checks both ends.

mod common;

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use common::*;
use rvirt_qmp::{ClientError, ErrorClass, QmpClient};
use rvirt_test_guests::fnv1a32;
use rvirt_testkit::read_until;
use rvirt_virtio::net::testing::{check, contains, if_index, link_up, packet_socket};
use rvirt_virtio::net::{NetBackend, Tap};
use serde_json::json;

/// Every wait of the guest is bounded by 20 s; the test waits longer so
/// that the guest's own `timeout` line is what a failure shows.
const T: Duration = Duration::from_secs(40);

// ---- the VMM process ----

/// A running rvirt-vmm with its serial port in a file; killed and reaped
/// when dropped.
struct Vm {
    child: Spawned,
    serial: PathBuf,
}

impl Vm {
    /// Spawns rvirt-vmm on the `virtio` guest with `-serial file:` and
    /// `args`; `pre` runs in the child before exec (after the
    /// die-with-test hook).
    fn spawn(
        dir: &Path,
        args: &[&str],
        pre: Option<Box<dyn FnMut() -> io::Result<()> + Send + Sync>>,
    ) -> io::Result<Vm> {
        let serial = dir.join("serial.log");
        let kernel = Guest::Virtio.path();
        let mut cmd = Command::new(vmm());
        die_with_test(&mut cmd);
        if let Some(pre) = pre {
            // SAFETY: every `pre` below only makes raw syscalls (fcntl,
            // unshare), which are async-signal-safe.
            unsafe { cmd.pre_exec(pre) };
        }
        cmd.arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .arg("-kernel")
            .arg(kernel)
            .args(args)
            .stdin(Stdio::null());
        let serial_log = serial.clone();
        let child = Spawned::try_start(&mut cmd)?.on_fail(move || {
            format!(
                "serial:\n{}",
                std::fs::read_to_string(&serial_log).unwrap_or_default()
            )
        });
        Ok(Vm { child, serial })
    }

    fn pid(&self) -> i32 {
        self.child.pid()
    }

    fn serial(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        self.child.stderr_text()
    }

    /// Waits until `what` is on the serial port; returns all of it.
    fn wait_serial(&self, what: &str) -> String {
        poll(&format!("'{what}' on the serial port"), T, || {
            let s = self.serial();
            // The whole line: the serial port delivers it byte by byte,
            // and a value after the marker may not have arrived yet.
            if s.find(what).is_some_and(|i| s[i..].contains('\n')) {
                Ok(s)
            } else {
                Err(format!("{s}\n{}", self.child.describe()))
            }
        })
    }

    /// Waits for the VMM to exit (the guest powered off).
    fn wait_exit(&mut self) -> ExitStatus {
        self.child.wait(T)
    }

    /// The guest printed DONE and the VMM exited with status 0; returns
    /// the serial output.
    fn finish(&mut self) -> String {
        let out = self.wait_serial("DONE");
        let status = self.wait_exit();
        assert!(
            status.success(),
            "rvirt-vmm exited with {status}\nserial:\n{out}\nstderr:\n{}",
            self.stderr()
        );
        // Shown with --nocapture or when a later assertion fails.
        eprintln!("serial:\n{out}");
        out
    }
}

fn connect(sock: &Path) -> QmpClient {
    qmp_connect(sock, T)
}

fn qmp_arg(sock: &Path) -> String {
    format!("unix:{},server=on,wait=off", sock.display())
}

/// The output of the one device the guest found (everything after its
/// `VIRTIO_DEVICE` line), checking that it is the only one and has `id`.
fn only_device(out: &str, id: u32) -> &str {
    assert_eq!(output::number_of(out, "VIRTIO_DEVICES"), Some(1), "{out}");
    let dev = output::value(out, "VIRTIO_DEVICE").expect("a VIRTIO_DEVICE line");
    assert_eq!(
        dev.split(' ').nth(1),
        Some(id.to_string().as_str()),
        "{out}"
    );
    assert!(!out.contains("VIRTIO_FAILED"), "{out}");
    assert!(!out.contains("timeout"), "{out}");
    out
}

// ---- virtio-net on a tap ----

const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc];
const GUEST_MAC_STR: &str = "52:54:00:aa:bb:cc";
const HOST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const ETHERTYPE: [u8; 2] = [0x88, 0xb5];
/// What the guest sends (virtio.c's `tx_payload`).
const GUEST_PAYLOAD: &[u8] = b"rvirt virtio-net guest-to-host frame";
const HOST_PAYLOAD: &str = "rvirt-host-to-guest 0123456789 abcdefghijklmnopqrstuvwxyz";

fn mac_str(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The guest's net exchange on a tap that is up with `pkt` bound to it: the
/// guest's broadcast frame arrives on the tap, then (after NET_READY) a
/// frame the test sends reaches the guest intact. The guest is the only
/// device.
fn net_exchange(vm: &mut Vm, pkt: &OwnedFd) {
    let eth = net_host_side(vm, pkt);
    let out = vm.finish();
    check_net_output(only_device(&out, 1), &eth);
}

/// The host half of the exchange; returns the frame sent to the guest.
fn net_host_side(vm: &Vm, pkt: &OwnedFd) -> Vec<u8> {
    // Guest → tap. The packet socket's receive timeout (200 ms) bounds
    // each recv.
    let mut buf = vec![0u8; 2048];
    let frame = poll("the guest's frame on the tap", T, || {
        // SAFETY: recv writes at most buf.len() bytes into buf.
        let n = unsafe { libc::recv(pkt.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n > 0 && contains(&buf[..n as usize], GUEST_PAYLOAD) {
            Ok(buf[..n as usize].to_vec())
        } else {
            Err(format!("serial:\n{}\n{}", vm.serial(), vm.child.describe()))
        }
    });
    // The interface sees the bare Ethernet frame: the 12-byte virtio-net
    // header went to the tap's IFF_VNET_HDR and was stripped there.
    assert_eq!(&frame[..6], &[0xff; 6], "{frame:02x?}");
    assert_eq!(&frame[6..12], &GUEST_MAC, "source = the -device mac=");
    assert_eq!(&frame[12..14], &ETHERTYPE);
    assert_eq!(&frame[14..14 + GUEST_PAYLOAD.len()], GUEST_PAYLOAD);
    assert_eq!(frame.len(), 14 + GUEST_PAYLOAD.len());

    // Tap → guest, once it has posted its receive buffers.
    vm.wait_serial("NET_READY");
    let mut eth = GUEST_MAC.to_vec();
    eth.extend_from_slice(&HOST_MAC);
    eth.extend_from_slice(&ETHERTYPE);
    eth.extend_from_slice(HOST_PAYLOAD.as_bytes());
    // SAFETY: send reads eth.len() bytes from eth.
    let sent = unsafe { libc::send(pkt.as_raw_fd(), eth.as_ptr().cast(), eth.len(), 0) };
    assert_eq!(sent, eth.len() as isize, "{}", io::Error::last_os_error());
    eth
}

/// What the guest printed for its net device, having been sent `eth`.
fn check_net_output(dev: &str, eth: &[u8]) {
    assert!(!dev.contains("timeout"), "{dev}");
    assert_eq!(output::value(dev, "NET_MAC"), Some(GUEST_MAC_STR), "{dev}");
    // VIRTIO_NET_S_LINK_UP.
    assert_eq!(output::value(dev, "NET_STATUS"), Some("1"), "{dev}");
    assert_eq!(output::value(dev, "NET_TX"), Some("0"), "{dev}");
    assert_eq!(
        output::number_of(dev, "NET_RX_LEN"),
        Some(eth.len() as u64),
        "{dev}"
    );
    assert_eq!(
        output::value(dev, "NET_RX_FNV1A32"),
        Some(format!("{:#010x}", fnv1a32(eth)).as_str()),
        "{dev}"
    );
    assert_eq!(output::value(dev, "NET_RX_DST"), Some(GUEST_MAC_STR));
    assert_eq!(
        output::value(dev, "NET_RX_SRC"),
        Some(mac_str(&HOST_MAC).as_str())
    );
    assert_eq!(output::value(dev, "NET_RX_TEXT"), Some(HOST_PAYLOAD));
}

/// Runs `f` on a thread of its own (namespace changes stay on it, and a VMM
/// it spawns lives as long as it: PR_SET_DEATHSIG follows the thread).
/// Prints `skipped` instead of failing when `f` returns Err (no namespace
/// or tap possible here: not root, no /dev/net/tun), unless
/// `RVIRT_REQUIRE_REFERENCE` is set (CI), where a skip is a failure.
fn on_own_thread(name: &str, f: impl FnOnce() -> Result<(), String> + Send + 'static) {
    match std::thread::spawn(f).join().unwrap() {
        Ok(()) => {}
        Err(why) if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() => {
            panic!("{name}: cannot set up a tap here ({why}) and RVIRT_REQUIRE_REFERENCE is set")
        }
        Err(why) => eprintln!("{name}: skipped: cannot set up a tap here ({why})"),
    }
}

/// libvirt's form: the tap opened by the management layer (IFF_VNET_HDR)
/// and handed down as `-netdev tap,fd=N`.
#[test]
fn net_frames_both_ways_on_an_inherited_tap_fd() {
    on_own_thread("net_frames_both_ways_on_an_inherited_tap_fd", || {
        // SAFETY: unshare takes a flag; it moves only this thread into a
        // new, empty network namespace; the host's interfaces are untouched.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(format!("unshare: {}", io::Error::last_os_error()));
        }
        let name = "rvfd0";
        // Opened as libvirt opens one for `-netdev tap,fd=N` (IFF_TAP,
        // IFF_NO_PI, IFF_VNET_HDR, close-on-exec: the child clears that).
        let tap = Tap::open(name).map_err(|e| format!("tap: {e}"))?;
        link_up(name).map_err(|e| format!("link up: {e}"))?;
        let pkt = packet_socket(name).map_err(|e| format!("packet socket: {e}"))?;

        let dir = tempfile::tempdir().unwrap();
        let fd: RawFd = tap.raw_fd().expect("a tap has a descriptor");
        let netdev = format!("tap,id=n0,fd={fd}");
        let device = format!("virtio-net-device,netdev=n0,mac={GUEST_MAC_STR}");
        let keep_fd = move || {
            // SAFETY: F_SETFD on an fd this process owns; clears only
            // FD_CLOEXEC so that rvirt-vmm inherits the tap.
            check(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }).map(|_| ())
        };
        let mut vm = Vm::spawn(
            dir.path(),
            &["-no-reboot", "-netdev", &netdev, "-device", &device],
            Some(Box::new(keep_fd)),
        )
        .expect("spawn rvirt-vmm");
        // The VMM has its own copy; the interface lives while it does.
        drop(tap);
        net_exchange(&mut vm, &pkt);
        Ok(())
    });
}

/// QEMU's form: `-netdev tap,ifname=NAME,script=no,downscript=no`, the VMM
/// creating the tap in its own (private) network namespace; the test joins
/// that namespace, brings the link up and continues the paused VM.
#[test]
fn net_frames_both_ways_on_a_tap_by_name() {
    on_own_thread("net_frames_both_ways_on_a_tap_by_name", || {
        let name = "rvname0";
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("qmp.sock");
        let qmp = qmp_arg(&sock);
        let netdev = format!("tap,id=n0,ifname={name},script=no,downscript=no");
        let device = format!("virtio-net-device,netdev=n0,mac={GUEST_MAC_STR}");
        let own_netns = || {
            // SAFETY: unshare takes a flag; in the child it moves the VMM
            // into a new, empty network namespace that dies with it.
            check(unsafe { libc::unshare(libc::CLONE_NEWNET) }).map(|_| ())
        };
        let mut vm = Vm::spawn(
            dir.path(),
            &[
                "-S",
                "-no-reboot",
                "-qmp",
                &qmp,
                "-netdev",
                &netdev,
                "-device",
                &device,
            ],
            Some(Box::new(own_netns)),
        )
        .map_err(|e| format!("spawn in a new network namespace: {e}"))?;

        let ns = File::open(format!("/proc/{}/ns/net", vm.pid())).unwrap();
        // SAFETY: setns on an open namespace fd; it moves only this thread.
        check(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }).unwrap();
        let c = connect(&sock);
        poll(&format!("the tap {name} in the VMM's namespace"), T, || {
            if if_index(name) == 0 {
                Err(vm.child.describe())
            } else {
                Ok(())
            }
        });
        link_up(name).unwrap();
        let pkt = packet_socket(name).unwrap();
        c.execute("cont", None).unwrap();
        net_exchange(&mut vm, &pkt);
        Ok(())
    });
}

// ---- virtio-console ----

/// Reads from `s` until `what` has arrived; returns everything read.
fn read_stream_until(s: &mut UnixStream, what: &str) -> String {
    read_until(s, what, T)
}

const CONSOLE_OUT: &str = "CONSOLE_OUT hello from the virtio console\n";
const CONSOLE_IN: &str = "rvirt console input 42";

/// The host half of the console exchange on the chardev socket `s`,
/// connected before the guest ran: the guest's line arrives, the test's
/// line (sent after CONSOLE_READY) comes back echoed.
fn console_host_side(vm: &Vm, s: &mut UnixStream) {
    let got = read_stream_until(s, CONSOLE_OUT);
    assert_eq!(got, CONSOLE_OUT);
    vm.wait_serial("CONSOLE_READY");
    s.write_all(format!("{CONSOLE_IN}\n").as_bytes()).unwrap();
    let echo = read_stream_until(s, &format!("CONSOLE_ECHO {CONSOLE_IN}\n"));
    assert_eq!(echo, format!("CONSOLE_ECHO {CONSOLE_IN}\n"));
}

fn check_console_output(dev: &str) {
    assert!(!dev.contains("timeout"), "{dev}");
    assert_eq!(output::value(dev, "CONSOLE_TX"), Some("0"), "{dev}");
    assert_eq!(output::value(dev, "CONSOLE_RX"), Some(CONSOLE_IN), "{dev}");
    assert_eq!(output::value(dev, "CONSOLE_ECHO_TX"), Some("0"), "{dev}");
}

/// The guest's line through the transmitq reaches the chardev socket; a
/// line the test writes into the socket reaches the guest's receiveq, which
/// prints it on COM1 and echoes it back through the transmitq.
#[test]
fn console_output_and_input_through_a_socket_chardev() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp.sock");
    let con = dir.path().join("con.sock");
    let qmp = qmp_arg(&sock);
    let chardev = format!("socket,id=con0,path={},server=on,wait=off", con.display());
    let mut vm = Vm::spawn(
        dir.path(),
        &[
            "-S",
            "-no-reboot",
            "-qmp",
            &qmp,
            "-chardev",
            &chardev,
            "-device",
            "virtio-serial-device",
            "-device",
            "virtconsole,chardev=con0",
        ],
        None,
    )
    .unwrap();
    let c = connect(&sock);
    // Connected before the guest runs: a server socket drops output while
    // no client is there, as QEMU's does.
    let mut s = UnixStream::connect(&con).expect("connect to the console chardev");
    c.execute("cont", None).unwrap();
    console_host_side(&vm, &mut s);
    let out = vm.finish();
    check_console_output(only_device(&out, 3));
}

/// With no client on the chardev socket the guest's output is dropped
/// (as QEMU's `wait=off` server does) without stalling its transmitq; a
/// client that connects later gets input through and the echo back.
#[test]
fn console_socket_without_a_client_drops_output_and_takes_a_late_one() {
    let dir = tempfile::tempdir().unwrap();
    let con = dir.path().join("con.sock");
    let chardev = format!("socket,id=con0,path={},server=on,wait=off", con.display());
    let mut vm = Vm::spawn(
        dir.path(),
        &[
            "-no-reboot",
            "-chardev",
            &chardev,
            "-device",
            "virtio-serial-device",
            "-device",
            "virtconsole,chardev=con0",
        ],
        None,
    )
    .unwrap();
    let out = vm.wait_serial("CONSOLE_READY");
    assert_eq!(output::value(&out, "CONSOLE_TX"), Some("0"), "{out}");
    let mut s = UnixStream::connect(&con).expect("connect to the console chardev");
    // Written perhaps before the VMM accepted us: the socket keeps it.
    s.write_all(format!("{CONSOLE_IN}\n").as_bytes()).unwrap();
    let got = read_stream_until(&mut s, &format!("CONSOLE_ECHO {CONSOLE_IN}\n"));
    // The first line went nowhere: nobody was listening then.
    assert_eq!(got, format!("CONSOLE_ECHO {CONSOLE_IN}\n"));
    let out = vm.finish();
    check_console_output(only_device(&out, 3));
}

/// A file chardev gets the guest's output (and has no input to give).
#[test]
fn console_output_to_a_file_chardev() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("console.log");
    let chardev = format!("file,id=con0,path={}", file.display());
    let mut vm = Vm::spawn(
        dir.path(),
        &[
            "-no-reboot",
            "-append",
            "virtio.console_input=0",
            "-chardev",
            &chardev,
            "-device",
            "virtio-serial-device",
            "-device",
            "virtconsole,chardev=con0",
        ],
        None,
    )
    .unwrap();
    let out = vm.finish();
    let dev = only_device(&out, 3);
    assert_eq!(output::value(dev, "CONSOLE_TX"), Some("0"), "{dev}");
    assert_eq!(output::value(dev, "CONSOLE_RX"), Some("skipped"), "{dev}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "CONSOLE_OUT hello from the virtio console\n"
    );
}

// ---- virtio-balloon ----

const RAM: i64 = 128 << 20;
const BALLOON_PAGES: i64 = 32;

fn query_balloon(c: &QmpClient) -> serde_json::Value {
    c.execute("query-balloon", None).unwrap()["actual"].clone()
}

/// The host half of the balloon exchange on a `-m 128` VM whose guest has
/// reached BALLOON_READY: QMP `balloon` down by BALLOON_PAGES pages, the
/// guest inflates them, BALLOON_CHANGE and `query-balloon` follow; then
/// back to the whole RAM, and the guest deflates. Returns the serial output
/// once the guest is DONE.
fn balloon_host_side(vm: &Vm, c: &QmpClient) -> String {
    const PAGES: i64 = BALLOON_PAGES;
    vm.wait_serial("BALLOON_READY");
    assert_eq!(query_balloon(c), json!(RAM));

    let target = RAM - PAGES * 4096;
    c.execute("balloon", Some(json!({ "value": target })))
        .unwrap();
    let out = vm.wait_serial("BALLOON_KEPT_PAGES");
    let ev = c.wait_event("BALLOON_CHANGE", T).unwrap();
    assert_eq!(ev.data, Some(json!({ "actual": target })), "{out}");
    assert_eq!(query_balloon(c), json!(target));
    assert_eq!(output::value(&out, "BALLOON_INFLATE"), Some("0"), "{out}");
    assert_eq!(
        output::number_of(&out, "BALLOON_INFLATED"),
        Some(PAGES as u64)
    );
    assert_eq!(
        output::number_of(&out, "BALLOON_ZERO_PAGES"),
        Some(PAGES as u64),
        "inflated pages must read back as zero (MADV_DONTNEED): {out}"
    );
    assert_eq!(output::number_of(&out, "BALLOON_KEPT_PAGES"), Some(0));
    assert_eq!(
        output::value(&out, "BALLOON_NEIGHBOUR_INTACT"),
        Some("1"),
        "{out}"
    );

    // Back to the whole RAM: the guest deflates everything.
    c.execute("balloon", Some(json!({ "value": RAM }))).unwrap();
    let out = vm.wait_serial("DONE");
    let ev = c.wait_event("BALLOON_CHANGE", T).unwrap();
    assert_eq!(ev.data, Some(json!({ "actual": RAM })), "{out}");
    assert_eq!(query_balloon(c), json!(RAM));
    out
}

fn check_balloon_output(dev: &str) {
    assert!(!dev.contains("timeout"), "{dev}");
    let targets: Vec<&str> = output::values(dev, "BALLOON_TARGET").collect();
    assert_eq!(targets, [BALLOON_PAGES.to_string().as_str(), "0"], "{dev}");
    let irqs: Vec<&str> = output::values(dev, "BALLOON_CONFIG_IRQ").collect();
    assert_eq!(
        irqs,
        ["1", "1"],
        "a config-change interrupt each time: {dev}"
    );
    assert_eq!(output::value(dev, "BALLOON_DEFLATE"), Some("0"), "{dev}");
    assert_eq!(
        output::number_of(dev, "BALLOON_DEFLATED"),
        Some(BALLOON_PAGES as u64)
    );
}

/// QMP `balloon` asks for 32 pages: the device raises a config-change
/// interrupt, the guest inflates that many pages of a buffer it filled,
/// reports them in `actual`, and `query-balloon` and BALLOON_CHANGE follow;
/// the host dropped the pages (they read back as zero, their neighbour
/// does not). Growing back to the full RAM deflates them again.
#[test]
fn balloon_inflates_and_deflates_on_qmp_request() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp.sock");
    let qmp = qmp_arg(&sock);
    let mut vm = Vm::spawn(
        dir.path(),
        &[
            "-m",
            "128",
            "-no-reboot",
            "-no-shutdown",
            "-qmp",
            &qmp,
            "-device",
            "virtio-balloon-device",
        ],
        None,
    )
    .unwrap();
    let c = connect(&sock);
    let out = balloon_host_side(&vm, &c);
    eprintln!("serial:\n{out}");
    check_balloon_output(only_device(&out, 5));
    // -no-shutdown kept the VMM for the queries above.
    c.wait_event("SHUTDOWN", T).unwrap();
    let _ = c.execute("quit", None);
    let status = vm.wait_exit();
    assert!(status.success(), "{status}; stderr:\n{}", vm.stderr());
}

/// The guest's balloon statistics as libvirt reads them: the buffer the
/// driver sends at start is in `qom-get guest-stats` under QEMU's names,
/// what it did not report stays -1 (as an unsigned); no new numbers come
/// until `guest-stats-polling-interval` is set, then the device gives the
/// buffer back each interval and each round's numbers replace the last.
#[test]
fn balloon_statistics_through_qom() {
    balloon_statistics(&[]);
}

/// The same under libvirt's `-sandbox` (as rvirtd starts every VMM): the
/// monitor thread's `qom-get`/`qom-set` and the main loop's polling timer
/// (which gives the buffer back and interrupts the guest) stay inside
/// their threads' seccomp filters.
#[test]
fn balloon_statistics_through_qom_under_the_sandbox() {
    balloon_statistics(&[
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    ]);
}

fn balloon_statistics(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp.sock");
    let qmp = qmp_arg(&sock);
    let mut args = vec![
        "-m",
        "128",
        "-qmp",
        &qmp,
        "-device",
        "virtio-balloon-device,id=balloon0",
        "-append",
        "virtio.balloon_stats=1",
    ];
    args.extend_from_slice(extra);
    let mut vm = Vm::spawn(dir.path(), &args, None).unwrap();
    let c = connect(&sock);
    let path = "/machine/peripheral/balloon0";
    let guest_stats = || {
        c.execute(
            "qom-get",
            Some(json!({"path": path, "property": "guest-stats"})),
        )
        .unwrap()
    };
    vm.wait_serial("BALLOON_STATS 1");
    let first = poll("the first statistics", T, || {
        let g = guest_stats();
        if g["last-update"] != json!(0) {
            Ok(g)
        } else {
            Err(g.to_string())
        }
    });
    let mib = |n: u64| json!(n << 20);
    let stats = &first["stats"];
    assert_eq!(stats["stat-minor-faults"], json!(1), "{first}");
    assert_eq!(stats["stat-major-faults"], json!(7), "{first}");
    assert_eq!(stats["stat-free-memory"], mib(32), "{first}");
    assert_eq!(stats["stat-total-memory"], mib(64), "{first}");
    assert_eq!(stats["stat-available-memory"], mib(48), "{first}");
    assert_eq!(stats["stat-disk-caches"], mib(1), "{first}");
    for unreported in [
        "stat-swap-in",
        "stat-swap-out",
        "stat-htlb-pgalloc",
        "stat-htlb-pgfail",
    ] {
        assert_eq!(stats[unreported], json!(u64::MAX), "{first}");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at = first["last-update"].as_u64().unwrap();
    assert!(at <= now && at + 60 > now, "{first}");
    // Without polling the device keeps the buffer.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!vm.serial().contains("BALLOON_STATS 2"));
    assert_eq!(guest_stats()["stats"]["stat-minor-faults"], json!(1));

    c.execute(
        "qom-set",
        Some(json!({"path": path, "property": "guest-stats-polling-interval", "value": 1})),
    )
    .unwrap();
    vm.wait_serial("BALLOON_STATS 3");
    poll("the third round's statistics", T, || {
        let g = guest_stats();
        let round = g["stats"]["stat-minor-faults"].as_u64().unwrap_or(0);
        if round >= 3 {
            Ok(())
        } else {
            Err(g.to_string())
        }
    });
    c.execute(
        "qom-set",
        Some(json!({"path": path, "property": "guest-stats-polling-interval", "value": 0})),
    )
    .unwrap();
    assert_eq!(
        c.execute(
            "qom-get",
            Some(json!({"path": path, "property": "guest-stats-polling-interval"})),
        )
        .unwrap(),
        json!(0)
    );
    let _ = c.execute("quit", None);
    let status = vm.wait_exit();
    assert!(status.success(), "{status}; stderr:\n{}", vm.stderr());
}

// ---- all of them ----

/// The guest's output split per device, `VIRTIO_DEVICE` lines included.
fn per_device(out: &str) -> Vec<&str> {
    let starts: Vec<usize> = out
        .match_indices("VIRTIO_DEVICE ")
        .map(|(i, _)| i)
        .chain(out.find("VIRTIO_DEVICES "))
        .collect();
    starts.windows(2).map(|w| &out[w[0]..w[1]]).collect()
}

/// net, console, balloon and rng in one VM: one slot and IRQ each in
/// command-line order, each device served while the others are live (the
/// device loop polls the tap and the chardev socket together).
#[test]
fn net_console_balloon_and_rng_together() {
    on_own_thread("net_console_balloon_and_rng_together", || {
        // SAFETY: as in net_frames_both_ways_on_an_inherited_tap_fd.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(format!("unshare: {}", io::Error::last_os_error()));
        }
        let name = "rvall0";
        // Opened as libvirt opens one for `-netdev tap,fd=N` (IFF_TAP,
        // IFF_NO_PI, IFF_VNET_HDR, close-on-exec: the child clears that).
        let tap = Tap::open(name).map_err(|e| format!("tap: {e}"))?;
        link_up(name).map_err(|e| format!("link up: {e}"))?;
        let pkt = packet_socket(name).map_err(|e| format!("packet socket: {e}"))?;

        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("qmp.sock");
        let con = dir.path().join("con.sock");
        let qmp = qmp_arg(&sock);
        let chardev = format!("socket,id=con0,path={},server=on,wait=off", con.display());
        let fd: RawFd = tap.raw_fd().expect("a tap has a descriptor");
        let netdev = format!("tap,id=n0,fd={fd}");
        let nic = format!("virtio-net-device,netdev=n0,mac={GUEST_MAC_STR}");
        let keep_fd = move || {
            // SAFETY: F_SETFD on an fd this process owns; clears only
            // FD_CLOEXEC so that rvirt-vmm inherits the tap.
            check(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }).map(|_| ())
        };
        let mut vm = Vm::spawn(
            dir.path(),
            &[
                "-S",
                "-m",
                "128",
                "-no-reboot",
                "-no-shutdown",
                "-qmp",
                &qmp,
                "-netdev",
                &netdev,
                "-device",
                &nic,
                "-chardev",
                &chardev,
                "-device",
                "virtio-serial-device",
                "-device",
                "virtconsole,chardev=con0",
                "-device",
                "virtio-balloon-device",
                "-object",
                "rng-random,id=rng0,filename=/dev/urandom",
                "-device",
                "virtio-rng-device,rng=rng0",
            ],
            Some(Box::new(keep_fd)),
        )
        .expect("spawn rvirt-vmm");
        drop(tap);
        let c = connect(&sock);
        let mut s = UnixStream::connect(&con).expect("connect to the console chardev");
        c.execute("cont", None).unwrap();

        let eth = net_host_side(&vm, &pkt);
        console_host_side(&vm, &mut s);
        let out = balloon_host_side(&vm, &c);
        eprintln!("serial:\n{out}");
        // GSIs from 5 up, past the RTC's 8 and the ACPI SCI's 9.
        let ids: Vec<&str> = output::values(&out, "VIRTIO_DEVICE").collect();
        assert_eq!(
            ids,
            [
                "0xd0000000 1 5",
                "0xd0001000 3 6",
                "0xd0002000 5 7",
                "0xd0003000 4 10"
            ],
            "{out}"
        );
        assert_eq!(output::number_of(&out, "VIRTIO_DEVICES"), Some(4), "{out}");
        assert!(!out.contains("VIRTIO_FAILED"), "{out}");
        let devs = per_device(&out);
        assert_eq!(devs.len(), 4, "{out}");
        check_net_output(devs[0], &eth);
        check_console_output(devs[1]);
        check_balloon_output(devs[2]);
        assert_eq!(output::number_of(devs[3], "RNG_LEN"), Some(32), "{out}");

        c.wait_event("SHUTDOWN", T).unwrap();
        let _ = c.execute("quit", None);
        let status = vm.wait_exit();
        assert!(status.success(), "{status}; stderr:\n{}", vm.stderr());
        Ok(())
    });
}

/// Without a balloon device QMP answers as QEMU does.
#[test]
fn balloon_commands_without_a_balloon_fail_as_in_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp.sock");
    let qmp = qmp_arg(&sock);
    let mut vm = Vm::spawn(dir.path(), &["-S", "-qmp", &qmp], None).unwrap();
    let c = connect(&sock);
    for (cmd, args) in [
        ("query-balloon", None),
        ("balloon", Some(json!({ "value": 64 << 20 }))),
    ] {
        match c.execute(cmd, args) {
            Err(ClientError::Command { error, .. }) => {
                assert_eq!(error.class, ErrorClass::DeviceNotActive, "{cmd}");
                assert_eq!(error.desc, "No balloon device has been activated");
            }
            other => panic!("{cmd}: {other:?}"),
        }
    }
    let _ = c.execute("quit", None);
    assert!(vm.wait_exit().success());
}
