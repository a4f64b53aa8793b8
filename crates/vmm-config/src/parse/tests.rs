use super::*;
use crate::disk::{Aio, Backing, Cache, FormatNode, ImageFormat, Protocol, ProtocolNode};

mod ata;
mod firmware;
mod legacy;
mod netdev_user_stream;
mod pci;
mod scsi;
mod usb;
mod virtio_net_console_balloon;
mod watchdog;

fn run(args: &[&str]) -> VmConfig {
    match parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}")) {
        Action::Run(c) => *c,
        other => panic!("{other:?}"),
    }
}

fn err(args: &[&str]) -> String {
    parse(args).unwrap_err().to_string()
}

const K: &[&str] = &["-kernel", "/boot/vmlinux"];

fn with_kernel<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = K.to_vec();
    v.extend_from_slice(extra);
    v
}

#[test]
fn libvirt_style_command_line() {
    let c = run(&[
        "-name",
        "guest=guest1,debug-threads=on",
        "-machine",
        "pc,accel=kvm",
        "-m",
        "5000",
        "-realtime",
        "mlock=off",
        "-smp",
        "4,sockets=4,cores=1,threads=1",
        "-uuid",
        "7a615914-ea0d-7dab-e709-0533c00b921f",
        "-no-user-config",
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-kernel",
        "vmlinux",
        "-initrd",
        "initrd.img",
        "-append",
        "console=ttyS0",
    ]);
    assert_eq!(c.name.as_deref(), Some("guest1"));
    assert_eq!(c.mem_size, 5000 << 20);
    assert_eq!(
        (c.smp.cpus, c.smp.sockets, c.smp.cores, c.smp.threads),
        (4, 4, 1, 1)
    );
    assert_eq!(
        c.uuid.as_deref(),
        Some("7a615914-ea0d-7dab-e709-0533c00b921f")
    );
    assert_eq!(c.kernel.as_deref(), Some(std::path::Path::new("vmlinux")));
    assert_eq!(
        c.initrd.as_deref(),
        Some(std::path::Path::new("initrd.img"))
    );
    assert_eq!(c.append.as_deref(), Some("console=ttyS0"));
    assert_eq!(c.serials.len(), 1);
    assert_eq!(c.serials[0].backend, ChardevBackend::Stdio);
}

#[test]
fn modern_libvirt_spellings() {
    let c = run(&with_kernel(&[
        "-S",
        "-machine",
        "pc-i440fx-7.2,usb=off,dump-guest-core=off",
        "-accel",
        "kvm",
        "-cpu",
        "qemu64,-pni,+cx16,svm=off",
        "-m",
        "size=524288k",
        "-overcommit",
        "mem-lock=off",
        "-chardev",
        "socket,id=charmonitor,path=/run/m.sock,server=on,wait=off",
        "-mon",
        "chardev=charmonitor,id=monitor,mode=control",
        "-rtc",
        "base=utc,driftfix=slew",
        "-global",
        "kvm-pit.lost_tick_policy=delay",
        "-no-hpet",
        "-no-shutdown",
        "-boot",
        "strict=on",
        "-chardev",
        "pty,id=charserial0",
        "-device",
        r#"{"driver":"isa-serial","chardev":"charserial0","id":"serial0","index":0}"#,
        "-msg",
        "timestamp=on",
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    ]));
    assert!(c.start_paused && c.no_shutdown);
    let sandbox = c.sandbox.expect("-sandbox on");
    assert!(!sandbox.spawn && !sandbox.obsolete && !sandbox.resource_control);
    assert_eq!(c.machine, "pc-i440fx-7.2");
    assert_eq!(c.mem_size, 512 << 20);
    assert_eq!(c.cpu.model, "qemu64");
    assert_eq!(
        c.cpu.flags,
        vec![
            ("pni".into(), false),
            ("cx16".into(), true),
            ("svm".into(), false)
        ]
    );
    assert_eq!(c.monitors.len(), 1);
    assert!(c.monitors[0].control);
    assert_eq!(c.serials[0].id, "serial0");
    assert_eq!(c.serials[0].chardev, "charserial0");
    assert_eq!(c.serials[0].backend, ChardevBackend::Pty);
}

