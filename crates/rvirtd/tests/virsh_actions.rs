//! More of the lifecycle through the real virsh: reboot, on_reboot,
//! autostart across a daemon restart, redefining a running domain.

mod common;

use std::time::Duration;

use common::{domain_xml, have_virsh, Rvirtd};
use rvirt_test_guests::Guest;
use rvirt_testkit::wait_for;

#[test]
fn reboot_and_on_reboot_destroy() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let f = d.xml_file("c.xml", &domain_xml("rb", Guest::Counter));
    d.ok(&["define", &f]);
    d.ok(&["start", "rb"]);
    d.wait_log("rb", "COUNT 2");
    // `virsh reset`: at once.
    assert_eq!(d.ok(&["reset", "rb"]), "Domain 'rb' was reset\n\n");
    wait_for("the guest to boot again", Duration::from_secs(10), || {
        d.log("rb").matches("COUNT 0\n").count() == 2
    });
    assert_eq!(d.state("rb"), "running (booted)");
    d.ok(&["destroy", "rb"]);

    // `virsh reboot`: the power button, then a reset once the guest has
    // powered off, as libvirt does without a guest agent.
    let f = d.xml_file("p.xml", &domain_xml("pbr", Guest::Powerbtn));
    d.ok(&["define", &f]);
    d.ok(&["start", "pbr"]);
    d.wait_log("pbr", "PWRBTN_ARMED");
    assert_eq!(
        d.ok(&["reboot", "pbr"]),
        "Domain 'pbr' is being rebooted\n\n"
    );
    wait_for("the guest to boot again", Duration::from_secs(10), || {
        d.log("pbr").matches("PWRBTN_ARMED").count() == 2
    });
    assert_eq!(d.state("pbr"), "running (booted)");
    // The next power-off is a real one.
    d.ok(&["shutdown", "pbr"]);
    d.wait_state("pbr", "shut off (shutdown)");

    // A guest that resets itself, with on_reboot=destroy: shut off (shutdown).
    let xml = domain_xml("rs", Guest::Reset).replace(
        "<on_poweroff>",
        "<on_reboot>destroy</on_reboot>\n  <on_poweroff>",
    );
    let f = d.xml_file("r.xml", &xml);
    d.ok(&["define", &f]);
    d.ok(&["start", "rs"]);
    d.wait_state("rs", "shut off (shutdown)");
}

#[test]
fn autostart_across_a_daemon_restart() {
    if !have_virsh() {
        return;
    }
    let mut d = Rvirtd::start();
    let f = d.xml_file("a.xml", &domain_xml("auto", Guest::Counter));
    d.ok(&["define", &f]);
    assert_eq!(
        d.ok(&["autostart", "auto"]),
        "Domain 'auto' marked as autostarted\n\n"
    );
    assert!(d.root().join("etc/rvirt/qemu/autostart/auto.xml").exists());
    d.kill9();
    d.spawn();
    d.wait_state("auto", "running (booted)");
    d.wait_log("auto", "COUNT 1");
    d.ok(&["destroy", "auto"]);
    assert_eq!(
        d.ok(&["autostart", "--disable", "auto"]),
        "Domain 'auto' unmarked as autostarted\n\n"
    );
    assert!(!d.root().join("etc/rvirt/qemu/autostart/auto.xml").exists());
}

#[test]
fn redefining_a_running_domain_applies_at_next_start() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let f = d.xml_file("a.xml", &domain_xml("re", Guest::Counter));
    d.ok(&["define", &f]);
    d.ok(&["start", "re"]);
    let uuid = d.ok(&["domuuid", "re"]).trim().to_string();
    let bigger =
        domain_xml("re", Guest::Counter).replace("<memory unit='MiB'>64", "<memory unit='MiB'>96");
    let f2 = d.xml_file("b.xml", &bigger);
    d.ok(&["define", &f2]);
    assert_eq!(d.ok(&["domuuid", "re"]).trim(), uuid, "the UUID is kept");
    assert!(d
        .ok(&["dumpxml", "re"])
        .contains("<memory unit='KiB'>65536</memory>"));
    assert!(d
        .ok(&["dumpxml", "--inactive", "re"])
        .contains("<memory unit='KiB'>98304</memory>"));
    d.ok(&["destroy", "re"]);
    d.ok(&["start", "re"]);
    assert!(d
        .ok(&["dumpxml", "re"])
        .contains("<memory unit='KiB'>98304</memory>"));
    d.ok(&["destroy", "re"]);
}

#[test]
fn a_vmm_that_dies_is_shut_off_crashed() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let f = d.xml_file("k.xml", &domain_xml("killed", Guest::Counter));
    d.ok(&["define", &f]);
    d.ok(&["start", "killed"]);
    let pid: i32 = std::fs::read_to_string(d.root().join("run/rvirt/qemu/killed/vmm.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill sends SIGKILL to one positive pid, our VM's.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    d.wait_state("killed", "shut off (crashed)");
    assert!(!d.root().join("run/rvirt/qemu/killed.json").exists());
    assert!(d.log("killed").contains("shutting down, reason=crashed"));
    d.ok(&["start", "killed"]);
    d.ok(&["destroy", "killed"]);
}
