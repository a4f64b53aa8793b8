//! SATA CD-ROMs through the monitor: `query-block` shows the medium, its
//! tray and lock; `eject`, `blockdev-open-tray`, `blockdev-remove-medium`,
//! `blockdev-change-medium` and `blockdev-close-tray` change them, each
//! tray move posted as DEVICE_TRAY_MOVED; bad requests fail with QEMU's
//! errors and change nothing. (SeaBIOS booting from AHCI is in
//! firmware.rs, the guest-visible register model in rvirt-ata's tests.)

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

fn cd_entry(qmp: &rvirt_qmp::QmpClient) -> Value {
    let all = qmp.execute("query-block", None).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|b| b["qdev"] == "sata0-0-2")
        .cloned()
        .unwrap_or_else(|| panic!("no CD-ROM in {all}"))
}

fn tray_moved(qmp: &rvirt_qmp::QmpClient, open: bool) {
    let ev = qmp.wait_event("DEVICE_TRAY_MOVED", T).unwrap();
    assert_eq!(
        ev.data,
        Some(json!({"device": "", "id": "sata0-0-2", "tray-open": open}))
    );
}

fn image(dir: &Path, name: &str, blocks: usize) -> String {
    let p = dir.join(name);
    std::fs::write(&p, vec![0u8; blocks * 2048]).unwrap();
    p.display().to_string()
}

#[test]
fn cdrom_media_change_through_the_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let first = image(dir.path(), "first.iso", 16);
    let second = image(dir.path(), "second.iso", 32);
    let disk = image(dir.path(), "disk.img", 16);
    let sock = dir.path().join("qmp.sock");
    let kernel = Guest::Counter.path();
    let cd = format!(
        r#"{{"node-name":"cd","read-only":true,"driver":"raw","file":{{"driver":"file","filename":"{first}"}}}}"#
    );
    let hd = format!(
        r#"{{"node-name":"hd","read-only":false,"driver":"raw","file":{{"driver":"file","filename":"{disk}"}}}}"#
    );
    let qmp_opt = format!("unix:{},server=on,wait=off", sock.display());
    let _vm = spawn(&[
        "-M",
        "q35",
        "-m",
        "128",
        "-S",
        "-nodefaults",
        "-kernel",
        kernel.to_str().unwrap(),
        "-qmp",
        &qmp_opt,
        "-blockdev",
        &hd,
        "-device",
        r#"{"driver":"ide-hd","bus":"ide.0","drive":"hd","id":"sata0-0-0"}"#,
        "-blockdev",
        &cd,
        "-device",
        r#"{"driver":"ide-cd","bus":"ide.2","drive":"cd","id":"sata0-0-2"}"#,
    ]);
    let qmp = qmp_connect(&sock, T);
    let e = cd_entry(&qmp);
    assert_eq!(e["removable"], true);
    assert_eq!(e["tray_open"], false);
    assert_eq!(e["locked"], false);
    assert_eq!(e["inserted"]["file"], first.as_str());
    assert_eq!(e["inserted"]["ro"], true);

    // Eject: the tray opens (an event), the medium goes.
    qmp.execute("eject", Some(json!({"id": "sata0-0-2"})))
        .unwrap();
    tray_moved(&qmp, true);
    let e = cd_entry(&qmp);
    assert_eq!(e["tray_open"], true);
    assert!(e.get("inserted").is_none(), "{e}");

    // A new medium: in, tray closed.
    qmp.execute(
        "blockdev-change-medium",
        Some(json!({"id": "sata0-0-2", "filename": second, "format": "raw"})),
    )
    .unwrap();
    tray_moved(&qmp, false);
    let e = cd_entry(&qmp);
    assert_eq!(e["tray_open"], false);
    assert_eq!(e["inserted"]["file"], second.as_str());

    // Removing takes an open tray.
    let err = qmp
        .execute("blockdev-remove-medium", Some(json!({"id": "sata0-0-2"})))
        .unwrap_err();
    let err = format!("{err:?}");
    assert!(err.contains("is not open"), "{err}");
    qmp.execute("blockdev-open-tray", Some(json!({"id": "sata0-0-2"})))
        .unwrap();
    tray_moved(&qmp, true);
    qmp.execute("blockdev-remove-medium", Some(json!({"id": "sata0-0-2"})))
        .unwrap();
    qmp.execute("blockdev-close-tray", Some(json!({"id": "sata0-0-2"})))
        .unwrap();
    tray_moved(&qmp, false);
    let e = cd_entry(&qmp);
    assert!(e.get("inserted").is_none(), "{e}");
    assert_eq!(e["tray_open"], false);

    // A file that will not open changes nothing.
    let err = qmp
        .execute(
            "blockdev-change-medium",
            Some(json!({"id": "sata0-0-2", "filename": "/nonexistent.iso"})),
        )
        .unwrap_err();
    let err = format!("{err:?}");
    assert!(err.contains("/nonexistent.iso"), "{err}");
    assert_eq!(cd_entry(&qmp)["tray_open"], false);
    // A disk is not removable; an unknown device is not found.
    let err = qmp
        .execute("eject", Some(json!({"id": "sata0-0-0"})))
        .unwrap_err();
    let err = format!("{err:?}");
    assert!(err.contains("is not removable"), "{err}");
    let err = qmp
        .execute("eject", Some(json!({"id": "nope"})))
        .unwrap_err();
    let err = format!("{err:?}");
    assert!(err.contains("nope"), "{err}");
    qmp.execute("quit", None).unwrap();
}

