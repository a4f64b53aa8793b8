//! virtio-scsi controllers and their `scsi-hd`/`scsi-cd` LUNs, as libvirt
//! 9.0 writes them.

use super::*;

fn scsi(c: &VmConfig, i: usize) -> &ScsiConfig {
    match &c.virtio[i] {
        VirtioConfig::Scsi(s) => s,
        other => panic!("device {i} is {other:?}"),
    }
}

const HD: &str = r#"{"node-name":"hd","read-only":false,"driver":"raw","file":{"driver":"file","filename":"/x.img"}}"#;
const CD: &str = r#"{"node-name":"cd","read-only":true,"driver":"raw","file":{"driver":"file","filename":"/x.iso"}}"#;

#[test]
fn libvirt_luns_join_their_controller_and_media() {
    let c = run(&with_kernel(&[
        "-device",
        r#"{"driver":"virtio-scsi-pci","id":"scsi0","bus":"pci.0","addr":"0x4"}"#,
        "-blockdev",
        HD,
        "-blockdev",
        CD,
        "-device",
        r#"{"driver":"scsi-hd","bus":"scsi0.0","channel":0,"scsi-id":0,"lun":0,"device_id":"drive-scsi0-0-0-0","drive":"hd","id":"scsi0-0-0-0","bootindex":1}"#,
        "-device",
        r#"{"driver":"scsi-cd","bus":"scsi0.0","channel":0,"scsi-id":0,"lun":2,"device_id":"drive-scsi0-0-0-2","drive":"cd","id":"scsi0-0-0-2"}"#,
        "-device",
        r#"{"driver":"scsi-cd","bus":"scsi0.0","channel":0,"scsi-id":3,"lun":0,"id":"empty"}"#,
        "-device",
        "virtio-scsi-device",
        "-device",
        "scsi-hd,drive=d,bus=scsi.0",
        "-drive",
        "file=/y.img,if=none,id=d,format=raw",
    ]));
    let s = scsi(&c, 0);
    assert_eq!(s.id.as_deref(), Some("scsi0"));
    assert!(matches!(c.virtio_addrs[0], DeviceAddr::Pci { .. }));
    let at: Vec<_> = s.luns.iter().map(|l| (l.kind, l.target, l.lun)).collect();
    assert_eq!(
        at,
        [
            (AtaKind::Disk, 0, 0),
            (AtaKind::Cdrom, 0, 2),
            (AtaKind::Cdrom, 3, 0)
        ]
    );
    let hd = &s.luns[0];
    assert_eq!(hd.bootindex, Some(1));
    assert_eq!(hd.device_id.as_deref(), Some("drive-scsi0-0-0-0"));
    assert_eq!(
        hd.disk.as_ref().unwrap().path(),
        std::path::Path::new("/x.img")
    );
    assert!(s.luns[1].disk.as_ref().unwrap().read_only());
    assert!(s.luns[2].disk.is_none());
    // The id-less controller's bus is scsi.0; its LUN takes target 0.
    assert_eq!(c.virtio_addrs[1], DeviceAddr::Mmio);
    let t = scsi(&c, 1);
    assert_eq!((t.luns[0].target, t.luns[0].lun), (0, 0));
}

#[test]
fn request_queues_are_one_per_vcpu_on_pci_and_one_on_mmio_as_qemus() {
    let queues = |smp: &str, dev: &str| {
        let c = run(&with_kernel(&["-smp", smp, "-device", dev]));
        scsi(&c, 0).num_queues
    };
    assert_eq!(queues("1", "virtio-scsi-pci"), 1);
    assert_eq!(queues("4", "virtio-scsi-pci"), 4);
    // libvirt 9.0's <driver queues='N'/>.
    assert_eq!(
        queues(
            "4",
            r#"{"driver":"virtio-scsi-pci","id":"scsi0","num_queues":2,"bus":"pci.0","addr":"0x4"}"#
        ),
        2
    );
    assert_eq!(queues("2", "virtio-scsi-pci,num_queues=125"), 125);
    assert_eq!(queues("4", "virtio-scsi-device"), 1);
    assert_eq!(queues("4", "virtio-scsi-device,num_queues=3"), 3);
    // QEMU's auto value is the vCPUs; rvirt's table stops at 125.
    assert_eq!(queues("200", "virtio-scsi-pci"), 125);
}

#[test]
fn bad_luns_are_refused_with_what_is_wrong() {
    let ctl = r#"{"driver":"virtio-scsi-pci","id":"scsi0"}"#;
    let cases: &[(&[&str], &str)] = &[
        (
            &["-device", "scsi-hd,drive=d"],
            "No 'SCSI' bus found for device 'scsi-hd'",
        ),
        (
            &["-device", ctl, "-device", "scsi-hd,bus=scsi1.0,drive=d"],
            "Bus 'scsi1.0' not found",
        ),
        (
            &["-device", ctl, "-device", "scsi-hd,bus=scsi0.0"],
            "Property 'scsi-hd.drive' is required",
        ),
        (
            &["-device", ctl, "-device", "scsi-hd,drive=d,scsi-id=256"],
            "bad scsi device id 256",
        ),
        (
            &["-device", ctl, "-device", "scsi-hd,drive=d,lun=16384"],
            "bad scsi device lun 16384",
        ),
        (
            &["-device", ctl, "-device", "scsi-hd,drive=d,channel=1"],
            "channel 0 only",
        ),
        (
            &[
                "-device",
                ctl,
                "-device",
                "scsi-hd,drive=d,scsi-id=1",
                "-device",
                "scsi-cd,scsi-id=1",
            ],
            "scsi-id 1 lun 0 is already in use",
        ),
        (
            &[
                "-device",
                ctl,
                "-device",
                "scsi-hd,drive=d",
                "-device",
                "scsi-hd,drive=d,scsi-id=2",
            ],
            "drive 'd' is already in use",
        ),
        (
            &["-device", "virtio-scsi-pci,num_queues=0"],
            "Invalid number of queues (= 0), must be a positive integer less than 1022.",
        ),
        (
            &["-device", "virtio-scsi-pci,num_queues=1023"],
            "Invalid number of queues (= 1023)",
        ),
        (
            &["-device", "virtio-scsi-pci,num_queues=126"],
            "num_queues=126: at most 125 request queues",
        ),
        // The controller must come before its LUNs, as in QEMU.
        (
            &["-device", "scsi-hd,drive=d,bus=scsi0.0", "-device", ctl],
            "Bus 'scsi0.0' not found",
        ),
    ];
    for (extra, want) in cases {
        let mut a = vec!["-drive", "file=/y.img,if=none,id=d,format=raw"];
        a.extend_from_slice(extra);
        let e = err(&with_kernel(&a));
        assert!(e.contains(want), "{extra:?}: {e}");
    }
}
