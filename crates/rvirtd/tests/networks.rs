//! libvirt's virtual networks in rvirtd, driven by the real virsh: the
//! default NAT network on a first start, a test guest with its own DHCP
//! client leasing an address from dnsmasq and sending a datagram to the
//! host, the leases in `net-dhcp-leases` and `domifaddr --source lease`;
//! the whole lifecycle of nat, route and isolated networks with nothing
//! left behind (bridge, dnsmasq, nftables table), a `kill -9` of rvirtd
//! that leaves an active network running and taken over; libvirt's errors
//! for bad input. Each test runs in a private network namespace (rvirtd,
//! dnsmasq, nft and `ip` inherit it), so the host's network is untouched;
//! where one cannot be made the test is skipped, unless
//! RVIRT_REQUIRE_REFERENCE is set.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{domain_xml, have_virsh, Rvirtd};
use rvirt_test_guests::Guest;
use rvirt_testkit::netns::in_netns;
use rvirt_testkit::{poll, run, wait_for, Spawned};

/// How long one `ip` or `nft` command may take.
const TOOL_LIMIT: Duration = Duration::from_secs(30);
/// How long the DHCP guest may take to lease and send (its ring-0 code is
/// emulated here: a few seconds, more under load).
const GUEST_LIMIT: Duration = Duration::from_secs(120);

/// Whether the network tools are here (Debian's dnsmasq-base, nftables).
fn have_tools() -> bool {
    let found = Path::new("/usr/sbin/dnsmasq").exists() && Path::new("/usr/sbin/nft").exists();
    if !found {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "dnsmasq and nft are required (scripts/setup.sh installs them): RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("dnsmasq or nft missing: test skipped");
    }
    found && have_virsh()
}

fn tool(program: &str, args: &[&str]) -> (bool, String) {
    let out = run(Command::new(program).args(args), TOOL_LIMIT);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn ip(args: &[&str]) -> String {
    let (ok, out) = tool("ip", args);
    assert!(ok, "ip {args:?}: {out}");
    out
}

fn link_exists(name: &str) -> bool {
    tool("ip", &["link", "show", "dev", name]).0
}

/// The nftables tables of this namespace.
fn nft_tables() -> String {
    let (ok, out) = tool("nft", &["list", "tables"]);
    assert!(ok, "nft list tables: {out}");
    out
}

/// Live (not zombie) dnsmasq processes whose command line names `root`'s
/// tree: the processes of this test's rvirtd, whatever namespace.
fn dnsmasqs(root: &Path) -> Vec<i32> {
    let marker = root.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let program = raw.split(|&b| b == 0).next().unwrap_or_default();
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|s| s == "Z" || s == "X");
        if program.ends_with(b"dnsmasq") && cmd.contains(&marker) && !zombie {
            pids.push(pid);
        }
    }
    pids
}

fn wait_no_dnsmasq(root: &Path) {
    poll("dnsmasq to exit", Duration::from_secs(15), || {
        let left = dnsmasqs(root);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still running: {left:?}"))
        }
    });
}

/// Everything a virtual network leaves on the host while active, for
/// the assertion that nothing of it is left.
fn assert_gone(root: &Path, bridge: &str) {
    wait_no_dnsmasq(root);
    assert!(!link_exists(bridge), "{bridge} is left");
    let tables = nft_tables();
    assert!(
        !tables.contains(&format!("rvirt_{bridge}")),
        "rules left: {tables}"
    );
}

fn wait_guest_log(d: &Rvirtd, name: &str, needle: &str) -> String {
    let mut found = String::new();
    poll(
        &format!("'{needle}' in the log of {name}"),
        GUEST_LIMIT,
        || {
            let log = d.log(name);
            if log.contains(needle) {
                found = log;
                Ok(())
            } else {
                Err(format!("{name}'s log:\n{log}\n{}", d.report()))
            }
        },
    );
    found
}

