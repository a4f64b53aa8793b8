//! Storage pools and volumes through the real virsh (and rvirt-remote's
//! client for what virsh cannot send): the lifecycle, qemu-img's view of
//! the images, a 64 MiB upload and download, a domain booting from a
//! volume, and bad input that changes nothing.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{domain_xml, have_virsh, have_virt_install, qemu_img_ok, Rvirtd};
use rvirt_remote::calls::{
    NameArgs, StoragePoolFlagsArgs, StorageVolCreateXmlArgs, StorageVolLookupByPathArgs,
};
use rvirt_remote::error::code;
use rvirt_remote::{procs, ClientError};
use rvirt_test_guests::Guest;
use rvirt_testkit::run;

/// The names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn remote_code(e: ClientError) -> (i32, String) {
    let r = e
        .remote()
        .cloned()
        .unwrap_or_else(|| panic!("not a daemon error: {e}"));
    (r.code, r.message.unwrap_or_default())
}

#[test]
fn the_pool_and_volume_lifecycle_through_virsh() {
    if !have_virsh() {
        return;
    }
    let mut d = Rvirtd::start();
    // The default pool of a system tree, as libvirt's packages set it up.
    let list = d.ok(&["pool-list", "--all"]);
    assert!(
        list.contains(" default   active   yes"),
        "no default pool: {list}"
    );
    let images = d.root().join("var/lib/libvirt/images");
    assert!(images.is_dir());

    let dir = d.root().join("p1");
    let dir_s = dir.to_string_lossy().into_owned();
    assert_eq!(
        d.ok(&["pool-define-as", "p1", "dir", "--target", &dir_s]),
        "Pool p1 defined\n\n"
    );
    let info = d.ok(&["pool-info", "p1"]);
    assert!(info.contains("State:          inactive\n"), "{info}");
    assert_eq!(d.ok(&["pool-build", "p1"]), "Pool p1 built\n\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o711
    );
    assert_eq!(d.ok(&["pool-start", "p1"]), "Pool p1 started\n\n");
    d.ok(&["pool-autostart", "p1"]);
    let info = d.ok(&["pool-info", "p1", "--bytes"]);
    assert!(info.contains("State:          running\n"), "{info}");
    assert!(info.contains("Autostart:      yes\n"), "{info}");
    let capacity: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("Capacity:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{info}"));
    assert!(capacity > 0);

    // Volumes: raw (fully allocated, as libvirt makes it), qcow2, qcow2
    // on a backing volume, qcow2 with its metadata preallocated.
    d.ok(&["vol-create-as", "p1", "a.raw", "4M"]);
    d.ok(&["vol-create-as", "p1", "b.qcow2", "20M", "--format", "qcow2"]);
    d.ok(&[
        "vol-create-as",
        "p1",
        "c.qcow2",
        "30M",
        "--format",
        "qcow2",
        "--backing-vol",
        "b.qcow2",
        "--backing-vol-format",
        "qcow2",
    ]);
    d.ok(&[
        "vol-create-as",
        "p1",
        "d.qcow2",
        "64M",
        "--format",
        "qcow2",
        "--prealloc-metadata",
    ]);
    let details = d.ok(&["vol-list", "p1", "--details"]);
    let a_path = dir.join("a.raw");
    let row: Vec<&str> = details
        .lines()
        .find(|l| l.starts_with(" a.raw "))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let a_s = a_path.to_string_lossy();
    assert_eq!(
        row,
        ["a.raw", &*a_s, "file", "4.00", "MiB", "4.00", "MiB"],
        "{details}"
    );
    for (name, size) in [
        ("b.qcow2", 20 << 20),
        ("c.qcow2", 30 << 20),
        ("d.qcow2", 64 << 20),
    ] {
        let p = dir.join(name);
        let ps = p.to_string_lossy();
        let info = qemu_img_ok(&["info", "--output=json", &ps]);
        assert!(info.contains("\"format\": \"qcow2\""), "{info}");
        assert!(
            info.contains(&format!("\"virtual-size\": {size}")),
            "{info}"
        );
        qemu_img_ok(&["check", &ps]);
        let xml = d.ok(&["vol-dumpxml", "--pool", "p1", name]);
        assert!(
            xml.contains(&format!("<capacity unit='bytes'>{size}</capacity>")),
            "{xml}"
        );
        assert!(xml.contains("<format type='qcow2'/>"), "{xml}");
    }
    let c = qemu_img_ok(&[
        "info",
        "--output=json",
        &dir.join("c.qcow2").to_string_lossy(),
    ]);
    assert!(
        c.contains(&format!(
            "\"backing-filename\": \"{}\"",
            dir.join("b.qcow2").display()
        )),
        "{c}"
    );
    assert!(c.contains("\"backing-filename-format\": \"qcow2\""), "{c}");
    let cx = d.ok(&["vol-dumpxml", "--pool", "p1", "c.qcow2"]);
    assert!(
        cx.contains(&format!(
            "  <backingStore>\n    <path>{}</path>\n    <format type='qcow2'/>",
            dir.join("b.qcow2").display()
        )),
        "{cx}"
    );

    // Names, keys, paths, the pool of a volume.
    let a = a_path.to_string_lossy().into_owned();
    assert_eq!(
        d.ok(&["vol-path", "--pool", "p1", "a.raw"]),
        format!("{a}\n\n")
    );
    assert_eq!(
        d.ok(&["vol-key", "--pool", "p1", "a.raw"]),
        format!("{a}\n\n")
    );
    assert_eq!(d.ok(&["vol-name", &a]), "a.raw\n\n");
    assert_eq!(d.ok(&["vol-pool", &a]), "p1\n\n");

    // Clone, resize, wipe, delete.
    assert_eq!(
        d.ok(&["vol-clone", "--pool", "p1", "c.qcow2", "e.qcow2"]),
        "Vol e.qcow2 cloned from c.qcow2\n\n"
    );
    // The clone keeps the backing volume the original's XML names, and
    // reads the same.
    let (cs, es) = (
        dir.join("c.qcow2").to_string_lossy().into_owned(),
        dir.join("e.qcow2").to_string_lossy().into_owned(),
    );
    qemu_img_ok(&["check", &es]);
    let e = qemu_img_ok(&["info", "--output=json", &es]);
    assert!(e.contains("\"virtual-size\": 31457280"), "{e}");
    qemu_img_ok(&["compare", &cs, &es]);
    d.ok(&["vol-resize", "--pool", "p1", "a.raw", "8M"]);
    assert_eq!(std::fs::metadata(&a_path).unwrap().len(), 8 << 20);
    let err = d.fails(&["vol-resize", "--pool", "p1", "a.raw", "1M"]);
    assert!(
        err.contains("Can't shrink capacity below current capacity"),
        "{err}"
    );
    d.ok(&["vol-resize", "--pool", "p1", "a.raw", "2M", "--shrink"]);
    assert_eq!(std::fs::metadata(&a_path).unwrap().len(), 2 << 20);
    std::fs::write(&a_path, vec![7u8; 2 << 20]).unwrap();
    assert_eq!(
        d.ok(&["vol-wipe", "--pool", "p1", "a.raw"]),
        "Vol a.raw wiped\n\n"
    );
    assert!(std::fs::read(&a_path).unwrap().iter().all(|b| *b == 0));
    assert_eq!(
        d.ok(&["vol-delete", "--pool", "p1", "e.qcow2"]),
        "Vol e.qcow2 deleted\n\n"
    );
    assert!(!dir.join("e.qcow2").exists());

    // A file put there behind the daemon's back appears on refresh.
    std::fs::write(dir.join("late.img"), vec![1u8; 4096]).unwrap();
    assert!(!d.ok(&["vol-list", "p1"]).contains("late.img"));
    d.ok(&["pool-refresh", "p1"]);
    assert!(d.ok(&["vol-list", "p1"]).contains("late.img"));

    // A daemon restart finds the running pool and its volumes again.
    d.kill9();
    d.spawn();
    let list = d.ok(&["pool-list", "--all", "--details"]);
    assert!(list.contains(" p1        running   yes"), "{list}");
    assert!(d.ok(&["vol-list", "p1"]).contains("c.qcow2"));

    // Destroy, delete (only empty), undefine.
    assert_eq!(d.ok(&["pool-destroy", "p1"]), "Pool p1 destroyed\n\n");
    let err = d.fails(&["vol-list", "p1"]);
    assert!(err.contains("storage pool 'p1' is not active"), "{err}");
    let err = d.fails(&["pool-delete", "p1"]);
    assert!(err.contains("failed to remove pool"), "{err}");
    for f in names(&dir) {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    assert_eq!(d.ok(&["pool-delete", "p1"]), "Pool p1 deleted\n\n");
    assert!(!dir.exists());
    assert_eq!(
        d.ok(&["pool-undefine", "p1"]),
        "Pool p1 has been undefined\n\n"
    );
    assert!(!d.ok(&["pool-list", "--all"]).contains("p1"));
    assert!(!d.root().join("etc/rvirt/storage/p1.xml").exists());
}

