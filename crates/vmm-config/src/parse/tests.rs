use super::*;

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
        err(&["-m", "1G"]),
        "-kernel: no kernel given: rvirt-vmm boots kernels directly"
    );
    assert_eq!(
        err(&with_kernel(&["-uuid", "xyz"])),
        "-uuid: invalid UUID 'xyz'"
    );
    assert!(err(&with_kernel(&["-cpu", "Skylake"])).starts_with("-cpu: unable to find CPU model"));
    assert!(err(&with_kernel(&["-machine", "virt"])).contains("unsupported machine type"));
    assert!(err(&with_kernel(&["-accel", "tcg"])).contains("only kvm"));
    assert!(err(&with_kernel(&["-device", "virtio-blk-pci,drive=d"])).contains("not supported yet"));
    assert!(
        err(&with_kernel(&["-device", r#"{"driver":"virtio-net-pci"}"#]))
            .contains("not supported yet")
    );
    assert!(err(&with_kernel(&[
        "-blockdev",
        r#"{"driver":"file","filename":"/x"}"#
    ]))
    .starts_with("-blockdev: not supported yet"));
    assert!(err(&with_kernel(&["-netdev", "tap,id=n0"])).starts_with("-netdev: not supported yet"));
    assert!(err(&with_kernel(&["-drive", "file=x"])).starts_with("-drive: not supported yet"));
    assert!(err(&with_kernel(&["-device", "e1000"])).contains("not supported"));
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
