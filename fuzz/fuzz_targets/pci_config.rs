//! Configuration space from the guest's side: a pc or q35 segment (the
//! chipset's functions, a root port, a virtio-pci function behind it and
//! one on the root bus) driven through CONFIG_ADDRESS/CONFIG_DATA and ECAM
//! with any value at any register, any size, any bus/slot/function, and
//! accesses to wherever the BARs then decode, and devices plugged behind
//! the root port, unplug requests and unplugs in between (the guest's
//! answer, powering the slot off, among the writes). Nothing may panic; the
//! identity registers never change; the BARs on the MMIO bus never
//! overlap (the bus refuses that) and every one is a BAR some function
//! decodes.
#![no_main]

use std::sync::{Arc, Mutex, Weak};

use libfuzzer_sys::fuzz_target;
use rvirt_bus::{Bus, BusDevice, SharedDevice};
use rvirt_pci::access::{ConfigIo, Ecam};
use rvirt_pci::bridge::RootPort;
use rvirt_pci::chipset::{i440fx, ich9, piix, q35, Preset};
use rvirt_pci::function::Placement;
use rvirt_pci::intx::PirqRouter;
use rvirt_pci::{FunctionInfo, PciSegment, SegmentBuilder, SharedFunction};
use rvirt_platform::{InterruptLine, MsiMessage, MsiVectors, TriggerMode};
use rvirt_virtio::transport::pci::{PciPlacement, PciTransport};
use rvirt_virtio::vm_memory::GuestAddress;
use rvirt_virtio::{ActivateContext, ActivateError, Memory, VirtioDevice};

struct Fake;

impl VirtioDevice for Fake {
    fn device_type(&self) -> u32 {
        2
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[16]
    }
    fn device_features(&self) -> u64 {
        0
    }
    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn activate(&mut self, _ctx: ActivateContext) -> Result<(), ActivateError> {
        Ok(())
    }
    fn reset(&mut self) {}
    fn process_queue(&mut self, _queue: u16) {}
}

struct Null;

impl InterruptLine for Null {
    fn trigger_mode(&self) -> TriggerMode {
        TriggerMode::Level
    }
    fn raise(&self) -> std::io::Result<()> {
        Ok(())
    }
}

impl MsiVectors for Null {
    fn count(&self) -> u16 {
        2
    }
    fn route(&self, _: u16, _: Option<MsiMessage>) -> std::io::Result<()> {
        Ok(())
    }
    fn raise(&self, _: u16) -> std::io::Result<()> {
        Ok(())
    }
}

struct Pm;

impl BusDevice for Pm {
    fn read(&mut self, _: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&mut self, _: u64, _: &[u8]) {}
}

struct World {
    segment: Arc<PciSegment>,
    config_io: ConfigIo,
    ecam: Ecam,
    mmio: Arc<Bus>,
    port: rvirt_pci::FunctionId,
    mem: Memory,
    router: Arc<PirqRouter>,
}

impl World {
    /// A virtio function for behind the port.
    fn transport(&self) -> SharedFunction {
        Arc::new(Mutex::new(PciTransport::new(
            Arc::new(Mutex::new(Fake)),
            self.mem.clone(),
            Arc::new(Null),
            self.router.source(0),
            PciPlacement::Express,
        )))
    }

    /// What is behind the port now.
    fn behind_port(&self) -> Option<rvirt_pci::FunctionId> {
        self.segment
            .functions()
            .into_iter()
            .find(|(_, i)| i.parent == Some(self.port))
            .map(|(id, _)| id)
    }
}

