//! Fuzzes the network XML reader: any input must give a definition or an
//! error, never a panic; whatever it accepts must survive a fill-in, a
//! write and a re-read unchanged, and a `net-update` of a DHCP host built
//! from the input must leave the definition valid or unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvirt_domain::network::update::{command, section};
use rvirt_domain::network::Network;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut net) = Network::from_xml(text) else {
        return;
    };
    if net.fill_in(&|b| b == "virbr0").is_err() {
        return;
    }
    let out = net.to_xml();
    let again = Network::from_xml(&out).expect("own output must parse");
    assert_eq!(net, again, "model changed through the writer");
    assert_eq!(out, again.to_xml(), "second write differs");
    let before = net.clone();
    for cmd in [command::ADD_LAST, command::MODIFY, command::DELETE] {
        let mut n = before.clone();
        match n.update(cmd, section::IP_DHCP_HOST, -1, text) {
            Ok(()) => assert!(n.validate().is_ok(), "an update left an invalid definition"),
            Err(_) => assert_eq!(n, before, "a refused update changed the definition"),
        }
    }
});
