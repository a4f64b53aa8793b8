//! Every VMM rvirtd starts is confined (the Dom0/DomU split): an
//! unprivileged user, no capabilities, no_new_privs, a seccomp filter on
//! every thread, a root holding only what it needs, its own cgroup; files
//! it writes given to its user and given back however the VM ends; a
//! forbidden call crashes the domain and its log names the call; one VM
//! cannot reach another's disk; a qcow2 overlay and its base are passed by
//! descriptor and left clean. Through the real virsh.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use rvirt_test_guests::Guest;
use rvirt_testkit::poll;

/// A ticking guest with a disk, a pty serial console, a file serial port
/// and a memory limit.
fn xml(name: &str, disk: &Path, serial_file: &Path) -> String {
    format!(
        "<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <memtune><hard_limit unit='MiB'>512</hard_limit></memtune>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{}</kernel>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='pty'><target port='0'/></serial>
    <serial type='file'><source path='{}'/><target port='1'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
",
        Guest::Ticker.path().display(),
        disk.display(),
        serial_file.display()
    )
}

/// A 1 MiB image owned by 4321:4321, mode 0640.
fn image(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, vec![0u8; 1 << 20]).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    rustix::fs::chown(
        &p,
        Some(rustix::fs::Uid::from_raw(4321)),
        Some(rustix::fs::Gid::from_raw(4321)),
    )
    .unwrap();
    p
}

fn owner(p: &Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(p).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

fn pid(d: &Rvirtd, name: &str) -> i32 {
    let f = d.root().join(format!("run/rvirt/qemu/{name}/vmm.pid"));
    std::fs::read_to_string(&f)
        .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        .trim()
        .parse()
        .unwrap()
}

/// Waits until every thread of the VMM `pid` runs under its seccomp
/// filter, the signal thread (started last) among them: each thread
/// records itself as its kind's probe target just before its filter goes
/// on, so a probe fired from now on finds its target (fired sooner, the
/// VMM says "no … thread runs" and nothing crashes; a fixed pause after
/// a log line was too short for a loaded machine).
fn wait_confined(pid: i32) {
    rvirt_testkit::poll(
        "every VMM thread under its filter",
        Duration::from_secs(30),
        || {
            let threads = rvirt_testkit::threads(pid);
            let open: Vec<&str> = threads
                .iter()
                // KVM's own workers belong to the process and run no user code.
                .filter(|(_, n)| !n.starts_with("kvm-"))
                .filter(|(tid, _)| {
                    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
                        .unwrap_or_default();
                    field(&status, "Seccomp:") != "2"
                })
                .map(|(_, n)| n.as_str())
                .collect();
            if open.is_empty() && threads.iter().any(|(_, n)| n == "signals") {
                Ok(())
            } else {
                Err(format!("unfiltered: {open:?} of {threads:?}"))
            }
        },
    );
}

fn field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Every path under `dir` (relative), not following symlinks.
fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let r = rel.join(e.file_name());
        out.push(r.clone());
        if e.file_type().is_ok_and(|t| t.is_dir()) && r != Path::new("dev/pts") {
            walk(&e.path(), &r, out);
        }
    }
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