#[test]
fn a_64_mib_upload_then_download_is_byte_identical() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let data: Vec<u8> = (0u32..(64 << 20) / 4)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect();
    let up = d.root().join("up.bin");
    std::fs::write(&up, &data).unwrap();
    d.ok(&[
        "vol-create-as",
        "default",
        "big.img",
        "64M",
        "--allocation",
        "0",
    ]);
    d.ok(&[
        "vol-upload",
        "--pool",
        "default",
        "big.img",
        &up.to_string_lossy(),
    ]);
    let vol = d.root().join("var/lib/libvirt/images/big.img");
    assert!(
        std::fs::read(&vol).unwrap() == data,
        "the volume differs from the upload"
    );
    let down = d.root().join("down.bin");
    d.ok(&[
        "vol-download",
        "--pool",
        "default",
        "big.img",
        &down.to_string_lossy(),
    ]);
    assert!(
        std::fs::read(&down).unwrap() == data,
        "the download differs"
    );
    // A part of it, by offset and length.
    let part = d.root().join("part.bin");
    d.ok(&[
        "vol-download",
        "--pool",
        "default",
        "big.img",
        &part.to_string_lossy(),
        "--offset",
        "1000",
        "--length",
        "5000",
    ]);
    assert!(std::fs::read(&part).unwrap() == data[1000..6000]);
}

