//! Private network namespaces for tests that make links or need a
//! network of their own (passt copies the addresses and default route of
//! the namespace it starts in): the host's interfaces stay untouched, and
//! a test's traffic never leaves the namespace.

use std::process::Command;
use std::time::Duration;

use crate::run;

/// How long one `ip` command may take.
const IP_LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on a thread of its own moved into a new network namespace
/// (what it starts inherits it). False when no namespace can be made, and
/// the test is then skipped, unless `RVIRT_REQUIRE_REFERENCE` is set,
/// which makes it fail.
pub fn in_netns(f: impl FnOnce() + Send + 'static) -> bool {
    in_namespaces(libc::CLONE_NEWNET, f)
}

/// [`in_netns`] with other namespaces too (`CLONE_NEW*` flags).
pub fn in_namespaces(flags: libc::c_int, f: impl FnOnce() + Send + 'static) -> bool {
    let joined = std::thread::spawn(move || {
        // SAFETY: unshare takes flags only; the new namespaces are this
        // thread's (and what it starts) alone.
        if unsafe { libc::unshare(flags) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        f();
        Ok(())
    })
    .join();
    match joined {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            assert!(
                std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
                "cannot create a network namespace ({e}): RVIRT_REQUIRE_REFERENCE is set"
            );
            eprintln!("cannot create a network namespace ({e}): test skipped");
            false
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Moves the calling thread (a test's own: libtest and nextest run each
/// test on a thread of its own) into a new network namespace with its
/// loopback up, for a test that takes host-wide TCP ports: VNC servers
/// from 5900 chosen by the lowest free port. Two such tests at once (in
/// one binary, or in two processes under nextest) would each see 5900
/// free and then race to bind it; in namespaces of their own each has
/// every port to itself. What the thread starts from then on (a daemon,
/// its VMMs, the clients) inherits the namespace; Unix sockets by path
/// still reach the host's (the system libvirtd). False when no namespace
/// can be made (the test is then skipped), unless
/// `RVIRT_REQUIRE_REFERENCE` is set, which makes it fail.
pub fn own_ports() -> bool {
    // SAFETY: unshare takes flags only; the new namespace is this
    // thread's (and what it starts) alone.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        let e = std::io::Error::last_os_error();
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "cannot create a network namespace ({e}): RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("cannot create a network namespace ({e}): test skipped");
        return false;
    }
    ip(&["link", "set", "lo", "up"]);
    true
}

/// Runs `ip ARGS` (iproute2), failing the test on an error.
pub fn ip(args: &[&str]) {
    let out = run(Command::new("ip").args(args), IP_LIMIT);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// In a fresh namespace: loopback up, and a link `uplink0` with
/// 192.0.2.2/24 (TEST-NET-1, nobody's) and a default route via 192.0.2.1,
/// the "host network" user-mode networking copies. It is one end of a veth
/// pair whose other end (`uplink1`) stays in the namespace, so it has a
/// carrier (not every kernel has the dummy link type). Nothing answers at
/// 192.0.2.1: traffic for the host goes to the loopback.
pub fn routed() {
    ip(&["link", "set", "lo", "up"]);
    ip(&[
        "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1",
    ]);
    ip(&["addr", "add", "192.0.2.2/24", "dev", "uplink0"]);
    ip(&["link", "set", "uplink1", "up"]);
    ip(&["link", "set", "uplink0", "up"]);
    ip(&["route", "add", "default", "via", "192.0.2.1"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_ports_gives_the_thread_ports_nobody_else_holds() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let ours = std::thread::spawn(move || {
            if !own_ports() {
                return None;
            }
            // Taken on the host, free here; and what this thread binds
            // is not seen outside.
            Some(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap())
        })
        .join()
        .unwrap();
        if ours.is_some() {
            assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
            drop(held);
            let _again = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }
}
