//! `-device qemu-xhci` and the USB HID devices on it.

use super::*;
use crate::usb::UsbDeviceModel;

#[test]
fn libvirt_usb_controller_and_tablet() {
    // As libvirt 9.0 writes them (on pc's root bus).
    let c = run(&with_kernel(&[
        "-device",
        r#"{"driver":"qemu-xhci","p2":15,"p3":15,"id":"usb","bus":"pci.0","addr":"0x4"}"#,
        "-device",
        r#"{"driver":"usb-tablet","id":"input0","bus":"usb.0","port":"1"}"#,
        "-device",
        "usb-kbd,id=input1,bus=usb.0,port=2",
    ]));
    let x = &c.usb_controllers[0];
    assert_eq!((x.id.as_deref(), x.p2, x.p3), (Some("usb"), 15, 15));
    assert_eq!((x.addr.bus, x.addr.slot), (PciBus::Root, 4));
    assert_eq!(c.usb_devices.len(), 2);
    let t = &c.usb_devices[0];
    assert_eq!(
        (t.model, t.id.as_deref(), t.controller, t.port),
        (UsbDeviceModel::Tablet, Some("input0"), 0, 1)
    );
    assert_eq!(c.usb_devices[1].model, UsbDeviceModel::Keyboard);
    // QEMU's defaults: 4 + 4 ports, the first free slot and port.
    let c = run(&with_kernel(&[
        "-device",
        "qemu-xhci",
        "-device",
        "usb-mouse",
        "-device",
        "usb-tablet",
    ]));
    assert_eq!((c.usb_controllers[0].p2, c.usb_controllers[0].p3), (4, 4));
    assert_eq!(c.usb_controllers[0].addr.slot, 2);
    let ports: Vec<u8> = c.usb_devices.iter().map(|d| d.port).collect();
    assert_eq!(ports, [1, 2]);
    // Port counts past QEMU's maximum are clamped, as QEMU does.
    let c = run(&with_kernel(&["-device", "qemu-xhci,p2=40"]));
    assert_eq!(c.usb_controllers[0].p2, 15);
}

#[test]
fn bad_usb_devices() {
    assert_eq!(
        err(&with_kernel(&["-device", "usb-tablet"])),
        "-device: No 'usb-bus' bus found for device 'usb-tablet'"
    );
    assert!(err(&with_kernel(&[
        "-device",
        "qemu-xhci,id=usb",
        "-device",
        "usb-tablet,bus=usb1.0"
    ]))
    .contains("Bus 'usb1.0' not found"));
    assert!(err(&with_kernel(&[
        "-device",
        "qemu-xhci,id=usb",
        "-device",
        "usb-tablet,port=1",
        "-device",
        "usb-kbd,port=1"
    ]))
    .contains("in use"));
    assert!(err(&with_kernel(&[
        "-device",
        "qemu-xhci,p2=2,p3=4",
        "-device",
        "usb-kbd,port=3"
    ]))
    .contains("speed mismatch"));
    assert!(err(&with_kernel(&[
        "-device",
        "qemu-xhci",
        "-device",
        "usb-kbd,port=1.2"
    ]))
    .contains("no USB hubs"));
    assert!(err(&with_kernel(&["-device", "qemu-xhci,p2=x"])).contains("p2"));
    assert!(
        err(&with_kernel(&["-M", "microvm", "-device", "qemu-xhci"]))
            .contains("No 'PCI' bus found for device 'qemu-xhci'")
    );
    assert!(err(&with_kernel(&[
        "-device",
        "qemu-xhci",
        "-device",
        "usb-tablet,bogus=1"
    ]))
    .contains("bogus"));
    let full: Vec<&str> = std::iter::once(["-device", "qemu-xhci,p2=1"])
        .chain(std::iter::repeat_n(["-device", "usb-kbd"], 2))
        .flatten()
        .collect();
    assert!(err(&with_kernel(&full)).contains("no free usb port"));
}