/// The DHCP guest on network `net`, sending its datagram to the router's
/// `port`; powered off, it starts again (so it stays running for queries).
/// The VMM of `name` runs confined (rvirtd's default) and reaches the
/// network only through the tap rvirtd made and passed it open: not root,
/// no capabilities, filtered, and its own root has no /dev/net/tun.
fn assert_confined_with_its_tap(d: &Rvirtd, name: &str) {
    let pidfile = d.root().join(format!("run/rvirt/qemu/{name}/vmm.pid"));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap_or_else(|e| panic!("{}: {e}", pidfile.display()))
        .trim()
        .parse()
        .unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert!(!field("Uid:").starts_with('0'), "{status}");
    assert_eq!(field("CapEff:"), "0000000000000000", "{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    assert_eq!(field("Seccomp:"), "2", "{status}");
    assert!(
        !Path::new(&format!("/proc/{pid}/root/dev/net/tun")).exists(),
        "the VMM's root has /dev/net/tun"
    );
    let tap_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == Path::new("/dev/net/tun")))
        .count();
    assert_eq!(tap_fds, 1, "the VMM holds its tap");
}

fn dhcp_domain(name: &str, net: &str, mac: &str, port: u16) -> String {
    domain_xml(name, Guest::Dhcp)
        .replace(
            "<cmdline>console=ttyS0</cmdline>",
            &format!("<cmdline>console=ttyS0 net.udp=router:{port} net.token=rvirt</cmdline>"),
        )
        .replace(
            "<on_poweroff>destroy</on_poweroff>",
            "<on_poweroff>restart</on_poweroff>",
        )
        .replace(
            "</devices>",
            &format!(
                "<interface type='network'><mac address='{mac}'/><source network='{net}'/>\
                 <model type='virtio'/></interface>\n  </devices>"
            ),
        )
}

#[test]
fn dhcp_guest_on_the_default_nat_network() {
    if !have_tools() {
        return;
    }
    in_netns(|| {
        ip(&["link", "set", "lo", "up"]);
        let d = Rvirtd::start_with(&["--default-network"]);
        // Installed and autostarted on the tree's first start.
        let list = d.ok(&["net-list", "--all"]);
        assert_eq!(
            list,
            " Name      State    Autostart   Persistent\n\
             --------------------------------------------\n \
             default   active   yes         yes\n\n"
        );
        let xml = d.ok(&["net-dumpxml", "default"]);
        assert!(xml.contains("<forward mode='nat'/>"), "{xml}");
        assert!(
            xml.contains("<bridge name='virbr0' stp='on' delay='0'/>"),
            "{xml}"
        );
        assert!(xml.contains("<ip address='192.168.122.1' netmask='255.255.255.0'>"));
        let addr = ip(&["-o", "addr", "show", "dev", "virbr0"]);
        assert!(addr.contains("inet 192.168.122.1/24"), "{addr}");

        // A socket on the bridge's address, where the guest's datagram goes.
        let host = UdpSocket::bind("192.168.122.1:0").expect("bind on virbr0's address");
        host.set_read_timeout(Some(GUEST_LIMIT)).unwrap();
        let port = host.local_addr().unwrap().port();
        let mac = "52:54:00:6e:65:74";
        let f = d.xml_file("g.xml", &dhcp_domain("g", "default", mac, port));
        d.ok(&["define", &f]);
        d.ok(&["start", "g"]);

        // The live XML names the port and the bridge, as libvirt's does.
        let live = d.ok(&["dumpxml", "g"]);
        assert!(
            live.contains("<source network='default' portid='")
                && live.contains(" bridge='virbr0'/>"),
            "{live}"
        );
        assert!(live.contains("<target dev='vnet0'/>"), "{live}");
        let inactive = d.ok(&["dumpxml", "--inactive", "g"]);
        assert!(
            inactive.contains("<source network='default'/>"),
            "{inactive}"
        );
        let tap = ip(&["-d", "-o", "link", "show", "dev", "vnet0"]);
        assert!(tap.contains("master virbr0"), "{tap}");

        let log = wait_guest_log(&d, "g", "UDP_SENT");
        let leased = log
            .lines()
            .find_map(|l| l.strip_prefix("DHCP_ACK "))
            .expect("DHCP_ACK")
            .trim()
            .to_string();
        assert!(leased.starts_with("192.168.122."), "{log}");
        assert!(log.contains("DHCP_ROUTER 192.168.122.1"), "{log}");
        assert!(log.contains(&format!("DHCP_LEASE {leased}/24")), "{log}");

        let mut buf = [0u8; 256];
        let (n, from) = host.recv_from(&mut buf).expect("the guest's datagram");
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            format!("rvirt dhcp guest {leased} rvirt")
        );
        assert_eq!(from.ip().to_string(), leased);
        assert_confined_with_its_tap(&d, "g");

        // The lease, through the real virsh, as rvirtd read it from the
        // lease helper's status file.
        let leases = d.ok(&["net-dhcp-leases", "default"]);
        let row = leases
            .lines()
            .find(|l| l.contains(mac))
            .unwrap_or_else(|| panic!("no lease of {mac}:\n{leases}"));
        assert!(row.contains(&format!("ipv4       {leased}/24")), "{row}");
        assert!(
            leases.starts_with(" Expiry Time           MAC address         Protocol   IP address"),
            "{leases}"
        );
        let one = d.ok(&["net-dhcp-leases", "default", "--mac", mac]);
        assert_eq!(
            one.lines().count(),
            4,
            "header, dashes, the lease, blank: {one}"
        );
        let status = std::fs::read_to_string(d.root().join("var/lib/rvirt/dnsmasq/virbr0.status"))
            .expect("the lease helper's status file");
        assert!(
            status.contains(&format!("\"ip-address\": \"{leased}\"")),
            "{status}"
        );

        let ifaddr = d.ok(&["domifaddr", "g", "--source", "lease"]);
        assert_eq!(
            ifaddr,
            format!(
                " Name       MAC address          Protocol     Address\n\
                 -------------------------------------------------------------------------------\n \
                 vnet0      {mac}    ipv4         {leased}/24\n\n"
            )
        );

        d.ok(&["destroy", "g"]);
        let root = d.root().to_path_buf();
        d.ok(&["net-destroy", "default"]);
        assert_gone(&root, "virbr0");
        // A domain on an inactive network does not start, as with libvirt.
        let err = d.fails(&["start", "g"]);
        assert!(
            err.contains(
                "error: Requested operation is not valid: network 'default' is not active"
            ),
            "{err}"
        );
        assert!(!link_exists("vnet0"));
    });
}

