//! libvirt's everyday clients against rvirtd: virt-install one-liners,
//! virsh's device and resource edits, honest flags and errors, host facts.
//! Where libvirtd's own drivers are reachable (the test driver always, the
//! QEMU driver on /run/libvirt/libvirt-sock when it runs), the expectation
//! is what libvirt itself answers for the same command.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{domain_xml, have_virsh, Rvirtd, VIRSH_LIMIT};
use rvirt_remote::calls::*;
use rvirt_remote::error::code;
use rvirt_remote::{procs, ClientError, Procedure, RemoteError, Uuid};
use rvirt_test_guests::Guest;
use rvirt_testkit::{wait_for, Spawned};

fn require_reference() -> bool {
    std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some()
}

/// Whether a program runs here (`--version`); without it the test is
/// skipped, unless RVIRT_REQUIRE_REFERENCE makes that a failure.
fn have(program: &str, package: &str) -> bool {
    let found = rvirt_testkit::try_run(
        Command::new(program).arg("--version"),
        Duration::from_secs(30),
    )
    .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !require_reference(),
            "{program} (Debian package {package}) is required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("{program} not installed: test skipped");
    }
    found
}

fn run(cmd: &mut Command) -> Output {
    Spawned::start(cmd.env("LC_ALL", "C").stdin(Stdio::null())).output(VIRSH_LIMIT)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// virsh on another libvirt URI (the test driver, libvirtd's QEMU driver).
fn virsh_on(uri: &str, args: &[&str]) -> Output {
    run(Command::new("virsh").arg("-c").arg(uri).args(args))
}

/// libvirtd's QEMU driver, if this machine runs libvirtd.
fn libvirt_qemu() -> Option<&'static str> {
    const URI: &str = "qemu:///system";
    let up =
        Path::new("/run/libvirt/libvirt-sock").exists() && virsh_on(URI, &["uri"]).status.success();
    if !up {
        eprintln!("libvirtd's QEMU driver is not running: its comparisons are skipped");
    }
    up.then_some(URI)
}

fn guest_kernel(g: Guest) -> String {
    g.path().to_string_lossy().into_owned()
}

/// Disk files through virtinst, which needs storage pools for them:
/// virt-install with a file (virtinst makes a pool of its directory),
/// virt-clone --auto-clone (the clone's volume made from the original's,
/// same bytes), virt-xml --add-device with a new file of a given size.
#[test]
fn virt_clone_and_disk_files() {
    if !have_virsh() || !have("virt-clone", "virtinst") {
        return;
    }
    // VNC from 5900: this test's VMs take ports in a namespace of its own.
    if !rvirt_testkit::netns::own_ports() {
        return;
    }
    let d = Rvirtd::start();
    let imgs = d.root().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    let src = imgs.join("src.img");
    let pattern: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &pattern).unwrap();
    let disk = format!("path={},bus=virtio", src.display());
    let out = virt_install(&d.uri(), "src", &["--disk", &disk]);
    assert!(out.status.success(), "{}\n{}", text(&out), d.report());
    assert_eq!(d.state("src"), "running (booted)");
    let vols = d.ok(&["vol-list", "imgs"]);
    assert!(vols.contains(&src.display().to_string()), "{vols}");
    d.ok(&["destroy", "src"]);

    let out = run(Command::new("virt-clone").args([
        "--connect",
        &d.uri(),
        "--original",
        "src",
        "--auto-clone",
    ]));
    assert!(out.status.success(), "{}\n{}", text(&out), d.report());
    let clone = imgs.join("src-clone.img");
    assert_eq!(std::fs::read(&clone).unwrap(), pattern, "the clone's disk");
    let blk = d.ok(&["domblklist", "--inactive", "src-clone"]);
    assert!(blk.contains(&clone.display().to_string()), "{blk}");
    let (a, b) = (d.ok(&["domuuid", "src"]), d.ok(&["domuuid", "src-clone"]));
    assert_ne!(a, b);
    d.ok(&["start", "src-clone"]);
    assert_eq!(d.state("src-clone"), "running (booted)");
    d.ok(&["destroy", "src-clone"]);

    let extra = imgs.join("extra.img");
    let out = run(Command::new("virt-xml").args([
        "--connect",
        &d.uri(),
        "src",
        "--add-device",
        "--disk",
        &format!("{},size=0.01", extra.display()),
    ]));
    assert!(out.status.success(), "{}\n{}", text(&out), d.report());
    // virtinst's size is in GiB, sent as whole bytes.
    assert_eq!(std::fs::metadata(&extra).unwrap().len(), 10_737_418);
    let blk = d.ok(&["domblklist", "--inactive", "src"]);
    assert!(blk.contains(&extra.display().to_string()), "{blk}");
}

