//! Derivation policy: what is emitted, left off with a warning, or refused.

mod common;

use common::*;
use rvirt_domain::{derive_argv, derive_argv_with, DeriveError, Domain, FdPlan, RuntimePaths};

const MICROVM: &str = "<domain type='kvm'>
  <name>micro,vm</name>
  <uuid>0f5a4b7e-1d2c-4e3f-9a8b-7c6d5e4f3a2b</uuid>
  <memory unit='MiB'>256</memory>
  <vcpu current='1'>2</vcpu>
  <cpu mode='custom' match='exact'>
    <model fallback='forbid'>qemu64</model>
    <feature policy='disable' name='pni'/>
    <feature policy='disable' name='svm'/>
    <feature policy='optional' name='aes'/>
  </cpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>/guest.elf</kernel>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <features><acpi/></features>
  <on_reboot>destroy</on_reboot>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native'/>
      <source file='/img,1.raw'/>
      <target dev='vda' bus='virtio'/>
      <readonly/>
    </disk>
    <interface type='ethernet'>
      <target dev='tap7'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'/>
    <console type='pty'><target type='virtio'/></console>
    <rng model='virtio'><backend model='random'>/dev/hwrng</backend></rng>
    <memballoon model='virtio'/>
    <graphics type='vnc'/>
    <video><model type='vga'/></video>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
  </devices>
</domain>
";

fn derive_with(xml: &str, plan: &FdPlan) -> Result<rvirt_domain::Argv, DeriveError> {
    let mut d = Domain::from_xml(xml).unwrap();
    d.fill_in();
    derive_argv_with(&d, &RuntimePaths::in_dir("/run/rvirt/x"), plan)
}

fn derive(xml: &str) -> Result<rvirt_domain::Argv, DeriveError> {
    let mut d = Domain::from_xml(xml).unwrap();
    d.fill_in();
    derive_argv(&d, &RuntimePaths::in_dir("/run/rvirt/x"))
}

