//! libvirt-dbus (Debian's `libvirt-dbus`) in front of rvirtd: it lists
//! domains, reads their properties, defines, starts, destroys and
//! undefines one, and passes rvirtd's lifecycle events on as D-Bus
//! signals. libvirt-dbus connects to `qemu:///system` only, so it runs in a
//! private mount namespace whose /run/libvirt/libvirt-sock is rvirtd's
//! socket, on a private bus; nothing of the host's libvirtd is touched.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{domain_xml, Rvirtd};
use rvirt_test_guests::Guest;
use rvirt_testkit::{poll, Spawned};
use serde_json::Value;

const BUS_CONF: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=BUS</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"#;

/// The D-Bus client: libvirt-dbus's own methods for the lifecycle, the
/// DomainEvent signals it emits collected until four arrived (or 30 s).
const CLIENT: &str = r#"
import json, sys, time
import dbus, dbus.mainloop.glib
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(sys.argv[1])
xml = open(sys.argv[2]).read()
events = []
def on_event(domain, event, detail, path=None):
    events.append([int(event), int(detail)])
bus.add_signal_receiver(on_event, signal_name="DomainEvent",
                        dbus_interface="org.libvirt.Connect", path_keyword="path")
# libvirt-dbus takes its name once it has connected: wait for it (20 s).
until = time.monotonic() + 20
while not bus.name_has_owner("org.libvirt"):
    if time.monotonic() > until:
        sys.exit("org.libvirt has no owner on the bus after 20 s")
    time.sleep(0.05)
conn = dbus.Interface(bus.get_object("org.libvirt", "/org/libvirt/QEMU"), "org.libvirt.Connect")
props = lambda p: dbus.Interface(bus.get_object("org.libvirt", p), "org.freedesktop.DBus.Properties")
out = {}
out["before"] = [str(props(p).Get("org.libvirt.Domain", "Name")) for p in conn.ListDomains(0)]
out["version"] = int(props("/org/libvirt/QEMU").Get("org.libvirt.Connect", "Version"))
path = conn.DomainDefineXML(xml)
dom = dbus.Interface(bus.get_object("org.libvirt", path), "org.libvirt.Domain")
dom.Create(0)
out["name"] = str(props(path).Get("org.libvirt.Domain", "Name"))
out["active"] = bool(props(path).Get("org.libvirt.Domain", "Active"))
dom.Destroy(0)
dom.Undefine(0)
out["after"] = [str(props(p).Get("org.libvirt.Domain", "Name")) for p in conn.ListDomains(0)]
loop = GLib.MainLoop()
deadline = time.monotonic() + 30
def check():
    if len(events) >= 4 or time.monotonic() > deadline:
        loop.quit()
        return False
    return True
GLib.timeout_add(50, check)
loop.run()
out["events"] = events
print(json.dumps(out))
"#;

fn available() -> bool {
    let ok = |c: &mut Command| {
        rvirt_testkit::try_run(c, Duration::from_secs(30)).is_ok_and(|o| o.status.success())
    };
    let found = ok(Command::new("libvirt-dbus").arg("--help"))
        && ok(Command::new("dbus-daemon").arg("--version"))
        && ok(Command::new("/usr/bin/python3").args([
            "-c",
            "import dbus.mainloop.glib; from gi.repository import GLib",
        ]))
        && rustix::process::geteuid().is_root();
    if !found {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "libvirt-dbus, dbus-daemon, python3-dbus and root are required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("libvirt-dbus (or root) not available: test skipped");
    }
    found
}

#[test]
fn libvirt_dbus_lists_drives_and_signals() {
    if !available() {
        return;
    }
    let d = Rvirtd::start();
    let c = d.client();
    c.call::<rvirt_remote::procs::DomainDefineXml>(&rvirt_remote::calls::DomainDefineXmlArgs {
        xml: domain_xml("already", Guest::Ticker),
    })
    .unwrap();
    drop(c);
    let dir = d.root().join("dbus");
    std::fs::create_dir_all(&dir).unwrap();
    let bus = dir.join("bus");
    std::fs::write(
        dir.join("bus.conf"),
        BUS_CONF.replace("BUS", &bus.to_string_lossy()),
    )
    .unwrap();
    // In its own mount namespace: /run/libvirt a fresh tmpfs whose
    // libvirt-sock leads to rvirtd; then the bus, then libvirt-dbus once
    // the bus listens (its socket file appears at bind, a moment before
    // listen: libvirt-dbus connecting in between is refused and exits).
    // Listening sockets carry flag 00010000 in /proc/net/unix, as
    // rvirt-testkit's wait_listening reads it.
    let script = format!(
        "set -e
mount -t tmpfs rvirt-dbus-test /run/libvirt
ln -s {sock} /run/libvirt/libvirt-sock
dbus-daemon --config-file={conf} --nofork --nopidfile &
listening() {{ awk -v p={bus} '$8 == p && $4 == \"00010000\" {{ f = 1 }} END {{ exit !f }}' /proc/net/unix; }}
i=0; until listening; do i=$((i+1)); [ $i -lt 400 ] || exit 1; sleep 0.05; done
DBUS_SYSTEM_BUS_ADDRESS=unix:path={bus} exec libvirt-dbus --system",
        sock = d.socket().display(),
        conf = dir.join("bus.conf").display(),
        bus = bus.display(),
    );
    let mut service = Spawned::start(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            // Its own process group: dbus-daemon goes with it.
            .process_group(0),
    );
    poll("the private bus", Duration::from_secs(20), || {
        if rvirt_testkit::is_listening(&bus) {
            Ok(())
        } else {
            Err(format!("no bus yet: {}", service.stderr_text()))
        }
    });
    let xml = d.root().join("dbus.xml");
    std::fs::write(&xml, domain_xml("viadbus", Guest::Ticker)).unwrap();
    let address = format!("unix:path={}", bus.display());
    let out = Spawned::start(
        Command::new("/usr/bin/python3")
            .args(["-c", CLIENT, &address])
            .arg(&xml)
            .stdin(Stdio::null()),
    )
    .on_fail(d.reporter())
    .output(Duration::from_secs(120));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no report ({e}): {}{}\nlibvirt-dbus: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            service.stderr_text()
        )
    });
    assert_eq!(report["before"], serde_json::json!(["already"]));
    assert_eq!(report["version"], 1000, "rvirt-vmm 0.1.0 as QEMU-style");
    assert_eq!(report["name"], "viadbus");
    assert_eq!(report["active"], true);
    assert_eq!(report["after"], serde_json::json!(["already"]));
    // DEFINED (0) added, STARTED (2) booted, STOPPED (5) destroyed (2),
    // UNDEFINED (1) removed: rvirtd's events as D-Bus signals.
    assert_eq!(
        report["events"],
        serde_json::json!([[0, 0], [2, 0], [5, 1], [1, 0]]),
        "{report}"
    );
    service.kill();
}
