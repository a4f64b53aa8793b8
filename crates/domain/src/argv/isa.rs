//! `<watchdog model='i6300esb'>` and `<parallel>` as libvirt 9.0 writes
//! them: `-device {"driver":"i6300esb","id":"watchdog0","bus":…,"addr":…}`
//! with `-watchdog-action` (always written; libvirt's default action is
//! reset), and `-chardev …,id=charparallelN` with
//! `-device {"driver":"isa-parallel","chardev":…,"id":"parallelN"}`.

use serde::Serialize;

use super::devices::chardev_backend;
use super::pci::{self, PciPlace};
use super::Builder;
use crate::model::{Domain, OtherDevice};

/// How many of each were written.
#[derive(Default)]
pub(super) struct Counters {
    watchdogs: usize,
    parallels: usize,
}

#[derive(Serialize)]
struct Watchdog<'a> {
    driver: &'static str,
    id: &'a str,
    #[serde(flatten)]
    pci: PciPlace,
}

#[derive(Serialize)]
struct Parallel<'a> {
    driver: &'static str,
    chardev: &'a str,
    id: &'a str,
}

/// The action rvirt-vmm takes for libvirt's, or why it cannot.
fn action(a: &str) -> Result<&'static str, String> {
    Ok(match a {
        "reset" => "reset",
        "shutdown" => "shutdown",
        "poweroff" => "poweroff",
        "pause" => "pause",
        "none" => "none",
        "inject-nmi" => "inject-nmi",
        // libvirt turns dump into pause and dumps the guest itself on the
        // event; rvirtd has no dump.
        "dump" => return Err("action 'dump' is not supported (no guest dumps yet)".into()),
        other => return Err(format!("unknown action '{other}'")),
    })
}

pub(super) fn watchdog(dom: &Domain, o: &OtherDevice, n: &mut Counters, b: &mut Builder) {
    let line = o.line();
    // libvirt 9.0 takes one watchdog.
    if n.watchdogs > 0 {
        b.refuse(line, "watchdog", "only one watchdog is supported");
        return;
    }
    let act = match action(o.element.attr("action").unwrap_or("reset")) {
        Ok(a) => a,
        Err(reason) => {
            b.refuse(line, "watchdog", reason);
            return;
        }
    };
    let Some(place) = pci::place(dom, o.element.child("address"), line, "watchdog", b) else {
        b.refuse(line, "watchdog", "the i6300esb needs a PCI address");
        return;
    };
    let id = alias(o).unwrap_or_else(|| format!("watchdog{}", n.watchdogs));
    n.watchdogs += 1;
    b.opt(
        "-device",
        super::blockdev::json(&Watchdog {
            driver: "i6300esb",
            id: &id,
            pci: place,
        }),
    );
    b.opt("-watchdog-action", act);
}

pub(super) fn parallel(o: &OtherDevice, n: &mut Counters, b: &mut Builder) {
    let i = n.parallels;
    n.parallels += 1;
    let what = format!("parallel {i}");
    if i >= 3 {
        b.refuse(o.line(), what, "at most 3 parallel ports (LPT1-LPT3)");
        return;
    }
    let c = crate::parse::parallel_chardev(&o.element);
    let chardev = format!("charparallel{i}");
    let backend = match chardev_backend(&c, &chardev, b) {
        Ok(s) => s,
        Err(reason) => {
            b.refuse(o.line(), what, reason);
            return;
        }
    };
    let id = alias(o).unwrap_or_else(|| format!("parallel{i}"));
    b.opt("-chardev", backend);
    b.opt(
        "-device",
        super::blockdev::json(&Parallel {
            driver: "isa-parallel",
            chardev: &chardev,
            id: &id,
        }),
    );
}

/// The `<parallel>` ports as character devices, with the chardev ids the
/// derivation gives them (`charparallelN`): the daemon opens their files.
pub fn parallel_chardevs(dom: &Domain) -> Vec<(String, crate::model::Chardev)> {
    dom.devices
        .others
        .iter()
        .filter(|o| o.kind() == "parallel")
        .enumerate()
        .map(|(i, o)| {
            (
                format!("charparallel{i}"),
                crate::parse::parallel_chardev(&o.element),
            )
        })
        .collect()
}

