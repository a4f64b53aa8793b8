//! The report of a forbidden system call: a SIGSYS handler that names the
//! thread's kind and the call on stderr, then ends the process.
//!
//! The handler runs in the thread that made the call, under its filters,
//! so it makes only calls every list allows (write, exit_group) and
//! touches no lock and no allocator.

use std::io;

use syscalls::Sysno;

/// The status the VMM exits with after a forbidden call: what a shell
/// shows for a death by SIGSYS.
pub const EXIT_STATUS: i32 = 128 + libc::SIGSYS;

/// siginfo_t as the kernel fills it for SIGSYS (`_sigsys` in
/// include/uapi/asm-generic/siginfo.h), which the libc crate does not
/// spell out.
#[repr(C)]
struct SigsysInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    call_addr: *mut libc::c_void,
    syscall: i32,
    arch: u32,
}

/// Appends `s` to `buf` at `*len`, as far as it fits.
fn put(buf: &mut [u8], len: &mut usize, s: &[u8]) {
    let n = s.len().min(buf.len() - *len);
    buf[*len..*len + n].copy_from_slice(&s[..n]);
    *len += n;
}

fn put_num(buf: &mut [u8], len: &mut usize, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(buf, len, &digits[i..]);
}

/// The report line for call `nr` made by a thread of kind `kind`.
pub fn report(kind: &str, nr: i64, buf: &mut [u8]) -> usize {
    let mut len = 0;
    put(buf, &mut len, b"rvirt-vmm: seccomp: the ");
    put(buf, &mut len, kind.as_bytes());
    put(buf, &mut len, b" thread made a forbidden system call: ");
    let name = usize::try_from(nr)
        .ok()
        .and_then(Sysno::new)
        .map_or("unknown", |s| s.name());
    put(buf, &mut len, name.as_bytes());
    put(buf, &mut len, b" (");
    put_num(buf, &mut len, nr.max(0) as u64);
    put(buf, &mut len, b")\n");
    len
}

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGSYS, whose layout is
    // SigsysInfo's.
    let nr = unsafe { (*(info as *const SigsysInfo)).syscall };
    let mut buf = [0u8; 160];
    let len = report(super::current_kind().name(), i64::from(nr), &mut buf);
    // SAFETY: write and exit_group are async-signal-safe and allowed to
    // every thread; `buf` outlives the call.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), len);
        libc::syscall(libc::SYS_exit_group, EXIT_STATUS);
    }
}

/// Catches SIGSYS for the whole process.
pub fn install() -> io::Result<()> {
    // SAFETY: sigaction with a zeroed struct filled with a handler of the
    // SA_SIGINFO signature and an empty mask.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_the_thread_and_the_call() {
        let mut buf = [0u8; 160];
        let n = report("vcpu", i64::from(Sysno::ptrace.id()), &mut buf);
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            "rvirt-vmm: seccomp: the vcpu thread made a forbidden system call: ptrace (101)\n"
        );
        let n = report("main", 99_999, &mut buf);
        assert!(std::str::from_utf8(&buf[..n])
            .unwrap()
            .ends_with("unknown (99999)\n"));
    }
}
