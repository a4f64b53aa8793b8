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