#[test]
fn emulated_devices_get_arguments_with_libvirt_ids() {
    let a = derive(MICROVM).unwrap();
    let args = &a.args;
    assert_eq!(values(args, "-name"), ["guest=micro,,vm,debug-threads=on"]);
    assert_eq!(
        values(args, "-machine"),
        ["microvm,usb=off,dump-guest-core=off"]
    );
    assert_eq!(values(args, "-accel"), ["kvm"]);
    assert_eq!(values(args, "-cpu"), ["qemu64,pni=off,svm=off"]);
    assert_eq!(values(args, "-m"), ["size=262144k"]);
    assert_eq!(
        values(args, "-smp"),
        ["1,maxcpus=2,sockets=2,cores=1,threads=1"]
    );
    assert_eq!(
        values(args, "-uuid"),
        ["0f5a4b7e-1d2c-4e3f-9a8b-7c6d5e4f3a2b"]
    );
    assert_eq!(
        values(args, "-chardev")[0],
        "socket,id=charmonitor,path=/run/rvirt/x/monitor.sock,server=on,wait=off"
    );
    assert_eq!(
        values(args, "-mon"),
        ["chardev=charmonitor,id=monitor,mode=control"]
    );
    assert!(args.iter().any(|a| a == "-no-reboot"));
    assert!(!args.iter().any(|a| a == "-no-acpi"));
    assert_eq!(values(args, "-kernel"), ["/guest.elf"]);
    assert_eq!(values(args, "-append"), ["console=ttyS0"]);
    assert_eq!(values(args, "-pidfile"), ["/run/rvirt/x/vmm.pid"]);

    let bd: Vec<_> = values(args, "-blockdev").into_iter().map(props).collect();
    assert_eq!(bd[0]["filename"], "/img,1.raw");
    assert_eq!(bd[0]["aio"], "native");
    assert_eq!(bd[0]["cache"], r#"{"direct":true,"no-flush":false}"#);
    assert_eq!(bd[1]["read-only"], "true");
    let devs: Vec<_> = values(args, "-device").into_iter().map(props).collect();
    let blk = devs
        .iter()
        .find(|d| d["driver"] == "virtio-blk-device")
        .unwrap();
    assert_eq!(blk["id"], "virtio-disk0");
    assert_eq!(blk["drive"], "libvirt-1-format");
    assert_eq!(blk["write-cache"], "on");
    assert_eq!(blk["bootindex"], "1");

    assert_eq!(values(args, "-netdev"), ["tap,id=hostnet0,ifname=tap7"]);
    let net = devs
        .iter()
        .find(|d| d["driver"] == "virtio-net-device")
        .unwrap();
    assert_eq!(net["id"], "net0");
    assert!(net["mac"].starts_with("52:54:00:"));
    assert_eq!(a.taps[0].ifname.as_deref(), Some("tap7"));

    let drivers: Vec<&str> = devs.iter().map(|d| d["driver"].as_str()).collect();
    assert_eq!(
        drivers,
        [
            "virtio-serial-device",
            "virtio-blk-device",
            "virtio-net-device",
            "isa-serial",
            "virtconsole",
            "VGA",
            "virtio-balloon-device",
            "virtio-rng-device"
        ]
    );
    assert_eq!(
        values(args, "-object"),
        ["rng-random,id=objrng0,filename=/dev/hwrng"]
    );
    // The VNC console and its display device, as libvirt 9.0 writes them.
    assert_eq!(
        values(args, "-audiodev"),
        [r#"{"id":"audio1","driver":"none"}"#]
    );
    assert_eq!(values(args, "-vnc"), ["127.0.0.1:0,audiodev=audio1"]);
    // The agent channel is left off, with a warning.
    assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
}

/// `<graphics type='vnc'>` and `<video>` as libvirt 9.0 derives them:
/// the listener (address, unix socket, none), the password and share
/// policy, the display device with its memory.
#[test]
fn vnc_and_video_as_libvirt_writes_them() {
    let with = |graphics: &str, video: &str| {
        let xml = MICROVM
            .replace("<graphics type='vnc'/>", graphics)
            .replace("<video><model type='vga'/></video>", video);
        derive(&xml).unwrap().args
    };
    let cases = [
        (
            "<graphics type='vnc' port='5903' autoport='no' listen='0.0.0.0' passwd='x' sharePolicy='force-shared'/>",
            "0.0.0.0:3,password=on,share=force-shared,audiodev=audio1",
        ),
        (
            "<graphics type='vnc' port='-1' autoport='yes'><listen type='address' address='::1'/></graphics>",
            "[::1]:0,audiodev=audio1",
        ),
        (
            "<graphics type='vnc'><listen type='socket' socket='/run/v,1.sock'/></graphics>",
            "unix:/run/v,,1.sock,audiodev=audio1",
        ),
        (
            "<graphics type='vnc'><listen type='socket'/></graphics>",
            "unix:/run/rvirt/x/vnc.sock,audiodev=audio1",
        ),
        (
            "<graphics type='vnc'><listen type='none'/></graphics>",
            "none,audiodev=audio1",
        ),
        (
            "<graphics type='vnc'/><audio id='2' type='none'/>",
            "127.0.0.1:0,audiodev=audio2",
        ),
    ];
    for (graphics, vnc) in cases {
        let args = with(graphics, "");
        assert_eq!(values(&args, "-vnc"), [vnc], "{graphics}");
    }
    let video = |v: &str| {
        let args = with("", v);
        assert!(values(&args, "-vnc").is_empty());
        values(&args, "-device")
            .into_iter()
            .filter(|d| d.contains("video0"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        video("<video><model type='vga' vram='16384' heads='1' primary='yes'/></video>"),
        [r#"{"driver":"VGA","id":"video0","vgamem_mb":16}"#]
    );
    assert_eq!(
        video("<video><model type='vga' vram='65536'/></video>"),
        [r#"{"driver":"VGA","id":"video0","vgamem_mb":64}"#]
    );
    assert_eq!(
        video("<video><model type='bochs' vram='16384'/></video>"),
        [r#"{"driver":"bochs-display","id":"video0","vgamem":16777216}"#]
    );
    assert!(video("<video><model type='none'/></video>").is_empty());
}

/// What rvirt does not serve is refused at derivation, one line each,
/// naming the element's line and what is wrong.
#[test]
fn other_graphics_and_video_models_are_refused_with_one_line() {
    for (graphics, video, reason) in [
        (
            "<graphics type='spice' autoport='yes'/>",
            "",
            "graphics: type 'spice' is not supported: rvirt serves VNC only",
        ),
        (
            "<graphics type='sdl'/>",
            "",
            "graphics: type 'sdl' is not supported: rvirt serves VNC only",
        ),
        (
            "<graphics type='egl-headless'/>",
            "",
            "graphics: type 'egl-headless' is not supported: rvirt serves VNC only",
        ),
        (
            "<graphics type='vnc' websocket='5700'/>",
            "",
            "graphics: a websocket is not supported",
        ),
        (
            "<graphics type='vnc'><listen type='network' network='default'/></graphics>",
            "",
            "graphics: listen type 'network' ('default') is not supported: give an address",
        ),
        (
            "",
            "<video><model type='qxl' ram='65536' vram='65536' vgamem='16384' heads='1'/></video>",
            "video: model 'qxl' is not emulated (vga, bochs and none are)",
        ),
        (
            "",
            "<video><model type='virtio' heads='1'/></video>",
            "video: model 'virtio' is not emulated (vga, bochs and none are)",
        ),
        (
            "",
            "<video><model type='cirrus'/></video>",
            "video: model 'cirrus' is not emulated (vga, bochs and none are)",
        ),
        (
            "",
            "<video><model type='vga' heads='2'/></video>",
            "video: 2 heads: only one is supported",
        ),
    ] {
        let xml = MICROVM
            .replace("<graphics type='vnc'/>", graphics)
            .replace("<video><model type='vga'/></video>", video);
        let Err(DeriveError::Unsupported(list)) = derive(&xml) else {
            panic!("{graphics}{video}: not refused")
        };
        assert_eq!(list.len(), 1, "{list:?}");
        let line = list[0].to_string();
        assert!(
            line.starts_with("line ") && line.ends_with(&format!(": {reason}")),
            "{line:?} is not {reason:?}"
        );
    }
}

#[test]
fn devices_the_guest_needs_are_refused_all_at_once() {
    let xml = MICROVM
        .replace("bus='virtio'/>", "bus='ide'/>")
        .replace("<model type='virtio'/>", "<model type='e1000'/>")
        .replace(
            "<memballoon",
            "<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='0' slot='2' function='0'/></source></hostdev>\n    <filesystem type='mount'><source dir='/tmp'/><target dir='t'/></filesystem>\n    <memballoon",
        );
    let Err(DeriveError::Unsupported(list)) = derive(&xml) else {
        panic!("expected refusal")
    };
    let text: Vec<String> = list.iter().map(ToString::to_string).collect();
    assert_eq!(list.len(), 4, "{text:?}");
    assert!(text[0].contains("disk 'vda'") && text[0].contains("bus 'ide'"));
    assert!(text[1].contains("NIC model 'e1000'"));
    // Other devices come in libvirt's device order.
    assert!(text[2].starts_with("line ") && text[2].contains("filesystem"));
    assert!(text[3].contains("hostdev"));
}

#[test]
fn vmdk_network_disks_and_direct_nics_are_refused() {
    let xml = MICROVM
        .replace("type='raw'", "type='vmdk'")
        .replace("<interface type='ethernet'>", "<interface type='direct'>");
    let Err(DeriveError::Unsupported(list)) = derive(&xml) else {
        panic!()
    };
    assert!(list[0].reason.contains("vmdk"));
    assert!(list[1].reason.contains("tap backends"));
}

/// The disk of [`MICROVM`] as qcow2 with `store` as its `<backingStore>`.
fn with_backing(store: &str) -> String {
    MICROVM.replace("type='raw'", "type='qcow2'").replace(
        "<source file='/img,1.raw'/>",
        &format!("<source file='/top.qcow2'/>{store}"),
    )
}

fn blockdevs(xml: &str) -> Vec<serde_json::Value> {
    values(&derive(xml).unwrap().args, "-blockdev")
        .iter()
        .map(|v| serde_json::from_str(v).unwrap())
        .collect()
}

#[test]
fn qcow2_backing_chains_as_libvirt_writes_them() {
    // No <backingStore>: the header's chain, no "backing" key (libvirt's
    // argv when it has not probed the image).
    let b = blockdevs(&with_backing(""));
    assert_eq!(b.len(), 2);
    assert_eq!(b[1]["driver"], "qcow2");
    assert!(b[1].get("backing").is_none(), "{}", b[1]);
    // <backingStore/>: nothing below.
    let b = blockdevs(&with_backing("<backingStore/>"));
    assert_eq!(b[1]["backing"], serde_json::Value::Null);
    // Two deep: base (raw) under mid (qcow2) under the disk; backing
    // nodes first, read-only, numbered down the chain.
    let chain = "<backingStore type='file' index='1'>
        <format type='qcow2'/><source file='/mid.qcow2'/>
        <backingStore type='file' index='2'>
          <format type='raw'/><source file='/base.raw'/><backingStore/>
        </backingStore>
      </backingStore>";
    let b = blockdevs(&with_backing(chain));
    let names: Vec<&str> = b.iter().map(|n| n["node-name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "libvirt-1-storage",
            "libvirt-1-format",
            "libvirt-2-storage",
            "libvirt-2-format",
            "libvirt-3-storage",
            "libvirt-3-format"
        ]
    );
    assert_eq!(b[0]["filename"], "/base.raw");
    assert_eq!(b[1]["driver"], "raw");
    assert_eq!(b[1]["read-only"], true);
    assert!(b[1].get("backing").is_none(), "raw has no backing key");
    assert_eq!(b[2]["filename"], "/mid.qcow2");
    assert_eq!(b[3]["backing"], "libvirt-1-format");
    assert_eq!(b[3]["read-only"], true);
    assert_eq!(b[4]["filename"], "/top.qcow2");
    assert_eq!(b[5]["backing"], "libvirt-2-format");
    assert_eq!(b[5]["read-only"], true, "the MICROVM disk is <readonly/>");
    let argv = derive(&with_backing(chain)).unwrap();
    let dev = values(&argv.args, "-device");
    assert!(dev
        .iter()
        .any(|d| d.contains(r#""drive":"libvirt-3-format""#)));

    // A backing store without a format is refused with its line.
    let bad = with_backing("<backingStore type='file'><source file='/b'/></backingStore>");
    let Err(DeriveError::Unsupported(list)) = derive(&bad) else {
        panic!()
    };
    assert!(list[0].reason.contains("no <format type>"), "{}", list[0]);
    assert!(list[0].line > 0);
    // And a raw disk with something below it.
    let raw = with_backing(chain).replace("type='qcow2'/>\n", "");
    let raw = raw.replacen(
        "<driver name='qemu' type='qcow2'",
        "<driver name='qemu' type='raw'",
        1,
    );
    let Err(DeriveError::Unsupported(list)) = derive(&raw) else {
        panic!()
    };
    assert!(
        list[0].reason.contains("raw image has no backing"),
        "{}",
        list[0]
    );
}

#[test]
fn user_nics_as_libvirt_gives_them_to_qemu() {
    // QEMU's own user networking (rvirt-vmm runs passt for it), with the
    // network of an IPv4 <ip>.
    let xml = MICROVM.replace(
        "<interface type='ethernet'>",
        "<interface type='user'><ip family='ipv4' address='172.17.2.0' prefix='24'/>",
    );
    let a = derive(&xml).unwrap();
    assert!(
        a.args
            .contains(&r#"{"type":"user","net":"172.17.2.0/24","id":"hostnet0"}"#.to_string()),
        "{:?}",
        a.args
    );
    assert!(a.taps.is_empty());
    // A daemon may serve it with its own passt, told slirp's addressing.
    assert_eq!(a.passt.len(), 1);
    let slirp = a.passt[0].slirp.as_ref().expect("slirp's addressing");
    assert_eq!(
        (slirp.guest, slirp.prefix, slirp.host, slirp.dns),
        (
            "172.17.2.15".parse().unwrap(),
            24,
            "172.17.2.2".parse().unwrap(),
            "172.17.2.3".parse().unwrap()
        )
    );
    // With its socket passed, the VMM gets a stream on it instead.
    let mut plan = FdPlan::default();
    plan.streams.insert("hostnet0".into(), 7);
    let b = derive_with(&xml, &plan).unwrap();
    assert!(
        b.args.contains(
            &r#"{"type":"stream","addr":{"type":"fd","str":"7"},"server":false,"id":"hostnet0"}"#
                .to_string()
        ),
        "{:?}",
        b.args
    );
    assert!(!b.args.iter().any(|a| a.contains(r#""type":"user""#)));
    // With passt as the back-end the daemon starts it, and the VMM
    // connects to its socket in the runtime directory.
    let xml = MICROVM.replace(
        "<interface type='ethernet'>",
        "<interface type='user'><backend type='passt'/>\
         <portForward proto='tcp'><range start='2222' to='22'/></portForward>",
    );
    let a = derive(&xml).unwrap();
    assert!(
        a.args.contains(
            &r#"{"type":"stream","addr":{"type":"unix","path":"/run/rvirt/x/passt/micro,vm-net0.socket"},"server":false,"id":"hostnet0"}"#
                .to_string()
        ),
        "{:?}",
        a.args
    );
    assert_eq!(a.passt.len(), 1);
    let p = &a.passt[0];
    assert_eq!(
        (p.netdev_id.as_str(), p.alias.as_str()),
        ("hostnet0", "net0")
    );
    assert_eq!(
        p.pidfile,
        std::path::Path::new("/run/rvirt/x/passt/micro,vm-net0.pid")
    );
    assert_eq!(p.user.port_forwards.len(), 1);
    assert!(p.slirp.is_none());
    // The same with its socket passed.
    let b = derive_with(&xml, &plan).unwrap();
    assert!(
        b.args.contains(
            &r#"{"type":"stream","addr":{"type":"fd","str":"7"},"server":false,"id":"hostnet0"}"#
                .to_string()
        ),
        "{:?}",
        b.args
    );
    // What QEMU's user networking cannot do without passt is refused.
    let xml = MICROVM.replace(
        "<interface type='ethernet'>",
        "<interface type='user'><ip family='ipv6' address='fd00::'/>",
    );
    let Err(DeriveError::Unsupported(list)) = derive(&xml) else {
        panic!()
    };
    assert!(
        list[0].reason.contains("needs <backend type='passt'/>"),
        "{list:?}"
    );
}

#[test]
fn tcg_domains_are_refused() {
    let xml = MICROVM.replace("type='kvm'", "type='qemu'");
    assert!(matches!(derive(&xml), Err(DeriveError::NotKvm(t)) if t == "qemu"));
}

#[test]
fn derivation_is_stable_once_filled_in() {
    let mut d = Domain::from_xml(MICROVM).unwrap();
    d.fill_in();
    let reread = Domain::from_xml(&d.to_xml()).unwrap();
    let p = RuntimePaths::in_dir("/r");
    assert_eq!(
        derive_argv(&d, &p).unwrap(),
        derive_argv(&reread, &p).unwrap()
    );
}

#[test]
fn refused_fixtures_name_their_devices() {
    let cases = [
        ("vi-hostdev.xml", "hostdev"),
        ("vi-filesystem.xml", "filesystem"),
        ("vi-net-direct.xml", "interface 0"),
        ("vi-disk-network.xml", "source type 'network'"),
    ];
    for (file, needle) in cases {
        let text = std::fs::read_to_string(fixtures_dir().join(file)).unwrap();
        let err = derive(&text).unwrap_err().to_string();
        assert!(err.contains(needle), "{file}: {err}");
    }
}

#[test]
fn serial_ports_keep_their_com_port_and_need_their_source() {
    let xml = MICROVM.replace(
        "<serial type='pty'/>",
        "<serial type='pty'><target type='isa-serial' port='1'/></serial>",
    );
    let a = derive(&xml).unwrap();
    assert!(a
        .args
        .contains(&"isa-serial,chardev=charserial0,id=serial0,index=1".to_string()));

    let xml = MICROVM.replace("<serial type='pty'/>", "<serial type='file'/>");
    let Err(DeriveError::Unsupported(list)) = derive(&xml) else {
        panic!()
    };
    assert_eq!(list[0].device, "serial 0");
    assert_eq!(list[0].reason, "'file' source has no path");
}

#[test]
fn firmware_is_refused_and_host_tuning_is_named() {
    let xml = MICROVM
        .replace(
            "<kernel>/guest.elf</kernel>",
            "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>",
        )
        .replace(
            "<vcpu current='1'>2</vcpu>",
            "<vcpu cpuset='0-1'>2</vcpu>\n  <cputune><shares>10</shares></cputune>",
        );
    let Err(DeriveError::Unsupported(list)) = derive(&xml) else {
        panic!()
    };
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].device, "os/loader");
    assert!(list[0].reason.contains("OVMF_CODE.fd"));
    assert!(list[0]
        .reason
        .contains("UEFI firmware is not supported by rvirt: OVMF cannot run"));

    let xml = MICROVM.replace(
        "<vcpu current='1'>2</vcpu>",
        "<vcpu cpuset='0-1'>2</vcpu>\n  <cputune><shares>10</shares></cputune>",
    );
    let a = derive(&xml).unwrap();
    assert!(a
        .warnings
        .iter()
        .any(|w| w.starts_with("cputune not applied")));
    assert!(a
        .warnings
        .iter()
        .any(|w| w.starts_with("vcpu cpuset not applied")));
}

#[test]
fn a_daemons_fd_plan_replaces_the_monitor_path_and_tap_names() {
    let mut d = Domain::from_xml(MICROVM).unwrap();
    d.fill_in();
    let paths = RuntimePaths::in_dir("/run/rvirt/x");
    let plan = rvirt_domain::FdPlan {
        monitor: Some(3),
        taps: [("hostnet0".to_string(), 4)].into(),
        ..Default::default()
    };
    let a = rvirt_domain::derive_argv_with(&d, &paths, &plan).unwrap();
    assert_eq!(
        values(&a.args, "-chardev")[0],
        "socket,id=charmonitor,fd=3,server=on,wait=off"
    );
    assert_eq!(values(&a.args, "-netdev"), ["tap,id=hostnet0,fd=4"]);
    // The taps to open are the same with or without the plan.
    let plain = derive_argv(&d, &paths).unwrap();
    assert_eq!(a.taps, plain.taps);
    assert_eq!(
        values(&plain.args, "-chardev")[0],
        "socket,id=charmonitor,path=/run/rvirt/x/monitor.sock,server=on,wait=off"
    );
}

/// What rvirt-vmm would refuse at start is refused here, with the line of
/// the element (the contract test in rvirt-xml finds any new such case).
#[test]
fn options_the_vmm_refuses_are_refused_with_their_line() {
    let cases = [
        (
            MICROVM.replace(
                "<memory unit='MiB'>256</memory>",
                "<maxMemory slots='16' unit='GiB'>8</maxMemory>\n  <memory unit='MiB'>256</memory>",
            ),
            "maxMemory",
            "memory hotplug",
        ),
        (
            MICROVM.replace(
                "<feature policy='disable' name='pni'/>",
                "<topology sockets='1' dies='1' clusters='2' cores='1' threads='1'/>\n    \
                 <feature policy='disable' name='pni'/>",
            ),
            "cpu/topology",
            "clusters='2'",
        ),
        (
            MICROVM.replace("qemu64</model>", "Cascadelake-Server</model>"),
            "cpu",
            "model 'Cascadelake-Server'",
        ),
        (
            MICROVM.replace(
                "<features><acpi/></features>",
                "<features><acpi/></features>\n  <clock offset='localtime'/>",
            ),
            "clock",
            "offset 'localtime'",
        ),
        (
            MICROVM.replace(
                "<serial type='pty'/>",
                "<serial type='tcp'><source mode='bind' host='127.0.0.1' service='4555'/></serial>",
            ),
            "serial 0",
            "host side 'tcp'",
        ),
        (
            MICROVM.replace(
                "<serial type='pty'/>",
                "<serial type='unix'><source path='/run/s.sock'/></serial>",
            ),
            "serial 0",
            "'connect' mode",
        ),
    ];
    for (xml, device, reason) in cases {
        let Err(DeriveError::Unsupported(list)) = derive(&xml) else {
            panic!("{device}: derived");
        };
        assert_eq!(list.len(), 1, "{list:?}");
        let u = &list[0];
        assert_eq!(u.device, device);
        assert!(u.reason.contains(reason), "{u}");
        let needle = match device {
            "cpu/topology" => "<topology",
            "serial 0" => "<serial",
            other => other.split('/').next().unwrap(),
        };
        let line = xml
            .lines()
            .position(|l| l.contains(&format!("<{}", needle.trim_start_matches('<'))))
            .unwrap()
            + 1;
        assert_eq!(u.line as usize, line, "{u}");
    }
    // A UNIX socket the VMM listens on is fine.
    let bind = MICROVM.replace(
        "<serial type='pty'/>",
        "<serial type='unix'><source mode='bind' path='/run/s.sock'/></serial>",
    );
    derive(&bind).unwrap();
}

#[test]
fn passed_files_are_fd_sets_and_a_confining_daemon_gets_libvirts_sandbox() {
    let xml = r#"<domain type='kvm'>
  <name>f</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='microvm'>hvm</type><kernel>/k</kernel></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/a.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'><source path='/var/log/f.serial'/><target port='0'/></serial>
  </devices>
</domain>"#;
    let mut d = Domain::from_xml(xml).unwrap();
    d.fill_in();
    let paths = RuntimePaths::in_dir("/run/rvirt/f");
    let plan = rvirt_domain::FdPlan {
        monitor: Some(3),
        files: [("charserial0".to_string(), 4), ("vda".to_string(), 5)].into(),
        sandbox: true,
        daemon_logs: true,
        ..Default::default()
    };
    let a = rvirt_domain::derive_argv_with(&d, &paths, &plan).unwrap();
    // libvirt's forms: -add-fd before the option that names /dev/fdset/N.
    assert_eq!(values(&a.args, "-add-fd"), ["set=0,fd=5", "set=1,fd=4"]);
    assert!(values(&a.args, "-blockdev")[0].contains(r#""filename":"/dev/fdset/0""#));
    assert!(
        values(&a.args, "-chardev").contains(&"file,id=charserial0,path=/dev/fdset/1,append=on")
    );
    assert_eq!(values(&a.args, "-sandbox"), [rvirt_domain::argv::SANDBOX]);
    assert!(values(&a.args, "-D").is_empty() && values(&a.args, "-pidfile").is_empty());
    // Without a plan: paths, no sandbox, the VMM's own log and pid file.
    let plain = derive_argv(&d, &paths).unwrap();
    assert!(values(&plain.args, "-add-fd").is_empty());
    assert!(values(&plain.args, "-sandbox").is_empty());
    assert_eq!(values(&plain.args, "-D"), ["/run/rvirt/f/vmm.log"]);
}

/// A confining daemon passes every image of a chain: each file node names
/// its own fd set, the `-add-fd` right before it; the keys are
/// `backing_key`'s, the paths `backing_paths`' (top down).
#[test]
fn a_daemons_fd_plan_passes_every_image_of_a_chain() {
    let chain = "<backingStore type='file' index='1'>
        <format type='qcow2'/><source file='/mid.qcow2'/>
        <backingStore type='file' index='2'>
          <format type='raw'/><source file='/base.raw'/><backingStore/>
        </backingStore>
      </backingStore>";
    let mut d = Domain::from_xml(&with_backing(chain)).unwrap();
    d.fill_in();
    let disk = &d.devices.disks[0];
    assert_eq!(
        rvirt_domain::backing_paths(disk),
        ["/mid.qcow2", "/base.raw"]
    );
    let plan = rvirt_domain::FdPlan {
        files: [
            ("vda".to_string(), 5),
            (rvirt_domain::backing_key("vda", 1), 6),
            (rvirt_domain::backing_key("vda", 2), 7),
        ]
        .into(),
        ..Default::default()
    };
    let a =
        rvirt_domain::derive_argv_with(&d, &RuntimePaths::in_dir("/run/rvirt/c"), &plan).unwrap();
    // Deepest first, as the nodes.
    assert_eq!(
        values(&a.args, "-add-fd"),
        ["set=0,fd=7", "set=1,fd=6", "set=2,fd=5"]
    );
    let files: Vec<serde_json::Value> = values(&a.args, "-blockdev")
        .iter()
        .map(|v| serde_json::from_str::<serde_json::Value>(v).unwrap())
        .filter(|n| n.get("filename").is_some())
        .collect();
    let names: Vec<&str> = files
        .iter()
        .map(|n| n["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/dev/fdset/0", "/dev/fdset/1", "/dev/fdset/2"]);
    for (i, a2) in a.args.iter().enumerate() {
        if a2 == "-add-fd" {
            assert_eq!(a.args[i + 2], "-blockdev", "{:?}", a.args);
        }
    }
}

/// A disk boot through firmware on pc, the shape virt-install writes with
/// `--boot network,hd,menu=on`, derived as libvirt 9.0 derives it
/// (`virsh domxml-to-native` of the same XML on QEMU 7.2).
const FIRMWARE: &str = "<domain type='kvm'>
  <name>fw</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
    <loader type='rom'>/usr/share/seabios/bios.bin</loader>
    <boot dev='network'/>
    <boot dev='cdrom'/>
    <boot dev='hd'/>
    <boot dev='network'/>
    <bootmenu enable='yes' timeout='3000'/>
    <bios useserial='yes' rebootTimeout='5000'/>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <source file='/a.raw'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <source file='/b.raw'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <interface type='ethernet'><model type='virtio'/></interface>
    <interface type='ethernet'><model type='virtio'/></interface>
    <serial type='pty'/>
  </devices>
</domain>
";

/// The bootindex of each `-device` whose driver starts with `driver`
/// (virtio-mmio or virtio-pci, whichever the machine gets).
fn bootindex(args: &[String], driver: &str) -> Vec<Option<String>> {
    values(args, "-device")
        .into_iter()
        .map(props)
        .filter(|d| d["driver"].starts_with(driver))
        .map(|d| d.get("bootindex").cloned())
        .collect()
}

#[test]
fn firmware_boot_options_follow_libvirt() {
    let a = derive(FIRMWARE).unwrap();
    let args = &a.args;
    assert!(values(args, "-kernel").is_empty());
    // -bios right after -cpu, as libvirt places it.
    let at = args.iter().position(|x| x == "-bios").unwrap();
    assert_eq!(args[at - 2], "-cpu");
    assert_eq!(args[at + 1], "/usr/share/seabios/bios.bin");
    assert_eq!(
        values(args, "-boot"),
        ["menu=on,reboot-timeout=5000,splash-time=3000,strict=on"]
    );
    // Each kind's position in <os><boot>, the last one when named twice;
    // only the first device of a kind; no cdrom here, so 2 goes unused.
    let some = |v: &str| Some(v.to_string());
    assert_eq!(bootindex(args, "virtio-blk-"), [some("3"), None]);
    assert_eq!(bootindex(args, "virtio-net-"), [some("4"), None]);

    // The menu's timeout only counts with the menu on; menu=off is said.
    let xml = FIRMWARE.replace("enable='yes' timeout", "enable='no' timeout");
    let a = derive(&xml).unwrap();
    assert_eq!(
        values(&a.args, "-boot"),
        ["menu=off,reboot-timeout=5000,strict=on"]
    );
    // No <loader>: the machine's SeaBIOS (rvirt-vmm's default), no -bios.
    let xml = FIRMWARE.replace(
        "<loader type='rom'>/usr/share/seabios/bios.bin</loader>",
        "",
    );
    assert!(values(&derive(&xml).unwrap().args, "-bios").is_empty());
}

#[test]
fn per_device_boot_order_replaces_os_boot() {
    let xml = FIRMWARE
        .replace("<boot dev='network'/>", "")
        .replace("<boot dev='cdrom'/>", "")
        .replace("<boot dev='hd'/>", "")
        .replace(
            "<source file='/b.raw'/>",
            "<source file='/b.raw'/><boot order='1'/>",
        );
    let a = derive(&xml).unwrap();
    let some = |v: &str| Some(v.to_string());
    assert_eq!(bootindex(&a.args, "virtio-blk-"), [None, some("1")]);
    assert_eq!(bootindex(&a.args, "virtio-net-"), [None, None]);
}

#[test]
fn uefi_in_every_spelling_is_refused_with_the_reason() {
    let cases = [
        (
            "<loader type='rom'>/usr/share/seabios/bios.bin</loader>",
            "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>\n    <nvram>/var/lib/x_VARS.fd</nvram>",
            vec![("os/loader", 7), ("os/nvram", 8)],
        ),
        (
            "<loader type='rom'>/usr/share/seabios/bios.bin</loader>",
            "<loader type='rom'>/usr/share/ovmf/OVMF.fd</loader>",
            vec![("os/loader", 7)],
        ),
        ("<os>", "<os firmware='efi'>", vec![("os", 5)]),
    ];
    for (from, to, want) in cases {
        let xml = FIRMWARE.replace(from, to);
        let Err(DeriveError::Unsupported(list)) = derive(&xml) else {
            panic!("{to}: not refused")
        };
        let got: Vec<_> = list.iter().map(|u| (u.device.as_str(), u.line)).collect();
        assert_eq!(got, want, "{to}");
        for u in &list {
            assert!(
                u.reason.contains("UEFI firmware is not supported by rvirt"),
                "{u}"
            );
        }
    }
    // A loader beside a direct kernel boot: rvirt-vmm would refuse -bios
    // with -kernel, so derivation does, with the line.
    let xml = FIRMWARE.replace(
        "<boot dev='network'/>\n    <boot dev='cdrom'/>",
        "<kernel>/vmlinuz</kernel>",
    );
    let Err(DeriveError::Unsupported(list)) = derive(&xml) else {
        panic!()
    };
    assert_eq!(list[0].device, "os/loader");
    assert!(list[0].reason.contains("direct <kernel>"));
}

#[test]
fn inputs_virtio_emulated_ps2_implicit_usb_left_off() {
    let xml = MICROVM.replace(
        "<graphics type='vnc'/>",
        "<input type='tablet' bus='usb'/>
    <input type='tablet' bus='virtio'/>
    <input type='keyboard' bus='virtio'><alias name='ua-kbd'/></input>
    <input type='mouse' bus='virtio'/>
    <graphics type='vnc'/>",
    );
    let a = derive(&xml).unwrap();
    // Ids are libvirt's aliases: inputs numbered whatever their bus.
    assert_eq!(
        values(&a.args, "-device")
            .into_iter()
            .filter(|d| d.contains("input") || d.contains("kbd"))
            .collect::<Vec<_>>(),
        [
            "virtio-tablet-device,id=input1",
            "virtio-keyboard-device,id=ua-kbd",
            "virtio-mouse-device,id=input3",
        ]
    );
    // The USB tablet keeps its warning; the implicit PS/2 pair says nothing.
    assert!(a
        .warnings
        .iter()
        .any(|w| w.starts_with("input (usb) left off")));
    assert!(!a.warnings.iter().any(|w| w.contains("ps2")));
    let bad = MICROVM.replace(
        "<graphics type='vnc'/>",
        "<input type='passthrough' bus='virtio'><source evdev='/dev/input/event1'/></input>",
    );
    let Err(DeriveError::Unsupported(list)) = derive(&bad) else {
        panic!("passthrough input accepted");
    };
    assert_eq!(list[0].device, "input");
    assert!(list[0].reason.contains("'passthrough'"), "{list:?}");
}

#[test]
fn virtio_inputs_on_pc_are_pci_functions() {
    let xml = FIRMWARE.replace(
        "<serial type='pty'/>",
        "<serial type='pty'/>\n    <input type='tablet' bus='virtio'/>",
    );
    let a = derive(&xml).unwrap();
    let tablet: Vec<_> = values(&a.args, "-device")
        .into_iter()
        .map(props)
        .filter(|d| d["driver"] == "virtio-tablet-pci")
        .collect();
    assert_eq!(tablet.len(), 1, "{:?}", a.args);
    assert_eq!(tablet[0]["id"], "input0");
    assert_eq!(tablet[0]["bus"], "pci.0");
    assert!(tablet[0]["addr"].starts_with("0x"), "{tablet:?}");
}

/// The ATA drives (`ide-hd`, `ide-cd`) of a derived command line, parsed.
fn ata_devices(args: &[String]) -> Vec<serde_json::Value> {
    values(args, "-device")
        .into_iter()
        .filter(|d| d.starts_with('{'))
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .filter(|v| v["driver"].as_str().unwrap().starts_with("ide-"))
        .collect()
}

/// [`FIRMWARE`] with its virtio disks replaced by `disks` on `machine`.
fn with_disks(machine: &str, disks: &str) -> String {
    let start = FIRMWARE.find("    <disk").unwrap();
    let end = FIRMWARE.rfind("</disk>\n").unwrap() + "</disk>\n".len();
    let mut xml = FIRMWARE.to_string();
    xml.replace_range(start..end, disks);
    xml.replace("pc-i440fx-7.2", machine)
}

const SATA_DISKS: &str = "    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/hd.raw'/><target dev='sda' bus='sata'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='/cd.iso'/><target dev='sdb' bus='sata'/></disk>
    <disk type='file' device='cdrom'><target dev='sdc' bus='sata'/><readonly/></disk>
";

/// `<disk bus='sata'>` on q35: libvirt 9.0's ide-hd and ide-cd on the
/// built-in controller's ports (`ide.N`, the drive address's unit, no
/// `unit` key), an empty CD-ROM as the drive alone (its node number still
/// taken), a CD-ROM read-only, boot order by kind.
#[test]
fn sata_disks_and_cdroms_on_q35_as_libvirt_writes_them() {
    let xml = with_disks("pc-q35-7.2", SATA_DISKS);
    let argv = derive(&xml).unwrap_or_else(|e| panic!("{e}"));
    let devices: Vec<String> = values(&argv.args, "-device")
        .into_iter()
        .filter(|d| d.contains("\"driver\":\"ide-"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        devices,
        [
            r#"{"driver":"ide-hd","bus":"ide.0","drive":"libvirt-3-format","id":"sata0-0-0","bootindex":3}"#,
            r#"{"driver":"ide-cd","bus":"ide.1","drive":"libvirt-2-format","id":"sata0-0-1","bootindex":2}"#,
            r#"{"driver":"ide-cd","bus":"ide.2","id":"sata0-0-2"}"#,
        ]
    );
    // The built-in controller gets no -device.
    assert!(!argv.args.iter().any(|a| a.contains("\"ahci\"")));
    // The CD-ROM's format node is read-only though its XML does not say.
    let ro: Vec<_> = blockdevs(&xml)
        .into_iter()
        .filter(|b| b.get("read-only").is_some())
        .map(|b| (b["node-name"].clone(), b["read-only"].clone()))
        .collect();
    assert_eq!(
        ro,
        [
            ("libvirt-3-format".into(), false.into()),
            ("libvirt-2-format".into(), true.into())
        ]
    );
    // A drive address names the port.
    let at = xml.replace(
        "<target dev='sdb' bus='sata'/>",
        "<target dev='sdb' bus='sata'/><address type='drive' controller='0' bus='0' target='0' unit='5'/>",
    );
    let a = derive(&at).unwrap();
    assert_eq!(ata_devices(&a.args)[1]["bus"], "ide.5");
    assert_eq!(ata_devices(&a.args)[1]["id"], "sata0-0-5");
}

/// SATA on pc, or a second controller on q35: `-device ahci` at the
/// controller's PCI address before the drives, which name it
/// (`sata0.N`); a port past 5 or a controller with no PCI address is
/// refused by name.
#[test]
fn sata_on_an_ahci_device_names_its_controller() {
    let xml = with_disks("pc-i440fx-7.2", SATA_DISKS);
    let argv = derive(&xml).unwrap_or_else(|e| panic!("{e}"));
    let args = &argv.args;
    let ahci = args
        .iter()
        .position(|a| a.starts_with(r#"{"driver":"ahci""#))
        .expect("an ahci device");
    // At the controller's PCI address from the fill-in (the fixture test
    // compares those with libvirt's).
    let mut dom = Domain::from_xml(&xml).unwrap();
    dom.fill_in();
    let slot = dom
        .devices
        .others
        .iter()
        .find(|o| o.kind() == "controller" && o.dev_type() == Some("sata"))
        .and_then(|o| o.element.child("address"))
        .and_then(|a| a.attr("slot"))
        .map(|s| u8::from_str_radix(s.trim_start_matches("0x"), 16).unwrap())
        .unwrap();
    assert_eq!(
        args[ahci],
        format!(r#"{{"driver":"ahci","id":"sata0","bus":"pci.0","addr":"{slot:#x}"}}"#)
    );
    let first_drive = args.iter().position(|a| a.contains("ide-hd")).unwrap();
    assert!(ahci < first_drive);
    let buses: Vec<_> = ata_devices(args)
        .iter()
        .map(|d| d["bus"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(buses, ["sata0.0", "sata0.1", "sata0.2"]);

    let q35_second = with_disks("q35", SATA_DISKS).replace(
        "<target dev='sdb' bus='sata'/>",
        "<target dev='sdb' bus='sata'/><address type='drive' controller='1' bus='0' target='0' unit='3'/>",
    );
    let argv = derive(&q35_second).unwrap_or_else(|e| panic!("{e}"));
    let ahci: Vec<_> = values(&argv.args, "-device")
        .into_iter()
        .filter(|d| d.contains(r#""driver":"ahci""#))
        .collect();
    assert_eq!(ahci.len(), 1, "{ahci:?}");
    assert!(ahci[0].contains(r#""id":"sata1""#), "{ahci:?}");
    let buses: Vec<_> = ata_devices(&argv.args)
        .iter()
        .map(|d| d["bus"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(buses, ["ide.0", "sata1.3", "ide.2"]);

    let bad_unit = with_disks("q35", SATA_DISKS).replace(
        "<target dev='sdb' bus='sata'/>",
        "<target dev='sdb' bus='sata'/><address type='drive' controller='0' bus='0' target='0' unit='6'/>",
    );
    let Err(DeriveError::Unsupported(list)) = derive(&bad_unit) else {
        panic!("unit 6 derived")
    };
    assert!(
        list.iter()
            .any(|u| u.device == "disk 'sdb'" && u.reason.contains("unit 6")),
        "{list:?}"
    );
}

/// `<disk bus='ide'>`: on q35 there is no IDE controller (refused with the
/// reason), on pc it is the PIIX3's; virtio has no CD-ROM. Each refusal
/// names its disk.
#[test]
fn ide_on_q35_and_virtio_cdroms_are_refused_with_the_reason() {
    let ide = "    <disk type='file' device='cdrom'><source file='/cd.iso'/><target dev='hdc' bus='ide'/></disk>\n";
    let Err(DeriveError::Unsupported(list)) = derive(&with_disks("q35", ide)) else {
        panic!("IDE on q35 derived")
    };
    assert!(list[0].reason.contains("q35 has no IDE"), "{list:?}");
    let a = derive(&with_disks("pc", ide)).unwrap();
    assert_eq!(
        values(&a.args, "-device")
            .into_iter()
            .find(|d| d.contains("ide-cd"))
            .unwrap(),
        r#"{"driver":"ide-cd","bus":"ide.1","unit":0,"drive":"libvirt-1-format","id":"ide0-1-0","bootindex":2}"#
    );
    let virtio_cd = ide
        .replace("bus='ide'", "bus='virtio'")
        .replace("hdc", "vdc");
    let Err(DeriveError::Unsupported(list)) = derive(&with_disks("q35", &virtio_cd)) else {
        panic!("a virtio CD-ROM derived")
    };
    assert!(
        list[0]
            .reason
            .contains("device 'cdrom' is not emulated on bus 'virtio'"),
        "{list:?}"
    );
}

/// `<interface model='e1000'>`: QEMU's `e1000` at the interface's PCI
/// address, libvirt's keys; `igb` (not emulated) and an e1000 without
/// PCI (microvm) refused.
#[test]
fn e1000_nics_as_libvirt_writes_them() {
    let xml = FIRMWARE.replacen("<model type='virtio'/>", "<model type='e1000'/>", 1);
    let a = derive(&xml).unwrap_or_else(|e| panic!("{e}"));
    let nics: Vec<_> = values(&a.args, "-device")
        .into_iter()
        .filter(|d| d.contains("\"netdev\""))
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .collect();
    assert_eq!(nics[0]["driver"], "e1000");
    assert_eq!(nics[0]["bus"], "pci.0");
    assert_eq!(nics[0]["netdev"], "hostnet0");
    assert_eq!(nics[0]["bootindex"], 4);
    assert_eq!(nics[1]["driver"], "virtio-net-pci");
    let keys: Vec<_> = nics[0].as_object().unwrap().keys().cloned().collect();
    let raw = values(&a.args, "-device")
        .into_iter()
        .find(|d| d.contains("\"e1000\""))
        .unwrap();
    assert!(
        raw.starts_with(r#"{"driver":"e1000","netdev":"hostnet0","id":"net0","mac":"#),
        "{raw} {keys:?}"
    );
    let igb = FIRMWARE.replacen("<model type='virtio'/>", "<model type='igb'/>", 1);
    let Err(DeriveError::Unsupported(list)) = derive(&igb) else {
        panic!("igb derived")
    };
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0].reason.contains("'igb' is not emulated"));
    let micro = MICROVM.replace("<model type='virtio'/>", "<model type='e1000'/>");
    let Err(DeriveError::Unsupported(list)) = derive(&micro) else {
        panic!("e1000 on microvm derived")
    };
    assert!(list[0].reason.contains("needs a PCI address"), "{list:?}");
}

/// `<interface model='e1000e'>` on q35: libvirt 9.0's `-device` JSON on a
/// root port of its own (`pci.N`, slot 0), the keys in libvirt's order;
/// with a MAC and an address as `virsh define` leaves them.
#[test]
fn e1000e_nics_on_q35_as_libvirt_writes_them() {
    let xml = FIRMWARE
        .replace("pc-i440fx-7.2", "pc-q35-7.2")
        .replacen(
            "<interface type='ethernet'><model type='virtio'/></interface>",
            "<interface type='ethernet'><mac address='52:54:00:10:bf:55'/><model type='e1000e'/>\
             <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></interface>",
            1,
        );
    let a = derive(&xml).unwrap_or_else(|e| panic!("{e}"));
    let raw: Vec<_> = values(&a.args, "-device")
        .into_iter()
        .filter(|d| d.contains("\"netdev\""))
        .collect();
    assert_eq!(
        raw[0],
        r#"{"driver":"e1000e","netdev":"hostnet0","id":"net0","mac":"52:54:00:10:bf:55","bus":"pci.1","addr":"0x0","bootindex":4}"#,
        "{raw:?}"
    );
    // Without an address it gets a root port, as libvirt's define gives.
    let bare = FIRMWARE.replace("pc-i440fx-7.2", "pc-q35-7.2").replacen(
        "<model type='virtio'/>",
        "<model type='e1000e'/>",
        1,
    );
    let a = derive(&bare).unwrap_or_else(|e| panic!("{e}"));
    let nic = values(&a.args, "-device")
        .into_iter()
        .map(props)
        .find(|d| d["driver"] == "e1000e")
        .expect("an e1000e");
    assert!(nic["bus"].starts_with("pci."), "{nic:?}");
    assert_eq!(nic["addr"], "0x0");
}

#[test]
fn usb_controller_and_hid_devices_as_libvirt_writes_them() {
    let q35 = |devs: &str| {
        format!(
            "<domain type='kvm'><name>u</name><memory>131072</memory>
  <os><type machine='q35'>hvm</type><kernel>/k</kernel></os>
  <devices>{devs}</devices></domain>"
        )
    };
    let a = derive(&q35(
        "<controller type='usb' index='0' model='qemu-xhci' ports='15'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </controller>
    <input type='tablet' bus='usb'><address type='usb' bus='0' port='1'/></input>
    <input type='keyboard' bus='usb'/>
    <input type='mouse' bus='ps2'/>",
    ))
    .unwrap();
    let usb: Vec<&str> = values(&a.args, "-device")
        .into_iter()
        .filter(|d| d.contains("usb"))
        .collect();
    assert_eq!(
        usb,
        [
            r#"{"driver":"qemu-xhci","p2":15,"p3":15,"id":"usb","bus":"pcie.0","addr":"0x5"}"#,
            r#"{"driver":"usb-tablet","id":"input0","bus":"usb.0","port":"1"}"#,
            r#"{"driver":"usb-kbd","id":"input1","bus":"usb.0","port":"2"}"#,
        ]
    );
    assert!(
        !a.warnings.iter().any(|w| w.contains("usb")),
        "{:?}",
        a.warnings
    );
    // Another model: left off, and the tablet on it.
    let a = derive(&q35("<controller type='usb' index='0' model='ich9-ehci1'/>
    <input type='tablet' bus='usb'/>"))
    .unwrap();
    assert!(!values(&a.args, "-device").iter().any(|d| d.contains("usb")));
    assert!(a
        .warnings
        .iter()
        .any(|w| w.starts_with("controller (usb) left off")));
    assert!(a
        .warnings
        .iter()
        .any(|w| w.starts_with("input (usb) left off")));
    // A USB input rvirt has no device for is refused, naming it.
    let Err(DeriveError::Unsupported(list)) =
        derive(&q35("<controller type='usb' index='0' model='qemu-xhci'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </controller>
    <input type='passthrough' bus='usb'/>")) else {
        panic!("a passthrough input accepted");
    };
    assert!(list[0].reason.contains("usb 'passthrough'"), "{list:?}");
}
