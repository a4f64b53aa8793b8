//! Fuzzes the domain XML reader: any input must give a definition or an
//! error, never a panic; whatever it accepts must survive a write and a
//! re-read unchanged, and derivation must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvirt_domain::{derive_argv, Domain, RuntimePaths};

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
    let _ = derive_argv(&dom, &RuntimePaths::in_dir("/run/rvirt/fuzz"));
});
