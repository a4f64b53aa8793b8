//! libvirt-python (Debian's python3-libvirt) against rvirtd: open, list,
//! lookup, createXML, XMLDesc, an event callback, destroy.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{domain_xml, Rvirtd};
use rvirt_test_guests::Guest;
use rvirt_testkit::{try_run, Spawned};

/// The script's limit; it dumps its stack and exits 10 s before.
const LIMIT: Duration = Duration::from_secs(90);

const SCRIPT: &str = r#"
import faulthandler, sys, threading, time
import libvirt

# A call that hangs prints where the script is before the harness's limit.
faulthandler.dump_traceback_later(80, exit=True)
uri, xml = sys.argv[1], open(sys.argv[2]).read()
libvirt.virEventRegisterDefaultImpl()
conn = libvirt.open(uri)
seen = []
def on_lifecycle(conn, dom, event, detail, opaque):
    seen.append((dom.name(), event, detail))
conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None)
def loop():
    while True:
        libvirt.virEventRunDefaultImpl()
threading.Thread(target=loop, daemon=True).start()

assert conn.listAllDomains() == []
dom = conn.createXML(xml, 0)
assert dom.name() == "py" and dom.ID() >= 1, dom.ID()
assert [d.name() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)] == ["py"]
assert conn.lookupByName("py").UUIDString() == dom.UUIDString()
assert conn.lookupByID(dom.ID()).name() == "py"
assert "<name>py</name>" in dom.XMLDesc(0)
state, reason = dom.state()
assert (state, reason) == (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_BOOTED)
assert dom.info()[0] == libvirt.VIR_DOMAIN_RUNNING
dom.destroy()
deadline = time.time() + 5
while len(seen) < 2 and time.time() < deadline:
    time.sleep(0.05)
assert seen == [("py", libvirt.VIR_DOMAIN_EVENT_STARTED, 0), ("py", libvirt.VIR_DOMAIN_EVENT_STOPPED, 1)], seen
try:
    conn.lookupByName("py")
    raise SystemExit("transient domain still there")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN, e
conn.close()
print("OK")
"#;

/// A Python that has libvirt-python: `python3` on PATH, else Debian's
/// (a pyenv or venv python on PATH does not see python3-libvirt).
fn python_with_libvirt() -> Option<&'static str> {
    let found = ["python3", "/usr/bin/python3"].into_iter().find(|py| {
        try_run(
            Command::new(py).args(["-c", "import libvirt"]),
            Duration::from_secs(30),
        )
        .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "python3-libvirt is required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("python3-libvirt not installed: test skipped");
    }
    found
}

#[test]
fn libvirt_python_drives_rvirtd() {
    let Some(python) = python_with_libvirt() else {
        return;
    };
    let d = Rvirtd::start();
    let xml = d.xml_file("py.xml", &domain_xml("py", Guest::Counter));
    let script = d.xml_file("t.py", SCRIPT);
    let out = Spawned::start(Command::new(python).args([&script, &d.uri(), &xml]))
        .on_fail(d.reporter())
        .output(LIMIT);
    assert!(
        out.status.success(),
        "{}{}\ndaemon: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.daemon_log_tail()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n");
}