#[test]
fn each_option_form() {
    assert_eq!(
        run(&with_kernel(&["-name", "web1"])).name.as_deref(),
        Some("web1")
    );
    assert_eq!(run(&with_kernel(&["-m", "512M"])).mem_size, 512 << 20);
    assert_eq!(run(&with_kernel(&["-m", "4G"])).mem_size, 4 << 30);
    assert_eq!(run(&with_kernel(&["-m", "size=1G"])).mem_size, 1 << 30);
    assert_eq!(run(&with_kernel(&[])).mem_size, 128 << 20);
    assert_eq!(run(&with_kernel(&["-smp", "2"])).smp.cpus, 2);
    for m in ["pc", "q35", "microvm", "pc-q35-7.2", "pc-i440fx-7.2"] {
        assert_eq!(run(&with_kernel(&["-M", m])).machine, m);
    }
    assert!(run(&with_kernel(&["-enable-kvm", "--no-reboot"])).no_reboot);
    let c = run(&with_kernel(&[
        "-daemonize",
        "-pidfile",
        "/run/p",
        "-D",
        "/tmp/log",
        "-serial",
        "null",
    ]));
    assert!(c.daemonize);
    assert_eq!(c.pidfile.as_deref(), Some(std::path::Path::new("/run/p")));
    assert_eq!(c.logfile.as_deref(), Some(std::path::Path::new("/tmp/log")));
    let c = run(&with_kernel(&["-qmp", "unix:/tmp/q.sock,server,nowait"]));
    assert_eq!(
        c.monitors[0].backend,
        ChardevBackend::Socket {
            path: "/tmp/q.sock".into(),
            server: true,
            wait: false
        }
    );
    assert_eq!(
        run(&with_kernel(&["-qmp", "stdio"])).monitors[0].backend,
        ChardevBackend::Stdio
    );
    assert_eq!(
        run(&with_kernel(&["-nographic"])).serials[0].backend,
        ChardevBackend::Stdio
    );
    let c = run(&with_kernel(&[
        "-serial",
        "file:/tmp/a",
        "-serial",
        "none",
        "-serial",
        "pty",
    ]));
    assert_eq!(c.serials.len(), 2);
    assert!(run(&with_kernel(&["-device", "pvpanic"])).pvpanic);
    assert!(run(&with_kernel(&[])).acpi);
    assert!(!run(&with_kernel(&["-no-acpi"])).acpi);
    assert!(!run(&with_kernel(&["-machine", "pc,acpi=off"])).acpi);
    assert!(
        run(&with_kernel(&[
            "-device",
            r#"{"driver":"pvpanic","id":"p"}"#
        ]))
        .pvpanic
    );
    assert_eq!(run(&with_kernel(&["-cpu", "host"])).cpu.model, "host");
    // libvirt's host-passthrough: `migratable` is the CPU's property, not
    // a CPUID feature.
    let c = run(&with_kernel(&["-cpu", "host,migratable=on"])).cpu;
    assert!(c.migratable && c.flags.is_empty());
    let c = run(&with_kernel(&["-cpu", "max,migratable=off,+avx"])).cpu;
    assert!(!c.migratable);
    assert_eq!(c.flags, [("avx".to_string(), true)]);
    assert_eq!(
        run(&with_kernel(&["-cpu", "Haswell-noTSX,vmx=on"]))
            .cpu
            .model,
        "Haswell-noTSX"
    );
    assert_eq!(parse(&["-version"]).unwrap(), Action::Version);
    assert_eq!(parse(&["-help"]).unwrap(), Action::Help);
    assert!(usage().contains("-no-user-config"));
}

