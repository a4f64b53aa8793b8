//! Descriptors passed to the monitor with SCM_RIGHTS: `getfd` names them,
//! `closefd` closes them, `add_client` hands them to the backend, with
//! QEMU 7.2's error texts (the same session against QEMU is in
//! crates/vmm/tests/vnc.rs).

mod common;

use common::{Fixture, Raw, WAIT};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use rvirt_qmp::RunState;
use serde_json::{json, Value};
use std::io::Read;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

/// Sends `text` with `fd` attached, and returns the reply.
fn with_fd(c: &mut Raw, text: &str, fd: BorrowedFd<'_>) -> Value {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    assert!(cmsg.push(SendAncillaryMessage::ScmRights(&fds)));
    let iov = [std::io::IoSlice::new(text.as_bytes())];
    rustix::net::sendmsg(&c.stream, &iov, &mut cmsg, SendFlags::empty()).unwrap();
    c.recv()
}

fn error(reply: &Value) -> &str {
    reply["error"]["desc"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {reply}"))
}

fn cmd(c: &mut Raw, v: Value) -> Value {
    c.cmd(&v.to_string()).0
}

#[test]
fn getfd_closefd_add_client() {
    let fx = Fixture::new(RunState::Running);
    let mut c = fx.client();
    let getfd = |name: &str| json!({"execute": "getfd", "arguments": {"fdname": name}}).to_string();
    assert_eq!(
        error(&cmd(
            &mut c,
            json!({"execute": "getfd", "arguments": {"fdname": "a"}})
        )),
        "No file descriptor supplied via SCM_RIGHTS"
    );
    let (mine, theirs) = UnixStream::pair().unwrap();
    assert_eq!(
        error(&with_fd(&mut c, &getfd("1a"), theirs.as_fd())),
        "Parameter 'fdname' expects a name not starting with a digit"
    );
    assert_eq!(
        with_fd(&mut c, &getfd("a"), theirs.as_fd()),
        json!({"return": {}})
    );
    drop(theirs);
    assert_eq!(
        error(&cmd(
            &mut c,
            json!({"execute": "closefd", "arguments": {"fdname": "b"}})
        )),
        "File descriptor named 'b' not found"
    );
    let add = json!({"execute": "add_client", "arguments": {"protocol": "vnc", "fdname": "a"}});
    assert_eq!(cmd(&mut c, add.clone()), json!({"return": {}}));
    // The backend (no VNC server here) closed it: the peer sees the end.
    let mut peer = mine;
    peer.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(peer.read(&mut [0u8; 1]).unwrap(), 0);
    // add_client used the name up.
    assert_eq!(
        error(&cmd(&mut c, add)),
        "File descriptor named 'a' has not been found"
    );
    // A monitor holds at most 64 names.
    let (_keep, other) = UnixStream::pair().unwrap();
    for i in 0..64 {
        assert_eq!(
            with_fd(&mut c, &getfd(&format!("f{i}")), other.as_fd()),
            json!({"return": {}})
        );
    }
    assert_eq!(
        error(&with_fd(&mut c, &getfd("f64"), other.as_fd())),
        "Too many file descriptors (at most 64)"
    );
    // Naming an existing one again replaces it.
    assert_eq!(
        with_fd(&mut c, &getfd("f0"), other.as_fd()),
        json!({"return": {}})
    );
    let close = json!({"execute": "closefd", "arguments": {"fdname": "f0"}});
    assert_eq!(cmd(&mut c, close), json!({"return": {}}));
}

#[test]
fn vnc_commands_without_a_vnc_server() {
    let fx = Fixture::new(RunState::Running);
    let mut c = fx.client();
    assert_eq!(
        cmd(&mut c, json!({"execute": "query-vnc"})),
        json!({"return": {"enabled": false}})
    );
    let set = json!({"execute": "set_password", "arguments": {"protocol": "vnc", "password": "x"}});
    assert_eq!(error(&cmd(&mut c, set)), "Could not set password");
    let expire =
        json!({"execute": "expire_password", "arguments": {"protocol": "vnc", "time": "now"}});
    assert_eq!(
        error(&cmd(&mut c, expire)),
        "Could not set password expire time"
    );
    let set = json!({"execute": "set_password", "arguments": {"protocol": "vnc"}});
    assert_eq!(error(&cmd(&mut c, set)), "Parameter 'password' is missing");
}