fn alias(o: &OtherDevice) -> Option<String> {
    o.element
        .child("alias")
        .and_then(|a| a.attr("name"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use crate::{derive_argv, DeriveError, Domain, RuntimePaths};

    fn domain(devices: &str) -> Domain {
        let xml = format!(
            "<domain type='kvm'><name>w</name><memory unit='MiB'>128</memory>\
             <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>\
             <devices>{devices}</devices></domain>"
        );
        let mut d = Domain::from_xml(&xml).unwrap();
        d.fill_in();
        d
    }

    fn args(devices: &str) -> Vec<String> {
        let paths = RuntimePaths::in_dir("/run/rvirt/t");
        derive_argv(&domain(devices), &paths)
            .unwrap_or_else(|e| panic!("{devices}: {e}"))
            .args
    }

    fn refused(devices: &str) -> String {
        let paths = RuntimePaths::in_dir("/run/rvirt/t");
        match derive_argv(&domain(devices), &paths) {
            Err(e @ DeriveError::Unsupported(_)) => e.to_string(),
            other => panic!("{devices}: {other:?}"),
        }
    }

    fn after<'a>(a: &'a [String], flag: &str) -> Vec<&'a str> {
        a.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn watchdog_as_libvirt_9_0() {
        // The rng-watchdog-panic fixture's device and libvirt's argv.
        let a = args(
            "<watchdog model='i6300esb' action='poweroff'>\
             <address type='pci' domain='0x0000' bus='0x00' slot='0x0a' function='0x0'/>\
             </watchdog>",
        );
        assert!(after(&a, "-device")
            .contains(&r#"{"driver":"i6300esb","id":"watchdog0","bus":"pci.0","addr":"0xa"}"#));
        assert_eq!(after(&a, "-watchdog-action"), ["poweroff"]);
        let a = args("<watchdog model='i6300esb' action='inject-nmi'/>");
        assert_eq!(after(&a, "-watchdog-action"), ["inject-nmi"]);
        // No action: libvirt's default, reset; the address from fill-in.
        let a = args("<watchdog model='i6300esb'/>");
        assert_eq!(after(&a, "-watchdog-action"), ["reset"]);
        assert!(after(&a, "-device").iter().any(
            |d| d.starts_with(r#"{"driver":"i6300esb","id":"watchdog0","bus":"pci.0","addr":"#)
        ));
    }

    #[test]
    fn other_watchdogs_are_refused_in_one_line() {
        let e = refused("<watchdog model='ib700' action='reset'/>");
        assert!(e.contains("'ib700' is not emulated"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        let e = refused("<watchdog model='i6300esb' action='dump'/>");
        assert!(e.contains("'dump' is not supported"), "{e}");
        let e = refused("<watchdog model='i6300esb'/><watchdog model='i6300esb'/>");
        assert!(e.contains("only one watchdog"), "{e}");
    }

    #[test]
    fn parallel_ports_as_libvirt_9_0() {
        let a = args(
            "<parallel type='file'><source path='/tmp/lp.txt'/><target port='0'/></parallel>\
             <parallel type='pty'><target port='1'/></parallel>\
             <parallel type='unix'><source mode='bind' path='/tmp/lp.sock'/><target port='2'/></parallel>",
        );
        let chardevs: Vec<&str> = after(&a, "-chardev")
            .into_iter()
            .filter(|c| c.contains("charparallel"))
            .collect();
        assert_eq!(
            chardevs,
            [
                "file,id=charparallel0,path=/tmp/lp.txt",
                "pty,id=charparallel1",
                "socket,id=charparallel2,path=/tmp/lp.sock,server=on,wait=off"
            ]
        );
        let devs: Vec<&str> = after(&a, "-device")
            .into_iter()
            .filter(|d| d.contains("isa-parallel"))
            .collect();
        assert_eq!(
            devs,
            [
                r#"{"driver":"isa-parallel","chardev":"charparallel0","id":"parallel0"}"#,
                r#"{"driver":"isa-parallel","chardev":"charparallel1","id":"parallel1"}"#,
                r#"{"driver":"isa-parallel","chardev":"charparallel2","id":"parallel2"}"#
            ]
        );
        let e = refused("<parallel type='spicevmc'/>");
        assert!(e.contains("parallel 0"), "{e}");
    }
}
