use std::sync::Mutex;

use super::*;
use crate::bar::BarSpec;
use crate::bridge::RootPort;
use crate::caps;
use crate::config::{command, reg, ConfigSpace, Ids};
use crate::function::PciFunction;

/// An endpoint with a 4 KiB 32-bit BAR 0 whose bytes remember writes.
struct Dev {
    cfg: ConfigSpace,
    mem: [u8; 16],
}

impl Dev {
    fn shared() -> SharedFunction {
        let ids = Ids {
            vendor: 0x1af4,
            device: 0x1041,
            revision: 1,
            class: 0x020000,
            subsystem_vendor: 0x1af4,
            subsystem: 1,
        };
        let mut cfg = ConfigSpace::endpoint(&ids, true);
        cfg.add_bar(0, BarSpec::mem32(0x1000));
        Arc::new(Mutex::new(Dev { cfg, mem: [0; 16] }))
    }
}

impl PciFunction for Dev {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }
    fn read_bar(&mut self, _bar: u8, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = self.mem[(offset as usize + i) % 16];
        }
    }
    fn write_bar(&mut self, _bar: u8, offset: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            self.mem[(offset as usize + i) % 16] = *b;
        }
    }
}

#[derive(Default)]
struct Moves(Mutex<Vec<(usize, u8, Option<u64>)>>, Mutex<Vec<usize>>);

impl BarObserver for Moves {
    fn bar_moved(&self, f: FunctionId, bar: u8, m: Option<BarMapping>) {
        self.0.lock().unwrap().push((f.0, bar, m.map(|m| m.base)));
    }

    fn unplugged(&self, f: FunctionId, _: &FunctionInfo, _: SharedFunction) {
        self.1.lock().unwrap().push(f.0);
    }
}

struct World {
    seg: Arc<PciSegment>,
    mmio: Arc<Bus>,
    moves: Arc<Moves>,
}

/// Root bus: a device in slot 3, a root port in slot 2 with a device
/// behind it.
fn world() -> World {
    let mut b = SegmentBuilder::new();
    let root_dev = b.add(info(None, 3, 0), Dev::shared(), false).unwrap();
    let port = b
        .add(
            info(None, 2, 0),
            Arc::new(Mutex::new(RootPort::new(16, 1, true))),
            true,
        )
        .unwrap();
    b.add(info(Some(port), 0, 0), Dev::shared(), false).unwrap();
    assert_eq!(root_dev, FunctionId(0));
    assert_eq!(
        b.add(info(Some(port), 1, 0), Dev::shared(), false),
        Err(TopologyError::PortSlot)
    );
    assert_eq!(
        b.add(info(None, 3, 0), Dev::shared(), false),
        Err(TopologyError::Taken {
            slot: 3,
            function: 0
        })
    );
    assert_eq!(
        b.add(info(Some(root_dev), 0, 0), Dev::shared(), false),
        Err(TopologyError::NotABridge)
    );
    let pio = Arc::new(Bus::new("pio"));
    let mmio = Arc::new(Bus::new("mmio"));
    let moves = Arc::new(Moves::default());
    let seg = Arc::new(b.build(pio, mmio.clone(), Some(moves.clone())));
    World { seg, mmio, moves }
}

fn info(parent: Option<FunctionId>, slot: u8, function: u8) -> FunctionInfo {
    FunctionInfo {
        id: None,
        parent,
        slot,
        function,
    }
}

fn cw32(seg: &PciSegment, bus: u8, devfn: u8, reg: u16, v: u32) {
    seg.write_config(bus, devfn, reg, &v.to_le_bytes());
}

fn cr32(seg: &PciSegment, bus: u8, devfn: u8, reg: u16) -> u32 {
    let mut b = [0; 4];
    seg.read_config(bus, devfn, reg, &mut b);
    u32::from_le_bytes(b)
}

#[test]
fn config_cycles_follow_the_programmed_bus_numbers() {
    let w = world();
    let s = &w.seg;
    assert_eq!(cr32(s, 0, 3 << 3, 0), 0x1041_1af4);
    assert_eq!(cr32(s, 0, 2 << 3, 0), 0x000c_1b36);
    assert_eq!(cr32(s, 0, 4 << 3, 0), u32::MAX, "empty slot");
    assert_eq!(cr32(s, 1, 0, 0), u32::MAX, "bus 1 not programmed yet");
    // Secondary 1, subordinate 1.
    s.write_config(0, 2 << 3, 0x18, &[0, 1, 1, 0]);
    assert_eq!(cr32(s, 1, 0, 0), 0x1041_1af4);
    assert_eq!(cr32(s, 1, 1 << 3, 0), u32::MAX, "only slot 0 behind a port");
    assert_eq!(cr32(s, 2, 0, 0), u32::MAX);
    assert_eq!(s.bus_number(FunctionId(2)), Some(1));
    // A bridge programmed at its own bus forwards nothing.
    s.write_config(0, 2 << 3, 0x18, &[0, 0, 5, 0]);
    assert_eq!(cr32(s, 0, 3 << 3, 0), 0x1041_1af4);
    assert_eq!(cr32(s, 1, 0, 0), u32::MAX);
}