const LAB: &str = "<network>
  <name>lab</name>
  <forward mode='nat'/>
  <bridge name='rvlab0'/>
  <mtu size='1400'/>
  <ip address='10.77.0.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='10.77.0.100' end='10.77.0.199'/>
    </dhcp>
  </ip>
</network>
";

#[test]
fn virsh_drives_the_lifecycle_and_destroy_leaves_nothing() {
    if !have_tools() {
        return;
    }
    in_netns(|| {
        ip(&["link", "set", "lo", "up"]);
        let mut d = Rvirtd::start();
        let root = d.root().to_path_buf();
        assert_eq!(
            d.ok(&["net-list", "--all", "--name"]),
            "\n",
            "no default network under --root"
        );
        let f = d.xml_file("lab.xml", LAB);
        assert_eq!(
            d.ok(&["net-define", &f]),
            format!("Network lab defined from {f}\n\n")
        );
        let xml = d.ok(&["net-dumpxml", "lab"]);
        assert!(xml.contains("<bridge name='rvlab0' stp='on' delay='0'/>\n  <mtu size='1400'/>\n  <mac address='52:54:00:"), "{xml}");
        assert_eq!(d.ok(&["net-start", "lab"]), "Network lab started\n\n");
        let info = d.ok(&["net-info", "lab"]);
        assert!(info.contains("Active:         yes\nPersistent:     yes\nAutostart:      no\nBridge:         rvlab0\n"), "{info}");

        // The host side: the bridge with its address and MTU, dnsmasq, the
        // rules, forwarding.
        let br = ip(&["-d", "-o", "link", "show", "dev", "rvlab0"]);
        assert!(
            br.contains("mtu 1400") && br.contains("stp_state 1"),
            "{br}"
        );
        assert!(ip(&["-o", "addr", "show", "dev", "rvlab0"]).contains("inet 10.77.0.1/24"));
        let pids = dnsmasqs(&root);
        assert_eq!(pids.len(), 2, "dnsmasq and its script runner: {pids:?}");
        let conf = std::fs::read_to_string(root.join("var/lib/rvirt/dnsmasq/lab.conf")).unwrap();
        assert!(
            conf.contains("interface=rvlab0\n")
                && conf.contains("dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0\n"),
            "{conf}"
        );
        assert!(conf.contains("dhcp-option=option:mtu,1400\n"), "{conf}");
        let (ok, rules) = tool("nft", &["list", "table", "inet", "rvirt_rvlab0"]);
        assert!(ok, "{rules}");
        assert!(rules.contains("masquerade"), "{rules}");
        assert_eq!(
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .unwrap()
                .trim(),
            "1"
        );

        // A static lease, live and persistent: dnsmasq gets it.
        let host = "<host mac='52:54:00:00:00:21' name='fixed' ip='10.77.0.21'/>";
        assert_eq!(
            d.ok(&[
                "net-update",
                "lab",
                "add",
                "ip-dhcp-host",
                host,
                "--live",
                "--config"
            ]),
            "Updated network lab persistent config and live state\n"
        );
        let conf = std::fs::read_to_string(root.join("var/lib/rvirt/dnsmasq/lab.conf")).unwrap();
        assert!(
            conf.contains("dhcp-host=52:54:00:00:00:21,10.77.0.21,fixed\n"),
            "{conf}"
        );
        assert!(d.ok(&["net-dumpxml", "lab", "--inactive"]).contains(host));
        let err = d.fails(&["net-update", "lab", "add", "ip-dhcp-host", host, "--config"]);
        assert!(
            err.contains("there is an existing dhcp host entry in network 'lab' that matches"),
            "{err}"
        );

        // kill -9 of rvirtd leaves the network running; a new rvirtd takes
        // it over (the same dnsmasq, the rules in place).
        let before = dnsmasqs(&root);
        d.kill9();
        assert!(link_exists("rvlab0"));
        assert_eq!(dnsmasqs(&root), before, "dnsmasq outlives rvirtd");
        d.spawn();
        assert!(d
            .ok(&["net-list"])
            .contains(" lab    active   no          yes"));
        assert_eq!(dnsmasqs(&root), before, "taken over, not restarted");
        assert!(tool("nft", &["list", "table", "inet", "rvirt_rvlab0"]).0);
        d.ok(&["net-autostart", "lab"]);
        assert!(root
            .join("etc/rvirt/qemu/networks/autostart/lab.xml")
            .exists());

        assert_eq!(d.ok(&["net-destroy", "lab"]), "Network lab destroyed\n\n");
        assert_gone(&root, "rvlab0");
        assert!(nft_tables().trim().is_empty(), "{}", nft_tables());
        let err = d.fails(&["net-destroy", "lab"]);
        assert!(
            err.contains("Requested operation is not valid: network 'lab' is not active"),
            "{err}"
        );

        // Route and isolated networks come and go the same way.
        for (name, forward) in [("rt", "<forward mode='route'/>"), ("iso", "")] {
            let xml = format!(
                "<network><name>{name}</name>{forward}<bridge name='rv{name}0'/>\
                 <ip address='10.78.{}.1' prefix='24'><dhcp><range start='10.78.{0}.2' end='10.78.{0}.9'/></dhcp></ip></network>",
                name.len()
            );
            let f = d.xml_file(&format!("{name}.xml"), &xml);
            d.ok(&["net-create", &f]);
            let bridge = format!("rv{name}0");
            assert!(link_exists(&bridge));
            let (_, rules) = tool(
                "nft",
                &["list", "table", "inet", &format!("rvirt_{bridge}")],
            );
            assert!(!rules.contains("masquerade"), "{rules}");
            if forward.is_empty() {
                let conf = std::fs::read_to_string(
                    root.join(format!("var/lib/rvirt/dnsmasq/{name}.conf")),
                )
                .unwrap();
                assert!(conf.contains("dhcp-option=3\nno-resolv\n"), "{conf}");
            }
            d.ok(&["net-destroy", name]);
            assert_gone(&root, &bridge);
            // A transient network is gone with its destroy.
            assert!(!d.ok(&["net-list", "--all", "--name"]).contains(name));
        }
        assert_eq!(
            d.ok(&["net-undefine", "lab"]),
            "Network lab has been undefined\n\n"
        );
        assert_eq!(d.ok(&["net-list", "--all", "--name"]), "\n");
        assert!(!root.join("etc/rvirt/qemu/networks/lab.xml").exists());
        assert!(!root
            .join("etc/rvirt/qemu/networks/autostart/lab.xml")
            .exists());
    });
}