fn virt_install(uri: &str, name: &str, extra: &[&str]) -> Output {
    let boot = format!(
        "kernel={},kernel_args=console=ttyS0",
        guest_kernel(Guest::Ticker)
    );
    run(Command::new("virt-install")
        .args(["--connect", uri, "--import", "--name", name])
        .args(["--memory", "64", "--boot", &boot])
        .args([
            "--osinfo",
            "linux2022",
            "--network",
            "none",
            "--noautoconsole",
        ])
        // virt-install's default display is VNC with a VGA card (from the
        // domain capabilities); rvirt-vmm has no VGA until the display
        // devices land, so the VNC console shows its blank screen.
        .args(["--video", "model.type=none"])
        .args(extra))
}

/// The `<cpu …>` element's first line of a document.
fn cpu_line(xml: &str) -> String {
    xml.lines()
        .find(|l| l.trim_start().starts_with("<cpu"))
        .unwrap_or("")
        .trim()
        .to_string()
}

#[test]
fn virt_install_one_liners() {
    if !have_virsh() || !have("virt-install", "virtinst") {
        return;
    }
    // VNC from 5900: this test's VMs take ports in a namespace of its own.
    if !rvirt_testkit::netns::own_ports() {
        return;
    }
    let d = Rvirtd::start();
    let uri = d.uri();

    // With no --cpu, virt-install picks host-passthrough from the domain
    // capabilities, as it does against libvirt's QEMU driver.
    let printed = virt_install(&uri, "vi-print", &["--disk", "none", "--print-xml"]);
    assert!(printed.status.success(), "{}", text(&printed));
    let ours = cpu_line(&String::from_utf8_lossy(&printed.stdout));
    assert_eq!(ours, "<cpu mode=\"host-passthrough\"/>");
    if let Some(q) = libvirt_qemu() {
        let theirs = virt_install(q, "vi-print", &["--disk", "none", "--print-xml"]);
        assert!(theirs.status.success(), "{}", text(&theirs));
        assert_eq!(ours, cpu_line(&String::from_utf8_lossy(&theirs.stdout)));
    }
    assert!(
        !d.ok(&["list", "--all", "--name"]).contains("vi-print"),
        "--print-xml defines nothing"
    );

    let out = virt_install(&uri, "vi-default", &["--disk", "none"]);
    assert!(out.status.success(), "{}\n{}", text(&out), d.report());
    assert_eq!(d.state("vi-default"), "running (booted)");
    d.wait_log("vi-default", "TICK");
    // virt-install picks VNC from the domain capabilities (spice is not
    // offered); the live XML shows the port rvirtd chose, as libvirt's.
    let live = d.ok(&["dumpxml", "vi-default"]);
    assert!(live.contains("<cpu mode='host-passthrough'"), "{live}");
    let port: u16 = live
        .split("<graphics type='vnc' port='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no VNC port in {live}"));
    assert!(port >= 5900, "{live}");
    assert!(
        live.contains(&format!("<graphics type='vnc' port='{port}' autoport='yes' listen='127.0.0.1'>\n      <listen type='address' address='127.0.0.1'/>")),
        "{live}"
    );
    let display = format!("vnc://127.0.0.1:{}", port - 5900);
    assert_eq!(d.ok(&["domdisplay", "vi-default"]).trim(), display);
    d.ok(&["destroy", "vi-default"]);

    for (name, cpu, want) in [
        (
            "vi-pass",
            "host-passthrough,migratable=off",
            "<cpu mode='host-passthrough' migratable='off'",
        ),
        ("vi-model", "host-model", "<cpu mode='host-model'"),
        ("vi-named", "Nehalem", "<model>Nehalem</model>"),
    ] {
        let out = virt_install(&uri, name, &["--disk", "none", "--cpu", cpu]);
        assert!(
            out.status.success(),
            "{cpu}: {}\n{}",
            text(&out),
            d.report()
        );
        assert_eq!(d.state(name), "running (booted)", "{cpu}");
        let live = d.ok(&["dumpxml", name]);
        assert!(live.contains(want), "{cpu}: {live}");
        d.wait_log(name, "TICK");
        d.ok(&["destroy", name]);
    }

    // --transient: running, not defined, gone once stopped.
    let out = virt_install(
        &uri,
        "vi-transient",
        &["--disk", "none", "--transient", "--graphics", "none"],
    );
    assert!(out.status.success(), "{}", text(&out));
    // domdisplay without graphics answers as it does for libvirt's test
    // domain, which has none.
    let ours = d.fails(&["domdisplay", "vi-transient"]);
    let theirs = stderr(&virsh_on("test:///default", &["domdisplay", "test"]));
    assert_eq!(ours.trim(), theirs.trim());
    assert_eq!(ours.trim(), "error: No graphical display found");
    assert!(d
        .ok(&["dominfo", "vi-transient"])
        .contains("Persistent:     no"));
    d.ok(&["destroy", "vi-transient"]);
    assert!(!d.ok(&["list", "--all", "--name"]).contains("vi-transient"));
}