#[test]
fn bars_land_on_the_bus_move_and_go() {
    let w = world();
    let s = &w.seg;
    let dev = 3 << 3;
    cw32(s, 0, dev, 0x10, 0xc000_0000);
    assert!(w.mmio.ranges().is_empty(), "decode off");
    s.write_config(0, dev, 4, &[2, 0]);
    assert_eq!(w.mmio.ranges(), [(0xc000_0000, 0x1000)]);
    assert!(w.mmio.write(0xc000_0004, &[7]));
    let mut b = [0];
    w.mmio.read(0xc000_0004, &mut b);
    assert_eq!(b, [7]);
    cw32(s, 0, dev, 0x10, 0xc010_0000);
    assert_eq!(w.mmio.ranges(), [(0xc010_0000, 0x1000)]);
    w.mmio.read(0xc010_0004, &mut b);
    assert_eq!(b, [7], "the same device, moved");
    s.write_config(0, dev, 4, &[0, 0]);
    assert!(w.mmio.ranges().is_empty());
    assert_eq!(
        *w.moves.0.lock().unwrap(),
        [
            (0, 0, Some(0xc000_0000)),
            (0, 0, Some(0xc010_0000)),
            (0, 0, None)
        ]
    );
}

#[test]
fn bars_behind_a_bridge_decode_only_inside_its_windows() {
    let w = world();
    let s = &w.seg;
    let port = 2 << 3;
    s.write_config(0, port, 0x18, &[0, 1, 1, 0]);
    cw32(s, 1, 0, 0x10, 0xc020_0000);
    s.write_config(1, 0, 4, &[2, 0]);
    assert!(w.mmio.ranges().is_empty(), "the port forwards nothing yet");
    // Memory window 0xc0200000-0xc02fffff, then decode on the port.
    s.write_config(0, port, 0x20, &[0x20, 0xc0, 0x20, 0xc0]);
    s.write_config(0, port, 4, &[2, 0]);
    assert_eq!(w.mmio.ranges(), [(0xc020_0000, 0x1000)]);
    // Moving the device out of the window takes it off the bus.
    cw32(s, 1, 0, 0x10, 0xc040_0000);
    assert!(w.mmio.ranges().is_empty());
    // Moving the window over it brings it back.
    s.write_config(0, port, 0x20, &[0x40, 0xc0, 0x40, 0xc0]);
    assert_eq!(w.mmio.ranges(), [(0xc040_0000, 0x1000)]);
}

#[test]
fn overlapping_bars_are_refused_not_fatal() {
    let w = world();
    let s = &w.seg;
    s.write_config(0, 2 << 3, 0x18, &[0, 1, 1, 0]);
    s.write_config(0, 2 << 3, 0x20, &[0x00, 0xc0, 0xf0, 0xff]);
    s.write_config(0, 2 << 3, 4, &[2, 0]);
    for (bus, devfn) in [(0, 3 << 3), (1, 0)] {
        cw32(s, bus, devfn, 0x10, 0xc000_0000);
        s.write_config(bus, devfn, 4, &[2, 0]);
    }
    assert_eq!(w.mmio.ranges(), [(0xc000_0000, 0x1000)]);
    assert_eq!(s.mapped(FunctionId(2))[0], None);
    // Once the first moves away the second still needs a write to decode;
    // it does at its next one.
    cw32(s, 0, 3 << 3, 0x10, 0xd000_0000);
    s.write_config(1, 0, 4, &[2, 0]);
    assert_eq!(w.mmio.ranges().len(), 2);
    s.remove_all();
    assert!(w.mmio.ranges().is_empty());
}

