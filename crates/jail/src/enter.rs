//! The child's side: system calls only, on data made before the fork.

use std::ffi::CStr;
use std::io;

use crate::{Joined, Prepared, Step};

/// Writes `what` and the error to stderr (the child's log), returns the
/// error for the spawn to report.
fn fail(what: &CStr) -> io::Error {
    let e = io::Error::last_os_error();
    let msg = b"rvirt-jail: cannot ";
    // SAFETY: writes of valid buffers to the child's stderr.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::write(2, what.as_ptr().cast(), what.to_bytes().len());
        libc::write(2, b"\n".as_ptr().cast(), 1);
    }
    e
}

fn check(rc: libc::c_long, what: &CStr) -> io::Result<()> {
    if rc < 0 {
        Err(fail(what))
    } else {
        Ok(())
    }
}

/// # Safety
///
/// Single-threaded child between fork and exec.
pub(crate) unsafe fn enter(p: &Prepared, joined: Joined) -> io::Result<()> {
    // SAFETY: raw system calls whose pointer arguments are C strings and
    // buffers owned by `p` or on this stack, valid for each call; in a
    // forked single-threaded child, no other thread observes the process's
    // state changing.
    unsafe {
        // `cgroup.procs` moves the whole thread group under the
        // threadgroup rwsem's write side (an RCU grace period, ms); `tasks`
        // moves the calling thread, which is all of this process, without
        // it (v1 only: v2 refuses threads of a domain cgroup).
        let v2 = p.procs_v2.as_ref().filter(|_| !joined.v2);
        for file in v2.into_iter().chain(p.tasks_v1.iter()) {
            let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            check(fd as libc::c_long, c"join the cgroup")?;
            let rc = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            check(rc as libc::c_long, c"join the cgroup")?;
        }
        check(
            libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWIPC) as libc::c_long,
            c"make namespaces",
        )?;
        check(
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) as libc::c_long,
            c"make the mounts private",
        )?;
        for step in &p.steps {
            match step {
                Step::Mkdir(path, mode) => {
                    if libc::mkdir(path.as_ptr(), *mode) < 0
                        && *libc::__errno_location() != libc::EEXIST
                    {
                        return Err(fail(c"make a directory"));
                    }
                    // mkdir applies the umask; the jail's dirs get their mode.
                    libc::chmod(path.as_ptr(), *mode);
                }
                Step::Touch(path) => {
                    let fd = libc::open(
                        path.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o600,
                    );
                    check(fd as libc::c_long, c"make a mount point")?;
                    libc::close(fd);
                }
                Step::Mknod {
                    path,
                    major,
                    minor,
                    owned,
                } => {
                    let mode = if *owned { 0o600 } else { 0o666 };
                    check(
                        libc::mknod(
                            path.as_ptr(),
                            libc::S_IFCHR | mode,
                            libc::makedev(*major, *minor),
                        ) as libc::c_long,
                        c"make a device node",
                    )?;
                    libc::chmod(path.as_ptr(), mode);
                    if *owned {
                        check(
                            libc::chown(path.as_ptr(), p.uid, p.gid) as libc::c_long,
                            c"give a device node to the jail's user",
                        )?;
                    }
                }
                Step::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                } => {
                    let ptr = |s: &Option<std::ffi::CString>| {
                        s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
                    };
                    check(
                        libc::mount(
                            ptr(source),
                            target.as_ptr(),
                            ptr(fstype),
                            *flags,
                            ptr(data).cast(),
                        ) as libc::c_long,
                        c"mount a tmpfs or /proc",
                    )?;
                }
                Step::Bind {
                    source,
                    target,
                    writable,
                    devices,
                } => {
                    check(
                        libc::mount(
                            source.as_ptr(),
                            target.as_ptr(),
                            std::ptr::null(),
                            libc::MS_BIND | libc::MS_REC,
                            std::ptr::null(),
                        ) as libc::c_long,
                        c"bind a file",
                    )?;
                    let mut flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID;
                    if !*devices {
                        flags |= libc::MS_NODEV;
                    }
                    if !*writable {
                        flags |= libc::MS_RDONLY;
                    }
                    check(
                        libc::mount(
                            std::ptr::null(),
                            target.as_ptr(),
                            std::ptr::null(),
                            flags,
                            std::ptr::null(),
                        ) as libc::c_long,
                        c"make a bind mount read-only",
                    )?;
                }
            }
        }
        check(
            libc::chdir(p.root.as_ptr()) as libc::c_long,
            c"enter the root",
        )?;
        check(
            libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()),
            c"pivot_root",
        )?;
        // The old root is stacked under the new one: detach it.
        check(
            libc::umount2(c".".as_ptr(), libc::MNT_DETACH) as libc::c_long,
            c"detach the old root",
        )?;
        check(
            libc::chdir(c"/".as_ptr()) as libc::c_long,
            c"enter the root",
        )?;
        check(
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
                std::ptr::null(),
            ) as libc::c_long,
            c"make the root read-only",
        )?;
        for r in &p.rlimits {
            let lim = libc::rlimit {
                rlim_cur: r.limit,
                rlim_max: r.limit,
            };
            check(
                libc::setrlimit(r.resource, &lim) as libc::c_long,
                c"set an rlimit",
            )?;
        }
        for cap in 0..=p.last_cap {
            // EINVAL past the kernel's last capability is harmless.
            libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
        }
        check(
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            ) as libc::c_long,
            c"clear the ambient capabilities",
        )?;
        // Raw calls: the credentials of this (only) thread.
        check(
            libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()),
            c"drop the supplementary groups",
        )?;
        check(
            libc::syscall(libc::SYS_setresgid, p.gid, p.gid, p.gid),
            c"set the group",
        )?;
        check(
            libc::syscall(libc::SYS_setresuid, p.uid, p.uid, p.uid),
            c"set the user",
        )?;
        // setresuid away from root cleared the permitted and effective
        // sets; the inheritable set is cleared here.
        let mut header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let data = [CapData::default(); 2];
        check(
            libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()),
            c"clear the capabilities",
        )?;
        check(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long,
            c"set no_new_privs",
        )?;
    }
    Ok(())
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}
