//! `-netdev tap` with `virtio-net-device`, `virtio-serial-device` with
//! `virtconsole`, and `virtio-balloon-device`.

use super::*;

const M0: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

fn net(netdev: &str, id: Option<&str>, mac: [u8; 6], tap: TapSource) -> VirtioConfig {
    VirtioConfig::Net(NetConfig {
        netdev: netdev.into(),
        id: id.map(Into::into),
        mac,
        backend: Netdev::Tap(tap),
        bootindex: None,
    })
}

fn booting(v: VirtioConfig, index: u32) -> VirtioConfig {
    match v {
        VirtioConfig::Net(n) => VirtioConfig::Net(NetConfig {
            bootindex: Some(index),
            ..n
        }),
        other => other,
    }
}

fn console(id: Option<&str>, port: Option<(&str, Option<&str>, ChardevBackend)>) -> VirtioConfig {
    VirtioConfig::Console(ConsoleConfig {
        id: id.map(Into::into),
        port: port.map(|(chardev, id, backend)| ConsolePort {
            chardev: chardev.into(),
            id: id.map(Into::into),
            backend,
        }),
    })
}

#[test]
fn netdev_tap_forms() {
    let c = run(&with_kernel(&[
        "-netdev",
        "tap,id=hostnet0,ifname=tap7,script=no,downscript=no,vhost=off,vnet_hdr=on",
        "-device",
        "virtio-net-device,netdev=hostnet0,id=net0,mac=52:54:00:ab:cd:ef,bootindex=2",
    ]));
    assert_eq!(
        c.virtio,
        vec![booting(
            net(
                "hostnet0",
                Some("net0"),
                [0x52, 0x54, 0, 0xab, 0xcd, 0xef],
                TapSource::Name(Some("tap7".into()))
            ),
            2
        )]
    );
    // libvirt's JSON form, with the tap passed by descriptor.
    let j = run(&with_kernel(&[
        "-netdev",
        r#"{"type":"tap","fd":"28","id":"hostnet0"}"#,
        "-device",
        r#"{"driver":"virtio-net-device","netdev":"hostnet0","id":"net0","mac":"52:54:00:23:f7:b9","bootindex":1}"#,
    ]));
    assert_eq!(
        j.virtio,
        vec![booting(
            net(
                "hostnet0",
                Some("net0"),
                [0x52, 0x54, 0, 0x23, 0xf7, 0xb9],
                TapSource::Fd(28)
            ),
            1
        )]
    );
    // The same through key=value, and JSON numbers for fd.
    for nd in ["tap,id=n,fd=5", r#"{"type":"tap","id":"n","fd":5}"#] {
        let c = run(&with_kernel(&[
            "-netdev",
            nd,
            "-device",
            "virtio-net-device,netdev=n",
        ]));
        assert_eq!(c.virtio, vec![net("n", None, M0, TapSource::Fd(5))], "{nd}");
    }
    // No ifname: the kernel names the tap; -device may come first.
    let c = run(&with_kernel(&[
        "-device",
        r#"{"driver":"virtio-net-device","netdev":"n"}"#,
        "-netdev",
        r#"{"type":"tap","id":"n","vhost":false,"queues":1}"#,
    ]));
    assert_eq!(c.virtio, vec![net("n", None, M0, TapSource::Name(None))]);
    // A netdev with no device is accepted (QEMU warns "has no peer").
    let c = run(&with_kernel(&["-netdev", "tap,id=lonely,ifname=t0"]));
    assert!(c.virtio.is_empty());
    // Feature switches are checked for on/off.
    run(&with_kernel(&[
        "-netdev",
        "tap,id=n",
        "-device",
        "virtio-net-device,netdev=n,csum=off,mq=off,guest_tso4=on,mrg_rxbuf=off",
    ]));
    assert_eq!(
        err(&with_kernel(&[
            "-netdev",
            "tap,id=n",
            "-device",
            "virtio-net-device,netdev=n,csum=maybe",
        ])),
        "-device: parameter 'csum' expects 'on' or 'off', not 'maybe'"
    );
}

