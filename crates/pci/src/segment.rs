//! A PCI segment: the root bus with its functions, the bridges on it and
//! the buses behind them, reached by bus number the way the guest (or
//! firmware) programmed each bridge's secondary and subordinate numbers.
//!
//! The segment also keeps the machine's buses in step with what the
//! functions decode. After every configuration write it asks the written
//! function (and, for a bridge, everything behind it) where its BARs decode,
//! keeps only those inside every upstream bridge's windows, and inserts,
//! moves or removes the BARs' ranges on the port or MMIO bus, telling the
//! [`BarObserver`] (the VMM, which moves the ioeventfds in them).
//!
//! Lock order: the segment's mutex (held for the whole of a configuration
//! write, so writes and the moves they cause are serialized), then one
//! function's mutex at a time (never two), then the bus's writers' mutex
//! and the observer (leaves). Configuration reads take only the function's
//! mutex. BAR accesses take only the function's mutex (through the bus).

use std::sync::{Arc, Mutex, MutexGuard};

use rvirt_bus::{Bus, SharedDevice};

use crate::bar::{AddressSpace, BarMapping};
use crate::config::{BridgeWindows, HeaderType, BAR_SLOTS};
use crate::function::{lock, BarRegion, SharedFunction};

/// A function's index in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionId(pub usize);

/// Where a function sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInfo {
    /// The device's id (`-device …,id=`), if it has one.
    pub id: Option<String>,
    /// The bridge whose secondary bus it is on; `None`: the root bus.
    pub parent: Option<FunctionId>,
    /// Slot (device) number, 0-31.
    pub slot: u8,
    /// Function number, 0-7.
    pub function: u8,
}

impl FunctionInfo {
    /// Slot and function as one byte (`slot << 3 | function`).
    pub fn devfn(&self) -> u8 {
        (self.slot << 3) | self.function
    }
}

/// Told when a BAR starts, stops or moves decoding.
pub trait BarObserver: Send + Sync {
    /// BAR `bar` of `function` decodes at `mapping` now (`None`: nowhere).
    fn bar_moved(&self, function: FunctionId, bar: u8, mapping: Option<BarMapping>);
}

/// Why a topology cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopologyError {
    #[error("slot {slot} function {function} is taken")]
    Taken { slot: u8, function: u8 },
    #[error("slot {0} does not exist")]
    NoSuchSlot(u8),
    #[error("the parent is not a bridge")]
    NotABridge,
    #[error("a PCI Express port has only slot 0 behind it")]
    PortSlot,
}

struct Node {
    info: FunctionInfo,
    function: SharedFunction,
    bridge: bool,
    /// Only slot 0 decodes behind it (a PCI Express downstream port).
    express_port: bool,
}

/// Builds a segment's topology before the guest runs.
#[derive(Default)]
pub struct SegmentBuilder {
    nodes: Vec<Node>,
}

impl SegmentBuilder {
    pub fn new() -> Self {
        SegmentBuilder::default()
    }

    /// Adds `function` at `info`'s place; `express_port` for a PCI Express
    /// port (only slot 0 behind it).
    pub fn add(
        &mut self,
        info: FunctionInfo,
        function: SharedFunction,
        express_port: bool,
    ) -> Result<FunctionId, TopologyError> {
        if info.slot >= 32 || info.function >= 8 {
            return Err(TopologyError::NoSuchSlot(info.slot));
        }
        if let Some(p) = info.parent {
            let parent = self.nodes.get(p.0).ok_or(TopologyError::NotABridge)?;
            if !parent.bridge {
                return Err(TopologyError::NotABridge);
            }
            if parent.express_port && info.slot != 0 {
                return Err(TopologyError::PortSlot);
            }
        }
        if self
            .nodes
            .iter()
            .any(|n| n.info.parent == info.parent && n.info.devfn() == info.devfn())
        {
            return Err(TopologyError::Taken {
                slot: info.slot,
                function: info.function,
            });
        }
        let bridge = lock(&function).config().header() == HeaderType::Bridge;
        self.nodes.push(Node {
            info,
            function,
            bridge,
            express_port,
        });
        Ok(FunctionId(self.nodes.len() - 1))
    }

