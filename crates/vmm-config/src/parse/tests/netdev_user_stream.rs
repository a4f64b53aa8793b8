//! `-netdev stream` (QEMU 7.2's client forms, libvirt's JSON for passt)
//! and `-netdev user` (slirp's options, served by passt).

use std::net::Ipv4Addr;

use super::*;

fn backend(netdev: &str) -> Netdev {
    let c = run(&with_kernel(&[
        "-netdev",
        netdev,
        "-device",
        "virtio-net-device,netdev=n0",
    ]));
    match &c.virtio[..] {
        [VirtioConfig::Net(n)] => n.backend.clone(),
        other => panic!("{other:?}"),
    }
}

fn user_net(guest: [u8; 4], prefix: u8, host: [u8; 4], dns: [u8; 4]) -> UserNetdev {
    UserNetdev {
        guest: guest.into(),
        prefix,
        host: host.into(),
        dns: dns.into(),
        hostfwd: vec![],
        ipv4: true,
        ipv6: true,
    }
}

#[test]
fn stream_client_forms() {
    let unix = Netdev::Stream(StreamNetdev {
        addr: StreamAddr::Unix("/run/p.socket".into()),
        reconnect: None,
    });
    assert_eq!(
        backend("stream,id=n0,server=off,addr.type=unix,addr.path=/run/p.socket"),
        unix
    );
    // libvirt 9.0's form for <backend type='passt'/>.
    assert_eq!(
        backend(
            r#"{"type":"stream","addr":{"type":"unix","path":"/run/p.socket"},"server":false,"id":"n0"}"#
        ),
        unix
    );
    assert_eq!(
        backend("stream,id=n0,addr.type=unix,addr.path=/run/p.socket,reconnect=5"),
        Netdev::Stream(StreamNetdev {
            addr: StreamAddr::Unix("/run/p.socket".into()),
            reconnect: Some(5),
        })
    );
    assert_eq!(
        backend("stream,id=n0,addr.type=fd,addr.str=7"),
        Netdev::Stream(StreamNetdev {
            addr: StreamAddr::Fd(7),
            reconnect: None,
        })
    );
    for (bad, why) in [
        (
            "stream,id=n0,addr.type=unix",
            "parameter 'addr.path' is missing",
        ),
        (
            "stream,id=n0,addr.path=/x",
            "parameter 'addr.type' is missing",
        ),
        (
            "stream,id=n0,server=on,addr.type=unix,addr.path=/x",
            "server=on is not supported",
        ),
        (
            "stream,id=n0,addr.type=inet,addr.host=h,addr.port=1",
            "addr.type=inet is not supported yet",
        ),
        (
            "stream,id=n0,addr.type=fd,addr.str=x",
            "addr.str=x: expects a file descriptor number",
        ),
        (
            "stream,id=n0,addr.type=unix,addr.path=/x,frob=1",
            "invalid parameter 'frob'",
        ),
    ] {
        let e = err(&with_kernel(&["-netdev", bad]));
        assert!(e.starts_with("-netdev: ") && e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn user_takes_slirps_addresses() {
    assert_eq!(
        backend("user,id=n0"),
        Netdev::User(user_net([10, 0, 2, 15], 24, [10, 0, 2, 2], [10, 0, 2, 3]))
    );
    // libvirt's JSON form with <ip address='192.168.76.0' prefix='24'/>.
    assert_eq!(
        backend(r#"{"type":"user","net":"192.168.76.0/24","id":"n0"}"#),
        Netdev::User(user_net(
            [192, 168, 76, 15],
            24,
            [192, 168, 76, 2],
            [192, 168, 76, 3]
        ))
    );
    let mut n = user_net([172, 17, 0, 9], 16, [172, 17, 0, 1], [172, 17, 0, 53]);
    n.hostfwd = vec![
        HostFwd {
            udp: false,
            host_addr: None,
            host_port: 2222,
            guest_port: 22,
        },
        HostFwd {
            udp: true,
            host_addr: Some(Ipv4Addr::LOCALHOST),
            host_port: 5353,
            guest_port: 53,
        },
    ];
    n.ipv6 = false;
    assert_eq!(
        backend(
            "user,id=n0,net=172.17.0.0/255.255.0.0,host=172.17.0.1,dhcpstart=172.17.0.9,\
             dns=172.17.0.53,hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:5353-172.17.0.9:53,ipv6=off"
        ),
        Netdev::User(n)
    );
    for (bad, why) in [
        (
            "user,id=n0,hostfwd=bogus",
            "Invalid host forwarding rule 'bogus' (No : separators)",
        ),
        (
            "user,id=n0,hostfwd=tcp::99999-:22",
            "Invalid host forwarding rule 'tcp::99999-:22' (Bad host port)",
        ),
        (
            "user,id=n0,host=10.0.3.2",
            "host=10.0.3.2 is not in the network 10.0.2.0/24",
        ),
        (
            "user,id=n0,net=10.0.2.0/30",
            "net=10.0.2.0/30: expects ADDRESS[/MASK]",
        ),
        (
            "user,id=n0,smb=/srv",
            "parameter 'smb' is not supported by rvirt's user networking",
        ),
        ("user,id=n0,restrict=on", "restrict=on is not supported"),
        (
            "user,id=n0,ipv4=off,ipv6=off",
            "IPv4 and IPv6 cannot both be disabled",
        ),
        (
            "user,id=n0,dhcpstart=10.0.2.2",
            "dhcpstart=10.0.2.2 is the host's",
        ),
    ] {
        let e = err(&with_kernel(&["-netdev", bad]));
        assert!(e.starts_with(&format!("-netdev: {why}")), "{bad}: {e}");
    }
}
