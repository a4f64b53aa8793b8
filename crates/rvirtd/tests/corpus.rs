//! Every corpus fixture the derivation accepts (crates/domain/tests/fixtures:
//! definitions written by virt-install and virsh, with libvirt's own argv)
//! starts through rvirtd with the real virsh: `define`, `start`, running
//! (the guest's line on its serial where it has one), `destroy`, `undefine`.
//!
//! Only what a fixture names on the host that does not exist here is
//! rewritten; every device stays as the fixture has it:
//! - files under /var/lib/rvirt-fx/ (disks, CD-ROM media, kernel, initrd)
//!   become files made here: raw and qcow2 images from qemu-img, a
//!   2 MiB medium for the ISOs, the `ticker` guest as the kernel (it
//!   prints `TICK n` on COM1 every ~2 s and never stops);
//! - a disk on /dev/null (a host block device in the fixtures) becomes a
//!   loop device over a raw image;
//! - chardev files and sockets under /tmp go to the daemon's tree;
//! - every interface becomes `type='user'` with its MAC and model kept
//!   (the fixtures' `default` network, `br0` bridge, `eth0` macvtap and
//!   taps do not exist here), served by passt in a private namespace;
//! - `<emulator>` is dropped, and the name and UUID are made unique per
//!   fixture (a `dx-` and a `vi-` fixture describe the same domain).
//!
//! As in fixtures.rs, SPICE and qxl/virtio-gpu (refused with one line,
//! tests/argv.rs of rvirt-domain) are left out; fixtures whose argv file
//! is libvirt's error, and those the derivation refuses, are listed with
//! the reason and not started. A fixture that fails for want of something
//! on this machine (see `host_lacks`: SeaBIOS's VGA ROM) is listed as
//! such; any other failure fails the test, naming the fixture, virsh's
//! message and the daemon's log. The fixtures run two at a time, each with
//! its own images (rvirtd refuses an image in use by another domain).
//!
//! At the time of writing 80 of the 82 accepted fixtures start; the other
//! two ({dx,hr}-hand-q35-watchdog) fail for a gap in rvirt, so this test
//! fails until it closes: `rvirt-vmm: -device: i6300esb must sit on
//! pcie.0: behind a root port it is not supported yet` (libvirt puts the
//! watchdog behind a pcie-to-pci-bridge on q35).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{have_virsh, qemu_img_ok, Rvirtd};
use rvirt_domain::{derive_argv, DeriveError, Domain, RuntimePaths};
use rvirt_test_guests::Guest;
use rvirt_testkit::netns;

/// SeaBIOS's VGA option ROM (Debian's `seabios`), which `-device VGA`
/// loads, in QEMU as in rvirt-vmm.
const VGA_ROM: &str = "/usr/share/seabios/vgabios-stdvga.bin";

/// Why a fixture that failed with `error` could not start on this
/// machine, when that is for a reason outside rvirt: the failure names
/// what this machine lacks. Every other accepted fixture must start.
fn host_lacks(error: &str) -> Option<String> {
    // VGA needs the ROM (QEMU's `-device VGA` too), which Debian's
    // seabios package ships. Only when it is missing, and only virsh's
    // own message: the daemon's log also shows the fixture started
    // beside this one.
    let virsh = error.split("\ndaemon: ").next().unwrap_or(error);
    (!Path::new(VGA_ROM).exists() && virsh.contains(VGA_ROM))
        .then(|| format!("a VGA display, and {VGA_ROM} is not installed here"))
}

/// How long the guest has to print its first line on its serial.
const LINE_LIMIT: Duration = Duration::from_secs(30);

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/tests/fixtures")
}

fn have_passt() -> bool {
    let found = Command::new(rvirt_hostnet::passt::program())
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "passt is required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("passt not installed: test skipped");
    }
    found
}

/// The graphics and video devices the derivation takes (fixtures.rs).
fn drop_refused_display(dom: &mut Domain) {
    dom.devices.others.retain(|o| match o.kind() {
        "graphics" => o.dev_type() == Some("vnc"),
        "video" => matches!(o.model(), Some("vga" | "bochs" | "none")),
        _ => true,
    });
}

/// The files the fixtures name under /var/lib/rvirt-fx/, made in `dir`.
fn make_host_files(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for raw in ["a.raw", "b.raw", "c.raw", "d.raw"] {
        let p = dir.join(raw);
        qemu_img_ok(&["create", "-q", "-f", "raw", &p.to_string_lossy(), "16M"]);
    }
    for qcow in ["a.qcow2", "c.qcow2"] {
        let p = dir.join(qcow);
        qemu_img_ok(&["create", "-q", "-f", "qcow2", &p.to_string_lossy(), "16M"]);
    }
    // A CD-ROM medium: whole 2 KiB sectors.
    std::fs::write(dir.join("cd.iso"), vec![0u8; 2 << 20]).unwrap();
    std::fs::copy(Guest::Ticker.path(), dir.join("vmlinuz")).unwrap();
    std::fs::write(dir.join("initrd.img"), b"rvirt corpus initrd\n").unwrap();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    }
}