#[test]
fn lifecycle_events_reach_virsh_net_event() {
    if !have_tools() {
        return;
    }
    in_netns(|| {
        ip(&["link", "set", "lo", "up"]);
        let d = Rvirtd::start();
        let mut watcher = Spawned::start(Command::new("virsh").args([
            "-c",
            &d.uri(),
            "net-event",
            "--event",
            "lifecycle",
            "--loop",
            "--timeout",
            "60",
        ]))
        .on_fail(d.reporter());
        wait_for(
            "virsh net-event to register",
            Duration::from_secs(15),
            || {
                std::fs::read_to_string(d.root().join("rvirtd.stderr"))
                    .unwrap_or_default()
                    .contains("event callback registered")
            },
        );
        let f = d.xml_file("lab.xml", LAB);
        d.ok(&["net-define", &f]);
        d.ok(&["net-start", "lab"]);
        d.ok(&["net-destroy", "lab"]);
        d.ok(&["net-undefine", "lab"]);
        // A transient network: started and stopped, never defined.
        let t = d.xml_file(
            "tr.xml",
            "<network><name>tr</name><bridge name='rvtr0'/></network>",
        );
        d.ok(&["net-create", &t]);
        d.ok(&["net-destroy", "tr"]);
        let mut events = Vec::new();
        while events.len() < 6 {
            let Some(line) = watcher.line(Duration::from_secs(30)) else {
                break;
            };
            if line.starts_with("event '") {
                events.push(line.trim_end().to_string());
            }
        }
        // virsh's own wording, in the order the changes were made.
        assert_eq!(
            events,
            [
                "event 'lifecycle' for network lab: Defined",
                "event 'lifecycle' for network lab: Started",
                "event 'lifecycle' for network lab: Stopped",
                "event 'lifecycle' for network lab: Undefined",
                "event 'lifecycle' for network tr: Started",
                "event 'lifecycle' for network tr: Stopped",
            ]
        );
        watcher.kill();
    });
}

