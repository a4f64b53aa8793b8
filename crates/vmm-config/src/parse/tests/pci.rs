//! PCI placement on the command line, as QEMU 7.2 resolves it.

use super::*;

fn pci(extra: &[&str]) -> VmConfig {
    run(&with_kernel(extra))
}

fn addr(c: &VmConfig, i: usize) -> (PciBus, u8, u8) {
    match c.virtio_addrs[i] {
        DeviceAddr::Pci { addr, .. } => (addr.bus, addr.slot, addr.function),
        DeviceAddr::Mmio => panic!("device {i} on virtio-mmio"),
    }
}

#[test]
fn pc_devices_take_the_first_free_slots_or_their_addr() {
    let c = pci(&[
        "-object",
        "rng-random,id=r,filename=/dev/urandom",
        "-device",
        "virtio-rng-pci,rng=r",
        "-device",
        r#"{"driver":"virtio-balloon-pci","id":"balloon0","bus":"pci.0","addr":"0x7"}"#,
        "-device",
        "virtio-serial-pci,id=vs0,addr=0x5.0x1",
        "-device",
        "virtio-rng-device,rng=r",
        "-device",
        "virtio-blk-pci,drive=d,bootindex=2",
        "-drive",
        "file=/x,if=none,id=d,format=raw",
    ]);
    assert_eq!(c.chipset, Chipset::I440fx);
    assert_eq!(
        addr(&c, 0),
        (PciBus::Root, 2, 0),
        "slots 0 and 1 are the chipset's"
    );
    assert_eq!(addr(&c, 1), (PciBus::Root, 7, 0));
    assert_eq!(addr(&c, 2), (PciBus::Root, 5, 1));
    assert_eq!(c.virtio_addrs[3], DeviceAddr::Mmio);
    assert_eq!(addr(&c, 4), (PciBus::Root, 3, 0));
    assert!(matches!(
        &c.virtio[4],
        VirtioConfig::Blk(d) if d.bootindex == Some(2)
    ));
    assert_eq!(c.virtio_addrs.len(), c.virtio.len());
}