/// The fixture's definition as it starts here (see the module comment),
/// with its files in `files` and `block` for a disk on /dev/null.
fn for_this_host(text: &str, name: &str, files: &Path, block: Option<&str>) -> Domain {
    let mut text = text
        .replace("/var/lib/rvirt-fx/", &format!("{}/", files.display()))
        .replace("/tmp/rvfx", &format!("{}/rvfx", files.display()));
    if let Some(dev) = block {
        text = text
            .replace("'/dev/null'", &format!("'{dev}'"))
            .replace("\"/dev/null\"", &format!("\"{dev}\""));
    }
    let mut dom = Domain::from_xml(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    drop_refused_display(&mut dom);
    dom.name = name.to_string();
    dom.uuid = None;
    dom.devices.emulator = None;
    for i in &mut dom.devices.interfaces {
        i.iface_type = "user".into();
        i.source = None;
        i.target_dev = None;
    }
    dom
}

/// A loop device over a raw image, detached when dropped: a disk on
/// /dev/null stands for a host block device in the fixtures (disk-block,
/// hand-cache-modes), and /dev/null takes no O_DIRECT (`cache='none'`),
/// in QEMU as here.
struct Loop(String);

impl Loop {
    fn over(image: &Path) -> Self {
        let out = rvirt_testkit::run(
            Command::new("losetup").args(["-f", "--show"]).arg(image),
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "losetup: {}", text(&out));
        Loop(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = rvirt_testkit::try_run(
            Command::new("losetup").args(["-d", &self.0]),
            Duration::from_secs(30),
        );
    }
}

/// Prepares `path`'s files in the daemon's tree, then starts it.
fn run_fixture(d: &Rvirtd, name: &str, path: &Path) -> Result<Outcome, String> {
    // Files of its own: rvirtd refuses an image in use by another domain.
    let files = d.root().join("fx").join(name);
    make_host_files(&files);
    let text = std::fs::read_to_string(path).unwrap();
    let block = text
        .contains("/dev/null")
        .then(|| Loop::over(&files.join("a.raw")));
    let dom = for_this_host(&text, name, &files, block.as_ref().map(|l| l.0.as_str()));
    let r = start_one(d, name, &dom);
    drop(block);
    match r {
        Ok(seen) => Ok(Outcome::Started(seen)),
        Err(e) => host_lacks(&e).map(Outcome::Skipped).ok_or(e),
    }
}

enum Outcome {
    /// How it was seen running.
    Started(String),
    /// Why it cannot start on this machine.
    Skipped(String),
}

/// Whether the derivation takes the fixture (as fixtures.rs decides), or
/// why not.
fn accepted(path: &Path) -> Result<(), String> {
    let argv = std::fs::read_to_string(path.with_extension("argv")).unwrap();
    if argv.starts_with("error") {
        return Err(format!("libvirt refuses it: {}", argv.trim()));
    }
    let mut dom = Domain::from_xml(&std::fs::read_to_string(path).unwrap()).unwrap();
    dom.fill_in();
    drop_refused_display(&mut dom);
    match derive_argv(&dom, &RuntimePaths::in_dir("/run/rvirt/test")) {
        Ok(_) => Ok(()),
        Err(DeriveError::Unsupported(list)) => Err(format!("refused: {list:?}")),
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// virsh that must succeed, or the failure naming the fixture, the
/// command, virsh's message and the daemon's log.
fn virsh(d: &Rvirtd, fixture: &str, args: &[&str]) -> Result<String, String> {
    let out = d.virsh(args);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{fixture}: virsh {args:?}: {}\ndaemon: {}",
            text(&out).trim(),
            d.daemon_log_tail()
        ))
    }
}

/// Where the guest's first serial can be read from, in the live definition.
fn serial_source(live: &str) -> Option<(String, String)> {
    let dom = Domain::from_xml(live).ok()?;
    let s = dom.devices.serials.first()?;
    let path = s.source.as_ref()?.attr("path")?.to_string();
    Some((s.dev_type.clone(), path))
}

/// Waits for `needle` in what the guest wrote to a pty or a file.
fn wait_serial(fixture: &str, kind: &str, path: &str, needle: &str) -> Result<(), String> {
    match kind {
        "pty" => {
            let mut tty =
                std::fs::File::open(path).map_err(|e| format!("{fixture}: {path}: {e}"))?;
            // Raw, as virsh console sets it: no echo of the guest's output
            // back into its UART, no line editing.
            let out = rvirt_testkit::run(
                Command::new("stty").args(["-F", path, "raw", "-echo"]),
                Duration::from_secs(30),
            );
            if !out.status.success() {
                return Err(format!("{fixture}: stty {path}: {}", text(&out)));
            }
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rvirt_testkit::read_until(&mut tty, needle, LINE_LIMIT)
            }))
            .map(drop)
            .map_err(|e| {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                format!("{fixture}: serial pty {path}: {why}")
            })
        }
        _ => {
            let deadline = Instant::now() + LINE_LIMIT;
            loop {
                let got = std::fs::read_to_string(path).unwrap_or_default();
                if got.contains(needle) {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "{fixture}: no {needle:?} in serial file {path} within {LINE_LIMIT:?}: {got:?}"
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn vmm_pid(d: &Rvirtd, name: &str) -> Option<i32> {
    let rec = std::fs::read_to_string(d.root().join(format!("run/rvirt/qemu/{name}.json"))).ok()?;
    let v: serde_json::Value = serde_json::from_str(&rec).ok()?;
    v["pid"].as_i64().map(|p| p as i32)
}

/// define, start, see it run, destroy, undefine.
fn start_one(d: &Rvirtd, name: &str, dom: &Domain) -> Result<String, String> {
    let file = d.xml_file(&format!("{name}.xml"), &dom.to_xml());
    virsh(d, name, &["define", &file])?;
    let result = (|| {
        virsh(d, name, &["start", name])?;
        let state = virsh(d, name, &["domstate", name])?;
        if state.trim() != "running" {
            return Err(format!(
                "{name}: {} after start\n{}",
                state.trim(),
                d.log(name)
            ));
        }
        let live = virsh(d, name, &["dumpxml", name])?;
        let seen = match (dom.os.kernel.is_some(), serial_source(&live)) {
            (true, Some((kind, path))) if kind == "pty" || kind == "file" => {
                wait_serial(name, &kind, &path, "TICK")?;
                format!("TICK on its {kind} serial")
            }
            _ => {
                std::thread::sleep(Duration::from_secs(1));
                "running for a second".to_string()
            }
        };
        let pid = vmm_pid(d, name).ok_or_else(|| format!("{name}: no runtime record"))?;
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(format!("{name}: its VMM {pid} is gone\n{}", d.log(name)));
        }
        let state = virsh(d, name, &["domstate", name])?;
        if state.trim() != "running" {
            return Err(format!(
                "{name}: {} after {seen}\n{}",
                state.trim(),
                d.log(name)
            ));
        }
        virsh(d, name, &["destroy", name])?;
        Ok(seen)
    })();
    if result.is_err() {
        let _ = d.virsh(&["destroy", name]);
    }
    virsh(d, name, &["undefine", name])?;
    result
}

#[test]
fn every_accepted_fixture_starts_through_rvirtd_with_virsh() {
    if !have_virsh() || !have_passt() {
        return;
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 60, "only {} fixtures", paths.len());
    let mut todo = Vec::new();
    for p in paths {
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        match accepted(&p) {
            Ok(()) => todo.push((name, p)),
            Err(why) => eprintln!("not started: {name}: {why}"),
        }
    }
    netns::in_netns(move || {
        netns::routed();
        let d = Rvirtd::start();
        // passt drops to nobody when started as root: the tree must be
        // searchable, as /run is.
        std::fs::set_permissions(d.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let queue = Mutex::new(todo.iter());
        let results = Mutex::new(Vec::new());
        // Two at a time: the machine has two cores.
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| loop {
                    let Some((name, path)) = queue.lock().unwrap().next() else {
                        break;
                    };
                    let r = run_fixture(&d, name, path);
                    results.lock().unwrap().push((name.clone(), r));
                });
            }
        });
        let mut results = results.into_inner().unwrap();
        results.sort_by(|a, b| a.0.cmp(&b.0));
        let mut failures = Vec::new();
        let (mut started, mut skipped) = (0, 0);
        for (name, r) in results {
            match r {
                Ok(Outcome::Started(seen)) => {
                    started += 1;
                    eprintln!("started: {name}: {seen}");
                }
                Ok(Outcome::Skipped(why)) => {
                    skipped += 1;
                    eprintln!("cannot start here: {name}: {why}");
                }
                Err(e) => failures.push(e),
            }
        }
        eprintln!(
            "of {} accepted fixtures: {started} started, {skipped} cannot start here, {} failed",
            todo.len(),
            failures.len()
        );
        assert!(
            failures.is_empty(),
            "{} fixtures did not start:\n{}",
            failures.len(),
            failures.join("\n\n")
        );
        assert!(started >= 60, "only {started} fixtures started");
    });
}
