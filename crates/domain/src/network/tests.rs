//! The model against what libvirt 9.0 writes (`virsh -c test:///default
//! net-define; net-dumpxml`, the same parser and formatter as the bridge
//! driver's) and libvirt's messages.

use super::update::{command, section, UpdateError};
use super::*;

const N1_IN: &str = "<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>
  <name>n1</name>
  <ip address='10.1.2.1' prefix='24'>
    <dhcp>
      <host mac='52:54:00:00:00:01' name='h1' ip='10.1.2.10'/>
      <range start='10.1.2.100' end='10.1.2.200'>
        <lease expiry='1' unit='hours'/>
      </range>
      <bootp file='pxelinux.0'/>
    </dhcp>
    <tftp root='/srv/tftp'/>
  </ip>
  <ip family='ipv6' address='fd00::1' prefix='64'/>
  <dns>
    <host ip='10.1.2.5'><hostname>a</hostname></host>
    <forwarder addr='8.8.8.8'/>
    <txt name='t' value='v'/>
  </dns>
  <domain name='example.org' localOnly='yes'/>
  <mtu size='9000'/>
  <mac address='52:54:00:aa:bb:cc'/>
  <bridge name='br9'/>
  <forward mode='route' dev='eth0'/>
  <route address='10.9.0.0' prefix='16' gateway='10.1.2.2'/>
  <uuid>bbff196a-1141-4ce3-8cc6-50c3a8f064d7</uuid>
  <metadata><x:a xmlns:x='urn:x'>1</x:a></metadata>
  <dnsmasq:options><dnsmasq:option value='log-queries'/></dnsmasq:options>
</network>";

/// libvirt's output for N1_IN, plus the namespace root attribute and
/// options the bridge driver keeps (the test driver has no namespace).
const N1_OUT: &str = "<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>
  <name>n1</name>
  <uuid>bbff196a-1141-4ce3-8cc6-50c3a8f064d7</uuid>
  <metadata>
    <x:a xmlns:x=\"urn:x\">1</x:a>
  </metadata>
  <forward dev='eth0' mode='route'>
    <interface dev='eth0'/>
  </forward>
  <bridge name='br9' stp='on' delay='0'/>
  <mtu size='9000'/>
  <mac address='52:54:00:aa:bb:cc'/>
  <domain name='example.org' localOnly='yes'/>
  <dns>
    <forwarder addr='8.8.8.8'/>
    <txt name='t' value='v'/>
    <host ip='10.1.2.5'>
      <hostname>a</hostname>
    </host>
  </dns>
  <ip address='10.1.2.1' prefix='24'>
    <tftp root='/srv/tftp'/>
    <dhcp>
      <range start='10.1.2.100' end='10.1.2.200'>
        <lease expiry='1' unit='hours'/>
      </range>
      <host mac='52:54:00:00:00:01' name='h1' ip='10.1.2.10'/>
      <bootp file='pxelinux.0'/>
    </dhcp>
  </ip>
  <ip family='ipv6' address='fd00::1' prefix='64'>
  </ip>
  <route address='10.9.0.0' prefix='16' gateway='10.1.2.2'/>
  <dnsmasq:options>
    <dnsmasq:option value='log-queries'/>
  </dnsmasq:options>
</network>
";

struct Counter(u8);

impl Random for Counter {
    fn bytes16(&mut self) -> [u8; 16] {
        self.0 += 1;
        [self.0; 16]
    }
}

#[test]
fn written_as_libvirt_writes_it() {
    let mut n = Network::from_xml(N1_IN).unwrap();
    n.fill_in_with(&|_| false, &mut Counter(0)).unwrap();
    assert_eq!(n.to_xml(), N1_OUT);
    // Its own output reads back to the same model.
    assert_eq!(Network::from_xml(&n.to_xml()).unwrap(), n);
    assert_eq!(n.kind(), Kind::Virtual);
    assert_eq!(n.forward_mode(), Some(ForwardMode::Route));
}