fn world(q35: bool) -> World {
    let pio = Arc::new(Bus::new("pio"));
    let mmio = Arc::new(Bus::new("mmio"));
    let mem = Memory::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
    let router = PirqRouter::new(
        (0..8)
            .map(|_| Arc::new(Null) as Arc<dyn InterruptLine>)
            .collect(),
        vec![None; 16],
    );
    let pm: SharedDevice = Arc::new(Mutex::new(Pm));
    pio.insert(pm.clone(), 0x600, 12).unwrap();
    let mut port_id = None;
    let segment = Arc::new_cyclic(|me: &Weak<PciSegment>| {
        let mut b = SegmentBuilder::new();
        let info = |parent, slot, function| FunctionInfo {
            id: None,
            parent,
            slot,
            function,
        };
        let f = |x: SharedFunction| x;
        let pm = Placement::new(pio.clone(), pm, 12, Some(0x600));
        if q35 {
            let ecam: SharedDevice = Arc::new(Mutex::new(Ecam::new(me.clone())));
            let ecam = Placement::new(mmio.clone(), ecam, 256 << 20, None);
            b.add(
                info(None, 0, 0),
                f(Arc::new(Mutex::new(q35::HostBridge::new(
                    ecam,
                    Preset::DirectBoot,
                    None,
                )))),
                false,
            )
            .unwrap();
            b.add(
                info(None, 31, 0),
                f(Arc::new(Mutex::new(ich9::Lpc::new(
                    router.clone(),
                    pm,
                    Preset::DirectBoot,
                )))),
                false,
            )
            .unwrap();
        } else {
            b.add(
                info(None, 0, 0),
                f(Arc::new(Mutex::new(i440fx::HostBridge::new(None)))),
                false,
            )
            .unwrap();
            b.add(
                info(None, 1, 0),
                f(Arc::new(Mutex::new(piix::IsaBridge::new(router.clone())))),
                false,
            )
            .unwrap();
            b.add(
                info(None, 1, 3),
                f(Arc::new(Mutex::new(piix::PowerManagement::new(
                    pm,
                    Preset::Reset,
                )))),
                false,
            )
            .unwrap();
        }
        let port = b
            .add(
                info(None, 2, 0),
                f(Arc::new(Mutex::new(RootPort::new(16, 1, true)))),
                true,
            )
            .unwrap();
        port_id = Some(port);
        for (parent, slot, placement) in [
            (Some(port), 0, PciPlacement::Express),
            (None, 3, PciPlacement::Conventional),
        ] {
            let t = PciTransport::new(
                Arc::new(Mutex::new(Fake)),
                mem.clone(),
                Arc::new(Null),
                router.source(0),
                placement,
            );
            b.add(info(parent, slot, 0), f(Arc::new(Mutex::new(t))), false)
                .unwrap();
        }
        b.build(pio.clone(), mmio.clone(), None)
    });
    segment.apply_all();
    World {
        config_io: ConfigIo::new(Arc::downgrade(&segment), None),
        ecam: Ecam::new(Arc::downgrade(&segment)),
        segment,
        mmio,
        port: port_id.expect("the port was added"),
        mem,
        router,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut ops)) = data.split_first() else {
        return;
    };
    let mut w = world(first & 1 != 0);
    let ids: std::collections::BTreeMap<_, u32> = w
        .segment
        .functions()
        .into_iter()
        .filter_map(|(id, _)| {
            let f = w.segment.function(id)?;
            let v = rvirt_pci::function::lock(&f).config().read_u32(0);
            Some((id, v))
        })
        .collect();
    // Each op: kind, then a 32-bit target and a 32-bit value.
    while ops.len() >= 9 {
        let (op, rest) = ops.split_at(9);
        ops = rest;
        let target = u32::from_le_bytes(op[1..5].try_into().unwrap());
        let value = &op[5..9];
        let len = [1usize, 2, 4, 4][usize::from(op[0] >> 6)];
        match op[0] & 7 {
            // CONFIG_ADDRESS, then CONFIG_DATA at one of its four ports.
            0 => {
                w.config_io.write(0, &target.to_le_bytes());
                let at = 4 + u64::from(op[0] >> 3 & 3);
                let len = len.min((8 - at) as usize);
                w.config_io.write(at, &value[..len]);
            }
            1 => {
                w.config_io.write(0, &target.to_le_bytes());
                let mut b = [0u8; 4];
                w.config_io.read(4, &mut b[..len]);
            }
            // ECAM: bus/slot/function/register from the target.
            2 => w.ecam.write(u64::from(target & 0x0fff_ffff), &value[..len]),
            3 => {
                let mut b = [0u8; 4];
                w.ecam.read(u64::from(target & 0x0fff_ffff), &mut b[..len]);
            }
            // A register of a function directly, odd sizes included.
            4 => {
                let bus = (target >> 16) as u8 & 3;
                let devfn = (target >> 8) as u8;
                let off = (target & 0xfff) as u16;
                w.segment
                    .write_config(bus, devfn, off, &value[..usize::from(op[0] >> 3 & 3) + 1]);
            }
            // Into whatever the BARs decode now.
            5 | 6 => {
                let ranges = w.mmio.ranges();
                if let Some(&(base, size)) = ranges.get(target as usize % ranges.len().max(1)) {
                    let at = base + u64::from(u32::from_le_bytes(value.try_into().unwrap())) % size;
                    if op[0] & 7 == 5 {
                        w.mmio.write(at, &value[..len]);
                    } else {
                        let mut b = [0u8; 4];
                        w.mmio.read(at, &mut b[..len]);
                    }
                }
            }
            // Hot-plug behind the port, an unplug request, an unplug.
            _ if target & 3 == 1 => {
                let info = FunctionInfo {
                    id: Some("hot".into()),
                    parent: Some(w.port),
                    slot: (target >> 8) as u8 & 1,
                    function: 0,
                };
                let t = w.transport();
                let _ = w.segment.plug(info, t);
            }
            _ if target & 3 == 2 => {
                if let Some(f) = w.segment.function(w.port) {
                    if let Some(p) = rvirt_pci::function::lock(&f).hotplug_port() {
                        p.push_attention_button();
                    }
                }
            }
            _ if target & 3 == 3 => {
                if let Some(id) = w.behind_port() {
                    w.segment.unplug(id).unwrap();
                }
            }
            _ => {
                let mut b = [0u8; 4];
                w.config_io.read(
                    u64::from(target % 8),
                    &mut b[..len.min(8 - (target % 8) as usize)],
                );
            }
        }
    }
    // A write may power a hot-plug slot off, which takes out what is
    // behind it; whatever is left keeps its identity.
    for (id, _) in w.segment.functions() {
        let Some(f) = w.segment.function(id) else {
            continue;
        };
        let f = rvirt_pci::function::lock(&f);
        // Plugged later: the fake device's identity (type 2, 1af4:1042).
        let want = ids.get(&id).copied().unwrap_or(0x1042_1af4);
        assert_eq!(f.config().read_u32(0), want, "identity changed");
        for (b, m) in w.segment.mapped(id).iter().enumerate() {
            if let Some(m) = m {
                let spec = f.config().bar(b).expect("a mapped BAR exists");
                assert_eq!(m.size, spec.size);
                assert!(m.base % m.size == 0);
            }
        }
    }
});
