//! `<watchdog model='i6300esb'>` through rvirtd with libvirt-python
//! (Debian's python3-libvirt): the `wdt` guest arms the watchdog and stops
//! reloading it; the client gets libvirt's watchdog event and the
//! lifecycle events its action causes, as libvirtd reports QEMU's.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Rvirtd;
use rvirt_test_guests::Guest;
use rvirt_testkit::{try_run, Spawned};

/// The script's limit; it dumps its stack and exits 10 s before.
const LIMIT: Duration = Duration::from_secs(120);

const SCRIPT: &str = r#"
import faulthandler, sys, threading, time
import libvirt

faulthandler.dump_traceback_later(110, exit=True)
uri, pause_xml, reset_xml = sys.argv[1], open(sys.argv[2]).read(), open(sys.argv[3]).read()
libvirt.virEventRegisterDefaultImpl()
conn = libvirt.open(uri)
seen = []
def on_watchdog(conn, dom, action, opaque):
    seen.append((dom.name(), "watchdog", action))
def on_lifecycle(conn, dom, event, detail, opaque):
    seen.append((dom.name(), "lifecycle", event, detail))
def on_reboot(conn, dom, opaque):
    seen.append((dom.name(), "reboot"))
conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_WATCHDOG, on_watchdog, None)
conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None)
conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, on_reboot, None)
def loop():
    while True:
        libvirt.virEventRunDefaultImpl()
threading.Thread(target=loop, daemon=True).start()

def wait_for(what, pred, limit=40):
    deadline = time.time() + limit
    while not pred() and time.time() < deadline:
        time.sleep(0.05)
    assert pred(), (what, seen)

# action='pause': the watchdog event, then the domain paused by the
# watchdog (one SUSPENDED event: the VMM's STOP adds nothing).
dom = conn.createXML(pause_xml, 0)
wait_for("pause", lambda: dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED)
assert dom.state() == [libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_WATCHDOG], dom.state()
time.sleep(0.5)
mine = [e for e in seen if e[0] == "wdp"]
assert mine == [
    ("wdp", "lifecycle", libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_BOOTED),
    ("wdp", "watchdog", libvirt.VIR_DOMAIN_EVENT_WATCHDOG_PAUSE),
    ("wdp", "lifecycle", libvirt.VIR_DOMAIN_EVENT_SUSPENDED, libvirt.VIR_DOMAIN_EVENT_SUSPENDED_WATCHDOG),
], mine
dom.destroy()

# action='reset': the watchdog event and a reboot; the guest's second boot
# finds the previous-reboot flag and powers off (on_poweroff destroy).
dom = conn.createXML(reset_xml, 0)
wait_for("power-off", lambda: any(e[0] == "wdr" and e[1] == "lifecycle" and e[2] == libvirt.VIR_DOMAIN_EVENT_STOPPED for e in seen))
mine = [e for e in seen if e[0] == "wdr"]
assert mine == [
    ("wdr", "lifecycle", libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_BOOTED),
    ("wdr", "watchdog", libvirt.VIR_DOMAIN_EVENT_WATCHDOG_RESET),
    ("wdr", "reboot"),
    ("wdr", "lifecycle", libvirt.VIR_DOMAIN_EVENT_SHUTDOWN, libvirt.VIR_DOMAIN_EVENT_SHUTDOWN_GUEST),
    ("wdr", "lifecycle", libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN),
], mine
conn.close()
print("OK")
"#;

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

/// A pc domain booting the `wdt` guest with an i6300esb taking `action`.
fn wdt_xml(name: &str, action: &str) -> String {
    format!(
        "<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{}</kernel>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <devices>
    <serial type='stdio'><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <watchdog model='i6300esb' action='{action}'/>
  </devices>
</domain>
",
        Guest::Wdt.path().display()
    )
}

#[test]
fn watchdog_events_reach_libvirt_python() {
    let Some(python) = python_with_libvirt() else {
        return;
    };
    let d = Rvirtd::start();
    let pause = d.xml_file("wdp.xml", &wdt_xml("wdp", "pause"));
    let reset = d.xml_file("wdr.xml", &wdt_xml("wdr", "reset"));
    let script = d.xml_file("t.py", SCRIPT);
    let out = Spawned::start(Command::new(python).args([&script, &d.uri(), &pause, &reset]))
        .on_fail(d.reporter())
        .output(LIMIT);
    assert!(
        out.status.success(),
        "{}{}\ndaemon: {}\nwdp: {}\nwdr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.daemon_log_tail(),
        d.log("wdp"),
        d.log("wdr"),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n");
    // The guest's second boot saw the watchdog's reset.
    assert!(
        d.log("wdr").contains("WDT_PREVIOUS 0x1200"),
        "{}",
        d.log("wdr")
    );
}

/// `<parallel type='file'>`: rvirtd opens the file and passes it to the
/// confined VMM; the `lpt` guest's bytes land in it.
#[test]
fn parallel_port_prints_to_a_file() {
    let d = Rvirtd::start();
    let out = d.root().join("lp.out");
    let xml = format!(
        "<domain type='kvm'>
  <name>lpt</name>
  <memory unit='MiB'>128</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{}</kernel>
    <cmdline>lpt.msg=through-rvirtd</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <serial type='stdio'><target port='0'/></serial>
    <parallel type='file'><source path='{}'/><target port='0'/></parallel>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
",
        Guest::Lpt.path().display(),
        out.display()
    );
    let file = d.xml_file("lpt.xml", &xml);
    d.ok(&["define", &file]);
    d.ok(&["start", "lpt"]);
    d.wait_log("lpt", "LPT_SENT");
    d.wait_state("lpt", "shut off (shutdown)");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap_or_default(),
        "through-rvirtd\n",
        "{}",
        d.log("lpt")
    );
}