#[test]
fn forward_nat_attributes_and_the_rest_in_libvirts_order() {
    let xml = "<network trustGuestRxFilters='yes'>
  <portgroup name='p' default='yes'><vlan><tag id='42'/></vlan></portgroup>
  <route address='10.9.0.0' prefix='16' gateway='10.1.2.2'/>
  <vlan><tag id='5'/></vlan>
  <bandwidth><inbound average='1000'/></bandwidth>
  <ip address='10.1.2.1' prefix='24'/>
  <dns><srv service='s' protocol='udp'/><host ip='10.1.2.5'><hostname>b</hostname><hostname>a</hostname></host><txt name='t' value='v'/><forwarder domain='x.y'/></dns>
  <domain name='ex'/>
  <mac address='52:54:00:aa:bb:cc'/>
  <mtu size='1400'/>
  <bridge name='br9' macTableManager='kernel'/>
  <forward mode='nat' dev='eth0'><nat><port start='1' end='2'/><address start='1.1.1.1' end='1.1.1.2'/></nat><interface dev='eth0'/></forward>
  <uuid>11111111-2222-3333-4444-555555555556</uuid>
  <metadata><a/></metadata>
  <name>n5</name>
</network>";
    let mut n = Network::from_xml(xml).unwrap();
    n.fill_in(&|_| false).unwrap();
    assert_eq!(
        n.to_xml(),
        "<network trustGuestRxFilters='yes'>
  <name>n5</name>
  <uuid>11111111-2222-3333-4444-555555555556</uuid>
  <metadata>
    <a/>
  </metadata>
  <forward dev='eth0' mode='nat'>
    <nat>
      <address start='1.1.1.1' end='1.1.1.2'/>
      <port start='1' end='2'/>
    </nat>
    <interface dev='eth0'/>
  </forward>
  <bridge name='br9' stp='on' delay='0' macTableManager='kernel'/>
  <mtu size='1400'/>
  <mac address='52:54:00:aa:bb:cc'/>
  <domain name='ex'/>
  <dns>
    <forwarder domain='x.y'/>
    <txt name='t' value='v'/>
    <srv service='s' protocol='udp'/>
    <host ip='10.1.2.5'>
      <hostname>b</hostname>
      <hostname>a</hostname>
    </host>
  </dns>
  <vlan>
    <tag id='5'/>
  </vlan>
  <bandwidth>
    <inbound average='1000'/>
  </bandwidth>
  <ip address='10.1.2.1' prefix='24'>
  </ip>
  <route address='10.9.0.0' prefix='16' gateway='10.1.2.2'/>
  <portgroup name='p' default='yes'>
    <vlan>
      <tag id='42'/>
    </vlan>
  </portgroup>
</network>
"
    );
}

#[test]
fn the_default_network_is_filled_in_as_the_bridge_driver_does() {
    let xml = "<network>\n  <name>default</name>\n  <bridge name='virbr0'/>\n  <forward/>\n  <ip address='192.168.122.1' netmask='255.255.255.0'>\n    <dhcp>\n      <range start='192.168.122.2' end='192.168.122.254'/>\n    </dhcp>\n  </ip>\n</network>\n";
    let mut n = Network::from_xml(xml).unwrap();
    n.fill_in_with(&|_| false, &mut Counter(0)).unwrap();
    assert_eq!(
        n.to_xml(),
        "<network>
  <name>default</name>
  <uuid>01010101-0101-4101-8101-010101010101</uuid>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <mac address='52:54:00:02:02:02'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
"
    );
    let ip = n.dhcp_ip(false).unwrap();
    assert_eq!(ip.cidr().unwrap().to_string(), "192.168.122.1/24");
    assert!(n.dns_enabled());
}

