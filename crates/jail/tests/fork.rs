//! `Prepared::fork` makes the child inside the jail's cgroup v2 (clone3
//! with CLONE_INTO_CGROUP) and `enter` puts it in each v1 hierarchy: every
//! hierarchy's line of its /proc/PID/cgroup names the jail's group before
//! the program runs. Needs root (cgroups, mounts).

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use rvirt_jail::{Cgroup, Forked, Jail, Limits};

#[test]
fn a_forked_child_starts_in_its_cgroup_in_every_hierarchy() {
    assert!(rustix::process::geteuid().is_root(), "needs root");
    let name = format!("jail-fork-test-{}", std::process::id());
    let cg = Cgroup::create(&name, &Limits::default()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let jail = Jail {
        uid: 65534,
        gid: 65534,
        root: root.path().to_path_buf(),
        tmp_size: 1 << 20,
        cgroup: Some(cg.clone()),
        ..Jail::default()
    };
    let prepared = jail.prepare().unwrap();
    let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let w = ready_w.as_raw_fd();
    // SAFETY: the child makes only system calls (the jail's entry, write,
    // pause, _exit) on data made before the fork.
    let forked = unsafe { prepared.fork() }.unwrap();
    let (pid, pidfd) = match forked {
        // SAFETY: as above, in the child.
        Forked::Child(joined) => unsafe {
            let ok = prepared.enter(joined).is_ok() && joined.v2 == cg.v2.is_some();
            libc::write(w, [u8::from(ok)].as_ptr().cast(), 1);
            libc::pause();
            libc::_exit(0)
        },
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(ready_w);
    let mut fds = [rustix::event::PollFd::new(
        &ready_r,
        rustix::event::PollFlags::IN,
    )];
    let ts = rustix::event::Timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    let ready = rustix::event::poll(&mut fds, Some(&ts)).unwrap();
    let mut b = [0u8];
    let read = if ready > 0 {
        rustix::io::read(&ready_r, &mut b).unwrap()
    } else {
        0
    };
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    // SAFETY: kill and waitpid on the child this test made.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    cg.remove(Duration::from_secs(5));
    assert_eq!((read, b[0]), (1, 1), "the child entered its jail");
    if cg.v2.is_some() {
        // Linux >= 5.7 clones into the group and gives a pidfd with it.
        let pidfd = pidfd.expect("clone3 into the cgroup");
        assert!(pidfd.as_fd().as_raw_fd() >= 0);
        assert!(
            cgroups.lines().any(|l| l == format!("0::/rvirt/{name}")),
            "{cgroups}"
        );
    }
    for ctrl in ["memory", "pids", "cpu"] {
        if let Some(line) = cgroups.lines().find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == ctrl))
        }) {
            assert!(line.ends_with(&format!(":/rvirt/{name}")), "{cgroups}");
        }
    }
}

/// `Prepared::spawn` (CLONE_VM | CLONE_VFORK, as posix_spawn) makes the
/// child in its cgroup as `fork` does, returns once it has exited, and
/// leaves the parent dumpable though the child changed its credentials
/// on the shared memory.
#[test]
fn a_spawned_child_starts_in_its_cgroup_and_the_parent_stays_dumpable() {
    assert!(rustix::process::geteuid().is_root(), "needs root");
    let name = format!("jail-spawn-test-{}", std::process::id());
    let cg = Cgroup::create(&name, &Limits::default()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let jail = Jail {
        uid: 65534,
        gid: 65534,
        root: root.path().to_path_buf(),
        tmp_size: 1 << 20,
        cgroup: Some(cg.clone()),
        ..Jail::default()
    };
    let prepared = jail.prepare().unwrap();
    // SAFETY: PR_GET_DUMPABLE reads a flag.
    let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE) };
    let (report_r, report_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let w = report_w.as_raw_fd();
    let mut run = |joined: rvirt_jail::Joined| -> std::convert::Infallible {
        // SAFETY: system calls only, on this child's own stack and the
        // descriptors made before the spawn; it ends in _exit.
        unsafe {
            // Opened before the jail hides /proc, read after it joined.
            let cg = libc::open(c"/proc/self/cgroup".as_ptr(), libc::O_RDONLY);
            let ok = prepared.enter(joined).is_ok() && cg >= 0;
            let mut buf = [0u8; 2048];
            let n = if cg >= 0 {
                libc::read(cg, buf.as_mut_ptr().cast(), buf.len())
            } else {
                0
            };
            libc::write(w, [u8::from(ok)].as_ptr().cast(), 1);
            if n > 0 {
                libc::write(w, buf.as_ptr().cast(), n as usize);
            }
            libc::_exit(0)
        }
    };
    // SAFETY: `run` keeps to spawn's contract (system calls on data made
    // before, no allocation, ends in _exit).
    let (pid, pidfd) = unsafe { prepared.spawn(&mut run) }.unwrap();
    drop(report_w);
    // The child has exited when spawn returns (CLONE_VFORK): all it wrote
    // is in the pipe.
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(&report_r, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let mut status = 0;
    // SAFETY: waitpid on the child this test made.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    // SAFETY: PR_GET_DUMPABLE reads a flag.
    let dumpable_after = unsafe { libc::prctl(libc::PR_GET_DUMPABLE) };
    cg.remove(Duration::from_secs(5));
    assert_eq!(out.first(), Some(&1), "the child entered its jail");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    assert_eq!(dumpable_after, dumpable, "the parent's dumpable flag");
    let cgroups = String::from_utf8_lossy(&out[1..]);
    if cg.v2.is_some() {
        assert!(pidfd.is_some(), "clone3 gives a pidfd");
        assert!(
            cgroups.lines().any(|l| l == format!("0::/rvirt/{name}")),
            "{cgroups}"
        );
    }
    for ctrl in ["memory", "pids", "cpu"] {
        if let Some(line) = cgroups.lines().find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == ctrl))
        }) {
            assert!(line.ends_with(&format!(":/rvirt/{name}")), "{cgroups}");
        }
    }
}
