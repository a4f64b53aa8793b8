//! Handing the KVM VM's teardown to a short-lived child at exit.
//!
//! Closing the last reference to a VM with the in-kernel PIT waits for an
//! SRCU grace period in the kernel (kvm_free_pit → synchronize_srcu), which
//! costs 15-20 ms of wall time on the hosts measured, all of it spent after
//! the guest is gone. A manager waiting for the VMM to exit does not need to
//! wait for that, so the VMM starts a child that keeps the VM fd open until
//! the VMM has exited, then drops it; the VMM's own close is then a
//! reference count decrement. Started at exit, the child shares the VMM's
//! address space (`clone(CLONE_VM)`), so tearing that down waits for the
//! child too.
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

/// The helper's descriptors, passed to it by address (it shares the
/// VMM's memory).
struct Hold {
    vm_fd: RawFd,
    rd: RawFd,
}

/// Starts the helper with `clone(CLONE_VM)` rather than `fork`: it shares
/// the VMM's address space instead of copying its page tables (a fork cost
/// ~0.15 ms here), and because it holds the mm too, the VMM's own exit no
/// longer tears the address space down (guest memory, the binary's
/// mappings, page tables): the helper does that after the VMM is reaped,
/// with the VM's teardown. It gets its own copy of the descriptor table
/// (no CLONE_FILES) and keeps only the VM fd and the pipe.
fn fork_and_hold(vm_fd: RawFd) {
    const STACK: usize = 64 * 1024;
    let mut pipe = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return;
    }
    let (rd, wr) = (pipe[0], pipe[1]);
    // SAFETY: a fresh anonymous mapping, never unmapped: the helper runs on
    // it until it exits, after this process.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    // Leaked on purpose: the helper reads it after this function returns.
    let hold = Box::into_raw(Box::new(Hold { vm_fd, rd }));
    let pid = if stack == libc::MAP_FAILED {
        -1
    } else {
        // SAFETY: `helper_main` runs on the new stack (its top passed, as
        // the stack grows down), reads `hold` (leaked, so valid for ever)
        // and makes only raw system calls (`libc::syscall`, which touches
        // nothing but errno on failure, in the TLS of the thread calling
        // this, which is about to exit), so sharing the address space with
        // this multi-threaded process is sound.
        unsafe {
            libc::clone(
                helper_main,
                stack.cast::<u8>().add(STACK).cast(),
                libc::CLONE_VM | libc::SIGCHLD,
                hold.cast(),
            )
        }
    };
    if pid < 0 {
        // SAFETY: nobody else saw `hold`, the mapping or the pipe.
        unsafe {
            drop(Box::from_raw(hold));
            if stack != libc::MAP_FAILED {
                libc::munmap(stack, STACK);
            }
            libc::close(rd);
            libc::close(wr);
        }
        return;
    }
    // The write end stays open (O_CLOEXEC keeps it out of any process
    // spawned later) until this process exits.
    // SAFETY: closing our copy of the read end.
    unsafe { libc::close(rd) };
}

/// The helper: keeps only the VM fd and the pipe's read end (so nothing the
/// VMM had open, stdout pipes, sockets, a pty, stays open here), waits for
/// the VMM's end of the pipe to close, then exits, dropping the last
/// references to the VM and the address space.
extern "C" fn helper_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the leaked `Hold` of `fork_and_hold`.
    let hold = unsafe { &*arg.cast::<Hold>() };
    let mut keep = [hold.vm_fd, hold.rd];
    keep.sort_unstable();
    close_except(&keep);
    let mut b = 0u8;
    // Blocks until the VMM exits and its write end closes. A raw read:
    // glibc's wrapper is a cancellation point that reads the thread's state.
    // SAFETY: reading one byte into a valid buffer.
    unsafe { libc::syscall(libc::SYS_read, hold.rd, &mut b as *mut u8, 1) };
    // Returning ends the helper (glibc's clone calls the exit system call).
    0
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
            // SAFETY: closing a descriptor number; EBADF is harmless. Raw,
            // as everything the clone(CLONE_VM) helper calls.
            unsafe { libc::syscall(libc::SYS_close, fd as RawFd) };
        }
    }
}