#[test]
fn bridge_names_are_allocated_from_virbr_or_a_template() {
    let used = |n: &str| n == "virbr0" || n == "virbr1" || n == "lan0";
    let mut n = Network::from_xml("<network><name>x</name></network>").unwrap();
    n.fill_in(&used).unwrap();
    assert_eq!(n.bridge_name(), Some("virbr2"));
    assert!(n.mac.is_some() && n.uuid.is_some());
    let mut n =
        Network::from_xml("<network><name>x</name><bridge name='lan%d'/></network>").unwrap();
    n.fill_in(&used).unwrap();
    assert_eq!(n.bridge_name(), Some("lan1"));
    let mut n = Network::from_xml("<network><name>x</name></network>").unwrap();
    let e = n.fill_in(&|_| true).unwrap_err();
    assert_eq!(e.to_string(), "Bridge generation exceeded max id 256");
    // A host bridge network gets no name, MAC or stp.
    let mut n = Network::from_xml(
        "<network><name>b</name><forward mode='bridge'/><bridge name='br0'/></network>",
    )
    .unwrap();
    n.fill_in(&used).unwrap();
    assert_eq!(n.kind(), Kind::HostBridge);
    assert!(n
        .to_xml()
        .contains("  <forward mode='bridge'/>\n  <bridge name='br0'/>\n"));
}

fn problem(xml: &str) -> (ErrorKind, String) {
    let e = Network::from_xml(xml).unwrap_err();
    (e.kind(), e.to_string())
}

