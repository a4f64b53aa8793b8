//! External disk-only snapshots through the real virsh on a confined
//! domain whose guest writes (blkbench): `snapshot-create-as --disk-only`
//! puts an overlay over the disk while the guest runs, the guest's writes
//! land in it and the base stays as it was, the live and persistent XML
//! name the chain as libvirt writes it, the metadata is listed, shown and
//! deleted; bad input is refused with libvirt's errors and changes
//! nothing.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use rvirt_test_guests::Guest;

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn have_user() -> bool {
    let ok = rvirt_testkit::try_run(
        std::process::Command::new("getent").args(["passwd", "rvirt-qemu"]),
        Duration::from_secs(10),
    )
    .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
        "the rvirt-qemu user (scripts/setup.sh) is required"
    );
    ok
}

/// blkbench on a qcow2 disk: it reads, then writes, the whole run.
fn xml(name: &str, disk: &Path) -> String {
    format!(
        "<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{}</kernel>
    <cmdline>console=ttyS0 blkbench.n=3000</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='stdio'><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
",
        Guest::Virtio
            .path()
            .with_file_name("blkbench.elf")
            .display(),
        disk.display()
    )
}

/// The `<disk>` element of a dumpxml.
fn disk_of(xml: &str) -> String {
    let a = xml.find("<disk ").expect("a disk");
    let b = xml[a..].find("</disk>").expect("its end") + a;
    xml[a..b + 7].to_string()
}