proptest::proptest! {
    /// Random writes of any size to every register of every function,
    /// through bus numbers as programmed (so a bridge's own numbers may
    /// point anywhere, at itself included): no panic, no identity changes,
    /// and every BAR on the bus is one a function decodes, whole and
    /// aligned.
    #[test]
    fn random_config_writes_everywhere(writes in proptest::collection::vec(
        (0u8..4, 0u8..32, 0u8..8, 0u16..0x1000, proptest::collection::vec(proptest::prelude::any::<u8>(), 1..5)),
        0..300,
    )) {
        let w = world();
        let s = &w.seg;
        let ids: std::collections::BTreeMap<FunctionId, u32> = s
            .functions()
            .into_iter()
            .map(|(id, _)| (id, lock(&s.function(id).unwrap()).config().read_u32(0)))
            .collect();
        for (bus, slot, func, reg, data) in &writes {
            s.write_config(*bus, slot << 3 | func, *reg, data);
            let mut b = [0u8; 4];
            s.read_config(*bus, slot << 3 | func, *reg, &mut b[..data.len().min(4)]);
        }
        // A write may power the port's slot off, which takes the device
        // behind it out; whatever is left keeps its identity.
        for (id, _) in s.functions() {
            let f = s.function(id).unwrap();
            let f = lock(&f);
            proptest::prop_assert_eq!(f.config().read_u32(0), ids[&id]);
            for (b, m) in s.mapped(id).iter().enumerate() {
                if let Some(m) = m {
                    proptest::prop_assert_eq!(Some(m.size), f.config().bar(b).map(|s| s.size));
                    proptest::prop_assert!(m.base % m.size == 0);
                }
            }
        }
        let ranges = w.mmio.ranges();
        proptest::prop_assert!(ranges.windows(2).all(|r| r[0].0 + r[0].1 <= r[1].0));
    }
}

/// A device plugged behind an empty port while the guest runs: it answers
/// once plugged, its BARs decode where the guest puts them inside the
/// port's windows, and it is gone (BARs off the bus, the observer told,
/// configuration cycles unanswered) when the guest powers the slot off.
#[test]
fn hotplug_behind_a_port_and_eject() {
    let mut b = SegmentBuilder::new();
    let port = b
        .add(
            info(None, 2, 0),
            Arc::new(Mutex::new(RootPort::new(16, 1, false))),
            true,
        )
        .unwrap();
    let pio = Arc::new(Bus::new("pio"));
    let mmio = Arc::new(Bus::new("mmio"));
    let moves = Arc::new(Moves::default());
    let seg = Arc::new(b.build(pio, mmio.clone(), Some(moves.clone())));
    let devfn = 2 << 3;
    cw32(&seg, 0, devfn, reg::PRIMARY_BUS, 0x0001_0100);
    cw32(&seg, 0, devfn, reg::MEMORY_BASE, 0xc010_c010);
    cw32(&seg, 0, devfn, reg::COMMAND, u32::from(command::MEMORY));
    assert_eq!(cr32(&seg, 1, 0, 0), 0xffff_ffff, "empty slot");
    let dev = seg.plug(info(Some(port), 0, 0), Dev::shared()).unwrap();
    assert_eq!(
        seg.plug(info(Some(port), 0, 0), Dev::shared()),
        Err(TopologyError::Taken {
            slot: 0,
            function: 0
        })
    );
    assert_eq!(
        seg.plug(info(Some(port), 1, 0), Dev::shared()),
        Err(TopologyError::PortSlot)
    );
    assert_ne!(cr32(&seg, 1, 0, 0), 0xffff_ffff, "answers once plugged");
    cw32(&seg, 1, 0, reg::BAR0, 0xc010_0000);
    cw32(&seg, 1, 0, reg::COMMAND, u32::from(command::MEMORY));
    assert_eq!(seg.mapped(dev)[0].map(|m| m.base), Some(0xc010_0000));
    assert!(mmio.ranges().iter().any(|r| r.0 == 0xc010_0000));

    // The guest's answer to the attention button: power and indicator off.
    let pcie = lock(&seg.function(port).unwrap())
        .config()
        .find_capability(caps::PCIE_CAP_ID)
        .unwrap();
    let ctl_at = pcie + caps::slot::CONTROL;
    // The guest powers the slot on when it sees the device, as Linux.
    seg.write_config(0, devfn, ctl_at, &caps::slot::PIC_ON.to_le_bytes());
    assert_ne!(cr32(&seg, 1, 0, 0), 0xffff_ffff);
    let ctl = caps::slot::PCC | caps::slot::PIC_OFF;
    seg.write_config(0, devfn, ctl_at, &ctl.to_le_bytes());
    assert_eq!(cr32(&seg, 1, 0, 0), 0xffff_ffff, "gone after power-off");
    assert!(seg.function(dev).is_none());
    assert!(
        mmio.ranges().iter().all(|r| r.0 != 0xc010_0000),
        "BAR off the bus"
    );
    assert_eq!(*moves.1.lock().unwrap(), vec![dev.0]);
    assert!(moves.0.lock().unwrap().contains(&(dev.0, 0, None)));
    // Writing it again ejects nothing more; the port itself stays.
    seg.write_config(0, devfn, ctl_at, &ctl.to_le_bytes());
    assert_eq!(moves.1.lock().unwrap().len(), 1);
    assert!(seg.function(port).is_some());
    // A new device takes the slot and a new id.
    let again = seg.plug(info(Some(port), 0, 0), Dev::shared()).unwrap();
    assert_ne!(again, dev);
    seg.unplug(again).unwrap();
    assert_eq!(seg.unplug(again), Err(TopologyError::Gone));
}