#[test]
fn refusals_are_libvirts_with_their_line() {
    let ip = |dhcp: &str| {
        format!("<network>\n<name>a</name>\n<ip address='192.168.5.1' netmask='255.255.255.0'>\n<dhcp>\n{dhcp}\n</dhcp>\n</ip>\n</network>")
    };
    assert_eq!(
        problem(&ip("<range start='192.168.6.2' end='192.168.6.254'/>")),
        (
            ErrorKind::Internal,
            "range 192.168.6.2 - 192.168.6.254 is not entirely within network 192.168.5.1/24 (line 5)".into()
        )
    );
    assert_eq!(
        problem(&ip("<range start='192.168.5.200' end='192.168.5.2'/>")),
        (
            ErrorKind::Internal,
            "range 192.168.5.200 - 192.168.5.2 is reversed  (line 5)".into()
        )
    );
    assert_eq!(
        problem(&ip("<host ip='192.168.5.9'/>")).1,
        "Static host definition in IPv4 network 'a' must have mac or name attribute (line 5)"
    );
    let cases = [
        ("<network></network>", ErrorKind::Xml, "missing name information (line 1)"),
        ("<network><name>a/b</name></network>", ErrorKind::Xml, "invalid char in name: / (line 1)"),
        ("<net><name>a</name></net>", ErrorKind::Xml, "expecting root element of 'network', not 'net' (line 1)"),
        ("<network><name>a</name><ip address='192.168.5.300' netmask='255.255.255.0'/></network>", ErrorKind::Xml, "Invalid address '192.168.5.300' in network 'a' (line 1)"),
        ("<network><name>a</name><ip address='192.168.5.1' netmask='255.255.255.0' prefix='24'/></network>", ErrorKind::Unsupported, "Network 'a' IP address cannot have both a prefix and a netmask (line 1)"),
        ("<network><name>a</name><forward mode='bogus'/></network>", ErrorKind::Unsupported, "unknown forwarding type 'bogus' (line 1)"),
        ("<network><name>a</name><mac address='01:00:00:00:00:01'/></network>", ErrorKind::Xml, "Invalid multicast bridge mac address '01:00:00:00:00:01' in network 'a' (line 1)"),
        ("<network><name>a</name><uuid>zz</uuid></network>", ErrorKind::Internal, "malformed uuid element (line 1)"),
        ("<network><name>a</name><mtu size='x'/></network>", ErrorKind::Xml, "Invalid mtu size 'x' in network 'a' (line 1)"),
        ("<network><name>n7</name><forward/></network>", ErrorKind::Xml, "nat forwarding requested, but no IP address provided for network 'n7' (line 1)"),
        ("<network><name>b</name><forward mode='bridge'/><bridge name='br0' stp='on'/></network>", ErrorKind::Xml, "bridge delay/stp/zone options only allowed in route, nat, and isolated mode, not in bridge (network 'b') (line 1)"),
        ("<network><name>b</name><forward mode='bridge'/><bridge name='br0'/><ip address='10.0.0.1' prefix='8'/></network>", ErrorKind::Unsupported, "Unsupported <ip> element in network b with forward mode='bridge' (line 1)"),
        ("<network><name>m</name><ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.2' end='10.0.0.3'/></dhcp></ip><ip address='10.0.1.1' prefix='24'><dhcp><range start='10.0.1.2' end='10.0.1.3'/></dhcp></ip></network>", ErrorKind::Unsupported, "Multiple IPv4 dhcp sections found -- dhcp is supported only for a single IPv4 address on each network (line 1)"),
    ];
    for (xml, kind, msg) in cases {
        assert_eq!(problem(xml), (kind, msg.to_string()), "{xml}");
    }
    assert!(matches!(
        Network::from_xml("<network><name>a</name"),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn dhcp_hosts_are_added_modified_and_deleted_as_net_update_does() {
    let mut n = Network::from_xml(
        "<network><name>d</name><ip address='192.168.122.1' netmask='255.255.255.0'><dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>",
    )
    .unwrap();
    let h = "<host mac='52:54:00:00:00:09' name='g' ip='192.168.122.9'/>";
    n.update(command::ADD_LAST, section::IP_DHCP_HOST, -1, h)
        .unwrap();
    assert!(n.to_xml().contains(&format!("      {h}\n")));
    let e = n
        .update(command::ADD_FIRST, section::IP_DHCP_HOST, -1, h)
        .unwrap_err();
    assert_eq!(e, UpdateError::Invalid("there is an existing dhcp host entry in network 'd' that matches \"<host mac='52:54:00:00:00:09' name='g' ip='192.168.122.9'/>\"".into()));
    // libvirt's words, absent attributes as its C strings print them.
    let e = n
        .update(
            command::ADD_LAST,
            section::IP_DHCP_HOST,
            -1,
            "<host mac='52:54:00:00:00:09' ip='192.168.122.20'/>",
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "there is an existing dhcp host entry in network 'd' that matches \"<host mac='52:54:00:00:00:09' name='(null)' ip='192.168.122.20'/>\"");
    n.update(
        command::MODIFY,
        section::IP_DHCP_HOST,
        -1,
        "<host mac='52:54:00:00:00:09' name='g' ip='192.168.122.10'/>",
    )
    .unwrap();
    assert_eq!(
        n.ips[0].dhcp.as_ref().unwrap().hosts[0].ip,
        Some("192.168.122.10".parse().unwrap())
    );
    let e = n
        .update(command::DELETE, section::IP_DHCP_HOST, -1, h)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "couldn't locate a matching dhcp host entry in network 'd'"
    );
    n.update(
        command::DELETE,
        section::IP_DHCP_HOST,
        -1,
        "<host mac='52:54:00:00:00:09' name='g' ip='192.168.122.10'/>",
    )
    .unwrap();
    assert!(n.ips[0].dhcp.as_ref().unwrap().hosts.is_empty());
    let e = n
        .update(
            command::MODIFY,
            section::IP_DHCP_HOST,
            -1,
            "<host mac='52:54:00:00:00:01' ip='192.168.122.3'/>",
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "couldn't locate an existing dhcp host entry with \"mac='52:54:00:00:00:01'\" \"name='(null)'\" \"ip='192.168.122.3'\" in network 'd'");
    let e = n
        .update(command::ADD_LAST, section::IP_DHCP_HOST, 3, h)
        .unwrap_err();
    assert!(
        e.to_string().contains("no <ip> element found at index 3"),
        "{e}"
    );
    let e = n
        .update(
            command::ADD_LAST,
            section::DNS_TXT,
            -1,
            "<txt name='a' value='b'/>",
        )
        .unwrap_err();
    assert!(matches!(e, UpdateError::Unsupported(_)), "{e}");
    // A refused update leaves the definition as it was.
    let before = n.clone();
    assert!(n
        .update(
            command::ADD_LAST,
            section::IP_DHCP_HOST,
            -1,
            "<host ip='192.168.122.4'/>"
        )
        .is_err());
    assert_eq!(n, before);
}