#[test]
fn default_macs_are_qemus() {
    // QEMU 7.2 gives 56, 57 (given), 58, then 56 again for an explicit 56:
    // a default skips MACs already held, an explicit MAC is never moved.
    let c = run(&with_kernel(&[
        "-netdev",
        "tap,id=a",
        "-netdev",
        "tap,id=b",
        "-netdev",
        "tap,id=c",
        "-netdev",
        "tap,id=d",
        "-device",
        "virtio-net-device,netdev=a",
        "-device",
        "virtio-net-device,netdev=b,mac=52:54:00:12:34:57",
        "-device",
        "virtio-net-device,netdev=c",
        "-device",
        "virtio-net-device,netdev=d,mac=52-54-00-12-34-56",
    ]));
    let macs: Vec<u8> = c
        .virtio
        .iter()
        .map(|v| match v {
            VirtioConfig::Net(n) => {
                assert_eq!(n.mac[..5], M0[..5]);
                n.mac[5]
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(macs, [0x56, 0x57, 0x58, 0x56]);
}

#[test]
fn netdev_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["-netdev", "tap,id=n0,fd=3,ifname=x"],
            "-netdev: ifname=, script=, downscript=, vnet_hdr=, helper=, queues=, fds=, \
             and vhostfds= are invalid with fd=",
        ),
        (
            &["-netdev", "tap,id=n0,fd=3,script=no"],
            "-netdev: ifname=, script=, downscript=, vnet_hdr=, helper=, queues=, fds=, \
             and vhostfds= are invalid with fd=",
        ),
        (
            &["-netdev", "tap,id=n0,script=/etc/qemu-ifup"],
            "-netdev: script=/etc/qemu-ifup: rvirt does not run network scripts; \
             use script=no and set the tap up beforehand",
        ),
        (
            &["-netdev", "tap,id=n0,downscript=/bin/down"],
            "-netdev: downscript=/bin/down: rvirt does not run network scripts; \
             use downscript=no and set the tap up beforehand",
        ),
        (
            &["-netdev", "tap,id=n0,vhost=on"],
            "-netdev: vhost-net is not supported: use vhost=off",
        ),
        (
            &[
                "-netdev",
                r#"{"type":"tap","id":"n0","fd":"3","vhost":true}"#,
            ],
            "-netdev: vhost-net is not supported: use vhost=off",
        ),
        (
            &["-netdev", "tap,id=n0,queues=4"],
            "-netdev: multiqueue (fds=, queues= above 1) is not supported yet",
        ),
        (
            &["-netdev", "tap,id=n0,fds=3:4"],
            "-netdev: multiqueue (fds=, queues= above 1) is not supported yet",
        ),
        (
            &[
                "-netdev",
                "tap,id=n0,helper=/usr/lib/qemu/qemu-bridge-helper",
            ],
            "-netdev: helper= and br= are not supported: rvirt does not run network helpers",
        ),
        (
            &["-netdev", "tap,id=n0,fd=tapfd"],
            "-netdev: fd=tapfd: expects a file descriptor number",
        ),
        (
            &["-netdev", "socket,id=n0,listen=:1234"],
            "-netdev: type 'socket' is not supported yet (only tap, stream and user)",
        ),
        (
            &["-netdev", r#"{"type":"bridge","id":"n0","br":"br0"}"#],
            "-netdev: type 'bridge' is not supported yet (only tap, stream and user)",
        ),
        (
            &["-netdev", "socket,id=n0,listen=:1234"],
            "-netdev: type 'socket' is not supported yet (only tap, stream and user)",
        ),
        (
            &["-netdev", "bogus,id=n0"],
            "-netdev: Parameter 'type' does not accept value 'bogus'",
        ),
        (&["-netdev", "tap"], "-netdev: Parameter 'id' is missing"),
        (
            &["-netdev", "id=n0"],
            "-netdev: Parameter 'type' is missing",
        ),
        (
            &["-netdev", "tap,id=n0,frob=1"],
            "-netdev: invalid parameter 'frob'",
        ),
        (
            &["-netdev", "tap,id=n0", "-netdev", "tap,id=n0"],
            "-netdev: Duplicate ID 'n0' for netdev",
        ),
        (
            &["-nic", "user"],
            "-nic: not supported: use -netdev tap,id=ID with -device virtio-net-device,netdev=ID",
        ),
        (
            &["-net", "nic,model=virtio"],
            "-net: not supported: use -netdev tap,id=ID with -device virtio-net-device,netdev=ID",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(err(&with_kernel(args)), *want, "{args:?}");
    }
    // "none" only declines a default NIC, which rvirt never adds.
    assert!(run(&with_kernel(&["-net", "none", "-nic", "none"]))
        .virtio
        .is_empty());
}

#[test]
fn virtio_net_device_errors() {
    let with_tap = |dev: &str| err(&with_kernel(&["-netdev", "tap,id=n0", "-device", dev]));
    assert_eq!(
        with_tap("virtio-net-device,netdev=nope"),
        "-device: Property 'virtio-net-device.netdev' can't find value 'nope'"
    );
    assert_eq!(
        err(&with_kernel(&[
            "-netdev",
            "tap,id=n0",
            "-device",
            "virtio-net-device,netdev=n0",
            "-device",
            r#"{"driver":"virtio-net-device","netdev":"n0"}"#,
        ])),
        "-device: Property 'virtio-net-device.netdev' can't take value 'n0', it's in use"
    );
    assert_eq!(
        with_tap("virtio-net-device"),
        "-device: parameter 'netdev' is missing"
    );
    for bad in [
        "52:54:00:12:34",
        "52:54:00:12:34:5g",
        "5:54:00:12:34:56",
        "52:54:00:12:34:56:78",
    ] {
        assert_eq!(
            with_tap(&format!("virtio-net-device,netdev=n0,mac={bad}")),
            format!("-device: Property 'virtio-net-device.mac' doesn't take value '{bad}'")
        );
    }
    assert_eq!(
        with_tap("virtio-net-device,netdev=n0,mac=01:00:5e:00:00:01"),
        "-device: NIC cannot have multicast MAC address (odd 1st byte)"
    );
    assert_eq!(
        with_tap("virtio-net-device,netdev=n0,mq=on"),
        "-device: mq=on: multiqueue is not supported yet"
    );
    assert_eq!(
        with_tap("virtio-net-device,netdev=n0,vectors=3"),
        "-device: invalid parameter 'vectors'"
    );
}

#[test]
fn virtio_console_forms() {
    // libvirt's order: the bus first, then the chardev and the port.
    let c = run(&with_kernel(&[
        "-device",
        "virtio-serial-device,id=virtio-serial0",
        "-chardev",
        "pty,id=charconsole0",
        "-device",
        "virtconsole,chardev=charconsole0,id=console0",
    ]));
    let want = vec![console(
        Some("virtio-serial0"),
        Some(("charconsole0", Some("console0"), ChardevBackend::Pty)),
    )];
    assert_eq!(c.virtio, want);
    let j = run(&with_kernel(&[
        "-device",
        r#"{"driver":"virtio-serial-device","id":"virtio-serial0","max_ports":1}"#,
        "-chardev",
        "pty,id=charconsole0",
        "-device",
        r#"{"driver":"virtconsole","chardev":"charconsole0","id":"console0","bus":"virtio-serial0.0","nr":0,"name":"con"}"#,
    ]));
    assert_eq!(j.virtio, want);
    // A bus with no port, and no ids.
    let c = run(&with_kernel(&["-device", "virtio-serial-device"]));
    assert_eq!(c.virtio, vec![console(None, None)]);
    // Slot order is -device order; bus= picks the device; an id-less device's
    // bus is QEMU's virtio-serial-bus.N.
    let c = run(&with_kernel(&[
        "-chardev",
        "null,id=c0",
        "-chardev",
        "stdio,id=c1",
        "-device",
        "virtio-serial-device",
        "-device",
        "virtio-balloon-device",
        "-device",
        "virtio-serial-device,id=vs1",
        "-device",
        "virtconsole,chardev=c1,bus=vs1.0",
        "-device",
        "virtconsole,chardev=c0,bus=virtio-serial-bus.0",
    ]));
    assert_eq!(
        c.virtio,
        vec![
            console(None, Some(("c0", None, ChardevBackend::Null))),
            VirtioConfig::Balloon(BalloonConfig {
                id: None,
                deflate_on_oom: false
            }),
            console(Some("vs1"), Some(("c1", None, ChardevBackend::Stdio))),
        ]
    );
    // Without bus=, a port goes to the first device with a free port.
    let c = run(&with_kernel(&[
        "-chardev",
        "null,id=c0",
        "-chardev",
        "pty,id=c1",
        "-device",
        "virtio-serial-device,id=a",
        "-device",
        "virtconsole,chardev=c0",
        "-device",
        "virtio-serial-device,id=b",
        "-device",
        "virtconsole,chardev=c1",
    ]));
    assert_eq!(
        c.virtio,
        vec![
            console(Some("a"), Some(("c0", None, ChardevBackend::Null))),
            console(Some("b"), Some(("c1", None, ChardevBackend::Pty))),
        ]
    );
}

#[test]
fn virtio_console_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["-chardev", "pty,id=c", "-device", "virtconsole,chardev=c"],
            "-device: No 'virtio-serial-bus' bus found for device 'virtconsole'",
        ),
        // The bus must come before its port, as in QEMU.
        (
            &[
                "-chardev",
                "pty,id=c",
                "-device",
                "virtconsole,chardev=c",
                "-device",
                "virtio-serial-device",
            ],
            "-device: No 'virtio-serial-bus' bus found for device 'virtconsole'",
        ),
        (
            &[
                "-chardev",
                "pty,id=c",
                "-chardev",
                "pty,id=d",
                "-device",
                "virtio-serial-device",
                "-device",
                "virtconsole,chardev=c",
                "-device",
                "virtconsole,chardev=d",
            ],
            "-device: more than one port per virtio-serial device is not supported yet",
        ),
        (
            &[
                "-chardev",
                "pty,id=c",
                "-device",
                "virtio-serial-device,id=vs",
                "-device",
                "virtconsole,chardev=c,bus=vs",
            ],
            "-device: Bus 'vs' not found",
        ),
        (
            &[
                "-chardev",
                "pty,id=c",
                "-device",
                "virtio-serial-device,id=vs",
                "-device",
                "virtconsole,chardev=c,bus=virtio-serial-bus.0",
            ],
            "-device: Bus 'virtio-serial-bus.0' not found",
        ),
        (
            &[
                "-device",
                "virtio-serial-device",
                "-device",
                "virtconsole,chardev=nope",
            ],
            "-device: chardev 'nope' not found",
        ),
        (
            &["-device", "virtio-serial-device", "-device", "virtconsole"],
            "-device: virtconsole without 'chardev' is not supported yet",
        ),
        (
            &[
                "-chardev",
                "pty,id=c",
                "-device",
                "virtio-serial-device",
                "-device",
                "virtconsole,chardev=c,nr=1",
            ],
            "-device: nr=1: only port 0 is supported yet (no multiport virtio-serial)",
        ),
        (
            &[
                "-chardev",
                "pty,id=c",
                "-device",
                "virtio-serial-device",
                "-device",
                "virtserialport,chardev=c,name=org.qemu.guest_agent.0",
            ],
            "-device: 'virtserialport' is not supported yet (only virtconsole)",
        ),
        (
            &["-device", "virtio-serial-device,max_ports=0"],
            "-device: Maximum number of serial ports not specified",
        ),
        (
            &["-device", "virtio-serial-device,frob=1"],
            "-device: invalid parameter 'frob'",
        ),
        // One chardev, two frontends.
        (
            &[
                "-chardev",
                "pty,id=c",
                "-serial",
                "chardev:c",
                "-device",
                "virtio-serial-device",
                "-device",
                "virtconsole,chardev=c",
            ],
            "-chardev: chardev 'c' is already in use",
        ),
        (
            &[
                "-chardev",
                "pty,id=c",
                "-device",
                "virtio-serial-device",
                "-device",
                "virtconsole,chardev=c",
                "-device",
                "virtio-serial-device",
                "-device",
                "virtconsole,chardev=c",
            ],
            "-chardev: chardev 'c' is already in use",
        ),
        // stdio serves one frontend, and none when daemonized.
        (
            &[
                "-serial",
                "stdio",
                "-chardev",
                "stdio,id=c",
                "-device",
                "virtio-serial-device",
                "-device",
                "virtconsole,chardev=c",
            ],
            "-serial: cannot use stdio by multiple character devices",
        ),
        (
            &[
                "-daemonize",
                "-chardev",
                "stdio,id=c",
                "-device",
                "virtio-serial-device",
                "-device",
                "virtconsole,chardev=c",
            ],
            "-daemonize: cannot be used with stdio character devices",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(err(&with_kernel(args)), *want, "{args:?}");
    }
}