/// A loop device over a file in `dir`, detached on drop.
struct Loop(String);

impl Loop {
    fn attach(dir: &Path) -> Option<Loop> {
        let img = dir.join("loop.img");
        std::fs::write(&img, vec![0u8; 1 << 20]).ok()?;
        let out = run(Command::new("losetup").args(["--find", "--show"]).arg(&img));
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && dev.starts_with("/dev/loop")).then_some(Loop(dev))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = run(Command::new("losetup").args(["-d", &self.0]));
    }
}

#[test]
fn virt_install_with_a_block_device_disk() {
    if !have_virsh() || !have("virt-install", "virtinst") {
        return;
    }
    // VNC from 5900: this test's VMs take ports in a namespace of its own.
    if !rvirt_testkit::netns::own_ports() {
        return;
    }
    let d = Rvirtd::start();
    let Some(dev) = Loop::attach(d.root()) else {
        assert!(
            !require_reference(),
            "no loop device (losetup) for the block-device disk"
        );
        eprintln!("no loop device: test skipped");
        return;
    };
    let disk = format!("path={},bus=virtio", dev.0);
    let out = virt_install(&d.uri(), "vi-block", &["--disk", &disk]);
    assert!(out.status.success(), "{}\n{}", text(&out), d.report());
    assert_eq!(d.state("vi-block"), "running (booted)");
    let live = d.ok(&["dumpxml", "vi-block"]);
    assert!(live.contains("<disk type='block' device='disk'>"), "{live}");
    assert!(live.contains(&format!("<source dev='{}'", dev.0)), "{live}");
    assert!(d.ok(&["domblklist", "vi-block"]).contains(&dev.0));
    let stats = d.ok(&["domblkstat", "vi-block", "vda"]);
    assert!(stats.contains("vda rd_req"), "{stats}");
    d.ok(&["destroy", "vi-block"]);
}

fn balloon_xml(name: &str) -> String {
    domain_xml(name, Guest::Ticker).replace(
        "<memballoon model='none'/>",
        "<memballoon model='virtio'><address type='virtio-mmio'/></memballoon>",
    )
}

const DISK: &str = "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
    <source file='SRC'/><target dev='vdb' bus='virtio'/></disk>\n";