/// libvirt 9.0's media change on a CD-ROM whose medium is a node pair
/// (`-blockdev` file and format nodes): the tray opened, the medium
/// removed, its nodes then free for `blockdev-del`, the new pair added
/// with `blockdev-add` and put in with `blockdev-insert-medium`, the tray
/// closed; an insert into a closed tray, over a medium, or of an unknown
/// node fails with QEMU 7.2's error (checked against it with this
/// sequence) and changes nothing.
#[test]
fn cdrom_media_change_with_libvirts_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let first = image(dir.path(), "first.iso", 16);
    let second = image(dir.path(), "second.iso", 32);
    let sock = dir.path().join("qmp.sock");
    let kernel = Guest::Counter.path();
    let storage = |n: u32, f: &str| {
        format!(
            r#"{{"driver":"file","filename":"{f}","node-name":"libvirt-{n}-storage","auto-read-only":true,"discard":"unmap"}}"#
        )
    };
    let format = |n: u32| {
        format!(
            r#"{{"node-name":"libvirt-{n}-format","read-only":true,"driver":"raw","file":"libvirt-{n}-storage"}}"#
        )
    };
    let qmp_opt = format!("unix:{},server=on,wait=off", sock.display());
    let _vm = spawn(&[
        "-M",
        "q35",
        "-m",
        "128",
        "-S",
        "-nodefaults",
        "-kernel",
        kernel.to_str().unwrap(),
        "-qmp",
        &qmp_opt,
        "-blockdev",
        &storage(1, &first),
        "-blockdev",
        &format(1),
        "-device",
        r#"{"driver":"ide-cd","bus":"ide.2","drive":"libvirt-1-format","id":"sata0-0-2"}"#,
    ]);
    let qmp = qmp_connect(&sock, T);
    let err = |cmd: &str, args: Value| format!("{:?}", qmp.execute(cmd, Some(args)).unwrap_err());
    let add = |v: String| {
        qmp.execute("blockdev-add", Some(serde_json::from_str(&v).unwrap()))
            .unwrap()
    };
    add(storage(2, &second));
    add(format(2));
    let insert = json!({"id": "sata0-0-2", "node-name": "libvirt-2-format"});

    let e = err("blockdev-insert-medium", insert.clone());
    assert!(e.contains("Tray of the device is not open"), "{e}");
    qmp.execute(
        "blockdev-open-tray",
        Some(json!({"id": "sata0-0-2", "force": true})),
    )
    .unwrap();
    tray_moved(&qmp, true);
    let e = err("blockdev-insert-medium", insert.clone());
    assert!(e.contains("There already is a medium in the device"), "{e}");
    let e = err("blockdev-del", json!({"node-name": "libvirt-1-format"}));
    assert!(e.contains("in use"), "{e}");
    assert_eq!(cd_entry(&qmp)["inserted"]["file"], first.as_str());

    qmp.execute("blockdev-remove-medium", Some(json!({"id": "sata0-0-2"})))
        .unwrap();
    // The old medium's nodes are free now.
    for n in ["libvirt-1-format", "libvirt-1-storage"] {
        qmp.execute("blockdev-del", Some(json!({ "node-name": n })))
            .unwrap();
    }
    let e = err(
        "blockdev-insert-medium",
        json!({"id": "sata0-0-2", "node-name": "nope"}),
    );
    assert!(e.contains("Node 'nope' not found"), "{e}");
    // A protocol node: QEMU would take it, rvirt-vmm takes format nodes
    // only (libvirt inserts nothing else).
    let e = err(
        "blockdev-insert-medium",
        json!({"id": "sata0-0-2", "node-name": "libvirt-2-storage"}),
    );
    assert!(e.contains("'libvirt-2-storage' is a protocol node"), "{e}");
    assert!(cd_entry(&qmp).get("inserted").is_none());

    qmp.execute("blockdev-insert-medium", Some(insert.clone()))
        .unwrap();
    qmp.execute("blockdev-close-tray", Some(json!({"id": "sata0-0-2"})))
        .unwrap();
    tray_moved(&qmp, false);
    let e = cd_entry(&qmp);
    assert_eq!(e["tray_open"], false);
    assert_eq!(e["inserted"]["file"], second.as_str());
    // In use by the drive now.
    let e = err("blockdev-del", json!({"node-name": "libvirt-2-format"}));
    assert!(e.contains("in use"), "{e}");
    qmp.execute("quit", None).unwrap();
}