#[test]
fn virtio_balloon_forms_and_errors() {
    let c = run(&with_kernel(&[
        "-device",
        "virtio-balloon-device,id=balloon0",
    ]));
    assert_eq!(
        c.virtio,
        vec![VirtioConfig::Balloon(BalloonConfig {
            id: Some("balloon0".into()),
            deflate_on_oom: false
        })]
    );
    let j = run(&with_kernel(&[
        "-device",
        r#"{"driver":"virtio-balloon-device","id":"balloon0","deflate-on-oom":true,"free-page-reporting":false}"#,
    ]));
    assert_eq!(
        j.virtio,
        vec![VirtioConfig::Balloon(BalloonConfig {
            id: Some("balloon0".into()),
            deflate_on_oom: true
        })]
    );
    assert_eq!(
        run(&with_kernel(&[
            "-device",
            "virtio-balloon-device,deflate-on-oom=on"
        ]))
        .virtio,
        vec![VirtioConfig::Balloon(BalloonConfig {
            id: None,
            deflate_on_oom: true
        })]
    );
    assert_eq!(
        err(&with_kernel(&[
            "-device",
            "virtio-balloon-device",
            "-device",
            "virtio-balloon-device,id=b1"
        ])),
        "-device: Only one balloon device is supported"
    );
    assert_eq!(
        err(&with_kernel(&[
            "-device",
            "virtio-balloon-device,deflate-on-oom=maybe"
        ])),
        "-device: parameter 'deflate-on-oom' expects 'on' or 'off', not 'maybe'"
    );
    assert_eq!(
        err(&with_kernel(&[
            "-device",
            "virtio-balloon-device,free-page-reporting=on"
        ])),
        "-device: free-page-reporting=on is not supported yet"
    );
    assert_eq!(
        err(&with_kernel(&["-device", "virtio-balloon-device,frob=1"])),
        "-device: invalid parameter 'frob'"
    );
}

#[test]
fn virtio_input_devices() {
    let c = run(&with_kernel(&[
        "-device",
        "virtio-keyboard-device,id=input0",
        "-device",
        r#"{"driver":"virtio-tablet-device","id":"input1","wheel-axis":true}"#,
        "-device",
        "virtio-mouse-device",
    ]));
    let input = |id: Option<&str>, model| {
        VirtioConfig::Input(InputConfig {
            id: id.map(Into::into),
            model,
        })
    };
    assert_eq!(
        c.virtio,
        vec![
            input(Some("input0"), InputModel::Keyboard),
            input(Some("input1"), InputModel::Tablet),
            input(None, InputModel::Mouse),
        ]
    );
    assert!(err(&with_kernel(&[
        "-device",
        "virtio-mouse-device,wheel-axis=off"
    ]))
    .contains("wheel-axis=off"));
    assert!(err(&with_kernel(&["-device", "virtio-tablet-device,serial=x"])).contains("serial"));
}
