//! `-device i6300esb`, `-watchdog-action`, `-action`, `-parallel`,
//! `-device isa-parallel`.

use super::*;
use crate::watchdog::{WatchdogAction, PARALLEL_IRQ};

#[test]
fn libvirt_watchdog_and_action() {
    // As libvirt 9.0 writes them (the rng-watchdog-panic fixture).
    let c = run(&with_kernel(&[
        "-device",
        r#"{"driver":"i6300esb","id":"watchdog0","bus":"pci.0","addr":"0xa"}"#,
        "-watchdog-action",
        "poweroff",
    ]));
    let w = c.watchdog.expect("a watchdog");
    assert_eq!(w.id.as_deref(), Some("watchdog0"));
    assert_eq!(
        (w.addr.bus, w.addr.slot, w.addr.function),
        (PciBus::Root, 10, 0)
    );
    assert_eq!(c.watchdog_action, WatchdogAction::Poweroff);
    // The default action, and the first free slot.
    let c = run(&with_kernel(&["-device", "i6300esb"]));
    assert_eq!(c.watchdog_action, WatchdogAction::Reset);
    assert_eq!(c.watchdog.unwrap().addr.slot, 2);
    // -action watchdog= and -watchdog-action override each other in order.
    let c = run(&with_kernel(&[
        "-watchdog-action",
        "pause",
        "-action",
        "watchdog=debug",
    ]));
    assert_eq!(c.watchdog_action, WatchdogAction::Debug);
    // inject-nmi in both spellings, as libvirt writes either.
    let c = run(&with_kernel(&["-watchdog-action", "inject-nmi"]));
    assert_eq!(c.watchdog_action, WatchdogAction::InjectNmi);
    let c = run(&with_kernel(&["-action", "watchdog=inject-nmi"]));
    assert_eq!(c.watchdog_action, WatchdogAction::InjectNmi);
    for (name, a) in WatchdogAction::ALL {
        assert_eq!(WatchdogAction::parse(a.as_str()), Some(a), "{name}");
    }
}

#[test]
fn bad_watchdogs() {
    assert_eq!(
        err(&with_kernel(&["-watchdog-action", "explode"])),
        "-watchdog-action: Parameter 'watchdog' does not accept value 'explode'"
    );
    assert!(err(&with_kernel(&["-action", "reboot=shutdown"])).contains("reboot=shutdown"));
    assert!(err(&with_kernel(&[
        "-device", "i6300esb", "-device", "i6300esb"
    ]))
    .contains("only one i6300esb"));
    assert!(err(&with_kernel(&["-M", "microvm", "-device", "i6300esb"]))
        .contains("No 'PCI' bus found for device 'i6300esb'"));
    assert!(err(&with_kernel(&["-device", "i6300esb,addr=0x1"])).contains("in use by PIIX3"));
    assert!(err(&with_kernel(&["-device", "i6300esb,bogus=1"])).contains("bogus"));
}

#[test]
fn parallel_ports() {
    let c = run(&with_kernel(&[
        "-chardev",
        "file,id=charparallel0,path=/tmp/lp",
        "-device",
        r#"{"driver":"isa-parallel","chardev":"charparallel0","id":"parallel0"}"#,
        "-parallel",
        "pty",
        "-parallel",
        "none",
    ]));
    // The -parallel ports first, as QEMU creates them.
    assert_eq!(c.parallels.len(), 2);
    let (a, b) = (&c.parallels[0], &c.parallels[1]);
    assert_eq!((a.index, a.iobase, a.irq), (0, 0x378, PARALLEL_IRQ));
    assert_eq!(a.backend, ChardevBackend::Pty);
    assert_eq!(
        (b.id.as_str(), b.chardev.as_str()),
        ("parallel0", "charparallel0")
    );
    assert_eq!((b.index, b.iobase), (1, 0x278));
    let c = run(&with_kernel(&[
        "-chardev",
        "null,id=p",
        "-device",
        "isa-parallel,chardev=p,index=2,iobase=0x3bc,irq=5",
    ]));
    assert_eq!(
        (
            c.parallels[0].index,
            c.parallels[0].iobase,
            c.parallels[0].irq
        ),
        (2, 0x3bc, 5)
    );
}

#[test]
fn bad_parallel_ports() {
    assert!(err(&with_kernel(&["-device", "isa-parallel"])).contains("'chardev' is missing"));
    assert!(err(&with_kernel(&["-device", "isa-parallel,chardev=nope"]))
        .contains("chardev 'nope' not found"));
    assert!(err(&with_kernel(&["-parallel", "bogus"])).starts_with("-parallel:"));
    let four = ["-parallel", "null"].repeat(4);
    assert!(err(&with_kernel(&four)).contains("Max. supported number of parallel ports is 3"));
    assert!(err(&with_kernel(&[
        "-chardev",
        "null,id=p",
        "-parallel",
        "null",
        "-device",
        "isa-parallel,chardev=p,index=0"
    ]))
    .contains("LPT1 is taken"));
    assert!(err(&with_kernel(&[
        "-chardev",
        "null,id=p",
        "-device",
        "isa-parallel,chardev=p,irq=16"
    ]))
    .contains("'irq'"));
}
