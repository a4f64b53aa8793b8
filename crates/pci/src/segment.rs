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
//! Functions can come and go while the guest runs: a device hot-plugged
//! behind a root port ([`PciSegment::plug`]), taken out when the guest
//! powers that port's slot off (or at once by [`PciSegment::unplug`]).
//! A function taken out leaves its [`FunctionId`] unused for good.
//!
//! Lock order: the segment's `applied` mutex (held for the whole of a
//! configuration write, a plug or an unplug, so those and the moves they
//! cause are serialized), then the node table's lock (read for lookups,
//! written only to add or take out a node, never while a function's
//! mutex is held), then one function's mutex at a time (never two), then
//! the bus's writers' mutex and the observer (leaves). Configuration reads
//! take the node table's read lock and the function's mutex. BAR accesses
//! take only the function's mutex (through the bus).

use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

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

/// Told when a BAR starts, stops or moves decoding, and when a function
/// leaves the segment.
pub trait BarObserver: Send + Sync {
    /// BAR `bar` of `function` decodes at `mapping` now (`None`: nowhere).
    fn bar_moved(&self, function: FunctionId, bar: u8, mapping: Option<BarMapping>);

    /// `function` (at `info`) was taken out of the segment: the guest
    /// powered off the hot-plug slot it was behind, or it was unplugged
    /// at once. Its BARs are already off the buses and no configuration
    /// cycle reaches it any more.
    fn unplugged(&self, function: FunctionId, info: &FunctionInfo, f: SharedFunction) {
        let _ = (function, info, f);
    }
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
    #[error("no such function")]
    Gone,
    #[error("the bus does not support hot-plugging")]
    NotHotpluggable,
}

struct Node {
    info: FunctionInfo,
    function: SharedFunction,
    bridge: bool,
    /// Only slot 0 decodes behind it (a PCI Express downstream port).
    express_port: bool,
}

/// Checks that `info` is a free place among `nodes` and makes the node.
fn check<'a>(
    nodes: impl Iterator<Item = Option<&'a Node>> + Clone,
    info: FunctionInfo,
    function: SharedFunction,
    express_port: bool,
) -> Result<Node, TopologyError> {
    if info.slot >= 32 || info.function >= 8 {
        return Err(TopologyError::NoSuchSlot(info.slot));
    }
    if let Some(p) = info.parent {
        let parent = nodes
            .clone()
            .nth(p.0)
            .flatten()
            .ok_or(TopologyError::NotABridge)?;
        if !parent.bridge {
            return Err(TopologyError::NotABridge);
        }
        if parent.express_port && info.slot != 0 {
            return Err(TopologyError::PortSlot);
        }
    }
    if nodes
        .flatten()
        .any(|n| n.info.parent == info.parent && n.info.devfn() == info.devfn())
    {
        return Err(TopologyError::Taken {
            slot: info.slot,
            function: info.function,
        });
    }
    let bridge = lock(&function).config().header() == HeaderType::Bridge;
    Ok(Node {
        info,
        function,
        bridge,
        express_port,
    })
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
        let node = check(self.nodes.iter().map(Some), info, function, express_port)?;
        self.nodes.push(node);
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
            nodes: RwLock::new(self.nodes.into_iter().map(|n| Some(Arc::new(n))).collect()),
            applied: Mutex::new(vec![[None; BAR_SLOTS]; n]),
            pio,
            mmio,
            observer,
        }
    }
}

/// The functions of one segment and what their BARs decode.
pub struct PciSegment {
    /// By [`FunctionId`]; a function taken out leaves `None` (ids are
    /// never reused).
    nodes: RwLock<Vec<Option<Arc<Node>>>>,
    /// Where each function's BARs are on the machine's buses.
    applied: Mutex<Vec<[Option<BarMapping>; BAR_SLOTS]>>,
    pio: Arc<Bus>,
    mmio: Arc<Bus>,
    observer: Option<Arc<dyn BarObserver>>,
}

type Nodes = Vec<Option<Arc<Node>>>;

