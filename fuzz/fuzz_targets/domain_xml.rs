//! Fuzzes the domain XML reader: any input must give a definition or an
//! error, never a panic; whatever it accepts must survive a write and a
//! re-read unchanged, and neither fill-in (PCI addresses and controllers
//! included: rvirtd runs it on every definition) nor derivation may
//! panic; filling in twice changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvirt_domain::{derive_argv, Domain, Random, RuntimePaths};

/// A fixed source for UUIDs and MACs, so a failure replays.
struct Fixed;

impl Random for Fixed {
    fn bytes16(&mut self) -> [u8; 16] {
        [7; 16]
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(dom) = Domain::from_xml(text) else {
        return;
    };
    let out = dom.to_xml();
    let again = Domain::from_xml(&out).expect("own output must parse");
    assert_eq!(dom, again, "model changed through the writer");
    assert_eq!(out, again.to_xml(), "second write differs");
    let paths = RuntimePaths::in_dir("/run/rvirt/fuzz");
    let _ = derive_argv(&dom, &paths);
    let mut filled = dom;
    filled.fill_in_with(&mut Fixed);
    let _ = derive_argv(&filled, &paths);
    let mut twice = filled.clone();
    twice.fill_in_with(&mut Fixed);
    assert_eq!(twice, filled, "filling in twice changed the definition");
});
