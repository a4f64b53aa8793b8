//! The MSI-X table and PBA from the guest's side: reads and writes of any
//! size at any offset, Message Control changes and interrupts from the
//! device, in any order. Nothing may panic; a vector is delivered only
//! while enabled and unmasked (by its own bit and the function's), and a
//! vector raised while masked is delivered exactly once when unmasked.
#![no_main]

use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use rvirt_pci::msix::Msix;
use rvirt_platform::{MsiMessage, MsiVectors};

const VECTORS: u16 = 5;

/// Delivers vectors, checking each against the table's state.
struct Checker {
    raised: Mutex<Vec<u16>>,
}

impl MsiVectors for Checker {
    fn count(&self) -> u16 {
        VECTORS
    }
    fn route(&self, vector: u16, _: Option<MsiMessage>) -> std::io::Result<()> {
        assert!(vector < VECTORS);
        Ok(())
    }
    fn raise(&self, vector: u16) -> std::io::Result<()> {
        assert!(vector < VECTORS);
        self.raised.lock().unwrap().push(vector);
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let out = Arc::new(Checker {
        raised: Mutex::new(Vec::new()),
    });
    let m = Msix::new(VECTORS, out.clone());
    let mut ops = data;
    while ops.len() >= 6 {
        let (op, rest) = ops.split_at(6);
        ops = rest;
        let offset = u64::from(u16::from_le_bytes([op[1], op[2]])) % 0x120;
        let value = [op[3], op[4], op[5], op[3], op[4], op[5], op[3], op[4]];
        let len = [1usize, 2, 4, 8][usize::from(op[0] >> 6)];
        match op[0] & 7 {
            0 => m.write_table(offset, &value[..len]),
            1 => {
                let mut b = [0u8; 8];
                m.read_table(offset, &mut b[..len]);
            }
            2 => {
                let mut b = [0u8; 8];
                m.read_pba(offset, &mut b[..len]);
            }
            3 => m.set_control(op[3] & 1 != 0, op[3] & 2 != 0),
            4 => m.reset(),
            _ => {
                let v = u16::from(op[3]) % (VECTORS + 1);
                let deliverable = v < VECTORS && m.enabled() && !m.masked(v);
                let before = out.raised.lock().unwrap().len();
                let r = m.trigger(v);
                let after = out.raised.lock().unwrap().len();
                assert_eq!(r.is_err(), v >= VECTORS);
                // Delivered now if deliverable, else latched.
                assert_eq!(after - before, usize::from(deliverable));
                if v < VECTORS && !deliverable {
                    assert!(m.pending(v));
                }
            }
        }
        // No vector deliverable now is still pending: unmasking fired it.
        for v in 0..VECTORS {
            if m.enabled() && !m.masked(v) {
                assert!(!m.pending(v), "vector {v} unmasked but pending");
            }
        }
    }
});