impl PciSegment {
    fn applied(&self) -> MutexGuard<'_, Vec<[Option<BarMapping>; BAR_SLOTS]>> {
        self.applied.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn nodes(&self) -> RwLockReadGuard<'_, Nodes> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn node(&self, id: FunctionId) -> Option<Arc<Node>> {
        self.nodes().get(id.0).cloned().flatten()
    }

    /// Every function present, in the order added.
    pub fn functions(&self) -> Vec<(FunctionId, FunctionInfo)> {
        self.nodes()
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (FunctionId(i), n.info.clone())))
            .collect()
    }

    /// The function `id`, unless it was taken out.
    pub fn function(&self, id: FunctionId) -> Option<SharedFunction> {
        self.node(id).map(|n| n.function.clone())
    }

    /// Where `id` sits, unless it was taken out.
    pub fn info(&self, id: FunctionId) -> Option<FunctionInfo> {
        self.node(id).map(|n| n.info.clone())
    }

    /// Whether `id` is a bridge.
    pub fn is_bridge(&self, id: FunctionId) -> bool {
        self.node(id).is_some_and(|n| n.bridge)
    }

    /// The function with device id `name` (`-device …,id=`).
    pub fn find_id(&self, name: &str) -> Option<FunctionId> {
        self.nodes()
            .iter()
            .position(|n| {
                n.as_ref()
                    .is_some_and(|n| n.info.id.as_deref() == Some(name))
            })
            .map(FunctionId)
    }

    /// The bus number `id` answers on now: 0 on the root bus, else its
    /// bridge's secondary bus number (`None` while that is unprogrammed).
    pub fn bus_number(&self, id: FunctionId) -> Option<u8> {
        match self.node(id)?.info.parent {
            None => Some(0),
            Some(p) => {
                let parent = self.node(p)?;
                let (secondary, _) = lock(&parent.function).config().bus_numbers();
                (secondary != 0).then_some(secondary)
            }
        }
    }

    /// The function answering configuration cycles for `bus`/`devfn`.
    pub fn resolve(&self, bus: u8, devfn: u8) -> Option<FunctionId> {
        find(&self.nodes(), None, 0, bus, devfn)
    }

    /// A configuration read; all ones where no function answers.
    pub fn read_config(&self, bus: u8, devfn: u8, offset: u16, data: &mut [u8]) {
        match self.resolve(bus, devfn).and_then(|id| self.node(id)) {
            Some(n) => lock(&n.function).read_config(offset, data),
            None => data.fill(0xff),
        }
    }

    /// A configuration write; BARs that now decode elsewhere move, and
    /// what is behind a hot-plug slot the write powered off is taken out.
    pub fn write_config(&self, bus: u8, devfn: u8, offset: u16, data: &[u8]) {
        let Some((id, node)) = self
            .resolve(bus, devfn)
            .and_then(|id| Some((id, self.node(id)?)))
        else {
            return;
        };
        let mut applied = self.applied();
        let ejected = {
            let mut f = lock(&node.function);
            f.write_config(offset, data);
            f.take_ejected()
        };
        for j in self.subtree(id) {
            self.apply(&mut applied, j);
        }
        if ejected {
            let children: Vec<FunctionId> = children(&self.nodes(), Some(id))
                .map(|(c, _)| FunctionId(c))
                .collect();
            for c in children {
                self.take_out(&mut applied, c);
            }
        }
    }

    /// Adds `function` at `info`'s place while the guest runs: a device
    /// hot-plugged behind a hot-plug capable root port, which then tells
    /// the guest. Its BARs decode once the guest programs them.
    pub fn plug(
        &self,
        info: FunctionInfo,
        function: SharedFunction,
    ) -> Result<FunctionId, TopologyError> {
        let mut applied = self.applied();
        let port = info
            .parent
            .and_then(|p| self.node(p))
            .ok_or(TopologyError::NotHotpluggable)?;
        if !lock(&port.function)
            .hotplug_port()
            .is_some_and(|p| p.hotplug_capable())
        {
            return Err(TopologyError::NotHotpluggable);
        }
        let id = {
            let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
            let node = check(nodes.iter().map(|n| n.as_deref()), info, function, false)?;
            nodes.push(Some(Arc::new(node)));
            FunctionId(nodes.len() - 1)
        };
        applied.push([None; BAR_SLOTS]);
        self.apply(&mut applied, id);
        if let Some(p) = lock(&port.function).hotplug_port() {
            p.plug();
        }
        Ok(id)
    }

    /// Takes `id` (and everything behind it) out at once, as a failed
    /// hot-plug is undone; the observer hears of each.
    pub fn unplug(&self, id: FunctionId) -> Result<(), TopologyError> {
        let mut applied = self.applied();
        if self.node(id).is_none() {
            return Err(TopologyError::Gone);
        }
        self.take_out(&mut applied, id);
        Ok(())
    }

    /// Removes `id` and its subtree: BARs off the buses, nodes gone.
    fn take_out(&self, applied: &mut [[Option<BarMapping>; BAR_SLOTS]], id: FunctionId) {
        let mut all = self.subtree(id);
        // Deepest first, so a bridge outlives what is behind it.
        all.reverse();
        for j in all {
            for (b, slot) in applied[j.0].iter_mut().enumerate() {
                if let Some(old) = slot.take() {
                    let _ = self.bus(old.space).remove(old.base);
                    self.notify(j, b, None);
                }
            }
            let node = {
                let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
                nodes.get_mut(j.0).and_then(Option::take)
            };
            if let (Some(node), Some(o)) = (node, &self.observer) {
                o.unplugged(j, &node.info, node.function.clone());
            }
        }
    }

    /// Places every BAR as the functions decode now (after the VMM set
    /// them up for a direct kernel boot, or at reset).
    pub fn apply_all(&self) {
        let mut applied = self.applied();
        let n = self.nodes().len();
        for j in 0..n {
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
        let nodes = self.nodes();
        let mut out = vec![id];
        let mut i = 0;
        while i < out.len() {
            let p = out[i];
            if nodes
                .get(p.0)
                .and_then(Option::as_ref)
                .is_some_and(|n| n.bridge)
            {
                out.extend(children(&nodes, Some(p)).map(|(c, _)| FunctionId(c)));
            }
            i += 1;
        }
        out
    }

    /// The windows of every bridge above `id`.
    fn upstream_windows(&self, id: FunctionId) -> Vec<BridgeWindows> {
        let mut out = Vec::new();
        let mut p = self.node(id).and_then(|n| n.info.parent);
        while let Some(b) = p {
            let Some(bridge) = self.node(b) else { break };
            out.push(lock(&bridge.function).config().bridge_windows());
            p = bridge.info.parent;
        }
        out
    }

    /// Where `id`'s BARs should be: decoded by the function and forwarded
    /// by every bridge above it.
    fn wanted(&self, id: FunctionId) -> [Option<BarMapping>; BAR_SLOTS] {
        let Some(node) = self.node(id) else {
            return [None; BAR_SLOTS];
        };
        let (mut bars, prefetchable) = {
            let f = lock(&node.function);
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
                            tracing::warn!(%error, "BAR {b} of {id:?} cannot decode there");
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
                    let Some(node) = self.node(id) else {
                        continue;
                    };
                    let region: SharedDevice =
                        Arc::new(Mutex::new(BarRegion::new(node.function.clone(), b as u8)));
                    match self.bus(new.space).insert(region, new.base, new.size) {
                        Ok(()) => Some(new),
                        Err(error) => {
                            tracing::warn!(%error, "BAR {b} of {id:?} cannot decode there");
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
        self.applied()
            .get(id.0)
            .copied()
            .unwrap_or([None; BAR_SLOTS])
    }

    /// The span above 4 GiB (inclusive) the guest put 64-bit things in, as
    /// QEMU's `pci_bus_get_w64_range` finds it for the ACPI 64-bit window:
    /// every 64-bit memory BAR and every bridge's prefetchable window of a
    /// function with memory decode on, clipped below at 4 GiB, whatever the
    /// bridges above forward. `None` if there is none.
    pub fn used_above_4g(&self) -> Option<(u64, u64)> {
        const FOUR_GIB: u64 = 1 << 32;
        let mut span: Option<(u64, u64)> = None;
        let mut extend = |lo: u64, hi: u64| {
            let lo = lo.max(FOUR_GIB);
            if hi >= lo {
                span = Some(span.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
            }
        };
        // A snapshot: no function's lock is taken under the nodes' lock.
        let nodes: Vec<Arc<Node>> = self.nodes().iter().flatten().cloned().collect();
        for node in &nodes {
            let f = lock(&node.function);
            let config = f.config();
            if let Some((lo, hi)) = config.bridge_windows().prefetchable {
                extend(lo, hi);
            }
            for (i, m) in config.decoded_bars().iter().enumerate() {
                let (Some(m), Some(spec)) = (m, config.bar(i)) else {
                    continue;
                };
                if spec.kind == crate::bar::BarKind::Mem64 {
                    extend(m.base, m.base + m.size - 1);
                }
            }
        }
        span
    }
}

fn children(nodes: &Nodes, parent: Option<FunctionId>) -> impl Iterator<Item = (usize, &Node)> {
    nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.as_deref().map(|n| (i, n)))
        .filter(move |(_, n)| n.info.parent == parent)
}

fn find(
    nodes: &Nodes,
    parent: Option<FunctionId>,
    here: u8,
    bus: u8,
    devfn: u8,
) -> Option<FunctionId> {
    if bus == here {
        let port = parent
            .and_then(|p| nodes.get(p.0)?.as_ref())
            .is_some_and(|p| p.express_port);
        if port && devfn >> 3 != 0 {
            return None;
        }
        return children(nodes, parent)
            .find(|(_, n)| n.info.devfn() == devfn)
            .map(|(i, _)| FunctionId(i));
    }
    // A bridge forwards the numbers from its secondary to its
    // subordinate; one programmed at or below its own bus forwards
    // nothing (the topology is a tree, so this always ends).
    for (i, n) in children(nodes, parent).filter(|(_, n)| n.bridge) {
        let (secondary, subordinate) = lock(&n.function).config().bus_numbers();
        if secondary > here && (secondary..=subordinate).contains(&bus) {
            return find(nodes, Some(FunctionId(i)), secondary, bus, devfn);
        }
    }
    None
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
