//! The command line rvirtd derives must parse. DERIVED below is the output
//! of `rvirt_domain::derive_argv` (after `fill_in`, runtime dir
//! `/run/rvirt/x`) for this definition, copied rather than computed: a
//! dev-dependency on rvirt-domain would change the shared Cargo.lock. Re-run
//! the derivation and paste again when the domain crate's output changes.
//!
//! ```xml
//! <domain type='kvm'>
//!   <name>web1</name>
//!   <uuid>0f5a4b7e-1d2c-4e3f-9a8b-7c6d5e4f3a2b</uuid>
//!   <memory unit='MiB'>256</memory>
//!   <vcpu>2</vcpu>
//!   <os>
//!     <type arch='x86_64' machine='microvm'>hvm</type>
//!     <kernel>/guest.elf</kernel>
//!     <cmdline>console=hvc0</cmdline>
//!   </os>
//!   <features><acpi/></features>
//!   <devices>
//!     <disk type='file' device='disk'>
//!       <driver name='qemu' type='raw'/>
//!       <source file='/img/web1.raw'/>
//!       <target dev='vda' bus='virtio'/>
//!     </disk>
//!     <interface type='ethernet'>
//!       <target dev='tap7'/>
//!       <model type='virtio'/>
//!     </interface>
//!     <interface type='bridge'>
//!       <mac address='52:54:00:ab:cd:ef'/>
//!       <source bridge='br0'/>
//!       <model type='virtio'/>
//!     </interface>
//!     <serial type='pty'/>
//!     <console type='pty'><target type='virtio'/></console>
//!     <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
//!     <memballoon model='virtio'/>
//!   </devices>
//! </domain>
//! ```

use rvirt_vmm_config::{
    parse, Action, BalloonConfig, ChardevBackend, ConsoleConfig, ConsolePort, NetConfig, TapSource,
    VirtioConfig,
};

const DERIVED: &[&str] = &[
    "-name",
    "guest=web1,debug-threads=on",
    "-S",
    "-machine",
    "microvm,usb=off,dump-guest-core=off",
    "-accel",
    "kvm",
    "-cpu",
    "qemu64",
    "-m",
    "size=262144k",
    "-smp",
    "2,sockets=2,cores=1,threads=1",
    "-uuid",
    "0f5a4b7e-1d2c-4e3f-9a8b-7c6d5e4f3a2b",
    "-no-user-config",
    "-nodefaults",
    "-chardev",
    "socket,id=charmonitor,path=/run/rvirt/x/monitor.sock,server=on,wait=off",
    "-mon",
    "chardev=charmonitor,id=monitor,mode=control",
    "-rtc",
    "base=utc",
    "-no-shutdown",
    "-boot",
    "strict=on",
    "-kernel",
    "/guest.elf",
    "-append",
    "console=hvc0",
    "-device",
    "virtio-serial-device,id=virtio-serial0",
    "-blockdev",
    "{\"driver\":\"file\",\"filename\":\"/img/web1.raw\",\"node-name\":\"libvirt-1-storage\",\"auto-read-only\":true,\"discard\":\"unmap\"}",
    "-blockdev",
    "{\"node-name\":\"libvirt-1-format\",\"read-only\":false,\"driver\":\"raw\",\"file\":\"libvirt-1-storage\"}",
    "-device",
    "{\"driver\":\"virtio-blk-device\",\"drive\":\"libvirt-1-format\",\"id\":\"virtio-disk0\",\"bootindex\":1}",
    "-netdev",
    "tap,id=hostnet0,ifname=tap7",
    "-device",
    "virtio-net-device,netdev=hostnet0,id=net0,mac=52:54:00:58:39:c6",
    "-netdev",
    "tap,id=hostnet1",
    "-device",
    "virtio-net-device,netdev=hostnet1,id=net1,mac=52:54:00:ab:cd:ef",
    "-chardev",
    "pty,id=charserial0",
    "-device",
    "isa-serial,chardev=charserial0,id=serial0,index=0",
    "-chardev",
    "pty,id=charconsole1",
    "-device",
    "virtconsole,chardev=charconsole1,id=console1",
    "-device",
    "virtio-balloon-device,id=balloon0",
    "-object",
    "rng-random,id=objrng0,filename=/dev/urandom",
    "-device",
    "virtio-rng-device,rng=objrng0,id=rng0",
    "-pidfile",
    "/run/rvirt/x/vmm.pid",
    "-D",
    "/run/rvirt/x/vmm.log",
];

#[test]
fn derived_argv_with_nics_console_and_balloon_parses() {
    let Action::Run(c) = parse(DERIVED).unwrap_or_else(|e| panic!("{e}")) else {
        panic!("not a run");
    };
    let v = &c.virtio;
    assert_eq!(v.len(), 6, "{v:#?}");
    // Slot order is -device order: the bus libvirt emits first.
    assert_eq!(
        v[0],
        VirtioConfig::Console(ConsoleConfig {
            id: Some("virtio-serial0".into()),
            port: Some(ConsolePort {
                chardev: "charconsole1".into(),
                id: Some("console1".into()),
                backend: ChardevBackend::Pty,
            }),
        })
    );
    assert!(matches!(&v[1], VirtioConfig::Blk(d) if d.drive == "libvirt-1-format"));
    assert_eq!(
        v[2],
        VirtioConfig::Net(NetConfig {
            netdev: "hostnet0".into(),
            id: Some("net0".into()),
            mac: [0x52, 0x54, 0x00, 0x58, 0x39, 0xc6],
            tap: TapSource::Name(Some("tap7".into())),
            bootindex: None,
        })
    );
    assert_eq!(
        v[3],
        VirtioConfig::Net(NetConfig {
            netdev: "hostnet1".into(),
            id: Some("net1".into()),
            mac: [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef],
            tap: TapSource::Name(None),
            bootindex: None,
        })
    );
    assert_eq!(
        v[4],
        VirtioConfig::Balloon(BalloonConfig {
            id: Some("balloon0".into()),
            deflate_on_oom: false,
        })
    );
    assert!(matches!(&v[5], VirtioConfig::Rng { .. }));
    assert_eq!(c.serials.len(), 1);
    assert_eq!(c.serials[0].chardev, "charserial0");
}

/// rvirtd may hand the taps over as descriptors (libvirt's `fd=` form):
/// the same command line with each `-netdev` rewritten that way parses too.
#[test]
fn derived_argv_with_tap_fds_parses() {
    let args: Vec<String> = DERIVED
        .iter()
        .map(|a| match *a {
            "tap,id=hostnet0,ifname=tap7" => r#"{"type":"tap","fd":"23","id":"hostnet0"}"#.into(),
            "tap,id=hostnet1" => "tap,id=hostnet1,fd=24".into(),
            other => other.to_string(),
        })
        .collect();
    let Action::Run(c) = parse(&args).unwrap_or_else(|e| panic!("{e}")) else {
        panic!("not a run");
    };
    let taps: Vec<&TapSource> = c
        .virtio
        .iter()
        .filter_map(|v| match v {
            VirtioConfig::Net(n) => Some(&n.tap),
            _ => None,
        })
        .collect();
    assert_eq!(taps, [&TapSource::Fd(23), &TapSource::Fd(24)]);
}
