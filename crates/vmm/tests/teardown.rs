//! The exit helper (crates/vmm/src/teardown.rs): rvirt-vmm hands the VM's
//! last reference (and, without -sandbox, its address space) to a child
//! that drops it once rvirt-vmm has exited. The child must exist, keep none
//! of rvirt-vmm's descriptors and end right after it.
//!
//! One test in this file: it makes the test process a child subreaper and
//! reaps any child, which would steal other tests' children.

mod common;

use std::time::Duration;

use common::*;

/// Reaps one child that has exited, if any.
fn reap_any() -> Option<libc::pid_t> {
    let mut status = 0;
    // SAFETY: waitpid with a valid status pointer; WNOHANG never blocks.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (pid > 0).then_some(pid)
}

#[test]
fn the_exit_helper_drops_the_vm_right_after_the_vmm() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) changes only this process's
    // flag: orphans of its descendants (the helper, once rvirt-vmm exited)
    // become its children.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0);
    // `boot` reads the serial output to its end: a helper that kept
    // rvirt-vmm's stdout open would hold it past the deadline.
    let run = boot(Guest::Oneline, &["-m", "128", "-no-reboot"]);
    assert!(run.stdout.contains("ONELINE"), "{}", run.stdout);
    let mut helper = None;
    wait_for(
        "the exit helper to end after rvirt-vmm",
        Duration::from_secs(10),
        || {
            helper = reap_any();
            helper.is_some()
        },
    );
    // Only the one helper: nothing else of rvirt-vmm's outlives it.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(reap_any(), None, "a second orphan after {helper:?}");
}