#[test]
fn device_and_resource_edits() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let f = d.xml_file("e.xml", &balloon_xml("ed"));
    d.ok(&["define", &f]);
    let img = d.root().join("vdb.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    let disk = d.xml_file("disk.xml", &DISK.replace("SRC", &img.to_string_lossy()));
    let inactive = || d.ok(&["dumpxml", "--inactive", "ed"]);

    assert_eq!(
        d.ok(&["attach-device", "ed", &disk, "--config"]),
        "Device attached successfully\n\n"
    );
    assert!(d.ok(&["domblklist", "--inactive", "ed"]).contains("vdb"));
    let before = inactive();
    // The same target again, and a live attach of a stopped domain: the
    // QEMU driver's own words (checked against it below), nothing changed.
    let dup = d.fails(&["attach-device", "ed", &disk, "--config"]);
    assert!(
        dup.ends_with("error: Requested operation is not valid: target vdb already exists\n"),
        "{dup}"
    );
    let stopped = d.fails(&["attach-device", "ed", &disk, "--live"]);
    assert!(
        stopped.ends_with("error: Requested operation is not valid: domain is not running\n"),
        "{stopped}"
    );
    assert_eq!(inactive(), before);
    assert_eq!(
        d.ok(&["update-device", "ed", &disk, "--config"]),
        "Device updated successfully\n\n"
    );

    d.ok(&["start", "ed"]);
    // Live device changes need hot-plug, which rvirt-vmm has not yet: the
    // QEMU driver's error for a device it cannot plug, config untouched.
    for verb in ["attach-device", "detach-device"] {
        let e = d.fails(&[verb, "ed", &disk, "--live"]);
        let v = verb.trim_end_matches("-device");
        assert!(
            e.ends_with(&format!(
                "error: Operation not supported: live {v} of device 'disk' is not supported\n"
            )),
            "{e}"
        );
        let e = d.fails(&[verb, "ed", &disk, "--live", "--config"]);
        assert!(e.contains("is not supported"), "{e}");
    }
    assert!(d.ok(&["domblklist", "--inactive", "ed"]).contains("vdb"));
    assert!(d.ok(&["domblklist", "ed"]).contains("vdb"));
    assert_eq!(
        d.ok(&["detach-device", "ed", &disk, "--config"]),
        "Device detached successfully\n\n"
    );
    assert!(!d.ok(&["domblklist", "--inactive", "ed"]).contains("vdb"));
    let e = d.fails(&["detach-device", "ed", &disk, "--config"]);
    assert!(
        e.ends_with("error: device not found: no target device vdb\n"),
        "{e}"
    );

    // Memory: the balloon live, currentMemory and memory in the config.
    d.ok(&["setmem", "ed", "32M", "--live"]);
    let stats = d.ok(&["dommemstat", "ed"]);
    assert!(
        stats.contains("actual ") && stats.contains("rss "),
        "{stats}"
    );
    d.ok(&["setmem", "ed", "48M", "--config"]);
    d.ok(&["setmaxmem", "ed", "56M", "--config"]);
    let x = inactive();
    assert!(x.contains("<memory unit='KiB'>57344</memory>"), "{x}");
    assert!(
        x.contains("<currentMemory unit='KiB'>49152</currentMemory>"),
        "{x}"
    );
    let e = d.fails(&["setmem", "ed", "1G", "--config"]);
    assert!(
        e.ends_with("error: invalid argument: cannot set memory higher than max memory\n"),
        "{e}"
    );
    let e = d.fails(&["setmaxmem", "ed", "1G", "--live"]);
    assert!(
        e.contains("cannot resize the maximum memory on an active domain"),
        "{e}"
    );

    // vCPUs: the config, up to its maximum; live refused (no hot-plug).
    d.ok(&["setvcpus", "ed", "2", "--config", "--maximum"]);
    let e = d.fails(&["setvcpus", "ed", "4", "--config"]);
    assert!(
        e.contains(
            "requested vcpus is greater than max allowable vcpus for the persistent domain: 4 > 2"
        ),
        "{e}"
    );
    let e = d.fails(&["setvcpus", "ed", "2", "--live"]);
    assert!(e.contains("Operation not supported"), "{e}");
    assert_eq!(
        d.ok(&["vcpucount", "ed"]),
        "maximum      config         2\nmaximum      live           1\ncurrent      config         1\ncurrent      live           1\n\n"
    );
    assert!(d
        .ok(&["domjobinfo", "ed"])
        .contains("Job type:         None"));
    d.ok(&["destroy", "ed"]);
    // The edited definition starts.
    d.ok(&["start", "ed"]);
    assert!(d
        .ok(&["dominfo", "ed"])
        .contains("Max memory:     57344 KiB"));
    d.ok(&["destroy", "ed"]);

    // The same edits through libvirtd's QEMU driver answer the same.
    if let Some(q) = libvirt_qemu() {
        let name = format!("rvirt-clients-{}", std::process::id());
        let xml = d.xml_file(
            "q.xml",
            &format!(
                "<domain type='kvm'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
                 <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>\
                 <memballoon model='virtio'/></devices></domain>"
            ),
        );
        let o = virsh_on(q, &["define", &xml]);
        assert!(o.status.success(), "{}", stderr(&o));
        let theirs = |args: &[&str]| {
            let mut a = args.to_vec();
            a[1] = name.as_str();
            stderr(&virsh_on(q, &a))
        };
        theirs(&["attach-device", "", &disk, "--config"]);
        assert!(theirs(&["attach-device", "", &disk, "--config"]).ends_with(dup.as_str()));
        assert!(theirs(&["attach-device", "", &disk, "--live"]).ends_with(stopped.as_str()));
        theirs(&["detach-device", "", &disk, "--config"]);
        assert!(theirs(&["detach-device", "", &disk, "--config"])
            .ends_with("error: device not found: no target device vdb\n"));
        assert!(theirs(&["setmem", "", "1G", "--config"])
            .ends_with("error: invalid argument: cannot set memory higher than max memory\n"));
        virsh_on(q, &["undefine", &name]);
    }
}

#[test]
fn flags_modes_and_autodestroy() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let f = d.xml_file("a.xml", &domain_xml("ad", Guest::Ticker));
    // `virsh create --autodestroy`: gone when virsh's connection closes.
    assert!(d.ok(&["create", &f, "--autodestroy"]).contains("created"));
    wait_for(
        "the autodestroyed domain to go",
        Duration::from_secs(20),
        || !d.ok(&["list", "--all", "--name"]).contains("ad"),
    );
    // Without the flag it stays.
    d.ok(&["create", &f]);
    assert_eq!(d.state("ad"), "running (booted)");
    // A mode rvirt cannot honour is refused as libvirt refuses it; the test
    // driver words the flags check the same way, naming its own function.
    let ours = d.fails(&["shutdown", "ad", "--mode", "initctl"]);
    let theirs = text(&virsh_on(
        "test:///default",
        &["shutdown", "test", "--mode", "initctl"],
    ));
    assert_eq!(
        ours.trim(),
        theirs
            .replace("testDomainShutdownFlags", "qemuDomainShutdownFlags")
            .replace("'test'", "'ad'")
            .trim()
    );
    let e = d.fails(&["shutdown", "ad", "--mode", "agent"]);
    assert!(
        e.ends_with("error: argument unsupported: QEMU guest agent is not configured\n"),
        "{e}"
    );
    let e = d.fails(&["reboot", "ad", "--mode", "agent"]);
    assert!(e.contains("QEMU guest agent is not configured"), "{e}");
    assert_eq!(d.state("ad"), "running (booted)", "nothing was pressed");
    d.ok(&["destroy", "ad"]);
}