#[test]
fn q35_root_ports_and_devices_behind_them() {
    let c = pci(&[
        "-machine",
        "pc-q35-7.2,usb=off,vmport=off",
        "-device",
        r#"{"driver":"pcie-root-port","port":16,"chassis":1,"id":"pci.1","bus":"pcie.0","multifunction":true,"addr":"0x2"}"#,
        "-device",
        r#"{"driver":"pcie-root-port","port":17,"chassis":2,"id":"pci.2","bus":"pcie.0","addr":"0x2.0x1"}"#,
        "-device",
        "pcie-root-port,port=0x12,chassis=3,id=pci.3",
        "-device",
        r#"{"driver":"virtio-balloon-pci","id":"balloon0","bus":"pci.2","addr":"0x0"}"#,
        "-device",
        "virtio-serial-pci,bus=pci.1",
        "-device",
        "virtio-serial-pci",
    ]);
    assert_eq!(c.chipset, Chipset::Q35);
    let ports: Vec<(&str, u8, u8, u8, u8)> = c
        .root_ports
        .iter()
        .map(|p| {
            (
                p.id.as_str(),
                p.port,
                p.chassis,
                p.addr.slot,
                p.addr.function,
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("pci.1", 16, 1, 2, 0),
            ("pci.2", 17, 2, 2, 1),
            ("pci.3", 0x12, 3, 1, 0)
        ]
    );
    assert!(c.root_ports[0].addr.multifunction);
    assert_eq!(addr(&c, 0), (PciBus::Port(1), 0, 0));
    assert_eq!(addr(&c, 1), (PciBus::Port(0), 0, 0));
    assert_eq!(addr(&c, 2), (PciBus::Root, 3, 0));
}

#[test]
fn qemus_placement_errors() {
    let e = |extra: &[&str]| err(&with_kernel(extra));
    assert_eq!(
        e(&["-device", "virtio-balloon-pci,bus=pci.4"]),
        "-device: Bus 'pci.4' not found"
    );
    assert_eq!(
        e(&["-machine", "q35", "-device", "virtio-balloon-pci,bus=pci.0"]),
        "-device: Bus 'pci.0' not found"
    );
    assert_eq!(
        e(&["-device", "virtio-balloon-pci,addr=1"]),
        "-device: PCI: slot 1 function 0 not available for virtio-balloon-pci, in use by PIIX3"
    );
    assert_eq!(
        e(&[
            "-device",
            "virtio-balloon-pci,addr=4",
            "-device",
            "virtio-serial-pci,addr=4.2"
        ]),
        "-device: PCI: single function device can't be populated in function 4.2"
    );
    assert_eq!(
        e(&[
            "-device",
            "virtio-serial-pci,addr=4.2",
            "-device",
            "virtio-balloon-pci,addr=4"
        ]),
        "-device: PCI: 4.0 indicates single function, but 4.2 is already populated."
    );
    assert_eq!(
        e(&["-device", "virtio-balloon-pci,addr=0x20"]),
        "-device: Property 'virtio-balloon-pci.addr' doesn't take value '0x20'"
    );
    assert_eq!(
        e(&["-M", "microvm", "-device", "virtio-balloon-pci"]),
        "-device: No 'PCI' bus found for device 'virtio-balloon-pci'"
    );
    assert_eq!(
        e(&["-device", "pcie-root-port,id=p1"]),
        "-device: pcie-root-port needs a PCI Express root complex: use machine q35"
    );
    assert_eq!(
        e(&[
            "-M",
            "q35",
            "-device",
            "pcie-root-port,id=p1",
            "-device",
            "virtio-balloon-pci,bus=p1,addr=1"
        ]),
        "-device: PCI: slot 1 is not valid for virtio-balloon-pci, parent device only allows plugging into slot 0."
    );
    assert_eq!(
        e(&["-device", "virtio-blk-pci-transitional,drive=d"]),
        "-device: 'virtio-blk-pci-transitional': rvirt's virtio-pci devices are modern only (no legacy interface); use 'virtio-blk-pci'"
    );
    assert_eq!(
        e(&["-device", "virtio-balloon-pci,disable-legacy=off"]),
        "-device: disable-legacy=off: the legacy virtio-pci interface is not emulated"
    );
    assert_eq!(
        e(&["-device", "ne2k_pci,netdev=n"]),
        "-device: device 'ne2k_pci' is not supported"
    );
    assert_eq!(
        e(&["-device", "virtio-gpu-pci"]),
        "-device: device 'virtio-gpu-pci' is not supported"
    );
}

#[test]
fn globals_libvirt_passes() {
    for g in [
        "kvm-pit.lost_tick_policy=delay",
        "PIIX4_PM.disable_s3=1",
        "PIIX4_PM.disable_s4=1",
        "ICH9-LPC.disable_s3=1",
        "ICH9-LPC.disable_s4=1",
        "PIIX4_PM.acpi-pci-hotplug-with-bridge-support=off",
    ] {
        pci(&["-global", g]);
    }
    assert_eq!(
        err(&with_kernel(&["-global", "PIIX4_PM.disable_s3=0"])),
        "-global: 'PIIX4_PM.disable_s3=0': S3 (suspend to RAM) is not supported"
    );
    assert_eq!(
        err(&with_kernel(&["-global", "isa-fdc.driveA=x"])),
        "-global: 'isa-fdc.driveA=x': not supported"
    );
}

#[test]
fn bochs_display_takes_a_slot_like_any_pci_device() {
    let c = pci(&[
        "-device",
        "virtio-rng-pci,rng=r",
        "-object",
        "rng-random,id=r,filename=/dev/urandom",
        "-device",
        "bochs-display,id=video0,vgamem=5M",
    ]);
    let d = c.display.expect("a display");
    assert_eq!(d.model, DisplayModel::Bochs);
    assert_eq!(d.id.as_deref(), Some("video0"));
    assert_eq!(d.vgamem, 8 << 20, "rounded up to a power of two, as QEMU");
    assert_eq!((d.addr.bus, d.addr.slot), (PciBus::Root, 3));
    let c = pci(&[
        "-device",
        r#"{"driver":"bochs-display","bus":"pci.0","addr":"0x1f"}"#,
    ]);
    assert_eq!(c.display.unwrap().addr.slot, 31);
    assert_eq!(pci(&[]).display, None);
}

#[test]
fn std_vga_as_libvirt_writes_it_and_as_vga_std() {
    let c = pci(&[
        "-device",
        "virtio-rng-pci,rng=r",
        "-object",
        "rng-random,id=r,filename=/dev/urandom",
        "-device",
        r#"{"driver":"VGA","id":"video0","vgamem_mb":8,"bus":"pci.0","addr":"0x5"}"#,
    ]);
    let d = c.display.expect("a display");
    assert_eq!(d.model, DisplayModel::Vga);
    assert_eq!(d.id.as_deref(), Some("video0"));
    assert_eq!(d.vgamem, 8 << 20);
    assert_eq!((d.addr.bus, d.addr.slot), (PciBus::Root, 5));
    assert_eq!(
        d.romfile.as_deref(),
        Some(std::path::Path::new(
            "/usr/share/seabios/vgabios-stdvga.bin"
        ))
    );
    let d = pci(&["-device", "VGA,vgamem_mb=3,romfile="])
        .display
        .unwrap();
    assert_eq!((d.vgamem, d.romfile), (4 << 20, None), "rounded up; no ROM");
    // -vga std comes first whatever the order: 00:02.0 on pc, 00:01.0
    // on q35, as QEMU makes it with the machine.
    let c = pci(&[
        "-device",
        "virtio-rng-pci,rng=r",
        "-object",
        "rng-random,id=r,filename=/dev/urandom",
        "-vga",
        "std",
    ]);
    assert_eq!(c.display.as_ref().unwrap().addr.slot, 2);
    assert_eq!(addr(&c, 0), (PciBus::Root, 3, 0));
    let c = pci(&["-M", "q35", "-vga", "std"]);
    assert_eq!(c.display.unwrap().addr.slot, 1);
    assert_eq!(pci(&["-vga", "none"]).display, None);
    assert_eq!(
        err(&with_kernel(&["-vga", "cirrus"])),
        "-vga: 'cirrus': only 'std' (QEMU's std VGA) and 'none' are supported"
    );
    assert_eq!(
        err(&with_kernel(&["-vga", "std", "-device", "VGA"])),
        "-device: only one display device is supported (the VNC console shows one)"
    );
    assert_eq!(
        err(&with_kernel(&["-device", "VGA,vgamem_mb=512"])),
        "-device: vgamem_mb: 512 MiB does not fit the 256 MiB 32-bit PCI window"
    );
    assert_eq!(
        err(&with_kernel(&["-device", "VGA,vgamem_mb=lots"])),
        "-device: vgamem_mb: 'lots' is not a number of MiB"
    );
}

#[test]
fn e1000_takes_a_netdev_a_mac_and_a_pci_place() {
    let c = pci(&[
        "-netdev",
        "tap,id=hostnet0,ifname=t0",
        "-netdev",
        "tap,id=hostnet1,ifname=t1",
        "-netdev",
        "tap,id=hostnet2,ifname=t2",
        "-device",
        "virtio-net-pci,netdev=hostnet0",
        "-device",
        r#"{"driver":"e1000","netdev":"hostnet1","id":"net1","mac":"52:54:00:aa:bb:cc","bus":"pci.0","addr":"0x7","bootindex":3}"#,
        "-device",
        "e1000,netdev=hostnet2,romfile=",
    ]);
    assert_eq!(c.virtio.len(), 1, "the e1000s leave the virtio list");
    assert_eq!(c.virtio_addrs.len(), 1);
    assert_eq!(addr(&c, 0), (PciBus::Root, 2, 0));
    let [a, b] = &c.nics[..] else {
        panic!("{:?}", c.nics)
    };
    assert_eq!(a.model, NicModel::E1000);
    assert_eq!(a.net.netdev, "hostnet1");
    assert_eq!(a.net.id.as_deref(), Some("net1"));
    assert_eq!(a.net.mac, [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]);
    assert_eq!(a.net.bootindex, Some(3));
    assert_eq!(
        (a.addr.bus, a.addr.slot, a.addr.function),
        (PciBus::Root, 7, 0)
    );
    // QEMU's default MACs: the first free one, whatever the NIC's model.
    assert_eq!(b.net.mac, [0x52, 0x54, 0, 0x12, 0x34, 0x57]);
    assert_eq!(b.addr.slot, 3);
}

/// libvirt 9.0's q35 form: behind a root port, as JSON.
#[test]
fn e1000e_sits_on_the_root_bus_or_behind_a_root_port() {
    let c = pci(&[
        "-M",
        "q35",
        "-netdev",
        "tap,id=hostnet0,ifname=t0",
        "-netdev",
        "tap,id=hostnet1,ifname=t1",
        "-device",
        r#"{"driver":"pcie-root-port","port":16,"chassis":1,"id":"pci.1","bus":"pcie.0","addr":"0x2"}"#,
        "-device",
        r#"{"driver":"e1000e","netdev":"hostnet0","id":"net0","mac":"52:54:00:aa:bb:cc","bus":"pci.1","addr":"0x0"}"#,
        "-device",
        "e1000e,netdev=hostnet1,bus=pcie.0,addr=0x5,vnet=off",
    ]);
    let [a, b] = &c.nics[..] else {
        panic!("{:?}", c.nics)
    };
    assert_eq!(a.model, NicModel::E1000e);
    assert_eq!(a.net.mac, [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]);
    assert_eq!((a.addr.bus, a.addr.slot), (PciBus::Port(0), 0));
    assert_eq!(b.model, NicModel::E1000e);
    assert_eq!((b.addr.bus, b.addr.slot), (PciBus::Root, 5));
}

#[test]
fn e1000_errors_are_qemus() {
    let base = ["-netdev", "tap,id=n,ifname=t0"];
    let e = |extra: &[&str]| err(&with_kernel(&[&base[..], extra].concat()));
    assert!(e(&["-device", "e1000,netdev=nope"])
        .contains("Property 'e1000.netdev' can't find value 'nope'"));
    assert!(e(&["-device", "e1000,netdev=n,mac=01:00:00:00:00:01"]).contains("multicast"));
    assert!(e(&["-device", "e1000,netdev=n,mac=zz"]).contains("Property 'e1000.mac'"));
    assert!(e(&["-device", "e1000,netdev=n,speed=10"]).contains("speed"));
    assert!(e(&["-device", "e1000e,netdev=n,subsys=1"]).contains("subsys"));
    assert!(e(&["-M", "microvm", "-device", "e1000,netdev=n"])
        .contains("No 'PCI' bus found for device 'e1000'"));
    assert!(e(&[
        "-device",
        "e1000,netdev=n",
        "-device",
        "virtio-net-pci,netdev=n"
    ])
    .contains("it's in use"));
    assert!(e(&[
        "-M",
        "q35",
        "-device",
        "pcie-root-port,id=pci.1,chassis=1,addr=0x2",
        "-device",
        "e1000,netdev=n,id=net0,bus=pci.1"
    ])
    .contains("e1000 'net0' must sit on the root bus"));
}

#[test]
fn virtio_input_pci_as_libvirt_writes_it() {
    let c = pci(&[
        "-device",
        r#"{"driver":"virtio-tablet-pci","id":"input0","bus":"pci.0","addr":"0x4"}"#,
        "-device",
        "virtio-keyboard-pci,id=input1",
    ]);
    assert_eq!(addr(&c, 0), (PciBus::Root, 4, 0));
    assert_eq!(addr(&c, 1), (PciBus::Root, 2, 0));
    assert!(matches!(
        &c.virtio[0],
        VirtioConfig::Input(InputConfig {
            model: InputModel::Tablet,
            ..
        })
    ));
}

/// `pci-bridge` on pc (and behind another), `pcie-pci-bridge` behind a
/// root port on q35, as libvirt 9.0 writes them: 32 slots behind each.
#[test]
fn pci_bridges_and_devices_behind_them() {
    let c = pci(&[
        "-device",
        r#"{"driver":"pci-bridge","chassis_nr":1,"id":"pci.1","bus":"pci.0","addr":"0x5"}"#,
        "-device",
        r#"{"driver":"pci-bridge","chassis_nr":2,"id":"pci.2","bus":"pci.1","addr":"0x1"}"#,
        "-device",
        r#"{"driver":"virtio-balloon-pci","id":"balloon0","bus":"pci.1","addr":"0x3"}"#,
        "-device",
        "virtio-serial-pci,bus=pci.2",
    ]);
    let bridges: Vec<(PortModel, &str, u8, PciBus, u8)> = c
        .root_ports
        .iter()
        .map(|p| (p.model, p.id.as_str(), p.chassis, p.addr.bus, p.addr.slot))
        .collect();
    assert_eq!(
        bridges,
        [
            (PortModel::PciBridge, "pci.1", 1, PciBus::Root, 5),
            (PortModel::PciBridge, "pci.2", 2, PciBus::Port(0), 1),
        ]
    );
    assert_eq!(addr(&c, 0), (PciBus::Port(0), 3, 0));
    assert_eq!(addr(&c, 1), (PciBus::Port(1), 0, 0), "the first free slot");

    let c = pci(&[
        "-M",
        "pc-q35-7.2",
        "-device",
        r#"{"driver":"pcie-root-port","port":16,"chassis":1,"id":"pci.1","bus":"pcie.0","addr":"0x2"}"#,
        "-device",
        r#"{"driver":"pcie-pci-bridge","id":"pci.2","bus":"pci.1","addr":"0x0"}"#,
        "-device",
        r#"{"driver":"virtio-balloon-pci","id":"balloon0","bus":"pci.2","addr":"0x1"}"#,
    ]);
    assert_eq!(c.root_ports[1].model, PortModel::PcieToPciBridge);
    assert_eq!(c.root_ports[1].addr.bus, PciBus::Port(0));
    assert_eq!(addr(&c, 0), (PciBus::Port(1), 1, 0));
}

#[test]
fn pci_bridge_errors() {
    let e = |extra: &[&str]| err(&with_kernel(extra));
    assert_eq!(
        e(&["-device", "pci-bridge,id=b"]),
        "-device: Bridge chassis not specified. Each bridge is required to be assigned a unique chassis id > 0."
    );
    assert_eq!(
        e(&["-device", "pci-bridge,id=b,chassis_nr=1,shpc=on"]),
        "-device: pci-bridge has no standard hot-plug controller here: use shpc=off"
    );
    assert_eq!(
        e(&["-device", "pci-bridge,chassis_nr=1"]),
        "-device: pci-bridge needs an id (devices behind it name it as their bus)"
    );
    assert_eq!(
        e(&["-device", "pcie-pci-bridge,id=b"]),
        "-device: pcie-pci-bridge needs a PCI Express root complex: use machine q35"
    );
    assert_eq!(
        e(&["-M", "q35", "-device", "pcie-pci-bridge,id=b,msi=off"]),
        "-device: pcie-pci-bridge always has MSI here: msi=off is not supported"
    );
    assert_eq!(
        e(&[
            "-M",
            "q35",
            "-device",
            "pci-bridge,id=b,chassis_nr=1",
            "-device",
            "pcie-pci-bridge,id=c,bus=b"
        ]),
        "-device: pcie-pci-bridge 'c' must sit on pcie.0 or a pcie-root-port"
    );
    assert_eq!(
        e(&[
            "-device",
            "pci-bridge,id=b,chassis_nr=1,addr=4",
            "-device",
            "pci-bridge,id=b,chassis_nr=2"
        ]),
        "-device: Duplicate device ID 'b'"
    );
}