#[test]
fn every_vmm_is_unprivileged_filtered_and_sees_only_its_files() {
    if !have_virsh() || !have_user() {
        return;
    }
    let d = Rvirtd::start();
    let disk = image(d.root(), "a.img");
    let serial = d.root().join("a.serial");
    let f = d.xml_file("a.xml", &xml("a", &disk, &serial));
    d.ok(&["define", &f]);
    d.ok(&["start", "a"]);
    let pid = pid(&d, "a");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid: u32 = field(&status, "Uid:")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let gid: u32 = field(&status, "Gid:")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(uid != 0 && gid != 0, "{status}");
    assert_eq!(
        field(&status, "Uid:"),
        format!("{uid}\t{uid}\t{uid}\t{uid}")
    );
    assert_eq!(field(&status, "CapEff:"), "0000000000000000");
    assert_eq!(field(&status, "CapPrm:"), "0000000000000000");
    assert_eq!(field(&status, "CapBnd:"), "0000000000000000");
    assert_eq!(field(&status, "NoNewPrivs:"), "1");
    assert_eq!(field(&status, "Groups:"), "");
    // Every thread, once all have started (the signal thread last).
    poll("the VMM's threads", Duration::from_secs(20), || {
        let mut seen = Vec::new();
        for t in std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
        {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            let st = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            let comm = comm.trim().to_string();
            if comm.starts_with("kvm-") {
                continue;
            }
            if field(&st, "Seccomp:") != "2" || field(&st, "NoNewPrivs:") != "1" {
                return Err(format!("thread {comm} is not filtered:\n{st}"));
            }
            seen.push(comm);
        }
        let all = ["CPU 0/KVM", "devices", "signals", "chardev", "blk-io"]
            .iter()
            .all(|w| seen.iter().any(|s| s.starts_with(w)))
            && seen.iter().any(|s| s.starts_with("qmp-"));
        all.then_some(()).ok_or(format!("threads so far: {seen:?}"))
    });

    // Its root: a minimal /dev, /tmp, the program and its libraries, the
    // kernel; not the disk (passed open), nothing else of the host.
    let mut view = Vec::new();
    walk(
        Path::new(&format!("/proc/{pid}/root")),
        Path::new(""),
        &mut view,
    );
    let dev: Vec<String> = view
        .iter()
        .filter_map(|p| p.strip_prefix("dev").ok())
        .filter(|p| p.components().count() == 1)
        .map(|p| p.display().to_string())
        .collect();
    let mut dev_sorted = dev.clone();
    dev_sorted.sort();
    assert_eq!(
        dev_sorted,
        ["full", "kvm", "null", "ptmx", "pts", "random", "urandom", "zero"],
        "{view:?}"
    );
    let kernel = Guest::Ticker.path();
    let rel = |p: &Path| p.strip_prefix("/").unwrap().to_path_buf();
    assert!(view.contains(&rel(&kernel)), "{view:?}");
    assert!(
        !view.contains(&rel(&disk)),
        "the disk is passed open: {view:?}"
    );
    assert!(!view.contains(&PathBuf::from("etc/passwd")), "{view:?}");
    assert!(
        !view
            .iter()
            .any(|p| p.starts_with("proc") || p.starts_with("home") || p.starts_with("root")),
        "{view:?}"
    );
    for p in &view {
        let top = p
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .to_string();
        assert!(
            ["dev", "tmp", "etc", "lib", "lib64", "usr", "work"].contains(&top.as_str())
                || kernel.starts_with(format!("/{top}")),
            "unexpected {} in the VMM's root",
            p.display()
        );
    }
    let kvm = std::fs::metadata(format!("/proc/{pid}/root/dev/kvm")).unwrap();
    assert_eq!((kvm.uid(), kvm.mode() & 0o777), (uid, 0o600));

    // The live XML carries libvirt's DAC label; the files it writes are
    // its user's now, with their mode.
    let live = d.ok(&["dumpxml", "a"]);
    let label = format!("+{uid}:+{gid}");
    assert!(
        live.contains(&format!(
            "<seclabel type='dynamic' model='dac' relabel='yes'>\n    <label>{label}</label>\n    <imagelabel>{label}</imagelabel>\n  </seclabel>"
        )),
        "{live}"
    );
    assert_eq!(owner(&disk), (uid, gid, 0o640));
    assert_eq!(owner(&serial).0, uid);

    // Its cgroup, with <memtune>'s limit.
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mem = cgroups
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .or_else(|| {
            cgroups
                .lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
        .unwrap();
    assert!(mem.starts_with("/rvirt/"), "{cgroups}");
    // The same group in every hierarchy it is accounted in: the v2 one it
    // was cloned into (clone3 CLONE_INTO_CGROUP) and, on a hybrid host,
    // each v1 one it joined before exec.
    for l in cgroups.lines() {
        let ctrls = l.split(':').nth(1).unwrap_or_default();
        if l.starts_with("0::")
            || ctrls
                .split(',')
                .any(|c| ["memory", "pids", "cpu"].contains(&c))
        {
            assert!(l.ends_with(&format!(":{mem}")), "{cgroups}");
        }
    }
    let limit = ["/sys/fs/cgroup/memory", "/sys/fs/cgroup"]
        .iter()
        .find_map(|root| {
            let dir = format!("{root}{mem}");
            std::fs::read_to_string(format!("{dir}/memory.limit_in_bytes"))
                .or_else(|_| std::fs::read_to_string(format!("{dir}/memory.max")))
                .ok()
        })
        .unwrap_or_default();
    assert_eq!(limit.trim(), (512u64 << 20).to_string(), "{cgroups}");
    // Its tasks bounded by the group's pids.max; the per-user NPROC
    // backstop (one count for every VM of the user) only without it.
    let pids_max = [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ]
    .iter()
    .find_map(|r| std::fs::read_to_string(format!("{r}{mem}/pids.max")).ok())
    .map(|v| v.trim().to_string());
    let nproc_of = |p: &str| {
        std::fs::read_to_string(format!("/proc/{p}/limits"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("Max processes"))
            .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
            .unwrap()
    };
    let nproc = nproc_of(&pid.to_string());
    match pids_max.as_deref() {
        // Inherited as rvirtd (and this test) have it.
        Some("1024") => assert_eq!(nproc, nproc_of("self"), "{cgroups}"),
        other => assert_eq!((other, nproc.as_str()), (other, "16384"), "{cgroups}"),
    }

    d.ok(&["destroy", "a"]);
    assert_eq!(owner(&disk), (4321, 4321, 0o640));
    assert_eq!(
        owner(&serial).0,
        0,
        "the serial file rvirtd made is root's again"
    );
    poll("the VM's cgroup to go", Duration::from_secs(10), || {
        let left: Vec<String> = [
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/unified",
            "/sys/fs/cgroup",
        ]
        .iter()
        .map(|r| format!("{r}{mem}"))
        .filter(|p| Path::new(p).exists())
        .collect();
        left.is_empty().then_some(()).ok_or(format!("{left:?}"))
    });
}

#[test]
fn ownership_comes_back_however_the_vm_ends() {
    if !have_virsh() || !have_user() {
        return;
    }
    let mut d = Rvirtd::start();
    let disk = image(d.root(), "b.img");
    let serial = d.root().join("b.serial");
    let f = d.xml_file("b.xml", &xml("b", &disk, &serial));
    d.ok(&["define", &f]);

    // kill -9 of the VMM: crashed, the image given back.
    d.ok(&["start", "b"]);
    assert_ne!(owner(&disk).0, 4321);
    // SAFETY: kill sends a signal to one positive pid.
    unsafe { libc::kill(pid(&d, "b"), libc::SIGKILL) };
    d.wait_state("b", "shut off (crashed)");
    assert_eq!(owner(&disk), (4321, 4321, 0o640));

    // kill -9 of rvirtd, then destroy through the new one.
    d.ok(&["start", "b"]);
    assert_ne!(owner(&disk).0, 4321);
    d.kill9();
    d.spawn();
    assert_eq!(d.state("b"), "running (booted)");
    d.ok(&["destroy", "b"]);
    assert_eq!(owner(&disk), (4321, 4321, 0o640));

    // The VMM killed while rvirtd is away: the new one finds it dead and
    // gives the image back.
    d.ok(&["start", "b"]);
    let vmm = pid(&d, "b");
    d.kill9();
    // SAFETY: as above.
    unsafe { libc::kill(vmm, libc::SIGKILL) };
    poll("the VMM to die", Duration::from_secs(10), || {
        (!Path::new(&format!("/proc/{vmm}/status")).exists()
            || std::fs::read_to_string(format!("/proc/{vmm}/status"))
                .is_ok_and(|s| field(&s, "State:").starts_with('Z')))
        .then_some(())
        .ok_or_else(|| "alive".to_string())
    });
    d.spawn();
    assert_eq!(d.state("b"), "shut off (crashed)");
    assert_eq!(owner(&disk), (4321, 4321, 0o640));

    // The guest changed the mode meanwhile (its user owns the file): the
    // mode comes back too.
    d.ok(&["start", "b"]);
    std::fs::set_permissions(&disk, std::fs::Permissions::from_mode(0o666)).unwrap();
    d.ok(&["destroy", "b"]);
    assert_eq!(owner(&disk), (4321, 4321, 0o640));
}

#[test]
fn a_second_vm_is_denied_the_first_vms_disk() {
    if !have_virsh() || !have_user() {
        return;
    }
    let d = Rvirtd::start_with_env(&[], &[]);
    let disk = image(d.root(), "c.img");
    let f = d.xml_file("c.xml", &xml("c", &disk, &d.root().join("c.serial")));
    d.ok(&["define", &f]);
    d.ok(&["start", "c"]);
    // A second domain naming the same (writable, not shareable) image.
    let f2 = d.xml_file("c2.xml", &xml("c2", &disk, &d.root().join("c2.serial")));
    d.ok(&["define", &f2]);
    let err = d.fails(&["start", "c2"]);
    assert!(err.contains("is in use by another domain"), "{err}");
    assert_eq!(d.state("c2"), "shut off (failed)");
    // The refusal left the first VM's label alone.
    assert_ne!(owner(&disk).0, 4321);
    d.ok(&["destroy", "c"]);
    assert_eq!(owner(&disk), (4321, 4321, 0o640));
}

#[test]
fn a_forbidden_call_crashes_the_domain_and_its_log_names_it() {
    if !have_virsh() || !have_user() {
        return;
    }
    let other = tempfile::tempdir().unwrap();
    let foreign = image(other.path(), "other-vm.img");
    let probes = format!(
        "pv=vcpu:ptrace;pd=devices:execve;pm=monitor:socket;pc=chardev:mount;\
         ps=signals:socket;pmain=main:mount;popen=main:open:{}",
        foreign.display()
    );
    let d = Rvirtd::start_with_env(&[], &[("RVIRT_SANDBOX_PROBE", &probes)]);
    let cases = [
        ("pv", "the vcpu thread made a forbidden system call: ptrace"),
        (
            "pd",
            "the devices thread made a forbidden system call: execve",
        ),
        (
            "pm",
            "the monitor thread made a forbidden system call: socket",
        ),
        (
            "pc",
            "the chardev thread made a forbidden system call: mount",
        ),
        (
            "ps",
            "the signals thread made a forbidden system call: socket",
        ),
        (
            "pmain",
            "the main thread made a forbidden system call: mount",
        ),
    ];
    for (name, line) in cases {
        let disk = image(d.root(), &format!("{name}.img"));
        let f = d.xml_file(
            &format!("{name}.xml"),
            &xml(name, &disk, &d.root().join(format!("{name}.serial"))),
        );
        d.ok(&["define", &f]);
        d.ok(&["start", name]);
        let vmm = pid(&d, name);
        wait_confined(vmm);
        // SAFETY: kill sends a signal to one positive pid.
        unsafe { libc::kill(vmm, libc::SIGUSR1) };
        d.wait_state(name, "shut off (crashed)");
        d.wait_log(name, line);
        assert_eq!(owner(&disk), (4321, 4321, 0o640), "{name}");
    }
    // Another VM's image is not in reach: not in this VMM's root, and
    // Landlock would refuse it anyway.
    let disk = image(d.root(), "popen.img");
    let f = d.xml_file(
        "popen.xml",
        &xml("popen", &disk, &d.root().join("popen.serial")),
    );
    d.ok(&["define", &f]);
    d.ok(&["start", "popen"]);
    wait_confined(pid(&d, "popen"));
    // SAFETY: as above.
    unsafe { libc::kill(pid(&d, "popen"), libc::SIGUSR1) };
    d.wait_log("popen", "rvirt-vmm: probe: main open: errno 2");
    assert_eq!(d.state("popen"), "running (booted)");
    d.ok(&["destroy", "popen"]);
}

#[test]
fn a_shared_read_only_image_stays_read_only_and_keeps_its_owner() {
    if !have_virsh() || !have_user() {
        return;
    }
    let d = Rvirtd::start();
    let shared = image(d.root(), "base.img");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o444)).unwrap();
    for name in ["ro1", "ro2"] {
        let own = image(d.root(), &format!("{name}.img"));
        let text = xml(name, &own, &d.root().join(format!("{name}.serial"))).replace(
            "    <serial type='pty'>",
            &format!(
                "    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n      \
                 <source file='{}'/>\n      <target dev='vdb' bus='virtio'/>\n      <readonly/>\n    \
                 </disk>\n    <serial type='pty'>",
                shared.display()
            ),
        );
        let f = d.xml_file(&format!("{name}.xml"), &text);
        d.ok(&["define", &f]);
        d.ok(&["start", name]);
    }
    // Both run on it; it was never given to their user.
    assert_eq!(owner(&shared), (4321, 4321, 0o444));
    let pid = pid(&d, "ro1");
    // The VMM holds it open read-only (passed by rvirtd).
    let fds = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).unwrap();
    let mut found = false;
    for e in fds.flatten() {
        let target = std::fs::read_link(format!(
            "/proc/{pid}/fd/{}",
            e.file_name().to_string_lossy()
        ));
        if target.is_ok_and(|t| t == shared) {
            let info = std::fs::read_to_string(e.path()).unwrap();
            let flags = u32::from_str_radix(&field(&info, "flags:"), 8).unwrap();
            assert_eq!(
                flags & libc::O_ACCMODE as u32,
                libc::O_RDONLY as u32,
                "{info}"
            );
            found = true;
        }
    }
    assert!(found, "the VMM does not hold {}", shared.display());
    d.ok(&["destroy", "ro1"]);
    d.ok(&["destroy", "ro2"]);
    assert_eq!(owner(&shared), (4321, 4321, 0o444));
}