/// virsh dommemstat with the guest's balloon statistics, as libvirt shows
/// them (QEMU's guest-stats in libvirt's names and KiB, what the guest did
/// not report left out), refreshed on `<stats period='1'/>`; `--period`
/// with `--config` and `--live`, and its errors in libvirtd's QEMU
/// driver's words.
#[test]
fn dommemstat_with_guest_statistics() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let xml = domain_xml("ms", Guest::Virtio)
        .replace(
            "<cmdline>console=ttyS0</cmdline>",
            "<cmdline>console=ttyS0 virtio.balloon_stats=1</cmdline>",
        )
        .replace(
            "<memballoon model='none'/>",
            "<memballoon model='virtio'><stats period='1'/><address type='virtio-mmio'/></memballoon>",
        );
    let f = d.xml_file("ms.xml", &xml);
    d.ok(&["define", &f]);
    d.ok(&["start", "ms"]);
    d.wait_log("ms", "BALLOON_STATS 2");
    let field = |out: &str, name: &str| -> Option<u64> {
        out.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse().ok())?
        })
    };
    let out = wait_for_stats(&d, |o| field(o, "minor_fault").is_some_and(|n| n >= 2));
    let names: Vec<&str> = out.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(
        names,
        [
            "actual",
            "major_fault",
            "minor_fault",
            "unused",
            "available",
            "usable",
            "last_update",
            "disk_caches",
            "rss",
            ""
        ],
        "{out}"
    );
    assert_eq!(field(&out, "actual"), Some(64 << 10), "{out}");
    assert_eq!(field(&out, "major_fault"), Some(7), "{out}");
    assert_eq!(field(&out, "unused"), Some(32 << 10), "{out}");
    assert_eq!(field(&out, "available"), Some(64 << 10), "{out}");
    assert_eq!(field(&out, "usable"), Some(48 << 10), "{out}");
    assert_eq!(field(&out, "disk_caches"), Some(1 << 10), "{out}");
    assert!(
        field(&out, "last_update").is_some_and(|t| t > 1_600_000_000),
        "{out}"
    );

    // --period: live stops the polling (the rounds stop), config writes
    // <stats> where libvirt writes it and 0 removes it.
    d.ok(&["dommemstat", "ms", "--period", "0", "--live"]);
    let settled = d.log("ms").matches("BALLOON_STATS").count();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        d.log("ms").matches("BALLOON_STATS").count() <= settled + 1,
        "polling went on after --period 0"
    );
    d.ok(&["dommemstat", "ms", "--period", "7", "--config"]);
    let inactive = d.ok(&["dumpxml", "--inactive", "ms"]);
    assert!(
        inactive.contains("<memballoon model='virtio'>\n      <stats period='7'/>\n"),
        "{inactive}"
    );
    d.ok(&["dommemstat", "ms", "--period", "0", "--config"]);
    assert!(!d.ok(&["dumpxml", "--inactive", "ms"]).contains("<stats"));
    d.ok(&["destroy", "ms"]);

    // Without a balloon, and on a stopped domain: libvirt's words.
    let f = d.xml_file("nb.xml", &domain_xml("nb", Guest::Ticker));
    d.ok(&["define", &f]);
    let cases: [&[&str]; 3] = [
        &["dommemstat", "nb", "--period", "5", "--config"],
        &["dommemstat", "nb", "--period", "5", "--live"],
        &["dommemstat", "nb", "--period", "-5", "--config"],
    ];
    let ours: Vec<String> = cases.iter().map(|a| d.fails(a)).collect();
    assert!(
        ours[0].contains(
            "error: internal error: No memory balloon device configured, can not set the collection period"
        ),
        "{}",
        ours[0]
    );
    assert!(ours[1].contains("domain is not running"), "{}", ours[1]);
    if let Some(q) = libvirt_qemu() {
        let name = format!("rvclients-nb-{}", std::process::id());
        let x = domain_xml(&name, Guest::Ticker).replace("type='kvm'", "type='qemu'");
        let qf = d.xml_file("qnb.xml", &x);
        let o = virsh_on(q, &["define", &qf]);
        assert!(o.status.success(), "{}", stderr(&o));
        for (args, ours) in cases.iter().zip(&ours) {
            let mut theirs_args = args.to_vec();
            theirs_args[1] = &name;
            let theirs = stderr(&virsh_on(q, &theirs_args));
            assert_eq!(ours.trim(), theirs.trim(), "{args:?}");
        }
        let _ = virsh_on(q, &["undefine", &name]);
    }
}