#[test]
fn a_domain_boots_from_a_volume_which_cannot_be_deleted_meanwhile() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    // A disk the guest reads: known bytes in its first 4 KiB.
    let seed: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    let src = d.root().join("seed.bin");
    std::fs::write(&src, &seed).unwrap();
    d.ok(&["vol-create-as", "default", "disk.img", "1M"]);
    d.ok(&[
        "vol-upload",
        "--pool",
        "default",
        "disk.img",
        &src.to_string_lossy(),
    ]);
    let xml = domain_xml("voldom", Guest::Virtio).replace(
        "<memballoon model='none'/>",
        "<memballoon model='none'/>\n    <disk type='volume' device='disk'>\
         <driver name='qemu' type='raw'/><source pool='default' volume='disk.img'/>\
         <target dev='vda' bus='virtio'/></disk>",
    );
    let f = d.xml_file("voldom.xml", &xml);
    d.ok(&["define", &f]);
    d.ok(&["start", "voldom"]);
    d.wait_log("voldom", "BLK_READ_FNV1A32");
    let log = d.log("voldom");
    assert!(log.contains("BLK_CAPACITY 2048\n"), "{log}");
    let fnv = seed.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    });
    assert!(
        log.contains(&format!("BLK_READ_FNV1A32 0x{fnv:08x}\n")),
        "{log}"
    );
    // The live XML names the volume, as libvirt's does.
    let live = d.ok(&["dumpxml", "voldom"]);
    assert!(
        live.contains("<source pool='default' volume='disk.img'/>"),
        "{live}"
    );
    // Its last device done, the guest powers off.
    d.wait_state("voldom", "shut off (shutdown)");

    // While a domain using it runs, the volume stays.
    let xml = domain_xml("holder", Guest::Counter).replace(
        "<memballoon model='none'/>",
        "<memballoon model='none'/>\n    <disk type='volume' device='disk'>\
         <source pool='default' volume='disk.img'/><target dev='vda' bus='virtio'/></disk>",
    );
    let f = d.xml_file("holder.xml", &xml);
    d.ok(&["define", &f]);
    d.ok(&["start", "holder"]);
    d.wait_log("holder", "COUNT 1");
    let err = d.fails(&["vol-delete", "--pool", "default", "disk.img"]);
    assert!(
        err.contains("Requested operation is not valid: volume 'disk.img' is still in use."),
        "{err}"
    );
    assert!(d.root().join("var/lib/libvirt/images/disk.img").exists());
    d.ok(&["destroy", "holder"]);
    d.ok(&["vol-delete", "--pool", "default", "disk.img"]);
    // A volume that is gone fails the start with libvirt's error.
    let err = d.fails(&["start", "voldom"]);
    assert!(
        err.contains("Storage volume not found: no storage vol with matching name 'disk.img'"),
        "{err}"
    );
}