/// 64 KiB of a pattern no two sectors share (the virtio guest reads its
/// first 4 KiB and writes sector 9).
fn pattern() -> Vec<u8> {
    (0..65536u32)
        .map(|i| (i.wrapping_mul(31) + i / 512) as u8)
        .collect()
}

/// The virtio guest on a qcow2 overlay over `base` (its format `fmt`),
/// the chain named in `<backingStore>` as libvirt writes it; the guest
/// waits for the power button once done with the disk.
fn qcow2_xml(name: &str, top: &Path, base: &Path, fmt: &str) -> String {
    format!(
        "<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{}</kernel>
    <cmdline>console=ttyS0 virtio.hold=1</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{}'/>
      <backingStore type='file'>
        <format type='{fmt}'/>
        <source file='{}'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='stdio'><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
",
        Guest::Virtio.path().display(),
        top.display(),
        base.display()
    )
}

#[test]
fn a_qcow2_overlay_and_its_base_are_passed_by_descriptor_and_stay_clean() {
    if !have_virsh() || !have_user() {
        return;
    }
    let d = Rvirtd::start();
    // A qcow2 base ended by `virsh destroy`, a raw one by `virsh shutdown`;
    // then a chain only the overlay's header names (rvirtd reads it, as
    // libvirt does, and passes the base too).
    for (name, fmt, end, named) in [
        ("q1", "qcow2", "destroy", true),
        ("q2", "raw", "shutdown", true),
        ("q3", "qcow2", "shutdown", false),
    ] {
        let raw = d.root().join(format!("{name}-data.raw"));
        std::fs::write(&raw, pattern()).unwrap();
        let base = d.root().join(format!("{name}-base.{fmt}"));
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let (code, out) = qemu_img(&["convert", "-O", fmt, &s(&raw), &s(&base)]);
        assert_eq!(code, 0, "{out}");
        // The base stays its owner's and read-only.
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o444)).unwrap();
        let base_before = std::fs::read(&base).unwrap();
        let top = d.root().join(format!("{name}-top.qcow2"));
        let (code, out) = qemu_img(&[
            "create",
            "-f",
            "qcow2",
            "-o",
            "cluster_size=4096",
            "-b",
            &s(&base),
            "-F",
            fmt,
            &s(&top),
        ]);
        assert_eq!(code, 0, "{out}");
        let mut text = qcow2_xml(name, &top, &base, fmt);
        if !named {
            let (a, b) = (
                text.find("      <backingStore").unwrap(),
                text.find("      <target").unwrap(),
            );
            text.replace_range(a..b, "");
        }
        let f = d.xml_file(&format!("{name}.xml"), &text);
        d.ok(&["define", &f]);
        d.ok(&["start", name]);
        rvirt_testkit::wait_for(
            "the guest to finish with its disk",
            Duration::from_secs(60),
            || d.log(name).contains("VIRTIO_HOLD"),
        );
        let log = d.log(name);
        let sum = format!("{:#010x}", rvirt_test_guests::fnv1a32(&pattern()[..4096]));
        assert!(
            log.contains(&format!("BLK_READ_FNV1A32 {sum}")),
            "the base's data through the overlay: {log}"
        );
        for ok in [
            "BLK_READ_STATUS 0",
            "BLK_WRITE_STATUS 0",
            "BLK_FLUSH_STATUS 0",
        ] {
            assert!(log.contains(ok), "{ok}: {log}");
        }
        // Both images came by descriptor: the VMM's command line names
        // neither, and it holds the base read-only.
        let pid = pid(&d, name);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(!cmdline.contains(&s(&base)), "{cmdline}");
        assert!(!cmdline.contains(&s(&top)), "{cmdline}");
        assert_eq!(cmdline.matches("/dev/fdset/").count(), 2, "{cmdline}");
        let mut base_fds = 0;
        for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
        {
            if std::fs::read_link(e.path()).is_ok_and(|t| t == base) {
                let fd = e.file_name().to_string_lossy().into_owned();
                let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap();
                let flags = u32::from_str_radix(&field(&info, "flags:"), 8).unwrap();
                assert_eq!(flags & libc::O_ACCMODE as u32, libc::O_RDONLY as u32);
                base_fds += 1;
            }
        }
        assert!(base_fds > 0, "the VMM does not hold {}", base.display());

        if end == "destroy" {
            d.ok(&["destroy", name]);
        } else {
            d.ok(&["shutdown", name]);
            d.wait_state(name, "shut off (shutdown)");
            assert!(d.log(name).contains("VIRTIO_POWERBTN"), "{}", d.log(name));
        }
        // Clean, the write in the overlay, the rest still below, the base
        // untouched.
        let (code, out) = qemu_img(&["check", &s(&top)]);
        assert_eq!(code, 0, "after {end}: {out}");
        let mut want = pattern();
        for (i, b) in want[9 * 512..10 * 512].iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        let expect = d.root().join(format!("{name}-expect.raw"));
        std::fs::write(&expect, want).unwrap();
        let (code, out) = qemu_img(&["compare", "-f", "qcow2", "-F", "raw", &s(&top), &s(&expect)]);
        assert_eq!(code, 0, "after {end}: {out}");
        let (_, map) = qemu_img(&["map", "--output=json", &s(&top)]);
        let map: serde_json::Value = serde_json::from_str(&map).unwrap();
        let depth_at = |off: u64| {
            map.as_array()
                .unwrap()
                .iter()
                .find(|e| {
                    let start = e["start"].as_u64().unwrap();
                    start <= off && off < start + e["length"].as_u64().unwrap()
                })
                .map(|e| e["depth"].as_u64().unwrap())
        };
        assert_eq!(depth_at(9 * 512), Some(0), "{map}");
        assert_eq!(depth_at(65536 - 512), Some(1), "{map}");
        assert!(
            std::fs::read(&base).unwrap() == base_before,
            "the base changed"
        );
    }
}