/// dommemstat until `done` holds for its output (the guest's statistics
/// arrive a moment after the buffer is sent).
fn wait_for_stats(d: &Rvirtd, done: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    wait_for(
        "dommemstat to show the guest's statistics",
        VIRSH_LIMIT,
        || {
            out = d.ok(&["dommemstat", "ms"]);
            done(&out)
        },
    );
    out
}

#[test]
fn missing_objects_and_host_facts() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    // Lookups of what does not exist answer as libvirt's test driver does.
    for args in [
        &["vol-info", "/nonexistent/x.img"][..],
        &["pool-info", "nopool"],
        &["net-info", "nonet"],
        &["dominfo", "nodomain"],
    ] {
        let ours = d.fails(args);
        let theirs = stderr(&virsh_on("test:///default", args));
        assert_eq!(ours.trim(), theirs.trim(), "{args:?}");
    }
    // Host interfaces, node devices, secrets, network filters: rvirtd has
    // none; libvirtd's own drivers answer these lookups so.
    if let Some(q) = libvirt_qemu() {
        for args in [
            &["iface-dumpxml", "nosuch"][..],
            &["iface-name", "52:54:00:00:00:99"],
            &["nodedev-dumpxml", "nosuch"],
            &["secret-dumpxml", "11111111-2222-3333-4444-555555555555"],
            &["nwfilter-dumpxml", "nosuch"],
            &["nwfilter-dumpxml", "11111111-2222-3333-4444-555555555555"],
        ] {
            let ours = d.fails(args);
            let theirs = stderr(&virsh_on(q, args));
            assert_eq!(ours.trim(), theirs.trim(), "{args:?}");
        }
    }
    assert!(d.ok(&["secret-list"]).contains("UUID"));
    // Snapshots (none yet), as the test driver answers for its domain.
    let f = d.xml_file("s.xml", &domain_xml("test", Guest::Ticker));
    d.ok(&["define", &f]);
    let args = ["snapshot-info", "test", "nosuch"];
    let ours = d.fails(&args);
    let theirs = stderr(&virsh_on("test:///default", &args));
    assert_eq!(ours.trim(), theirs.trim());
    assert_eq!(
        d.ok(&["snapshot-list", "test"]),
        String::from_utf8_lossy(&virsh_on("test:///default", &["snapshot-list", "test"]).stdout)
    );

    // Free memory: the host's, in one cell, close to /proc/meminfo's.
    let free_kib = |s: &str| -> u64 {
        s.lines()
            .find(|l| l.starts_with("MemFree:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let proc_free = free_kib(&std::fs::read_to_string("/proc/meminfo").unwrap());
    let out = d.ok(&["freecell"]);
    let ours: u64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        ours.abs_diff(proc_free) < proc_free / 4 + 65536,
        "{ours} vs {proc_free}"
    );
    let all = d.ok(&["freecell", "--all"]);
    assert!(all.contains("    0: ") && all.contains("Total: "), "{all}");
    let mem = d.ok(&["nodememstats"]);
    for f in ["total  :", "free   :", "buffers:", "cached :"] {
        assert!(mem.contains(f), "{mem}");
    }
    let cpu = d.ok(&["nodecpustats"]);
    for f in ["user:", "system:", "idle:", "iowait:"] {
        assert!(cpu.contains(f), "{cpu}");
    }
    assert!(d.ok(&["nodecpustats", "0"]).contains("idle:"));
    let e = d.fails(&["freecell", "3"]);
    assert!(e.contains("start cell 3 out of range"), "{e}");
}

#[test]
fn domain_capabilities_agree_with_libvirts_qemu_driver() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let ours = d.ok(&["domcapabilities"]);
    assert!(
        ours.contains("<value>on</value>\n        <value>off</value>"),
        "{ours}"
    );
    let caps = d.ok(&["capabilities"]);
    let host_model = |x: &str| -> Option<String> {
        let m = x.split("<mode name='host-model' supported='yes'>").nth(1)?;
        let name = m
            .split("<model fallback='forbid'>")
            .nth(1)?
            .split('<')
            .next()?;
        Some(name.to_string())
    };
    let ours_model = host_model(&ours).expect("host-model is supported");
    assert!(
        caps.contains(&format!("<model>{ours_model}</model>")),
        "{caps}"
    );
    assert!(
        !caps.contains("<model>Intel(R)") && !caps.contains("<model>AMD "),
        "{caps}"
    );
    let Some(q) = libvirt_qemu() else { return };
    let theirs = text(&virsh_on(q, &["domcapabilities"]));
    let usable = |x: &str, m: &str| -> Option<String> {
        let line = x
            .lines()
            .find(|l| l.trim_end().ends_with(&format!(">{m}</model>")) && l.contains("usable="))?;
        line.split("usable='")
            .nth(1)?
            .split('\'')
            .next()
            .map(str::to_string)
    };
    // The models both have, defined alike: the same verdict on this host.
    for m in ["qemu64", "kvm64"] {
        assert_eq!(usable(&ours, m), usable(&theirs, m), "{m}");
    }
    // libvirt's host-model, when it is one of rvirt's models, is rvirt's,
    // with the same features taken away.
    let theirs_model = host_model(&theirs).unwrap_or_default();
    if rvirt_vmm_config::caps::cpu_model(&theirs_model).is_some() {
        assert_eq!(ours_model, theirs_model);
        let disabled = |x: &str| -> Vec<String> {
            x.split("<mode name='host-model'")
                .nth(1)
                .unwrap_or("")
                .split("</mode>")
                .next()
                .unwrap_or("")
                .lines()
                .filter_map(|l| l.split("policy='disable' name='").nth(1))
                .map(|r| r.split('\'').next().unwrap_or("").to_string())
                .collect()
        };
        assert_eq!(disabled(&ours), disabled(&theirs));
    }
}