/// A guest that keeps running, with a NIC on network `net`.
fn counter_on(name: &str, net: &str, mac: &str) -> String {
    domain_xml(name, Guest::Counter).replace(
        "</devices>",
        &format!(
            "<interface type='network'><mac address='{mac}'/><source network='{net}'/>\
             <model type='virtio'/></interface>\n  </devices>"
        ),
    )
}

#[test]
fn a_bridge_network_puts_guests_on_the_host_bridge_and_leaves_it() {
    if !have_tools() {
        return;
    }
    in_netns(|| {
        ip(&["link", "set", "lo", "up"]);
        let d = Rvirtd::start();
        let root = d.root().to_path_buf();
        let f = d.xml_file(
            "lan.xml",
            "<network>\n  <name>lan</name>\n  <forward mode='bridge'/>\n  \
             <bridge name='rvhost0'/>\n</network>\n",
        );
        d.ok(&["net-define", &f]);
        // As libvirt writes it: no address, MAC, STP or delay of its own.
        let xml = d.ok(&["net-dumpxml", "lan"]);
        assert!(
            xml.contains("  <forward mode='bridge'/>\n  <bridge name='rvhost0'/>\n</network>"),
            "{xml}"
        );
        assert!(!xml.contains("<mac "), "{xml}");
        // libvirt starts it whether or not the bridge is there yet; a guest
        // started while it is missing fails where libvirt's does (the tap
        // takes the bridge's MTU first) and leaves no tap.
        assert_eq!(d.ok(&["net-start", "lan"]), "Network lan started\n\n");
        assert!(!link_exists("rvhost0"), "the host's bridge is not made");
        let g = d.xml_file("g.xml", &counter_on("g", "lan", "52:54:00:00:00:44"));
        d.ok(&["define", &g]);
        let err = d.fails(&["start", "g"]);
        assert!(
            err.contains("error: Cannot get interface MTU on 'rvhost0': No such device"),
            "{err}"
        );
        assert!(!link_exists("vnet0"));

        // The host's bridge, with the MTU the tap takes from it.
        ip(&["link", "add", "rvhost0", "mtu", "1450", "type", "bridge"]);
        ip(&["link", "set", "rvhost0", "up"]);
        d.ok(&["start", "g"]);
        let tap = ip(&["-d", "-o", "link", "show", "dev", "vnet0"]);
        assert!(
            tap.contains("master rvhost0") && tap.contains("mtu 1450"),
            "{tap}"
        );
        let live = d.ok(&["dumpxml", "g"]);
        assert!(
            live.contains("<source network='lan' portid='") && live.contains(" bridge='rvhost0'/>"),
            "{live}"
        );
        // Nothing of a virtual network's is made for it.
        assert!(dnsmasqs(&root).is_empty());
        assert!(nft_tables().trim().is_empty(), "{}", nft_tables());
        assert!(!root.join("var/lib/rvirt/dnsmasq/lan.conf").exists());
        d.ok(&["destroy", "g"]);
        wait_for("the tap to go", Duration::from_secs(10), || {
            !link_exists("vnet0")
        });

        // Destroying the network leaves the host's bridge where it was.
        assert_eq!(d.ok(&["net-destroy", "lan"]), "Network lan destroyed\n\n");
        assert!(link_exists("rvhost0"), "the host's bridge is kept");
        assert_eq!(
            d.ok(&["net-undefine", "lan"]),
            "Network lan has been undefined\n\n"
        );
    });
}

