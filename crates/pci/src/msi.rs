//! MSI: the capability (64-bit address, optional per-vector masking) and
//! its delivery through the machine's [`MsiVectors`].
//!
//! The guest programs one address and data and enables a power of two of
//! vectors; vector `v` sends the data with its low bits replaced by `v`.
//! With per-vector masking a masked vector latches its pending bit (read
//! through configuration space) and fires when unmasked. Every register
//! lives in configuration space; [`Msi`] keeps what delivery needs, under
//! a short mutex shared with the interrupt source.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use rvirt_platform::{MsiMessage, MsiVectors};

use crate::config::{overlaps, ConfigSpace};

/// The MSI capability's ID.
pub const CAP_ID: u8 = 0x05;
/// Message Control bits.
pub const ENABLE: u16 = 1;
const ADDR_64: u16 = 1 << 7;
const PER_VECTOR_MASK: u16 = 1 << 8;

/// Where the capability is and what it offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsiCapability {
    pub offset: u16,
    /// 1, 2, 4, 8, 16 or 32.
    pub vectors: u8,
    pub per_vector_mask: bool,
}

impl MsiCapability {
    /// Adds a 64-bit MSI capability with `vectors` vectors.
    ///
    /// # Panics
    /// For a vector count the spec does not have (a device model bug).
    pub fn add(cfg: &mut ConfigSpace, vectors: u8, per_vector_mask: bool) -> Self {
        Self::add_maybe_at(cfg, None, vectors, per_vector_mask)
    }

    /// [`MsiCapability::add`] at the fixed offset `at` (see
    /// [`ConfigSpace::add_capability_at`]).
    pub fn add_at(cfg: &mut ConfigSpace, at: u16, vectors: u8, per_vector_mask: bool) -> Self {
        Self::add_maybe_at(cfg, Some(at), vectors, per_vector_mask)
    }

    fn add_maybe_at(
        cfg: &mut ConfigSpace,
        at: Option<u16>,
        vectors: u8,
        per_vector_mask: bool,
    ) -> Self {
        assert!(vectors.is_power_of_two() && vectors <= 32, "MSI vectors");
        let len = if per_vector_mask { 24 } else { 14 };
        let offset = match at {
            Some(at) => cfg.add_capability_at(at, CAP_ID, len),
            None => cfg.add_capability(CAP_ID, len),
        };
        let mmc = u16::try_from(vectors.trailing_zeros()).expect("at most 5");
        let pvm = if per_vector_mask { PER_VECTOR_MASK } else { 0 };
        cfg.set_u16(offset + 2, (mmc << 1) | ADDR_64 | pvm);
        // Enable and Multiple Message Enable are the guest's.
        cfg.set_wmask_u16(offset + 2, ENABLE | 0x70);
        cfg.set_wmask_u32(offset + 4, !0x3);
        cfg.set_wmask_u32(offset + 8, u32::MAX);
        cfg.set_wmask_u16(offset + 12, u16::MAX);
        if per_vector_mask {
            let bits = if vectors == 32 {
                u32::MAX
            } else {
                (1u32 << vectors) - 1
            };
            cfg.set_wmask_u32(offset + 16, bits);
        }
        MsiCapability {
            offset,
            vectors,
            per_vector_mask,
        }
    }

    /// Whether a config write of `len` bytes at `offset` reached the
    /// capability.
    pub fn written(&self, offset: u16, len: usize) -> bool {
        overlaps(offset, len, self.offset, 24)
    }

    /// Where the pending bits are, if the capability has them.
    pub fn pending_offset(&self) -> Option<u16> {
        self.per_vector_mask.then_some(self.offset + 20)
    }
}

#[derive(Default)]
struct State {
    enabled: bool,
    /// Vectors the guest enabled (a power of two).
    count: u32,
    address: u64,
    data: u16,
    mask: u32,
    pending: u32,
    routed: Vec<Option<MsiMessage>>,
}

/// A function's MSI vectors.
pub struct Msi {
    cap: MsiCapability,
    state: Mutex<State>,
    out: Arc<dyn MsiVectors>,
}