/// Each new procedure fed garbage and unknown flags answers an error and
/// changes nothing.
#[test]
fn new_procedures_refuse_garbage_and_unknown_flags() {
    let d = Rvirtd::start();
    let c = d.client();
    let f = domain_xml("bad", Guest::Ticker);
    let dom = c
        .call::<procs::DomainDefineXml>(&DomainDefineXmlArgs { xml: f })
        .unwrap()
        .dom;
    let stored = || std::fs::read_to_string(d.root().join("etc/rvirt/qemu/bad.xml")).unwrap();
    let before = stored();
    for p in [
        Procedure::DomainAttachDevice,
        Procedure::DomainAttachDeviceFlags,
        Procedure::DomainDetachDeviceFlags,
        Procedure::DomainUpdateDeviceFlags,
        Procedure::DomainSetMemoryFlags,
        Procedure::DomainSetMemoryStatsPeriod,
        Procedure::DomainSetVcpusFlags,
        Procedure::DomainSetMaxMemory,
        Procedure::DomainMemoryStats,
        Procedure::DomainBlockStats,
        Procedure::DomainInterfaceStats,
        Procedure::DomainGetJobInfo,
        Procedure::NodeGetCellsFreeMemory,
        Procedure::NodeGetCpuStats,
        Procedure::NodeGetMemoryStats,
        Procedure::DomainSnapshotLookupByName,
        Procedure::DomainListAllSnapshots,
        Procedure::InterfaceLookupByName,
        Procedure::InterfaceLookupByMacString,
        Procedure::NodeDeviceLookupByName,
        Procedure::SecretLookupByUuid,
        Procedure::SecretLookupByUsage,
        Procedure::ConnectListAllSecrets,
        Procedure::NwfilterLookupByName,
        Procedure::NwfilterLookupByUuid,
        Procedure::ConnectListAllNwfilters,
    ] {
        match c.call_raw(p, vec![0xff; 7]) {
            Err(ClientError::Remote(e)) => assert_eq!(e.code, code::RPC, "{p:?}: {e}"),
            other => panic!("{p:?}: {other:?}"),
        }
    }
    let remote = |r: Result<(), ClientError>| -> RemoteError {
        match r {
            Err(ClientError::Remote(e)) => *e,
            other => panic!("{other:?}"),
        }
    };
    let disk = DISK.replace("SRC", "/nonexistent");
    let e = remote(
        c.call::<procs::DomainAttachDeviceFlags>(&DomainDeviceFlagsArgs {
            dom: dom.clone(),
            xml: disk.clone(),
            flags: 0x40,
        }),
    );
    assert_eq!(e.code, code::INVALID_ARG);
    assert_eq!(
        e.message.as_deref(),
        Some("unsupported flags (0x40) in function qemuDomainAttachDeviceFlags")
    );
    let e = remote(
        c.call::<procs::DomainAttachDeviceFlags>(&DomainDeviceFlagsArgs {
            dom: dom.clone(),
            xml: "<disk type='file'><target".into(),
            flags: 2,
        }),
    );
    assert_eq!(e.code, code::XML_ERROR);
    let e = remote(
        c.call::<procs::DomainSetMemoryFlags>(&DomainSetMemoryFlagsArgs {
            dom: dom.clone(),
            memory: 1 << 40,
            flags: 2,
        }),
    );
    assert_eq!(e.code, code::INVALID_ARG);
    let e = remote(
        c.call::<procs::DomainSetVcpusFlags>(&DomainSetVcpusFlagsArgs {
            dom: dom.clone(),
            nvcpus: 100_000,
            flags: 2 | 4,
        }),
    );
    assert!(matches!(e.code, code::XML_ERROR | code::INVALID_ARG), "{e}");
    let e = remote(
        c.call::<procs::DomainSetMemoryStatsPeriod>(&DomainSetMemoryStatsPeriodArgs {
            dom: dom.clone(),
            period: -1,
            flags: 2,
        }),
    );
    assert_eq!(e.code, code::INVALID_ARG, "{e}");
    let e = remote(
        c.call::<procs::DomainSetMemoryStatsPeriod>(&DomainSetMemoryStatsPeriodArgs {
            dom: dom.clone(),
            period: 5,
            flags: 4,
        }),
    );
    assert_eq!(
        e.message.as_deref(),
        Some("unsupported flags (0x4) in function qemuDomainSetMemoryStatsPeriod")
    );
    let e = remote(c.call::<procs::DomainShutdownFlags>(&DomainFlagsArgs {
        dom: dom.clone(),
        flags: 1 << 20,
    }));
    assert_eq!(e.code, code::INVALID_ARG);
    assert!(c
        .call::<procs::NodeGetCellsFreeMemory>(&NodeGetCellsFreeMemoryArgs {
            start_cell: i32::MAX,
            maxcells: -1,
        })
        .is_err());
    assert!(c
        .call::<procs::NodeGetMemoryStats>(&NodeGetMemoryStatsArgs {
            nparams: -5,
            cell_num: 0,
            flags: 0,
        })
        .is_err());
    // The lookups of objects rvirtd has none of check their flags as
    // libvirt's drivers do, and a snapshot of a missing domain is
    // "no domain", not "no snapshot".
    let e = remote(
        c.call::<procs::DomainSnapshotLookupByName>(&DomainSnapshotLookupByNameArgs {
            dom: dom.clone(),
            name: "s".into(),
            flags: 1,
        })
        .map(drop),
    );
    assert_eq!(
        e.message.as_deref(),
        Some("unsupported flags (0x1) in function qemuDomainSnapshotLookupByName")
    );
    let mut gone = dom.clone();
    gone.name = "gone".into();
    gone.uuid = Uuid([7; 16]);
    let e = remote(
        c.call::<procs::DomainListAllSnapshots>(&DomainListAllSnapshotsArgs {
            dom: gone,
            need_results: 1,
            flags: 0,
        })
        .map(drop),
    );
    assert_eq!(e.code, code::NO_DOMAIN, "{e}");
    let e = remote(
        c.call::<procs::DomainListAllSnapshots>(&DomainListAllSnapshotsArgs {
            dom: dom.clone(),
            need_results: 1,
            flags: 0x800,
        })
        .map(drop),
    );
    assert_eq!(
        e.message.as_deref(),
        Some("unsupported flags (0x800) in function qemuDomainListAllSnapshots")
    );
    let e = remote(
        c.call::<procs::ConnectListAllSecrets>(&ConnectListAllArgs {
            need_results: 1,
            flags: 0x10,
        })
        .map(drop),
    );
    assert_eq!(
        e.message.as_deref(),
        Some("unsupported flags (0x10) in function secretConnectListAllSecrets")
    );
    let e = remote(
        c.call::<procs::ConnectListAllNwfilters>(&ConnectListAllArgs {
            need_results: 1,
            flags: 1,
        })
        .map(drop),
    );
    assert_eq!(e.code, code::INVALID_ARG);
    assert_eq!(stored(), before, "a refused edit changed the definition");
}

