//! Fuzzes rvirt-vmm's command-line parser, which users and rvirtd feed:
//! the input, split at NUL bytes, is the argument list. Any input must give
//! a config or an error, never a panic; a config's disks must answer their
//! effective options.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvirt_vmm_config::{parse, Action, VirtioConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let args: Vec<&str> = text.split('\0').collect();
    match parse(&args) {
        Ok(Action::Run(cfg)) => {
            for v in &cfg.virtio {
                if let VirtioConfig::Blk(d) = v {
                    let _ = (d.path(), d.cache(), d.aio(), d.read_only(), d.discard());
                }
            }
        }
        Ok(_) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
