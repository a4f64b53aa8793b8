//! The input devices as a guest and the console drive them together: the
//! i8042's ports (any command, any data byte, in any order) interleaved
//! with console keys and pointer motion; a virtio-input device's
//! configuration space (select and subsel written at any offset and
//! length, read anywhere) and events sent over arbitrary guest memory
//! under its queues. Nothing may panic or hang; the controller never holds
//! more than its queues allow, the device never more than MAX_PENDING
//! events, and a config answer is never longer than its 128 bytes.
#![no_main]

mod common;

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rvirt_bus::BusDevice;
use rvirt_devices::I8042;
use rvirt_platform::{VmControl, VmRequest};
use rvirt_virtio::input::{Input, InputEvent, InputKind, CONFIG_SIZE, MAX_PENDING};
use rvirt_virtio::{ActivateContext, VirtioDevice, VirtioInterrupt};

struct NoControl;
impl VmControl for NoControl {
    fn request(&self, _: VmRequest) {}
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let head = common::take(&mut data, 2);
    let (kind, mode) = match head {
        [k, m] => (*k, *m),
        _ => return,
    };
    // A little guest memory (the rings and a few buffers), the rest ops.
    let image = common::take(&mut data, usize::from(mode & 0x1f) * 32);
    let mem = common::memory(image);
    let mut ps2 = I8042::new(None, None, Arc::new(NoControl));
    let mut input = Input::new(match kind % 3 {
        0 => InputKind::Keyboard,
        1 => InputKind::Mouse,
        _ => InputKind::Tablet,
    });
    let interrupt: Arc<dyn VirtioInterrupt> = Arc::new(common::NoIrq);
    if mode & 0x80 != 0 {
        input
            .activate(ActivateContext {
                mem: mem.clone(),
                queues: vec![common::queue(0, mode), common::queue(1, mode >> 2)],
                interrupt,
                acked_features: common::VERSION_1,
            })
            .unwrap();
    }
    for op in data.chunks_exact(4).take(2048) {
        let (a, b, c) = (op[1], op[2], op[3]);
        match op[0] % 9 {
            0 => ps2.write(4, &[a]),
            1 => ps2.write(0, &[a]),
            2 => {
                let mut buf = [0u8; 4];
                ps2.read(u64::from(a % 6), &mut buf[..usize::from(b % 4) + 1]);
            }
            3 => ps2.key(u16::from_le_bytes([a, b]), c & 1 != 0),
            4 => ps2.mouse(i32::from(a as i8) * 300, i32::from(b as i8) * 300, i32::from(c as i8), c),
            5 => input.write_config(u64::from(a % 160), &[b, c][..usize::from(c % 3)]),
            6 => {
                let mut buf = [0u8; 16];
                let len = usize::from(b % 16) + 1;
                input.read_config(u64::from(a), &mut buf[..len]);
                if u64::from(a) >= CONFIG_SIZE as u64 {
                    assert!(buf[..len].iter().all(|&x| x == 0));
                }
            }
            7 => {
                let n = usize::from(c % 8);
                let events: Vec<InputEvent> = (0..n)
                    .map(|i| InputEvent::new(u16::from(a), u16::from(b), i as i32))
                    .collect();
                input.send(&events);
            }
            _ => input.process_queue(u16::from(a % 3)),
        }
        assert!(input.pending() <= MAX_PENDING);
    }
    let mut size = [0u8; 1];
    input.read_config(2, &mut size);
    assert!(size[0] <= 128);
    // Everything the controller holds comes out, and not without bound.
    let mut n = 0;
    loop {
        let mut st = [0u8];
        ps2.read(4, &mut st);
        if st[0] & 1 == 0 {
            break;
        }
        ps2.read(0, &mut st);
        n += 1;
        assert!(n < 1024, "the i8042 keeps producing bytes");
    }
});