#[test]
fn virt_xml_edit_and_update() {
    if !have_virsh() || !have("virt-xml", "virtinst") {
        return;
    }
    let d = Rvirtd::start();
    let f = d.xml_file("x.xml", &balloon_xml("vx"));
    d.ok(&["define", &f]);
    let img = d.root().join("vdb.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    let disk = d.xml_file("disk.xml", &DISK.replace("SRC", &img.to_string_lossy()));
    d.ok(&["attach-device", "vx", &disk, "--config"]);
    let virt_xml = |args: &[&str]| {
        run(Command::new("virt-xml")
            .args(["--connect", &d.uri(), "vx"])
            .args(args))
    };
    let inactive = || d.ok(&["dumpxml", "--inactive", "vx"]);

    // --edit: a redefinition.
    let out = virt_xml(&["--edit", "--memory", "40"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(inactive().contains("<currentMemory unit='KiB'>40960</currentMemory>"));
    let out = virt_xml(&["--edit", "target=vdb", "--disk", "readonly=on"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(inactive().contains("<readonly/>"), "{}", inactive());

    // --update on a running domain: the live half is refused (no
    // hot-plug), virt-xml says so and the definition stays.
    d.ok(&["start", "vx"]);
    let before = inactive();
    let out = virt_xml(&["--edit", "target=vdb", "--disk", "readonly=off", "--update"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("live update of device 'disk' is not supported"),
        "{}",
        text(&out)
    );
    assert_eq!(inactive(), before);
    d.ok(&["destroy", "vx"]);
    // Stopped, --update is only a define.
    let out = virt_xml(&["--edit", "target=vdb", "--disk", "readonly=off", "--update"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("--update is inapplicable"),
        "{}",
        text(&out)
    );
    assert!(!inactive().contains("<readonly/>"));
}
