//! The virtio-mmio register file: reads and writes of any size at any
//! offset, driving the transport core through the Status handshake,
//! feature negotiation, queue setup, activation, kicks and reset, over a
//! fake device that signals interrupts. Nothing may panic; the Status
//! register never shows a step without the steps before it; a reset
//! always brings every register back.
#![no_main]

mod common;

use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use rvirt_bus::BusDevice;
use rvirt_platform::{InterruptLine, TriggerMode};
use rvirt_virtio::mmio::{MmioTransport, ACK, DRIVER, DRIVER_OK, FEATURES_OK};
use rvirt_virtio::{ActivateContext, ActivateError, VirtioDevice, VirtioInterrupt};

/// Register offsets (virtio-mmio version 2).
const QUEUE_SEL: u64 = 0x30;
const QUEUE_READY: u64 = 0x44;
const INTERRUPT_STATUS: u64 = 0x60;
const STATUS: u64 = 0x70;

/// Two queues, a few feature bits, 16 bytes of writable config; signals
/// a used buffer on every kick once active.
struct Fake {
    config: [u8; 16],
    interrupt: Option<Arc<dyn VirtioInterrupt>>,
}

impl VirtioDevice for Fake {
    fn device_type(&self) -> u32 {
        4
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[16, 8]
    }
    fn device_features(&self) -> u64 {
        1 | 1 << 5
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|o| self.config.get(o))
                .copied()
                .unwrap_or(0);
        }
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            let at = usize::try_from(offset).ok().and_then(|o| o.checked_add(i));
            if let Some(slot) = at.and_then(|o| self.config.get_mut(o)) {
                *slot = *b;
            }
        }
        if let Some(irq) = &self.interrupt {
            irq.signal_config_change();
        }
    }
    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        if ctx.queues.len() != 2 {
            return Err(ActivateError::QueueCount {
                expected: 2,
                got: ctx.queues.len(),
            });
        }
        self.interrupt = Some(ctx.interrupt);
        Ok(())
    }
    fn reset(&mut self) {
        self.interrupt = None;
    }
    fn process_queue(&mut self, queue: u16) {
        if let Some(irq) = &self.interrupt {
            match queue {
                0 | 1 => irq.signal_used_queue(queue),
                _ => irq.signal_needs_reset(),
            }
        }
    }
}

struct Line;

impl InterruptLine for Line {
    fn trigger_mode(&self) -> TriggerMode {
        TriggerMode::Edge
    }
    fn raise(&self) -> std::io::Result<()> {
        Ok(())
    }
}

fn read32(t: &mut MmioTransport, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    t.read(offset, &mut b);
    u32::from_le_bytes(b)
}

/// Every Status step implies the ones before it.
fn check_status(t: &mut MmioTransport) {
    let s = read32(t, STATUS);
    if s & DRIVER_OK != 0 {
        assert_ne!(s & FEATURES_OK, 0, "DRIVER_OK without FEATURES_OK: {s:#x}");
    }
    if s & FEATURES_OK != 0 {
        assert_ne!(s & DRIVER, 0, "FEATURES_OK without DRIVER: {s:#x}");
    }
    if s & DRIVER != 0 {
        assert_ne!(s & ACK, 0, "DRIVER without ACKNOWLEDGE: {s:#x}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    let mem = common::memory(&[]);
    let fake = Arc::new(Mutex::new(Fake {
        config: [0; 16],
        interrupt: None,
    }));
    let device: Arc<Mutex<dyn VirtioDevice>> = fake.clone();
    let mut t = MmioTransport::new(device, mem, Arc::new(Line));
    while let Some((&op, rest)) = input.split_first() {
        input = rest;
        let size = [1usize, 2, 4, 8][usize::from(op >> 2 & 3)];
        match op & 3 {
            // A read of any size anywhere in (and past) the window.
            0 => {
                let off = common::take(&mut input, 2);
                let off = u64::from(
                    u16::from_le_bytes([
                        off.first().copied().unwrap_or(0),
                        off.get(1).copied().unwrap_or(0),
                    ]) & 0x1ff,
                );
                let mut buf = [0u8; 8];
                t.read(off, &mut buf[..size]);
            }
            // A write of any size anywhere.
            1 => {
                let off = common::take(&mut input, 2);
                let off = u64::from(
                    u16::from_le_bytes([
                        off.first().copied().unwrap_or(0),
                        off.get(1).copied().unwrap_or(0),
                    ]) & 0x1ff,
                );
                let value = common::take(&mut input, size);
                t.write(off, value);
            }
            // A well-formed register write: 32 bits at an aligned offset,
            // the way a driver walks the handshake.
            2 => {
                let reg = common::take(&mut input, 1);
                let off = u64::from(reg.first().copied().unwrap_or(0)) * 4 & 0xfc;
                let mut v = [0u8; 4];
                let bytes = common::take(&mut input, 4);
                v[..bytes.len()].copy_from_slice(bytes);
                t.write(off, &v);
            }
            // The device side: a kick served (or a broken queue).
            _ => {
                let q = common::take(&mut input, 1).first().copied().unwrap_or(0);
                fake.lock().unwrap().process_queue(u16::from(q % 3));
            }
        }
        check_status(&mut t);
    }
    // A reset always brings the device back.
    t.write(STATUS, &0u32.to_le_bytes());
    assert_eq!(read32(&mut t, STATUS), 0);
    assert_eq!(read32(&mut t, INTERRUPT_STATUS), 0);
    for q in 0..2u32 {
        t.write(QUEUE_SEL, &q.to_le_bytes());
        assert_eq!(read32(&mut t, QUEUE_READY), 0);
    }
    assert!(fake.lock().unwrap().interrupt.is_none());
});
