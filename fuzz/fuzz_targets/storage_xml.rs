//! Fuzzes the storage pool and volume XML readers: any input gives a
//! definition or an error, never a panic; what is accepted survives a
//! write and a re-read unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvirt_domain::storage::{Pool, Volume};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pool) = Pool::from_xml(text) {
        let out = pool.to_xml();
        let again = Pool::from_xml(&out).expect("own pool output must parse");
        assert_eq!(pool, again, "pool changed through the writer");
        assert_eq!(out, again.to_xml(), "second pool write differs");
    }
    if let Ok(vol) = Volume::from_xml(text) {
        let out = vol.to_xml();
        let again = Volume::from_xml(&out).expect("own volume output must parse");
        assert_eq!(vol, again, "volume changed through the writer");
        assert_eq!(out, again.to_xml(), "second volume write differs");
    }
});