/// `virsh inject-nmi`: QMP `inject-nmi` on the domain's VMM; the `nmi`
/// guest takes it and powers off. A shut-off domain: libvirt's error.
#[test]
fn virsh_inject_nmi_reaches_the_guest() {
    let d = Rvirtd::start();
    let file = d.xml_file("nmi.xml", &common::domain_xml("nmi", Guest::Nmi));
    d.ok(&["define", &file]);
    d.ok(&["start", "nmi"]);
    d.wait_log("nmi", "NMI_READY lint1=0x00400");
    assert!(!d.log("nmi").contains("NMI 1"), "{}", d.log("nmi"));
    // virsh prints nothing of its own but the blank line after a command.
    assert_eq!(d.ok(&["inject-nmi", "nmi"]), "\n");
    d.wait_log("nmi", "NMI 1");
    d.wait_log("nmi", "NMI_END count=1");
    d.wait_state("nmi", "shut off (shutdown)");
    let e = d.fails(&["inject-nmi", "nmi"]);
    assert_eq!(
        e,
        "error: Requested operation is not valid: domain is not running\n"
    );
}

const Q35_SCRIPT: &str = r#"
import faulthandler, sys, threading, time
import libvirt

faulthandler.dump_traceback_later(110, exit=True)
uri, xml = sys.argv[1], open(sys.argv[2]).read()
libvirt.virEventRegisterDefaultImpl()
conn = libvirt.open(uri)
seen = []
conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_WATCHDOG,
    lambda c, d, action, o: seen.append((d.name(), "watchdog", action)), None)
def loop():
    while True:
        libvirt.virEventRunDefaultImpl()
threading.Thread(target=loop, daemon=True).start()
dom = conn.createXML(xml, 0)
deadline = time.time() + 90
while not seen and time.time() < deadline:
    time.sleep(0.05)
assert seen == [("wdq", "watchdog", libvirt.VIR_DOMAIN_EVENT_WATCHDOG_INJECTNMI)], seen
print("OK")
"#;

/// `<watchdog model='i6300esb' action='inject-nmi'>` on q35: libvirt's
/// fill-in puts it behind a pcie-to-pci-bridge on a pcie-root-port; the
/// `wdt` guest finds it there and arms it, the client gets libvirt's
/// watchdog event with the inject-nmi action and the guest its NMI.
#[test]
fn q35_watchdog_behind_a_pcie_to_pci_bridge_fires() {
    let Some(python) = python_with_libvirt() else {
        return;
    };
    let d = Rvirtd::start();
    let xml = wdt_xml("wdq", "inject-nmi")
        .replace("machine='pc'", "machine='q35'")
        .replace("</kernel>", "</kernel>\n    <cmdline>wdt.nmi</cmdline>");
    let file = d.xml_file("wdq.xml", &xml);
    // The persistent definition shows where libvirt 9.0 puts it.
    d.ok(&["define", &file]);
    let dumped = d.ok(&["dumpxml", "--inactive", "wdq"]);
    assert!(
        dumped.contains("<controller type='pci' index='2' model='pcie-to-pci-bridge'>"),
        "{dumped}"
    );
    assert!(
        dumped.contains(
            "<address type='pci' domain='0x0000' bus='0x02' slot='0x01' function='0x0'/>\n    </watchdog>"
        ),
        "{dumped}"
    );
    d.ok(&["undefine", "wdq"]);
    let script = d.xml_file("q35.py", Q35_SCRIPT);
    let out = Spawned::start(Command::new(python).args([&script, &d.uri(), &file]))
        .on_fail(d.reporter())
        .output(LIMIT);
    assert!(
        out.status.success(),
        "{}{}\ndaemon: {}\nwdq: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.daemon_log_tail(),
        d.log("wdq"),
    );
    d.wait_log("wdq", "WDT_NMI 1");
    assert!(
        d.log("wdq").contains("WDT class=0x088000"),
        "{}",
        d.log("wdq")
    );
}

/// `<parallel type='pty'>`: the live XML shows the pty rvirt-vmm opened
/// (from `query-chardev`), as libvirt shows it, before `<target>`.
#[test]
fn parallel_pty_shows_in_the_live_xml() {
    let d = Rvirtd::start();
    let xml = common::domain_xml("lpty", Guest::Idle)
        .replace("machine='microvm'", "machine='pc'")
        .replace(
            "<controller type='usb' model='none'/>",
            "<parallel type='pty'><target port='0'/></parallel>\n    <controller type='usb' model='none'/>",
        );
    let file = d.xml_file("lpty.xml", &xml);
    d.ok(&["define", &file]);
    d.ok(&["start", "lpty"]);
    let live = d.ok(&["dumpxml", "lpty"]);
    let start = live.find("<parallel type='pty'>").expect("the port");
    let port = &live[start..start + live[start..].find("</parallel>").unwrap()];
    let path = port
        .split("<source path='")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .unwrap_or_else(|| panic!("no pty in {port}"));
    assert!(path.starts_with("/dev/pts/"), "{port}");
    assert!(
        port.find("<source").unwrap() < port.find("<target").unwrap(),
        "{port}"
    );
    let pty = std::fs::File::open(path).expect(path);
    assert!(std::io::IsTerminal::is_terminal(&pty), "{path}");
    // The definition keeps no pty.
    assert!(!d
        .ok(&["dumpxml", "--inactive", "lpty"])
        .contains("<source path='/dev/pts/"));
    d.ok(&["destroy", "lpty"]);
}
