//! Character devices whose peer stalls: output nobody reads must not stall
//! the guest or the VMM (QEMU drops it too).

mod common;

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use common::*;

/// Connects to a chardev's listening socket, retrying while the VMM starts.
fn connect(path: &Path) -> UnixStream {
    poll(
        &format!("a connection to {}", path.display()),
        Duration::from_secs(10),
        || UnixStream::connect(path).map_err(|e| e.to_string()),
    )
}

/// Waits for the flood guest to power off (it takes about 10 s here).
fn finishes(child: Spawned) -> Run {
    let run = wait(child, Duration::from_secs(120));
    assert!(
        run.status.success(),
        "the guest did not finish: {:?} {}",
        run.status,
        run.stderr
    );
    run
}

/// The serial port on a socket whose client connects and never reads: the
/// guest prints more than the socket buffers hold (320 KiB against about
/// 208 KiB) and must still finish and power off. Before output was bounded
/// the vCPU thread blocked in write() for good.
#[test]
fn a_socket_client_that_never_reads_does_not_stall_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("serial.sock");
    let log = dir.path().join("vmm.log");
    let chardev = format!("socket,id=s0,path={},server=on,wait=off", sock.display());
    let kernel = Guest::Flood.path();
    let child = spawn(&[
        "-kernel",
        kernel.to_str().unwrap(),
        "-display",
        "none",
        "-chardev",
        &chardev,
        "-serial",
        "chardev:s0",
        "-D",
        log.to_str().unwrap(),
    ]);
    let client = connect(&sock);
    finishes(child);
    drop(client);
}

/// The same on a pty whose slave nobody opens.
#[test]
fn a_pty_nobody_reads_does_not_stall_the_guest() {
    let kernel = Guest::Flood.path();
    let child = spawn(&[
        "-kernel",
        kernel.to_str().unwrap(),
        "-display",
        "none",
        "-serial",
        "pty",
    ]);
    let run = finishes(child);
    assert!(
        run.stderr.contains("char device redirected to /dev/pts/")
            || run.stdout.contains("char device redirected to /dev/pts/"),
        "{}",
        run.stderr
    );
}