#[test]
fn a_disk_only_snapshot_of_a_writing_guest_lands_its_writes_in_the_overlay() {
    if !have_virsh() || !have_user() {
        return;
    }
    let d = Rvirtd::start();
    let base = d.root().join("snapd.qcow2");
    let overlay = d.root().join("snapd.s1");
    let (code, out) = qemu_img(&["create", "-f", "qcow2", &s(&base), "64M"]);
    assert_eq!(code, 0, "{out}");
    let f = d.xml_file("snapd.xml", &xml("snapd", &base));
    d.ok(&["define", &f]);
    d.ok(&["start", "snapd"]);
    rvirt_testkit::wait_for(
        "the guest to start reading",
        Duration::from_secs(120),
        || d.log("snapd").contains("PHASE seqread START"),
    );
    assert!(
        !d.log("snapd").contains("PHASE seqwrite START"),
        "the guest wrote before the snapshot"
    );

    // Bad input first: libvirt's errors, nothing changed.
    let live_before = d.ok(&["dumpxml", "snapd"]);
    let err = d.fails(&["snapshot-create-as", "nope", "s0", "--disk-only"]);
    assert!(err.contains("failed to get domain 'nope'"), "{err}");
    let err = d.fails(&[
        "snapshot-create-as",
        "snapd",
        "s0",
        "--disk-only",
        "--diskspec",
        "vdb,file=/tmp/x",
    ]);
    assert!(
        err.contains("unsupported configuration: no disk named 'vdb'"),
        "{err}"
    );
    let taken = d.root().join("taken.qcow2");
    std::fs::write(&taken, b"mine").unwrap();
    let spec = format!("vda,file={}", s(&taken));
    let err = d.fails(&[
        "snapshot-create-as",
        "snapd",
        "s0",
        "--disk-only",
        "--diskspec",
        &spec,
    ]);
    assert!(
        err.contains(&format!(
            "unsupported configuration: external snapshot file for disk vda already exists and is not a block device: {}",
            s(&taken)
        )),
        "{err}"
    );
    assert_eq!(std::fs::read(&taken).unwrap(), b"mine");
    let err = d.fails(&["snapshot-create-as", "snapd", "s0"]);
    assert!(err.contains("Operation not supported"), "{err}");
    let err = d.fails(&[
        "snapshot-create-as",
        "snapd",
        "s0",
        "--disk-only",
        "--bogus",
    ]);
    assert!(
        err.contains("command 'snapshot-create-as' doesn't support option --bogus"),
        "{err}"
    );
    assert_eq!(d.ok(&["dumpxml", "snapd"]), live_before);
    assert!(d
        .ok(&["snapshot-list", "--name", "snapd"])
        .trim()
        .is_empty());
    assert!(!overlay.exists());

    // The snapshot, while the guest reads.
    let out = d.ok(&[
        "snapshot-create-as",
        "snapd",
        "s1",
        "--disk-only",
        "--atomic",
    ]);
    assert_eq!(out.trim(), "Domain snapshot s1 created");
    let base_then = std::fs::read(&base).unwrap();
    // The overlay is the VM's while it runs.
    let vm_uid = std::fs::metadata(&overlay).unwrap().uid();
    assert_ne!(vm_uid, 0, "the overlay was not given to the VM's user");

    // The live XML: the overlay on top, the base below it, as libvirt.
    let live = disk_of(&d.ok(&["dumpxml", "snapd"]));
    let want = format!(
        "<disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{}'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='{}'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>",
        s(&overlay),
        s(&base)
    );
    assert!(live.starts_with(&want), "{live}");
    // The persistent definition names the overlay too (its chain is read
    // from the headers at the next start).
    let inactive = disk_of(&d.ok(&["dumpxml", "--inactive", "snapd"]));
    assert!(
        inactive.contains(&format!("<source file='{}'/>", s(&overlay))),
        "{inactive}"
    );
    assert!(!inactive.contains("backingStore"), "{inactive}");

    // The metadata.
    let list = d.ok(&["snapshot-list", "snapd"]);
    assert!(
        list.lines()
            .any(|l| l.trim_start().starts_with("s1 ") && l.trim_end().ends_with("disk-snapshot")),
        "{list}"
    );
    let sx = d.ok(&["snapshot-dumpxml", "snapd", "s1"]);
    for part in [
        "<name>s1</name>",
        "<state>disk-snapshot</state>",
        "<memory snapshot='no'/>",
        &format!(
            "<disk name='vda' snapshot='external' type='file'>\n      <driver type='qcow2'/>\n      <source file='{}'/>",
            s(&overlay)
        ),
        "<domain type='kvm'",
    ] {
        assert!(sx.contains(part), "{part}: {sx}");
    }
    let info = d.ok(&["snapshot-info", "snapd", "s1"]);
    assert!(info.contains("Current:        yes"), "{info}");
    assert!(info.contains("State:          disk-snapshot"), "{info}");
    assert!(info.contains("Location:       external"), "{info}");
    // The same name again is refused.
    let err = d.fails(&[
        "snapshot-create-as",
        "snapd",
        "s1",
        "--disk-only",
        "--diskspec",
        "vda,file=/tmp/y",
    ]);
    assert!(err.contains("domain snapshot s1 already exists"), "{err}");

    rvirt_testkit::wait_for("the guest to finish", Duration::from_secs(300), || {
        d.log("snapd").contains("BLKBENCH DONE")
    });
    let log = d.log("snapd");
    assert!(!log.contains("BLKBENCH_FAILED"), "{log}");
    no_request_failed(&log);
    d.ok(&["destroy", "snapd"]);
    // The guest's writes are in the overlay, the base is as it was at the
    // snapshot, both clean; the overlay is given back.
    assert!(
        std::fs::read(&base).unwrap() == base_then,
        "the base was written"
    );
    for img in [&base, &overlay] {
        let (code, out) = qemu_img(&["check", &s(img)]);
        assert_eq!(code, 0, "{out}");
    }
    let (_, map) = qemu_img(&["map", "--output=json", &s(&overlay)]);
    let map: serde_json::Value = serde_json::from_str(&map).unwrap();
    assert!(
        map.as_array()
            .unwrap()
            .iter()
            .any(|e| e["depth"] == 0 && e["data"] == true),
        "no data in the overlay: {map}"
    );
    assert_eq!(std::fs::metadata(&overlay).unwrap().uid(), 0);
    let (_, info) = qemu_img(&["info", "--output=json", &s(&overlay)]);
    assert!(
        info.contains(&format!("\"backing-filename\": \"{}\"", s(&base))),
        "{info}"
    );

    // Metadata deleted; the files are not.
    let err = d.fails(&["snapshot-delete", "snapd", "s1"]);
    assert!(
        err.contains("deletion of 1 external disk snapshots not supported"),
        "{err}"
    );
    let out = d.ok(&["snapshot-delete", "snapd", "s1", "--metadata"]);
    assert!(out.contains("Domain snapshot s1 deleted"), "{out}");
    assert!(d
        .ok(&["snapshot-list", "--name", "snapd"])
        .trim()
        .is_empty());
    assert!(overlay.exists());

    // Shut off: the overlay is created and the definition redefined.
    d.ok(&[
        "snapshot-create-as",
        "snapd",
        "s2",
        "--disk-only",
        "--no-metadata",
    ]);
    let off = d.root().join("snapd.s2");
    let (_, info) = qemu_img(&["info", "--output=json", &s(&off)]);
    assert!(
        info.contains(&format!("\"backing-filename\": \"{}\"", s(&overlay))),
        "{info}"
    );
    let inactive = disk_of(&d.ok(&["dumpxml", "--inactive", "snapd"]));
    assert!(
        inactive.contains(&format!("<source file='{}'/>", s(&off))),
        "{inactive}"
    );
    assert!(d
        .ok(&["snapshot-list", "--name", "snapd"])
        .trim()
        .is_empty());
}