/// A VM's cgroup is removed after the VM, outside any client's wait; a
/// daemon stopped before that finishes leaves a record of it, and the next
/// daemon removes it. The removal is held back here by a child group (a
/// cgroup with children cannot be removed), so rvirtd is surely killed
/// while it still waits.
#[test]
fn a_cgroup_left_by_a_killed_daemon_is_removed_by_the_next() {
    if !have_virsh() || !have_user() {
        return;
    }
    let mut d = Rvirtd::start();
    let disk = image(d.root(), "a.img");
    let serial = d.root().join("a.serial");
    let f = d.xml_file("a.xml", &xml("a", &disk, &serial));
    d.ok(&["define", &f]);
    d.ok(&["start", "a"]);
    let pid = pid(&d, "a");
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let dirs: Vec<PathBuf> = cgroups
        .lines()
        .filter_map(|l| {
            let (ctrl, path) = l.split_once(':')?.1.split_once(':')?;
            let root = match ctrl {
                "" => ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
                    .into_iter()
                    .find(|r| Path::new(r).join("cgroup.controllers").exists())?
                    .to_string(),
                c => format!("/sys/fs/cgroup/{}", c.split(',').next()?),
            };
            Some(PathBuf::from(format!("{root}{path}")))
        })
        .filter(|p| p.to_string_lossy().contains("/rvirt/") && p.is_dir())
        .collect();
    assert!(!dirs.is_empty(), "{cgroups}");
    let hold = dirs[0].join("hold");
    std::fs::create_dir(&hold).unwrap();
    d.ok(&["destroy", "a"]);
    d.kill9();
    std::fs::remove_dir(&hold).unwrap();
    assert!(
        dirs[0].exists(),
        "the killed daemon left {dirs:?}\n{}",
        d.daemon_log_tail()
    );
    d.spawn();
    poll("the left cgroup to go", Duration::from_secs(10), || {
        let left: Vec<&PathBuf> = dirs.iter().filter(|p| p.exists()).collect();
        left.is_empty().then_some(()).ok_or(format!("{left:?}"))
    });
    assert!(d.state("a").starts_with("shut off"));
}