#[test]
fn bad_input_gets_libvirts_errors_and_leaves_nothing() {
    if !have_tools() {
        return;
    }
    in_netns(|| {
        ip(&["link", "set", "lo", "up"]);
        let d = Rvirtd::start();
        let root = d.root().to_path_buf();
        // A DHCP range outside the network: refused at define, with its line.
        let f = d.xml_file(
            "out.xml",
            "<network>\n<name>out</name>\n<ip address='192.168.5.1' netmask='255.255.255.0'>\n<dhcp>\n\
             <range start='192.168.6.2' end='192.168.6.254'/>\n</dhcp>\n</ip>\n</network>\n",
        );
        let err = d.fails(&["net-define", &f]);
        assert_eq!(
            err,
            format!("error: Failed to define network from {f}\nerror: internal error: range 192.168.6.2 - 192.168.6.254 is not entirely within network 192.168.5.1/24 (line 5)\n")
        );
        assert!(!root.join("etc/rvirt/qemu/networks/out.xml").exists());

        // A bridge name another network has: refused at define.
        let f = d.xml_file("lab.xml", LAB);
        d.ok(&["net-define", &f]);
        let twin = d.xml_file(
            "twin.xml",
            &LAB.replace("<name>lab</name>", "<name>twin</name>")
                .replace("10.77.0", "10.79.0"),
        );
        let err = d.fails(&["net-define", &twin]);
        assert!(
            err.contains("error: internal error: bridge name 'rvlab0' already in use."),
            "{err}"
        );

        // A bridge name a host link has: the start fails, nothing is left.
        ip(&["link", "add", "rvtaken0", "type", "bridge"]);
        let taken = d.xml_file(
            "taken.xml",
            &LAB.replace("<name>lab</name>", "<name>taken</name>")
                .replace("rvlab0", "rvtaken0")
                .replace("10.77.0", "10.80.0"),
        );
        d.ok(&["net-define", &taken]);
        let err = d.fails(&["net-start", "taken"]);
        assert!(
            err.contains("error: error creating bridge interface rvtaken0: File exists"),
            "{err}"
        );
        assert!(nft_tables().trim().is_empty() && dnsmasqs(&root).is_empty());

        // Overlapping subnets: a host interface already has 10.77.0.0/24.
        ip(&["link", "add", "rvother0", "type", "bridge"]);
        ip(&["addr", "add", "10.77.0.5/24", "dev", "rvother0"]);
        ip(&["link", "set", "rvother0", "up"]);
        let err = d.fails(&["net-start", "lab"]);
        assert!(
            err.contains("error: internal error: Network is already in use by interface rvother0"),
            "{err}"
        );
        assert!(!link_exists("rvlab0"));
        ip(&["link", "del", "rvother0"]);

        // A domain on an inactive network.
        let g = d.xml_file("g.xml", &dhcp_domain("g", "lab", "52:54:00:00:00:33", 9));
        d.ok(&["define", &g]);
        let err = d.fails(&["start", "g"]);
        assert!(
            err.contains("error: Requested operation is not valid: network 'lab' is not active"),
            "{err}"
        );
        assert!(!link_exists("vnet0"));
        drop(d);

        // No dnsmasq: the start fails after the bridge and the rules were
        // made, and undoes them.
        let d = Rvirtd::start_with(&["--dnsmasq", "/nonexistent/dnsmasq"]);
        let f = d.xml_file("lab.xml", LAB);
        d.ok(&["net-define", &f]);
        let err = d.fails(&["net-start", "lab"]);
        assert!(err.contains("error: Cannot check dnsmasq binary /nonexistent/dnsmasq: No such file or directory"), "{err}");
        assert_gone(d.root(), "rvlab0");
        wait_for("nothing of lab left", Duration::from_secs(5), || {
            !link_exists("rvlab0") && nft_tables().trim().is_empty()
        });
        assert!(d
            .ok(&["net-list", "--all"])
            .contains(" lab    inactive   no          yes"));
    });
}