    /// The segment, its BARs to be placed on `pio` and `mmio`.
    pub fn build(
        self,
        pio: Arc<Bus>,
        mmio: Arc<Bus>,
        observer: Option<Arc<dyn BarObserver>>,
    ) -> PciSegment {
        let n = self.nodes.len();
        PciSegment {
            nodes: self.nodes,
            applied: Mutex::new(vec![[None; BAR_SLOTS]; n]),
            pio,
            mmio,
            observer,
        }
    }
}

/// The functions of one segment and what their BARs decode.
pub struct PciSegment {
    nodes: Vec<Node>,
    /// Where each function's BARs are on the machine's buses.
    applied: Mutex<Vec<[Option<BarMapping>; BAR_SLOTS]>>,
    pio: Arc<Bus>,
    mmio: Arc<Bus>,
    observer: Option<Arc<dyn BarObserver>>,
}

impl PciSegment {
    fn applied(&self) -> MutexGuard<'_, Vec<[Option<BarMapping>; BAR_SLOTS]>> {
        self.applied.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every function, in the order added.
    pub fn functions(&self) -> impl Iterator<Item = (FunctionId, &FunctionInfo)> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (FunctionId(i), &n.info))
    }

    /// The function `id`.
    pub fn function(&self, id: FunctionId) -> &SharedFunction {
        &self.nodes[id.0].function
    }

    /// Where `id` sits.
    pub fn info(&self, id: FunctionId) -> &FunctionInfo {
        &self.nodes[id.0].info
    }

    /// Whether `id` is a bridge.
    pub fn is_bridge(&self, id: FunctionId) -> bool {
        self.nodes[id.0].bridge
    }

    /// The bus number `id` answers on now: 0 on the root bus, else its
    /// bridge's secondary bus number (`None` while that is unprogrammed).
    pub fn bus_number(&self, id: FunctionId) -> Option<u8> {
        match self.nodes[id.0].info.parent {
            None => Some(0),
            Some(p) => {
                let (secondary, _) = lock(&self.nodes[p.0].function).config().bus_numbers();
                (secondary != 0).then_some(secondary)
            }
        }
    }

    /// The function answering configuration cycles for `bus`/`devfn`.
    pub fn resolve(&self, bus: u8, devfn: u8) -> Option<FunctionId> {
        self.find(None, 0, bus, devfn)
    }

    fn children(&self, parent: Option<FunctionId>) -> impl Iterator<Item = (usize, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.info.parent == parent)
    }

    fn find(&self, parent: Option<FunctionId>, here: u8, bus: u8, devfn: u8) -> Option<FunctionId> {
        if bus == here {
            if parent.is_some_and(|p| self.nodes[p.0].express_port) && devfn >> 3 != 0 {
                return None;
            }
            return self
                .children(parent)
                .find(|(_, n)| n.info.devfn() == devfn)
                .map(|(i, _)| FunctionId(i));
        }
        // A bridge forwards the numbers from its secondary to its
        // subordinate; one programmed at or below its own bus forwards
        // nothing (the topology is a tree, so this always ends).
        for (i, n) in self.children(parent).filter(|(_, n)| n.bridge) {
            let (secondary, subordinate) = lock(&n.function).config().bus_numbers();
            if secondary > here && (secondary..=subordinate).contains(&bus) {
                return self.find(Some(FunctionId(i)), secondary, bus, devfn);
            }
        }
        None
    }

    /// A configuration read; all ones where no function answers.
    pub fn read_config(&self, bus: u8, devfn: u8, offset: u16, data: &mut [u8]) {
        match self.resolve(bus, devfn) {
            Some(id) => lock(&self.nodes[id.0].function).read_config(offset, data),
            None => data.fill(0xff),
        }
    }

    /// A configuration write; BARs that now decode elsewhere move.
    pub fn write_config(&self, bus: u8, devfn: u8, offset: u16, data: &[u8]) {
        let Some(id) = self.resolve(bus, devfn) else {
            return;
        };
        let mut applied = self.applied();
        lock(&self.nodes[id.0].function).write_config(offset, data);
        for j in self.subtree(id) {
            self.apply(&mut applied, j);
        }
    }

    /// Places every BAR as the functions decode now (after the VMM set
    /// them up for a direct kernel boot, or at reset).
    pub fn apply_all(&self) {
        let mut applied = self.applied();
        for j in 0..self.nodes.len() {
            self.apply(&mut applied, FunctionId(j));
        }
    }

    /// Takes every BAR off the buses (the machine is going away).
    pub fn remove_all(&self) {
        let mut applied = self.applied();
        for (j, bars) in applied.iter_mut().enumerate() {
            for (b, slot) in bars.iter_mut().enumerate() {
                if let Some(old) = slot.take() {
                    let _ = self.bus(old.space).remove(old.base);
                    self.notify(FunctionId(j), b, None);
                }
            }
        }
    }

    /// `id` and every function behind it, if it is a bridge.
    fn subtree(&self, id: FunctionId) -> Vec<FunctionId> {
        let mut out = vec![id];
        let mut i = 0;
        while i < out.len() {
            let p = out[i];
            if self.nodes[p.0].bridge {
                out.extend(self.children(Some(p)).map(|(c, _)| FunctionId(c)));
            }
            i += 1;
        }
        out
    }

    /// The windows of every bridge above `id`.
    fn upstream_windows(&self, id: FunctionId) -> Vec<BridgeWindows> {
        let mut out = Vec::new();
        let mut p = self.nodes[id.0].info.parent;
        while let Some(b) = p {
            out.push(lock(&self.nodes[b.0].function).config().bridge_windows());
            p = self.nodes[b.0].info.parent;
        }
        out
    }

    /// Where `id`'s BARs should be: decoded by the function and forwarded
    /// by every bridge above it.
    fn wanted(&self, id: FunctionId) -> [Option<BarMapping>; BAR_SLOTS] {
        let (mut bars, prefetchable) = {
            let f = lock(&self.nodes[id.0].function);
            let cfg = f.config();
            let pf: [bool; BAR_SLOTS] =
                std::array::from_fn(|i| cfg.bar(i).is_some_and(|b| b.prefetchable));
            (cfg.decoded_bars(), pf)
        };
        let windows = self.upstream_windows(id);
        for (i, bar) in bars.iter_mut().enumerate() {
            let forwarded = |m: &BarMapping| {
                windows.iter().all(|w| match m.space {
                    AddressSpace::Io => m.within(w.io),
                    AddressSpace::Memory => {
                        m.within(w.memory) || (prefetchable[i] && m.within(w.prefetchable))
                    }
                })
            };
            if bar.as_ref().is_some_and(|m| !forwarded(m)) {
                *bar = None;
            }
        }
        bars
    }

    fn bus(&self, space: AddressSpace) -> &Bus {
        match space {
            AddressSpace::Io => &self.pio,
            AddressSpace::Memory => &self.mmio,
        }
    }

    fn notify(&self, id: FunctionId, bar: usize, m: Option<BarMapping>) {
        if let Some(o) = &self.observer {
            o.bar_moved(id, bar as u8, m);
        }
    }

    /// Brings `id`'s BARs on the buses in line with what it decodes.
    fn apply(&self, applied: &mut [[Option<BarMapping>; BAR_SLOTS]], id: FunctionId) {
        let wanted = self.wanted(id);
        for (b, want) in wanted.into_iter().enumerate() {
            let have = applied[id.0][b];
            if have == want {
                continue;
            }
            let now = match (have, want) {
                (Some(old), Some(new)) => {
                    match self.bus(new.space).relocate(old.base, new.base, new.size) {
                        Ok(()) => Some(new),
                        Err(error) => {
                            tracing::warn!(%error, "BAR {b} of {:?} cannot decode there", self.nodes[id.0].info);
                            let _ = self.bus(old.space).remove(old.base);
                            None
                        }
                    }
                }
                (Some(old), None) => {
                    let _ = self.bus(old.space).remove(old.base);
                    None
                }
                (None, Some(new)) => {
                    let region: SharedDevice = Arc::new(Mutex::new(BarRegion::new(
                        self.nodes[id.0].function.clone(),
                        b as u8,
                    )));
                    match self.bus(new.space).insert(region, new.base, new.size) {
                        Ok(()) => Some(new),
                        Err(error) => {
                            tracing::warn!(%error, "BAR {b} of {:?} cannot decode there", self.nodes[id.0].info);
                            None
                        }
                    }
                }
                (None, None) => None,
            };
            if now != have {
                applied[id.0][b] = now;
                self.notify(id, b, now);
            }
        }
    }

    /// Where `id`'s BARs are on the machine's buses now.
    pub fn mapped(&self, id: FunctionId) -> [Option<BarMapping>; BAR_SLOTS] {
        self.applied()[id.0]
    }
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