#[test]
fn bad_input_gets_libvirts_errors_and_changes_nothing() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let images = d.root().join("var/lib/libvirt/images");
    let pools_before = d.ok(&["pool-list", "--all"]);
    let stored_before = names(&d.root().join("etc/rvirt/storage"));

    // Pool XML with errors: every one named with its line.
    let bad = d.xml_file(
        "bad.xml",
        "<pool type='dir'>\n  <name>b/ad</name>\n  <uuid>nope</uuid>\n  <target><path>rel</path></target>\n</pool>\n",
    );
    let err = d.fails(&["pool-define", &bad]);
    assert!(
        err.contains("error: XML error: Invalid storage pool definition: "),
        "{err}"
    );
    assert!(
        err.contains("line 2: <name>: name 'b/ad' cannot contain '/'"),
        "{err}"
    );
    assert!(
        err.contains("line 3: <uuid>: malformed uuid element"),
        "{err}"
    );
    assert!(err.contains("must be absolute"), "{err}");
    let err = d.fails(&[
        "pool-define",
        &d.xml_file("m.xml", "<pool type='dir'><name>x"),
    ]);
    assert!(err.contains("XML error: Malformed XML at line 1"), "{err}");
    // Types without a backend, as libvirt words it.
    let err = d.fails(&[
        "pool-define-as",
        "f",
        "fs",
        "--source-dev",
        "/dev/sdz",
        "--target",
        "/mnt/f",
    ]);
    assert!(
        err.contains("internal error: missing backend for pool type 1 (fs)"),
        "{err}"
    );
    let err = d.fails(&[
        "pool-define-as",
        "n",
        "netfs",
        "--source-host",
        "h",
        "--source-path",
        "/x",
        "--target",
        "/mnt/n",
    ]);
    assert!(
        err.contains("missing backend for pool type 2 (netfs)"),
        "{err}"
    );
    // A target that is a file: defined, but it cannot start.
    let file = d.root().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    d.ok(&[
        "pool-define-as",
        "pf",
        "dir",
        "--target",
        &file.to_string_lossy(),
    ]);
    let err = d.fails(&["pool-start", "pf"]);
    assert!(
        err.contains(&format!(
            "cannot open directory '{}': Not a directory",
            file.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
    d.ok(&["pool-undefine", "pf"]);
    assert_eq!(d.ok(&["pool-list", "--all"]), pools_before);
    assert_eq!(names(&d.root().join("etc/rvirt/storage")), stored_before);

    // Volumes: a '/' in the name, absurd sizes, an existing name.
    let vols_before = names(&images);
    let err = d.fails(&["vol-create-as", "default", "x/y", "1M"]);
    assert!(
        err.contains("Requested operation is not valid: volume name 'x/y' cannot contain '/'"),
        "{err}"
    );
    let err = d.fails(&["vol-create-as", "default", "huge", "100000T"]);
    assert!(err.contains("File too large"), "{err}");
    let err = d.fails(&[
        "vol-create-as",
        "default",
        "huge",
        "100000T",
        "--format",
        "qcow2",
    ]);
    assert!(err.contains("error: Failed to create vol huge"), "{err}");
    d.ok(&["vol-create-as", "default", "one.img", "1M"]);
    let err = d.fails(&["vol-create-as", "default", "one.img", "2M"]);
    assert!(
        err.contains("storage volume 'one.img' exists already"),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(images.join("one.img")).unwrap().len(),
        1 << 20
    );
    d.ok(&["vol-delete", "--pool", "default", "one.img"]);
    assert_eq!(names(&images), vols_before);

    // Lookups: libvirt's codes, and the path error virtinst tolerates.
    let c = d.client();
    let (code_, msg) = remote_code(
        c.call::<procs::StorageVolLookupByPath>(&StorageVolLookupByPathArgs {
            path: "/nowhere/disk.img".into(),
        })
        .unwrap_err(),
    );
    assert_eq!(code_, code::NO_STORAGE_VOL);
    assert_eq!(
        msg,
        "Storage volume not found: no storage vol with matching path '/nowhere/disk.img'"
    );
    let (code_, _) = remote_code(
        c.call::<procs::StoragePoolLookupByName>(&NameArgs {
            name: "nope".into(),
        })
        .unwrap_err(),
    );
    assert_eq!(code_, code::NO_STORAGE_POOL);
    // Unknown flags are refused, naming the function, and do nothing.
    let pool = c
        .call::<procs::StoragePoolLookupByName>(&NameArgs {
            name: "default".into(),
        })
        .unwrap()
        .pool;
    let (code_, msg) = remote_code(
        c.call::<procs::StorageVolCreateXml>(&StorageVolCreateXmlArgs {
            pool: pool.clone(),
            xml: "<volume><name>f.img</name><capacity>1024</capacity></volume>".into(),
            flags: 0x100,
        })
        .unwrap_err(),
    );
    assert_eq!(code_, code::INVALID_ARG);
    assert_eq!(
        msg,
        "invalid argument: unsupported flags (0x100) in function storageVolCreateXML"
    );
    let (code_, _) = remote_code(
        c.call::<procs::StoragePoolRefresh>(&StoragePoolFlagsArgs { pool, flags: 8 })
            .unwrap_err(),
    );
    assert_eq!(code_, code::INVALID_ARG);
    // Volume XML with errors, with lines.
    let v = d.xml_file(
        "v.xml",
        "<volume>\n<name>v.img</name>\n<capacity unit='parsec'>1</capacity>\n</volume>\n",
    );
    let err = d.fails(&["vol-create", "default", &v]);
    assert!(
        err.contains("line 3: <capacity> attribute 'unit': unknown unit 'parsec'"),
        "{err}"
    );
    assert_eq!(names(&images), vols_before);
}

/// The real virt-install with `--disk size=1`: it creates its volume in
/// the default pool (the format virtinst picks for this connection) and
/// the domain boots a test guest from a kernel.
#[test]
fn virt_install_creates_its_disk_in_the_default_pool_and_starts() {
    if !have_virsh() || !have_virt_install() {
        return;
    }
    let d = Rvirtd::start();
    let kernel = Guest::Counter.path();
    let out = run(
        Command::new("virt-install")
            .args(["--connect", &d.uri()])
            .args(["--name", "vi1", "--memory", "64", "--vcpus", "1"])
            .args(["--disk", "size=1,bus=virtio"])
            .arg("--import")
            .arg(format!(
                "--boot=kernel={},kernel_args=console=ttyS0",
                kernel.display()
            ))
            .args(["--machine", "microvm", "--os-variant", "none"])
            .args(["--graphics", "none", "--noautoconsole", "--network", "none"])
            .args(["--cpu", "qemu64", "--controller", "usb,model=none"])
            .args(["--memballoon", "none", "--serial", "file,path=/dev/null"])
            .env("HOME", d.root())
            .stdin(std::process::Stdio::null()),
        Duration::from_secs(300),
    );
    assert!(
        out.status.success(),
        "virt-install: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.daemon_log_tail()
    );
    let vols = d.ok(&["vol-list", "default"]);
    let image = d.root().join("var/lib/libvirt/images/vi1.img");
    assert!(
        vols.contains(&image.to_string_lossy().into_owned()),
        "{vols}"
    );
    let info = qemu_img_ok(&["info", "--output=json", &image.to_string_lossy()]);
    assert!(info.contains("\"virtual-size\": 1073741824"), "{info}");
    // virtinst asks for raw here: it picks qcow2 only from a hypervisor
    // version of QEMU 1.2 on, and rvirtd reports rvirt's own (0.1.0).
    assert!(info.contains("\"format\": \"raw\""), "{info}");
    let state = d.state("vi1");
    assert!(state.starts_with("running"), "{state}");
    let xml = d.ok(&["dumpxml", "vi1"]);
    assert!(
        xml.contains(&format!("<source file='{}'", image.display())),
        "{xml}"
    );
    d.ok(&["destroy", "vi1"]);
}