#[test]
fn virt_install_network_default_creates_a_domain_that_starts() {
    if !have_tools() {
        return;
    }
    let found = rvirt_testkit::try_run(Command::new("virt-install").arg("--version"), TOOL_LIMIT)
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "virt-install (Debian package virtinst) is required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("virt-install missing: test skipped");
        return;
    }
    in_netns(|| {
        ip(&["link", "set", "lo", "up"]);
        let d = Rvirtd::start_with(&["--default-network"]);
        let kernel = Guest::Dhcp.path();
        let boot = format!("kernel={},kernel_args=console=ttyS0", kernel.display());
        let out = run(
            Command::new("virt-install")
                .args([
                    "--connect",
                    &d.uri(),
                    "--name",
                    "vi",
                    "--memory",
                    "64",
                    "--vcpus",
                    "1",
                ])
                .args(["--machine", "microvm", "--cpu", "qemu64", "--boot", &boot])
                .args([
                    "--network",
                    "default,model=virtio",
                    "--disk",
                    "none",
                    "--import",
                ])
                .args(["--graphics", "none", "--controller", "usb,model=none"])
                .args([
                    "--memballoon",
                    "none",
                    "--osinfo",
                    "detect=off,name=linux2022",
                ])
                .args(["--noautoconsole"])
                .env("LC_ALL", "C"),
            Duration::from_secs(120),
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "virt-install: {text}\n{}", d.report());
        assert!(text.contains("Domain creation completed."), "{text}");
        let xml = d.ok(&["dumpxml", "--inactive", "vi"]);
        assert!(
            xml.contains("<interface type='network'>")
                && xml.contains("<source network='default'/>"),
            "{xml}"
        );
        // It started on the network: its guest took a lease from dnsmasq.
        // DHCP_OK follows the lease's lines, so they are whole by then.
        let log = wait_guest_log(&d, "vi", "DHCP_OK");
        assert!(
            log.contains("DHCP_ACK 192.168.122.") && log.contains("DHCP_ROUTER 192.168.122.1\n"),
            "{log}"
        );
    });
}