#[test]
fn bad_input_names_the_option() {
    assert_eq!(
        err(&with_kernel(&["-m", "lots"])),
        "-m: invalid memory size 'lots'"
    );
    assert_eq!(
        err(&with_kernel(&["-m", "0"])),
        "-m: memory size must be greater than zero"
    );
    assert!(err(&with_kernel(&["-smp", "0"])).starts_with("-smp: Invalid CPU topology"));
    assert_eq!(
        err(&with_kernel(&["-smp", "4,sockets=3,cores=1"])),
        "-smp: Invalid CPU topology: product of the hierarchy must match maxcpus: \
         sockets (3) * dies (1) * cores (1) * threads (1) != maxcpus (4)"
    );
    assert_eq!(
        err(&with_kernel(&["-smp", "four"])),
        "-smp: parameter 'cpus' expects a number, not 'four'"
    );
    assert_eq!(
        err(&with_kernel(&["-frobnicate"])),
        "-frobnicate: invalid option"
    );
    assert_eq!(err(&with_kernel(&["-m"])), "-m: requires an argument");
    assert_eq!(
        err(&["-m", "1G", "-initrd", "/i"]),
        "-initrd: only allowed with -kernel"
    );
    assert_eq!(
        err(&with_kernel(&["-uuid", "xyz"])),
        "-uuid: invalid UUID 'xyz'"
    );
    assert!(err(&with_kernel(&["-cpu", "Skylake"])).starts_with("-cpu: unable to find CPU model"));
    assert!(err(&with_kernel(&["-machine", "virt"])).contains("unsupported machine type"));
    assert!(err(&with_kernel(&["-accel", "tcg"])).contains("only kvm"));
    assert_eq!(
        err(&with_kernel(&["-device", "virtio-blk-pci,drive=d"])),
        "-device: drive 'd' not found"
    );
    assert!(
        err(&with_kernel(&["-device", r#"{"driver":"virtio-net-pci"}"#]))
            .contains("parameter 'netdev' is missing")
    );
    assert!(err(&with_kernel(&[
        "-blockdev",
        r#"{"driver":"file","filename":"/x"}"#
    ]))
    .contains("parameter 'node-name' is missing"));
    assert!(err(&with_kernel(&["-netdev", "socket,id=n0"])).starts_with("-netdev: type 'socket'"));
    assert_eq!(
        err(&with_kernel(&["-M", "microvm", "-drive", "file=x"])),
        "-drive: file=x: machine type does not support if=ide,bus=0,unit=0"
    );
    assert!(err(&with_kernel(&["-device", "ne2k_pci"])).contains("not supported"));
    assert!(err(&with_kernel(&["-device", "e1000"])).contains("parameter 'netdev' is missing"));
    assert_eq!(
        err(&with_kernel(&["-serial", "chardev:nope"])),
        "-serial: chardev 'nope' not found"
    );
    assert!(err(&with_kernel(&["-serial", "stdio", "-qmp", "stdio"])).contains("multiple"));
    assert!(err(&with_kernel(&["-name", "a,frob=1"])).contains("invalid parameter 'frob'"));
    assert!(err(&with_kernel(&["-rtc", "base=localtime"])).contains("UTC"));
    assert!(err(&with_kernel(&["-global", "foo.bar=1"])).contains("not supported"));
    assert!(err(&with_kernel(&["-kernel", ""])).contains("empty file name"));
    assert!(err(&with_kernel(&["vmlinux"])).contains("positional"));
    assert!(err(&with_kernel(&["-daemonize", "-serial", "stdio"])).contains("stdio"));
    assert!(err(&with_kernel(&["-monitor", "stdio"])).contains("not supported"));
    assert!(err(&with_kernel(&[
        "-chardev",
        "pty,id=c",
        "-serial",
        "chardev:c",
        "-mon",
        "chardev=c,mode=control"
    ]))
    .contains("already in use"));
}

#[test]
fn virtio_rng_key_value_and_json() {
    let c = run(&with_kernel(&[
        "-object",
        "rng-random,id=rng0,filename=/dev/urandom",
        "-device",
        "virtio-rng-device,rng=rng0,id=rng-dev",
    ]));
    assert_eq!(
        c.virtio,
        vec![VirtioConfig::Rng {
            id: Some("rng-dev".into()),
            filename: "/dev/urandom".into()
        }]
    );
    let j = run(&with_kernel(&[
        "-device",
        r#"{"driver":"virtio-rng-device","rng":"objrng0","id":"rng-dev"}"#,
        "-object",
        r#"{"qom-type":"rng-random","id":"objrng0","filename":"/dev/urandom"}"#,
    ]));
    assert_eq!(j.virtio, c.virtio);
    assert_eq!(
        err(&with_kernel(&["-device", "virtio-rng-device,rng=nope"])),
        "-device: object 'nope' not found"
    );
    assert!(err(&with_kernel(&["-object", "secret,id=s0,data=x"])).contains("not supported yet"));
    assert!(err(&with_kernel(&["-device", "virtio-rng-device"])).contains("'rng' is missing"));
}

/// A `-drive` disk with QEMU's defaults.
fn disk(drive: &str, path: &str) -> DiskConfig {
    DiskConfig {
        drive: drive.into(),
        blockdev: false,
        id: None,
        serial: None,
        write_cache: true,
        image: FormatNode {
            file: ProtocolNode {
                filename: path.into(),
                ..Default::default()
            },
            ..Default::default()
        },
        bootindex: None,
    }
}

/// A libvirt `-blockdev` disk: format node `fmt` over file node `file`,
/// which has discard=unmap as libvirt always writes it.
fn blockdev_disk(fmt: &str, file: &str, path: &str) -> DiskConfig {
    let mut d = disk(fmt, path);
    d.blockdev = true;
    d.image.node_name = Some(fmt.into());
    d.image.file.node_name = Some(file.into());
    d
}

fn blk(c: &VmConfig) -> Vec<&DiskConfig> {
    c.virtio
        .iter()
        .filter_map(|v| match v {
            VirtioConfig::Blk(d) => Some(d),
            _ => None,
        })
        .collect()
}

#[test]
fn virtio_blk_from_drive() {
    let c = run(&with_kernel(&[
        "-drive",
        "file=/img/a,,b.raw,format=raw,if=none,id=drive0,readonly=on,cache=none,aio=io_uring,discard=unmap",
        "-device",
        "virtio-blk-device,drive=drive0,serial=SER1,id=disk0",
        "-drive",
        "file=/img/c.raw,if=none,id=d1",
        "-device",
        "virtio-blk-device,drive=d1",
    ]));
    let mut a = disk("drive0", "/img/a,b.raw");
    a.id = Some("disk0".into());
    a.serial = Some("SER1".into());
    let direct = Cache {
        direct: true,
        no_flush: false,
    };
    for n in [&mut a.image.read_only, &mut a.image.file.read_only] {
        *n = true;
    }
    for n in [&mut a.image.discard, &mut a.image.file.discard] {
        *n = true;
    }
    a.image.cache = direct;
    a.image.file.cache = direct;
    a.image.file.aio = Aio::IoUring;
    assert_eq!(
        c.virtio,
        vec![
            VirtioConfig::Blk(a),
            VirtioConfig::Blk(disk("d1", "/img/c.raw"))
        ]
    );
    let d = blk(&c);
    assert_eq!(d[0].path(), std::path::Path::new("/img/a,b.raw"));
    assert!(d[0].read_only() && d[0].discard());
    assert_eq!(d[0].cache(), direct);
    assert_eq!(d[0].aio(), Aio::IoUring);
    assert!(!d[1].read_only() && !d[1].discard());
    assert_eq!((d[1].cache(), d[1].aio()), (Cache::default(), Aio::Threads));
    let j = run(&with_kernel(&[
        "-drive",
        "file=/img/c.raw,if=none,id=d1",
        "-device",
        r#"{"driver":"virtio-blk-device","drive":"d1"}"#,
    ]));
    assert_eq!(j.virtio, vec![VirtioConfig::Blk(disk("d1", "/img/c.raw"))]);
}

/// QEMU's `-drive cache=` table and the device's `write-cache`: what the
/// host does (O_DIRECT, flushes) and what the guest sees (a volatile
/// write cache or none).
#[test]
fn drive_cache_modes_and_write_cache() {
    let one = |drive_opts: &str, device_opts: &str| -> (Cache, bool) {
        let drive = format!("file=/a,if=none,id=d,{drive_opts}");
        let device = format!("virtio-blk-device,drive=d{device_opts}");
        let c = run(&with_kernel(&["-drive", &drive, "-device", &device]));
        let d = blk(&c)[0].clone();
        (d.cache(), d.write_cache)
    };
    let c = |direct, no_flush| Cache { direct, no_flush };
    assert_eq!(one("cache=none", ""), (c(true, false), true));
    assert_eq!(one("cache=writeback", ""), (c(false, false), true));
    assert_eq!(one("cache=writethrough", ""), (c(false, false), false));
    assert_eq!(one("cache=directsync", ""), (c(true, false), false));
    assert_eq!(one("cache=unsafe", ""), (c(false, true), true));
    assert_eq!(one("readonly=off", ""), (c(false, false), true));
    // The specific options take precedence over cache=, as in QEMU.
    assert_eq!(
        one("cache=none,cache.direct=off,cache.writeback=off", ""),
        (c(false, false), false)
    );
    assert_eq!(one("cache.no-flush=on", ""), (c(false, true), true));
    // The device's write-cache overrides the drive's; auto keeps it.
    assert_eq!(
        one("cache=writethrough", ",write-cache=on"),
        (c(false, false), true)
    );
    assert_eq!(
        one("cache=none", ",write-cache=off"),
        (c(true, false), false)
    );
    assert_eq!(
        one("cache=directsync", ",write-cache=auto"),
        (c(true, false), false)
    );
    assert_eq!(
        err(&with_kernel(&[
            "-drive",
            "file=/a,if=none,id=d",
            "-device",
            "virtio-blk-device,drive=d,write-cache=maybe"
        ])),
        "-device: Parameter 'write-cache' does not accept value 'maybe'"
    );
}

#[test]
fn virtio_blk_from_libvirt_blockdev() {
    let c = run(&with_kernel(&[
        "-blockdev",
        r#"{"driver":"file","filename":"/var/lib/libvirt/images/g.img","node-name":"libvirt-1-storage","auto-read-only":true,"discard":"unmap","cache":{"direct":true,"no-flush":false}}"#,
        "-blockdev",
        r#"{"node-name":"libvirt-1-format","read-only":true,"driver":"raw","file":"libvirt-1-storage"}"#,
        "-device",
        r#"{"driver":"virtio-blk-device","drive":"libvirt-1-format","id":"virtio-disk0"}"#,
    ]));
    let mut d = blockdev_disk(
        "libvirt-1-format",
        "libvirt-1-storage",
        "/var/lib/libvirt/images/g.img",
    );
    d.id = Some("virtio-disk0".into());
    d.image.read_only = true;
    d.image.file.discard = true;
    d.image.file.auto_read_only = true;
    d.image.file.cache.direct = true;
    assert_eq!(c.virtio, vec![VirtioConfig::Blk(d.clone())]);
    assert!(d.read_only());
    assert!(d.cache().direct);
    // The format node keeps guest discards from the file unless it says
    // unmap too (libvirt's discard='unmap').
    assert!(!d.discard());
    // The key=value form of the same pair.
    let kv = run(&with_kernel(&[
        "-blockdev",
        "driver=file,filename=/x.img,node-name=s0",
        "-blockdev",
        "driver=raw,node-name=f0,file=s0",
        "-device",
        "virtio-blk-device,drive=f0",
    ]));
    assert_eq!(
        kv.virtio,
        vec![VirtioConfig::Blk(blockdev_disk("f0", "s0", "/x.img"))]
    );
    assert!(err(&with_kernel(&[
        "-blockdev",
        "driver=file,filename=/x.img,node-name=s0",
        "-device",
        "virtio-blk-device,drive=s0",
    ]))
    .contains("protocol node"));
    assert!(err(&with_kernel(&[
        "-blockdev",
        "driver=raw,node-name=f0,file=nope",
        "-device",
        "virtio-blk-device,drive=f0",
    ]))
    .contains("unknown node 'nope'"));
}

/// Every libvirt cache mode as libvirt writes it: both nodes' `cache`
/// objects and the device's `write-cache`.
#[test]
fn libvirt_cache_modes_keep_their_meaning() {
    for (direct, no_flush, write_cache) in [
        (true, false, "on"),   // none
        (false, false, "on"),  // writeback
        (false, false, "off"), // writethrough
        (true, false, "off"),  // directsync
        (false, true, "on"),   // unsafe
    ] {
        let cache = format!(r#"{{"direct":{direct},"no-flush":{no_flush}}}"#);
        let c = run(&with_kernel(&[
            "-blockdev",
            &format!(
                r#"{{"driver":"file","filename":"/d.raw","aio":"io_uring","node-name":"libvirt-1-storage","cache":{cache},"auto-read-only":true,"discard":"unmap"}}"#
            ),
            "-blockdev",
            &format!(
                r#"{{"node-name":"libvirt-1-format","read-only":false,"discard":"unmap","cache":{cache},"driver":"raw","file":"libvirt-1-storage"}}"#
            ),
            "-device",
            &format!(
                r#"{{"driver":"virtio-blk-device","drive":"libvirt-1-format","id":"virtio-disk0","write-cache":"{write_cache}"}}"#
            ),
        ]));
        let d = blk(&c)[0];
        assert_eq!(d.cache(), Cache { direct, no_flush }, "{cache}");
        assert_eq!(d.write_cache, write_cache == "on", "{cache}");
        assert_eq!(d.aio(), Aio::IoUring);
        assert!(d.discard());
    }
    // Without a cache object (libvirt's default mode): QEMU's defaults.
    let c = run(&with_kernel(&[
        "-blockdev",
        r#"{"driver":"host_device","filename":"/dev/sdz","node-name":"s","auto-read-only":true,"discard":"unmap"}"#,
        "-blockdev",
        r#"{"node-name":"f","read-only":false,"driver":"raw","file":"s"}"#,
        "-device",
        r#"{"driver":"virtio-blk-device","drive":"f","id":"virtio-disk0","share-rw":true}"#,
    ]));
    let d = blk(&c)[0];
    assert_eq!((d.cache(), d.write_cache), (Cache::default(), true));
    assert_eq!(d.image.file.driver, Protocol::HostDevice);
}

/// libvirt 9.0's chain: a file node and a qcow2 node per image, the base
/// read-only with `"backing": null`, the overlay naming it.
fn libvirt_chain(top_backing: &str) -> Vec<String> {
    let mut v: Vec<String> = K.iter().map(|s| s.to_string()).collect();
    v.extend([
        "-blockdev".into(),
        r#"{"driver":"file","filename":"/base.qcow2","node-name":"libvirt-2-storage","auto-read-only":true,"discard":"unmap"}"#.into(),
        "-blockdev".into(),
        r#"{"node-name":"libvirt-2-format","read-only":true,"driver":"qcow2","file":"libvirt-2-storage","backing":null}"#.into(),
        "-blockdev".into(),
        r#"{"driver":"file","filename":"/top.qcow2","node-name":"libvirt-1-storage","auto-read-only":true,"discard":"unmap"}"#.into(),
        "-blockdev".into(),
        format!(r#"{{"node-name":"libvirt-1-format","read-only":false,"driver":"qcow2","file":"libvirt-1-storage","backing":{top_backing}}}"#),
        "-device".into(),
        r#"{"driver":"virtio-blk-device","drive":"libvirt-1-format","id":"virtio-disk0"}"#.into(),
    ]);
    v
}

#[test]
fn qcow2_forms_and_backing_chains() {
    // -drive: the header's backing file, as QEMU.
    let c = run(&with_kernel(&[
        "-drive",
        "file=/a.qcow2,format=qcow2,if=none,id=d",
        "-device",
        "virtio-blk-device,drive=d",
    ]));
    let d = blk(&c)[0];
    assert_eq!(d.image.format, ImageFormat::Qcow2);
    assert_eq!(d.image.backing, Backing::FromImage);

    // libvirt's explicit chain.
    let args = libvirt_chain(r#""libvirt-2-format""#);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let c = run(&args);
    let d = blk(&c)[0];
    assert_eq!(d.path(), std::path::Path::new("/top.qcow2"));
    assert!(!d.read_only());
    let base = d.image.backing_node().expect("a backing node");
    assert_eq!(base.path(), std::path::Path::new("/base.qcow2"));
    assert_eq!(base.node_name.as_deref(), Some("libvirt-2-format"));
    assert!(base.read_only);
    assert_eq!(base.backing, Backing::None);

    // backing: null on the top: nothing below.
    let args = libvirt_chain("null");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(blk(&run(&args))[0].image.backing, Backing::None);

    // Unknown and looping backing nodes.
    let args = libvirt_chain(r#""nope""#);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(err(&args).contains("'nope' not found"), "{}", err(&args));
    let looped = with_kernel(&[
        "-blockdev",
        "driver=file,filename=/a,node-name=sa",
        "-blockdev",
        "driver=qcow2,node-name=a,file=sa,backing=b",
        "-blockdev",
        "driver=file,filename=/b,node-name=sb",
        "-blockdev",
        "driver=qcow2,node-name=b,file=sb,backing=a",
        "-device",
        "virtio-blk-device,drive=a",
    ]);
    assert!(
        err(&looped).contains("in its own backing chain"),
        "{}",
        err(&looped)
    );
    // One base under two overlays.
    let shared = with_kernel(&[
        "-blockdev",
        "driver=file,filename=/base,node-name=s0",
        "-blockdev",
        r#"{"driver":"qcow2","node-name":"base","file":"s0","backing":null}"#,
        "-blockdev",
        "driver=file,filename=/a,node-name=sa",
        "-blockdev",
        "driver=qcow2,node-name=a,file=sa,backing=base",
        "-blockdev",
        "driver=file,filename=/b,node-name=sb",
        "-blockdev",
        "driver=qcow2,node-name=b,file=sb,backing=base",
        "-device",
        "virtio-blk-device,drive=a",
        "-device",
        "virtio-blk-device,drive=b",
    ]);
    assert!(
        err(&shared).contains("already the backing image of node 'a'"),
        "{}",
        err(&shared)
    );
}

#[test]
fn blockdev_graph_inline_files_backing_and_sharing() {
    // A file node defined inside the format node.
    let c = run(&with_kernel(&[
        "-blockdev",
        r#"{"driver":"raw","node-name":"f","file":{"driver":"file","filename":"/in.raw","cache":{"no-flush":true}}}"#,
        "-device",
        "virtio-blk-device,drive=f",
    ]));
    let d = blk(&c)[0];
    assert_eq!(d.path(), std::path::Path::new("/in.raw"));
    assert!(d.cache().no_flush);
    assert_eq!(d.image.backing, Backing::FromImage);
    // raw has no backing file: QEMU's words.
    assert_eq!(
        err(&with_kernel(&[
            "-blockdev",
            r#"{"driver":"raw","node-name":"f","file":"s","backing":null}"#
        ])),
        "-blockdev: Parameter 'backing' is unexpected"
    );
    // One file node serves one format node.
    assert!(err(&with_kernel(&[
        "-blockdev",
        "driver=file,filename=/x.img,node-name=s0",
        "-blockdev",
        "driver=raw,node-name=f0,file=s0",
        "-blockdev",
        "driver=raw,node-name=f1,file=s0",
        "-device",
        "virtio-blk-device,drive=f0",
        "-device",
        "virtio-blk-device,drive=f1",
    ]))
    .contains("already the file of node 'f0'"));
    // aio=native needs O_DIRECT, on either form (QEMU's message).
    for args in [
        &["-drive", "file=/n.img,if=none,id=d,aio=native"][..],
        &[
            "-blockdev",
            r#"{"driver":"file","filename":"/n.img","node-name":"s","aio":"native"}"#,
        ],
    ] {
        let e = err(&with_kernel(args));
        assert!(e.contains("'/n.img'"), "{e}");
        assert!(
            e.contains("aio=native was specified, but it requires cache.direct=on"),
            "{e}"
        );
    }
    run(&with_kernel(&[
        "-drive",
        "file=/n.img,if=none,id=d,aio=native,cache=none",
    ]));
}

#[test]
fn virtio_blk_errors() {
    assert_eq!(
        err(&with_kernel(&[
            "-drive",
            "file=/a.vmdk,format=vmdk,if=none,id=d"
        ])),
        "-drive: format 'vmdk' is not supported yet (only raw and qcow2 images)"
    );
    assert!(err(&with_kernel(&[
        "-blockdev",
        r#"{"driver":"qed","node-name":"f","file":"s"}"#
    ]))
    .contains("format 'qed' is not supported yet"));
    assert_eq!(
        err(&with_kernel(&["-device", "virtio-blk-device,drive=nope"])),
        "-device: drive 'nope' not found"
    );
    assert!(err(&with_kernel(&[
        "-drive",
        "file=/a,if=none,id=d",
        "-device",
        "virtio-blk-device,drive=d",
        "-device",
        "virtio-blk-device,drive=d"
    ]))
    .contains("already in use"));
    assert!(
        err(&with_kernel(&["-drive", "file=/a,if=none,id=d,cache=fast"]))
            .contains("expects one of none, writeback")
    );
    assert!(err(&with_kernel(&["-drive", "file=/a,if=none,id=d,aio=posix"])).contains("'aio'"));
    assert!(err(&with_kernel(&["-drive", "file=/a,if=virtio,id=d"]))
        .contains("if=virtio is not supported: use if=none with -device virtio-blk-pci"));
    assert!(err(&with_kernel(&[
        "-drive",
        "file=/a,if=none,id=d",
        "-drive",
        "file=/b,if=none,id=d"
    ]))
    .contains("duplicate"));
    assert!(err(&with_kernel(&[
        "-device",
        "virtio-blk-device,drive=d,serial=123456789012345678901"
    ]))
    .contains("longer than 20"));
    // Still rejected: virtio devices rvirt does not have.
    for d in ["virtio-9p-device", "virtio-gpu-device"] {
        assert!(
            err(&with_kernel(&["-device", d])).contains("not supported yet"),
            "{d}"
        );
    }
}

/// `isa-serial,index=N` puts the port on COM(N+1), as QEMU; `-serial`
/// ports come first, in order, and ports without an index take the next.
#[test]
fn serial_ports_keep_their_com_index() {
    let c = run(&with_kernel(&[
        "-chardev",
        "pty,id=charserial0",
        "-device",
        "isa-serial,chardev=charserial0,id=serial0,index=1",
    ]));
    assert_eq!(c.serials.iter().map(|s| s.index).collect::<Vec<_>>(), [1]);
    let c = run(&with_kernel(&[
        "-serial",
        "null",
        "-chardev",
        "null,id=a",
        "-device",
        "isa-serial,chardev=a",
        "-chardev",
        "null,id=b",
        "-device",
        "isa-serial,chardev=b,index=3",
    ]));
    assert_eq!(
        c.serials.iter().map(|s| s.index).collect::<Vec<_>>(),
        [0, 1, 3]
    );
    assert_eq!(
        err(&with_kernel(&[
            "-chardev",
            "null,id=a",
            "-device",
            "isa-serial,chardev=a,index=4"
        ])),
        "-device: Max. supported number of ISA serial ports is 4."
    );
    assert!(err(&with_kernel(&[
        "-serial",
        "null",
        "-chardev",
        "null,id=a",
        "-device",
        "isa-serial,chardev=a,index=0"
    ]))
    .contains("COM1 is taken"));
}

#[test]
fn audiodev_none_as_libvirt_gives_it_to_vnc() {
    let c = run(&with_kernel(&[
        "-audiodev",
        r#"{"id":"audio1","driver":"none"}"#,
        "-vnc",
        "127.0.0.1:0,audiodev=audio1",
    ]));
    assert!(c.vnc.is_some());
    run(&with_kernel(&["-audiodev", "none,id=a"]));
    assert_eq!(
        err(&with_kernel(&["-audiodev", "pa,id=a"])),
        "-audiodev: driver 'pa' is not supported: there is no sound, only 'none'"
    );
    assert_eq!(
        err(&with_kernel(&["-audiodev", "none"])),
        "-audiodev: parameter 'id' is missing"
    );
}