impl Msi {
    pub fn new(cap: MsiCapability, out: Arc<dyn MsiVectors>) -> Self {
        Msi {
            cap,
            state: Mutex::new(State {
                routed: vec![None; usize::from(cap.vectors)],
                ..State::default()
            }),
            out,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the guest enabled MSI.
    pub fn enabled(&self) -> bool {
        self.lock().enabled
    }

    /// The pending bits, for configuration reads of the Pending register.
    pub fn pending_bits(&self) -> u32 {
        self.lock().pending
    }

    /// The guest wrote the capability: take in the new registers, route
    /// the enabled vectors, fire pending ones now unmasked.
    pub fn config_written(&self, cfg: &ConfigSpace) {
        let o = self.cap.offset;
        let control = cfg.read_u16(o + 2);
        let mut st = self.lock();
        st.enabled = control & ENABLE != 0;
        // Multiple Message Enable, capped at what the function offers.
        st.count = (1u32 << ((control >> 4) & 7).min(5)).min(u32::from(self.cap.vectors));
        st.address = u64::from(cfg.read_u32(o + 4)) | (u64::from(cfg.read_u32(o + 8)) << 32);
        st.data = cfg.read_u16(o + 12);
        st.mask = if self.cap.per_vector_mask {
            cfg.read_u32(o + 16)
        } else {
            0
        };
        for v in 0..st.count {
            if !st.enabled || st.mask & (1 << v) != 0 {
                continue;
            }
            if let Err(error) = self.route(&mut st, v) {
                tracing::warn!(%error, vector = v, "cannot route an MSI vector");
                continue;
            }
            if st.pending & (1 << v) != 0 {
                st.pending &= !(1 << v);
                if let Err(error) = self.out.raise(v as u16) {
                    tracing::warn!(%error, vector = v, "cannot deliver a pending MSI vector");
                }
            }
        }
    }

    fn route(&self, st: &mut State, v: u32) -> io::Result<()> {
        let low = (st.count - 1) as u16;
        let message = MsiMessage {
            address: st.address,
            data: u32::from((st.data & !low) | (v as u16 & low)),
        };
        let slot = &mut st.routed[v as usize];
        if *slot != Some(message) {
            self.out.route(v as u16, Some(message))?;
            *slot = Some(message);
        }
        Ok(())
    }

    /// Signals vector `v`: delivered if MSI is enabled, `v` is one of the
    /// enabled vectors and unmasked; latched if masked; else dropped.
    pub fn trigger(&self, v: u16) -> io::Result<()> {
        let mut st = self.lock();
        let v = u32::from(v);
        if !st.enabled || v >= st.count {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("MSI vector {v} is not enabled"),
            ));
        }
        if st.mask & (1 << v) != 0 {
            st.pending |= 1 << v;
            return Ok(());
        }
        self.route(&mut st, v)?;
        self.out.raise(v as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Ids;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl MsiVectors for Recorder {
        fn count(&self) -> u16 {
            4
        }
        fn route(&self, vector: u16, message: Option<MsiMessage>) -> io::Result<()> {
            let m = message.unwrap();
            self.0
                .lock()
                .unwrap()
                .push(format!("route {vector} {:#x}", m.data));
            Ok(())
        }
        fn raise(&self, vector: u16) -> io::Result<()> {
            self.0.lock().unwrap().push(format!("raise {vector}"));
            Ok(())
        }
    }

    #[test]
    fn vectors_carry_their_number_and_masking_latches() {
        let ids = Ids {
            vendor: 0x8086,
            device: 1,
            revision: 0,
            class: 0,
            subsystem_vendor: 0,
            subsystem: 0,
        };
        let mut cfg = ConfigSpace::endpoint(&ids, false);
        let cap = MsiCapability::add(&mut cfg, 4, true);
        let out = Arc::new(Recorder::default());
        let msi = Msi::new(cap, out.clone());
        assert!(msi.trigger(0).is_err(), "not enabled");
        let o = cap.offset;
        cfg.write(o + 4, &0xfee0_0000u32.to_le_bytes());
        cfg.write(o + 12, &0x40u16.to_le_bytes());
        cfg.write(o + 16, &0b10u32.to_le_bytes());
        // Enable with 4 vectors (MME = 2).
        cfg.write(o + 2, &(ENABLE | (2 << 4)).to_le_bytes());
        assert!(cap.written(o + 2, 2));
        msi.config_written(&cfg);
        msi.trigger(3).unwrap();
        msi.trigger(1).unwrap();
        assert_eq!(msi.pending_bits(), 0b10);
        cfg.write(o + 16, &0u32.to_le_bytes());
        msi.config_written(&cfg);
        assert_eq!(msi.pending_bits(), 0);
        let log = out.0.lock().unwrap().clone();
        assert!(log.starts_with(&["route 0 0x40".into(), "route 2 0x42".into()]));
        assert!(log.ends_with(&["route 1 0x41".into(), "raise 1".into()]));
        assert!(msi.trigger(4).is_err(), "only 4 enabled");
        assert_eq!(
            cfg.read_u16(o + 2) & 0x180,
            0x180,
            "64-bit, per-vector mask"
        );
    }
}
