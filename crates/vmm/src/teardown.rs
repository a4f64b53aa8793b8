//! Handing the KVM VM's teardown to a short-lived child at exit.
//!
//! Closing the last reference to a VM with the in-kernel PIT waits for an
//! SRCU grace period in the kernel (kvm_free_pit → synchronize_srcu), which
//! costs 15-20 ms of wall time on the hosts measured, all of it spent after
//! the guest is gone. A manager waiting for the VMM to exit does not need to
//! wait for that, so the VMM forks a child that keeps the VM fd open until
//! the VMM has exited, then drops it; the VMM's own close is then a
//! reference count decrement.
//!
//! Under `-sandbox on` the child is forked at start instead ([`prefork`]),
//! before anything is opened and before the filters forbid forking: at
//! exit the VMM hands it the VM fd over a socket.

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// The VMM's end of the socket to the child forked at start.
static HELPER: OnceLock<OwnedFd> = OnceLock::new();

/// Forks the teardown child now. Call before any other thread exists (the
/// child runs ordinary code after the fork) and before anything is opened
/// (it keeps only its socket).
pub fn prefork() {
    let Ok((ours, theirs)) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    ) else {
        return;
    };
    // SAFETY: the process is single-threaded here (see above), so the child
    // is a consistent copy that may run any code.
    match unsafe { libc::fork() } {
        0 => {
            drop(ours);
            use std::os::fd::AsRawFd;
            close_except(&[theirs.as_raw_fd()]);
            crate::sandbox::enter(crate::sandbox::Kind::Teardown);
            helper(theirs.as_fd());
            // SAFETY: _exit ends the child without running destructors.
            unsafe { libc::_exit(0) }
        }
        -1 => {}
        _ => {
            drop(theirs);
            let _ = HELPER.set(ours);
        }
    }
}

/// The child: waits for the VM fd, then for the VMM's end (its socket
/// closing), then drops the fd.
fn helper(sock: BorrowedFd<'_>) {
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let got = rustix::net::recvmsg(
        sock,
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut cmsg,
        RecvFlags::CMSG_CLOEXEC,
    );
    let mut vm: Vec<OwnedFd> = Vec::new();
    if got.is_ok() {
        for m in cmsg.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = m {
                vm.extend(fds);
            }
        }
    }
    if vm.is_empty() {
        return;
    }
    // Blocks until the VMM exits and its end closes.
    let _ = rustix::io::read(sock, &mut byte);
    drop(vm);
}

/// Arranges for the last reference to `vm_fd` to be dropped by a child after
/// this process exits. On any failure nothing changes and the caller's close
/// does the teardown as usual.
pub(crate) fn defer(vm_fd: RawFd) {
    if let Some(sock) = HELPER.get() {
        // SAFETY: the caller holds `vm_fd` open across this call.
        let fd = unsafe { BorrowedFd::borrow_raw(vm_fd) };
        let fds = [fd];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut cmsg = SendAncillaryBuffer::new(&mut space);
        cmsg.push(SendAncillaryMessage::ScmRights(&fds));
        let _ = rustix::net::sendmsg(sock, &[IoSlice::new(&[0])], &mut cmsg, SendFlags::empty());
        return;
    }
    fork_and_hold(vm_fd);
}

fn fork_and_hold(vm_fd: RawFd) {
    let mut pipe = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return;
    }
    let (rd, wr) = (pipe[0], pipe[1]);
    // SAFETY: fork in a multi-threaded process: the child below only calls
    // async-signal-safe functions (close_range/close, read, _exit) before
    // exiting, and touches no Rust state.
    match unsafe { libc::fork() } {
        0 => {
            // Child: keep only the VM fd and the pipe's read end, so nothing
            // the VMM had open (stdout pipes, sockets, pty) stays open here.
            let mut keep = [vm_fd, rd];
            keep.sort_unstable();
            close_except(&keep);
            let mut b = [0u8; 1];
            // Blocks until the VMM exits and its write end closes.
            // SAFETY: reading one byte into a valid buffer.
            unsafe { libc::read(rd, b.as_mut_ptr().cast(), 1) };
            // SAFETY: _exit ends the child without running any destructors.
            unsafe { libc::_exit(0) }
        }
        -1 => {
            // SAFETY: closing the two descriptors created above.
            unsafe {
                libc::close(rd);
                libc::close(wr);
            }
        }
        _ => {
            // Parent: the write end stays open (O_CLOEXEC keeps it out of
            // any process spawned later) until this process exits.
            // SAFETY: closing our copy of the read end.
            unsafe { libc::close(rd) };
        }
    }
}

/// Closes every descriptor except the (sorted) ones in `keep`.
fn close_except(keep: &[RawFd]) {
    let mut next: libc::c_uint = 0;
    for &k in keep {
        close_range(next, (k as libc::c_uint).saturating_sub(1), k == 0);
        next = k as libc::c_uint + 1;
    }
    close_range(next, libc::c_uint::MAX, false);
}

fn close_range(first: libc::c_uint, last: libc::c_uint, empty: bool) {
    if empty || first > last {
        return;
    }
    // SAFETY: close_range only closes descriptors of this (child) process.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if rc < 0 {
        // Kernels before 5.9: close one by one up to a sane bound.
        for fd in first..last.min(4096) {
            // SAFETY: closing a descriptor number; EBADF is harmless.
            unsafe { libc::close(fd as RawFd) };
        }
    }
}