/// The span above 4 GiB the ACPI 64-bit window is computed from: 64-bit
/// BARs and prefetchable windows with memory decode on, nothing else.
#[test]
fn the_span_above_4g_is_what_the_guest_placed() {
    const G: u64 = 1 << 30;
    let mut b = SegmentBuilder::new();
    let ids = Ids {
        vendor: 0x1af4,
        device: 0x1042,
        revision: 1,
        class: 0x010000,
        subsystem_vendor: 0x1af4,
        subsystem: 2,
    };
    let mut cfg = ConfigSpace::endpoint(&ids, false);
    cfg.add_bar(0, BarSpec::mem64(0x4000, true));
    let dev: SharedFunction = Arc::new(Mutex::new(Dev { cfg, mem: [0; 16] }));
    b.add(info(None, 4, 0), dev, false).unwrap();
    b.add(info(None, 3, 0), Dev::shared(), false).unwrap();
    let port: SharedFunction = Arc::new(Mutex::new(RootPort::new(16, 1, true)));
    b.add(info(None, 2, 0), port, true).unwrap();
    let seg = Arc::new(b.build(Arc::new(Bus::new("pio")), Arc::new(Bus::new("mmio")), None));
    // The root bridge's DSDT node reads the span each time it is built.
    let node = crate::acpi::LiveRootBridge {
        bridge: crate::acpi::RootBridge {
            express: false,
            mem32: (0xc000_0000, 0xfebf_ffff),
            mem64: None,
            routes: Vec::new(),
            ecam: None,
        },
        segment: Arc::downgrade(&seg),
        floor: 5 * G,
        size: crate::acpi::PC_HOLE64_SIZE,
    };
    let has = |needle: u64| {
        let mut aml = Vec::new();
        acpi_tables::Aml::to_aml_bytes(&node, &mut aml);
        aml.windows(8).any(|w| w == needle.to_le_bytes())
    };
    assert!(
        has(5 * G) && has(7 * G - 1),
        "from the floor before firmware"
    );
    // The 32-bit device's BAR counts for nothing, placed or not.
    cw32(&seg, 0, 3 << 3, 0x10, 0xc000_0000);
    cw32(&seg, 0, 3 << 3, 0x04, 2);
    assert_eq!(seg.used_above_4g(), None);
    // The 64-bit BAR at 4 GiB + 16 KiB: counted only with decode on.
    cw32(&seg, 0, 4 << 3, 0x10, 0x4000);
    cw32(&seg, 0, 4 << 3, 0x14, 1);
    assert_eq!(seg.used_above_4g(), None);
    cw32(&seg, 0, 4 << 3, 0x04, 2);
    assert_eq!(seg.used_above_4g(), Some((4 * G + 0x4000, 4 * G + 0x7fff)));
    // The port's prefetchable window at 5 GiB (1 MiB) widens it.
    cw32(&seg, 0, 2 << 3, 0x24, 0x4000_4000);
    cw32(&seg, 0, 2 << 3, 0x28, 1);
    cw32(&seg, 0, 2 << 3, 0x2c, 1);
    assert_eq!(seg.used_above_4g(), Some((4 * G + 0x4000, 4 * G + 0x7fff)));
    cw32(&seg, 0, 2 << 3, 0x04, 2);
    assert_eq!(
        seg.used_above_4g(),
        Some((4 * G + 0x4000, 5 * G + 0xf_ffff))
    );
    assert!(
        has(4 * G + 0x4000) && has(7 * G - 1),
        "from where it was placed"
    );
    assert!(!has(5 * G), "the floor is gone");
}
