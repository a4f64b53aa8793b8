//! Firmware boot options.

use super::*;

#[test]
fn without_a_kernel_the_machine_boots_its_seabios() {
    let c = run(&["-m", "256"]);
    assert_eq!(c.kernel, None);
    let bios = c.bios.unwrap();
    assert!(bios.ends_with("bios-256k.bin"), "{bios:?}");
    let c = run(&["-M", "microvm"]);
    assert!(c.bios.unwrap().ends_with("bios-microvm.bin"));
    let c = run(&["-bios", "/tmp/my.bin", "-M", "q35"]);
    assert_eq!(c.bios, Some("/tmp/my.bin".into()));
    // The direct boot stays firmware-free.
    assert_eq!(run(K).bios, None);
}

#[test]
fn kernel_and_firmware_together_are_refused() {
    assert_eq!(
        err(&with_kernel(&["-bios", "/x.bin"])),
        "-bios: cannot be combined with -kernel: rvirt boots a kernel directly, without firmware"
    );
    assert_eq!(
        err(&with_kernel(&["-fw_cfg", "opt/a,string=b"])),
        "-fw_cfg: 'opt/a': fw_cfg serves firmware, and -kernel boots without it"
    );
    assert_eq!(err(&["-append", "x"]), "-append: only allowed with -kernel");
}

#[test]
fn boot_options_as_qemu_spells_them() {
    let c = run(&[
        "-boot",
        "order=cd,menu=on,strict=on,reboot-timeout=5000,splash-time=300",
    ]);
    assert_eq!(
        c.boot,
        BootOptions {
            order: Some("cd".into()),
            menu: true,
            splash_time: Some(300),
            strict: true,
            reboot_timeout: Some(5000),
        }
    );
    assert_eq!(run(&["-boot", "c"]).boot.order.as_deref(), Some("c"));
    assert_eq!(run(&["-boot", "strict=on"]).boot.order, None);
    assert_eq!(
        err(&["-boot", "order=cx"]),
        "-boot: invalid boot device 'x' in order 'cx'"
    );
    assert_eq!(
        err(&["-boot", "reboot-timeout=70000"]),
        "-boot: reboot timeout is out of range -1..65535"
    );
    assert_eq!(
        run(&["-boot", "reboot-timeout=-1"]).boot.reboot_timeout,
        Some(-1)
    );
}

#[test]
fn fw_cfg_items() {
    let c = run(&[
        "-fw_cfg",
        "name=opt/org.rvirt/a,string=hello",
        "-fw_cfg",
        "opt/b,file=/etc/hostname",
    ]);
    assert_eq!(
        c.fw_cfg,
        [
            FwCfgItem {
                name: "opt/org.rvirt/a".into(),
                source: FwCfgSource::String("hello".into()),
            },
            FwCfgItem {
                name: "opt/b".into(),
                source: FwCfgSource::File("/etc/hostname".into()),
            },
        ]
    );
    assert_eq!(
        err(&["-fw_cfg", "etc/e820,string=x"]),
        "-fw_cfg: name 'etc/e820' must start with opt/"
    );
    assert_eq!(
        err(&["-fw_cfg", "opt/a,string=x,file=y"]),
        "-fw_cfg: give exactly one of file= and string="
    );
    assert_eq!(
        err(&["-fw_cfg", "opt/a"]),
        "-fw_cfg: give exactly one of file= and string="
    );
    let long = format!("opt/{}", "x".repeat(52));
    assert!(err(&["-fw_cfg", &format!("{long},string=x")]).contains("longer than 55 bytes"));
}

#[test]
fn debug_console_forms() {
    let c = run(&["-debugcon", "file:/tmp/d.log"]);
    let d = c.debugcon.unwrap();
    assert_eq!(d.port, 0xe9);
    assert_eq!(
        d.backend,
        ChardevBackend::File {
            path: "/tmp/d.log".into(),
            append: false
        }
    );
    let c = run(&["-debugcon", "stdio", "-global", "isa-debugcon.iobase=0x402"]);
    assert_eq!(c.debugcon.unwrap().port, 0x402);
    let c = run(&[
        "-chardev",
        "null,id=dbg",
        "-device",
        "isa-debugcon,chardev=dbg,iobase=1026",
    ]);
    let d = c.debugcon.unwrap();
    assert_eq!((d.port, d.backend), (0x402, ChardevBackend::Null));
    assert_eq!(
        err(&["-global", "isa-debugcon.iobase=zz"]),
        "-global: invalid port 'zz'"
    );
    assert!(err(&["-device", "isa-debugcon,chardev=nope"]).contains("chardev 'nope' not found"));
}

#[test]
fn boot_index_on_disks() {
    let c = run(&[
        "-drive",
        "file=/d.img,format=raw,if=none,id=d0",
        "-device",
        "virtio-blk-device,drive=d0,bootindex=1",
    ]);
    match &c.virtio[0] {
        VirtioConfig::Blk(d) => assert_eq!(d.bootindex, Some(1)),
        other => panic!("{other:?}"),
    }
}