fn chain_of(d: &Rvirtd, name: &str) -> String {
    disk_of(&d.ok(&["dumpxml", name]))
}

#[test]
fn blockcommit_active_pivots_the_disk_back_to_a_base_that_holds_everything() {
    if !have_virsh() || !have_user() {
        return;
    }
    let d = Rvirtd::start();
    let base = d.root().join("cm.qcow2");
    let ov1 = d.root().join("cm.s1");
    let ov2 = d.root().join("cm.s2");
    let (code, out) = qemu_img(&["create", "-f", "qcow2", &s(&base), "64M"]);
    assert_eq!(code, 0, "{out}");
    // The guest benches, resets and benches again (on_reboot restart):
    // it writes until the domain is destroyed.
    let text = xml("cm", &base);
    let f = d.xml_file("cm.xml", &text);
    d.ok(&["define", &f]);
    d.ok(&["start", "cm"]);
    rvirt_testkit::wait_for(
        "the guest to start reading",
        Duration::from_secs(120),
        || d.log("cm").contains("PHASE seqread START"),
    );
    let err = d.fails(&["blockcommit", "cm", "vda", "--active"]);
    assert!(
        err.contains(&format!(
            "invalid argument: top '{}' in chain for 'vda' has no backing file",
            s(&base)
        )),
        "{err}"
    );
    let err = d.fails(&["blockjob", "cm", "vda", "--abort"]);
    assert!(
        err.contains(
            "Requested operation is not valid: disk vda does not have an active block job"
        ),
        "{err}"
    );
    let err = d.fails(&["blockcommit", "cm", "vdz", "--active"]);
    assert!(
        err.contains("invalid argument: disk 'vdz' not found in domain"),
        "{err}"
    );
    d.ok(&["snapshot-create-as", "cm", "s1", "--disk-only"]);
    let err = d.fails(&["blockcommit", "cm", "vda"]);
    assert!(
        err.contains("invalid argument: commit of 'vda' active layer requires active flag"),
        "{err}"
    );
    // The commit runs while the guest writes; ready, it follows the
    // guest's writes until the pivot.
    rvirt_testkit::wait_for("the guest to write", Duration::from_secs(120), || {
        d.log("cm").contains("PHASE seqwrite START")
    });
    let out = d.ok(&["blockcommit", "cm", "vda", "--active"]);
    assert!(out.contains("Active Block Commit started"), "{out}");
    let err = d.fails(&["blockcommit", "cm", "vda", "--active"]);
    assert!(
        err.contains("disk 'vda' already in active block job"),
        "{err}"
    );
    rvirt_testkit::wait_for("the commit to be ready", Duration::from_secs(120), || {
        // virsh writes job progress to stderr.
        let o = d.virsh(&["blockjob", "cm", "vda", "--info"]);
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stderr).contains("Active Block Commit: [100 %]")
    });
    // Settled, overlay and base hold the same disk; the pivot switches.
    d.ok(&["suspend", "cm"]);
    d.ok(&["blockjob", "cm", "vda", "--pivot"]);
    let (code, out) = qemu_img(&["compare", "-U", &s(&ov1), &s(&base)]);
    assert_eq!(code, 0, "{out}");
    let live = chain_of(&d, "cm");
    assert!(
        live.contains(&format!("<source file='{}'/>", s(&base))),
        "{live}"
    );
    assert!(!live.contains("cm.s1"), "{live}");
    let inactive = disk_of(&d.ok(&["dumpxml", "--inactive", "cm"]));
    assert!(
        inactive.contains(&format!("<source file='{}'/>", s(&base))),
        "{inactive}"
    );
    assert_eq!(
        std::fs::metadata(&ov1).unwrap().uid(),
        0,
        "the overlay was not given back"
    );
    let out = d.ok(&["blockjob", "cm", "vda", "--info"]);
    assert!(out.contains("No current block job for vda"), "{out}");

    // Again with virsh waiting for libvirt's events and pivoting itself.
    d.ok(&["snapshot-create-as", "cm", "s2", "--disk-only"]);
    assert!(chain_of(&d, "cm").contains("cm.s2"));
    let out = d.ok(&[
        "blockcommit",
        "cm",
        "vda",
        "--active",
        "--pivot",
        "--wait",
        "--verbose",
    ]);
    assert!(out.contains("Successfully pivoted"), "{out}");
    let live = chain_of(&d, "cm");
    assert!(
        live.contains(&format!("<source file='{}'/>", s(&base))),
        "{live}"
    );

    // A third commit cancelled once ready: the disk stays on its overlay;
    // virsh event sees libvirt's events.
    let ov3 = d.root().join("cm.s3");
    d.ok(&["snapshot-create-as", "cm", "s3", "--disk-only"]);
    let registered = || {
        std::fs::read_to_string(d.root().join("rvirtd.stderr"))
            .unwrap_or_default()
            .matches("event callback registered")
            .count()
    };
    let before = registered();
    let mut watcher = rvirt_testkit::Spawned::start(
        std::process::Command::new("virsh")
            .args([
                "-c",
                &d.uri(),
                "event",
                "--domain",
                "cm",
                "--event",
                "block-job-2",
                "--loop",
                "--timeout",
                "60",
            ])
            .env("LC_ALL", "C"),
    )
    .on_fail(d.reporter());
    rvirt_testkit::wait_for("virsh event to register", Duration::from_secs(15), || {
        registered() > before
    });
    d.ok(&["blockcommit", "cm", "vda", "--active"]);
    let ready = watcher.line_with("ready", Duration::from_secs(60));
    assert!(
        ready.contains("event 'block-job-2' for domain 'cm': Active Block Commit for vda ready"),
        "{ready}"
    );
    d.ok(&["blockjob", "cm", "vda", "--abort"]);
    let cancelled = watcher.line_with("canceled", Duration::from_secs(60));
    assert!(
        cancelled.contains("Active Block Commit for vda canceled"),
        "{cancelled}"
    );
    watcher.kill();
    let live = chain_of(&d, "cm");
    assert!(
        live.contains(&format!("<source file='{}'/>", s(&ov3))),
        "{live}"
    );
    assert!(
        live.contains(&format!("<source file='{}'/>", s(&base))),
        "{live}"
    );
    let out = d.ok(&["blockjob", "cm", "vda", "--info"]);
    assert!(out.contains("No current block job for vda"), "{out}");
    d.ok(&["resume", "cm"]);
    // The guest's next writes land in the base.
    let runs = d.log("cm").matches("BLKBENCH DONE").count();
    rvirt_testkit::wait_for("the guest to bench again", Duration::from_secs(300), || {
        d.log("cm").matches("BLKBENCH DONE").count() > runs + 1
    });
    d.ok(&["destroy", "cm"]);
    let log = d.log("cm");
    no_request_failed(&log);
    for img in [&base, &ov1, &ov2, &ov3] {
        let (code, out) = qemu_img(&["check", &s(img)]);
        assert_eq!(code, 0, "{}: {out}", img.display());
    }
    let (_, info) = qemu_img(&["info", "--output=json", &s(&base)]);
    assert!(!info.contains("backing-filename"), "{info}");
    assert_eq!(std::fs::metadata(&ov3).unwrap().uid(), 0);
}

/// Every phase the blkbench guest reported counted no failed request. Read
/// by occurrence, not by line: the domain log also holds the VMM's own
/// lines, which may land inside a line of the guest's serial output.
fn no_request_failed(log: &str) {
    let phases = log.matches("PHASE_STATS").count();
    assert!(phases > 0, "no PHASE_STATS in the log:\n{log}");
    let counts: Vec<&str> = log
        .split("errors=")
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap_or("")
        })
        .collect();
    assert!(counts.len() >= phases, "{log}");
    assert!(
        counts.iter().all(|n| *n == "0"),
        "a phase had failed requests:\n{log}"
    );
}
