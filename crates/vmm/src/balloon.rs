//! The balloon as QMP sees it: `balloon` and `query-balloon` in bytes of
//! guest memory, BALLOON_CHANGE when the driver moves `actual`, and the
//! guest's statistics as QOM properties of the device (`guest-stats`,
//! `guest-stats-polling-interval`), which is where libvirt reads them.
//!
//! QEMU's arithmetic: the target is clamped to the RAM size and the device
//! is asked to hold `(ram - target) / 4 KiB` pages; the guest's memory is
//! `ram - actual * 4 KiB`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rvirt_qmp::{Event, EventBus, QmpError};
use rvirt_virtio::balloon::{Balloon, STATS_QUEUE};
use rvirt_virtio::{ActivateContext, ActivateError, VirtioDevice};

/// The balloon's page size, fixed by the virtio spec whatever the host's.
const PAGE: u64 = 4096;

/// QEMU's names of the guest's statistics in `guest-stats`, indexed by
/// their virtio tag (VIRTIO_BALLOON_S_*), from hw/virtio/virtio-balloon.c.
const STAT_NAMES: [&str; 10] = [
    "stat-swap-in",
    "stat-swap-out",
    "stat-major-faults",
    "stat-minor-faults",
    "stat-free-memory",
    "stat-total-memory",
    "stat-available-memory",
    "stat-disk-caches",
    "stat-htlb-pgalloc",
    "stat-htlb-pgfail",
];

/// The QOM type name errors about the device's properties carry.
const TYPE_NAME: &str = "virtio-balloon-device";

/// The guest's statistics as QEMU keeps them: each tag's last value
/// (`u64::MAX`, QEMU's -1, "not reported", until the driver sends it; a
/// later buffer without the tag keeps the earlier value) and when the
/// driver last sent any, in seconds since the epoch (0: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GuestStats {
    values: [u64; STAT_NAMES.len()],
    last_update: i64,
}

impl Default for GuestStats {
    fn default() -> Self {
        GuestStats {
            values: [u64::MAX; STAT_NAMES.len()],
            last_update: 0,
        }
    }
}

impl GuestStats {
    /// `guest-stats` as QEMU 7.2 answers `qom-get` for it.
    pub(crate) fn to_json(self) -> serde_json::Value {
        let stats: serde_json::Map<String, serde_json::Value> = STAT_NAMES
            .iter()
            .zip(self.values)
            .map(|(n, v)| (n.to_string(), v.into()))
            .collect();
        serde_json::json!({ "stats": stats, "last-update": self.last_update })
    }
}

/// What the monitors read of the balloon without locking the device.
#[derive(Clone)]
pub(crate) struct BalloonReading {
    /// The device's `id=`: its QOM path is `/machine/peripheral/ID`.
    id: Option<String>,
    /// The guest's memory in bytes as the driver last reported it.
    actual: Arc<AtomicU64>,
    guest: Arc<Mutex<GuestStats>>,
    /// `guest-stats-polling-interval` in seconds (0: no polling); the main
    /// loop keeps the timer.
    interval: Arc<AtomicU32>,
}

impl BalloonReading {
    /// `query-balloon`'s answer in bytes.
    pub(crate) fn actual(&self) -> u64 {
        self.actual.load(Ordering::Acquire)
    }

    /// Whether `path` names the device: its QOM path, or its id alone (a
    /// partial path, which QEMU resolves when it is unambiguous).
    fn is_path(&self, path: &str) -> bool {
        self.id
            .as_deref()
            .is_some_and(|id| path == id || path.strip_prefix("/machine/peripheral/") == Some(id))
    }

    /// `qom-get` on the device: QEMU's answers for its two statistics
    /// properties, its errors for another path or property.
    pub(crate) fn qom_get(
        &self,
        path: &str,
        property: &str,
    ) -> Result<serde_json::Value, QmpError> {
        if !self.is_path(path) {
            return Err(QmpError::device_not_found(path));
        }
        match property {
            "guest-stats" => Ok(self
                .guest
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .to_json()),
            "guest-stats-polling-interval" => Ok(self.interval.load(Ordering::Acquire).into()),
            other => Err(not_found(other)),
        }
    }

    /// Checks a `qom-set` as QEMU's setter does; the interval to ask the
    /// main loop for.
    pub(crate) fn qom_set_interval(
        &self,
        path: &str,
        property: &str,
        value: &serde_json::Value,
    ) -> Result<u32, QmpError> {
        if !self.is_path(path) {
            return Err(QmpError::device_not_found(path));
        }
        match property {
            "guest-stats-polling-interval" => {}
            "guest-stats" => {
                return Err(QmpError::generic(format!(
                    "Property '{TYPE_NAME}.{property}' is not writable"
                )))
            }
            other => return Err(not_found(other)),
        }
        let Some(secs) = value.as_i64() else {
            return Err(QmpError::invalid_parameter_type(property, "integer"));
        };
        if secs < 0 {
            return Err(QmpError::generic("timer value must be greater than zero"));
        }
        u32::try_from(secs).map_err(|_| QmpError::generic("timer value is too big"))
    }
}

fn not_found(property: &str) -> QmpError {
    QmpError::generic(format!("Property '{TYPE_NAME}.{property}' not found"))
}

/// The balloon device with the event its config writes raise. A wrapper
/// rather than a hook in the device model: the model knows nothing of QMP.
pub(crate) struct BalloonDevice {
    inner: Balloon,
    ram: u64,
    bus: EventBus,
    /// The guest's memory in bytes as the driver last reported it, for the
    /// monitor's read model (`query-balloon` reads it without a lock).
    actual: Arc<AtomicU64>,
    /// The guest's statistics for the read model, and the device's count
    /// of stats buffers when they were last copied there.
    guest: Arc<Mutex<GuestStats>>,
    seen_updates: u64,
}

impl BalloonDevice {
    pub(crate) fn new(inner: Balloon, ram: u64, bus: EventBus) -> Self {
        let mut d = BalloonDevice {
            inner,
            ram,
            bus,
            actual: Arc::new(AtomicU64::new(ram)),
            guest: Arc::default(),
            seen_updates: 0,
        };
        d.publish();
        d
    }

    /// Copies a new stats buffer into the read model, stamped as QEMU's
    /// `stats_last_update` is.
    fn publish_stats(&mut self) {
        if self.inner.stats_updates() == self.seen_updates {
            return;
        }
        self.seen_updates = self.inner.stats_updates();
        let mut g = self.guest.lock().unwrap_or_else(|p| p.into_inner());
        for &(tag, val) in self.inner.stats() {
            if let Some(v) = g.values.get_mut(usize::from(tag)) {
                *v = val;
            }
        }
        g.last_update = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    }

    fn actual_bytes(&self) -> u64 {
        self.ram
            .saturating_sub(u64::from(self.inner.actual_pages()) * PAGE)
    }

    fn publish(&mut self) {
        self.actual.store(self.actual_bytes(), Ordering::Release);
    }
}

impl VirtioDevice for BalloonDevice {
    fn device_type(&self) -> u32 {
        self.inner.device_type()
    }
    fn queue_max_sizes(&self) -> &[u16] {
        self.inner.queue_max_sizes()
    }
    fn device_features(&self) -> u64 {
        self.inner.device_features()
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        self.inner.read_config(offset, data)
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        let before = self.inner.actual_pages();
        self.inner.write_config(offset, data);
        self.publish();
        if self.inner.actual_pages() != before {
            // As QEMU, on every change of `actual` the driver reports.
            let actual = i64::try_from(self.actual_bytes()).unwrap_or(i64::MAX);
            self.bus.post(Event::BalloonChange { actual });
        }
    }
    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        self.inner.activate(ctx)
    }
    fn reset(&mut self) {
        self.inner.reset();
        self.publish();
    }
    fn process_queue(&mut self, queue: u16) {
        self.inner.process_queue(queue);
        if queue == STATS_QUEUE {
            self.publish_stats();
        }
    }
}

/// The balloon as the main loop drives it (QMP `balloon` arrives there as
/// a monitor request) and as the monitor's read model sees it.
#[derive(Clone)]
pub(crate) struct BalloonControl {
    device: Arc<Mutex<BalloonDevice>>,
    ram: u64,
    reading: BalloonReading,
}

impl BalloonControl {
    pub(crate) fn new(device: Arc<Mutex<BalloonDevice>>, ram: u64, id: Option<String>) -> Self {
        let d = device.lock().unwrap_or_else(|p| p.into_inner());
        let reading = BalloonReading {
            id,
            actual: d.actual.clone(),
            guest: d.guest.clone(),
            interval: Arc::default(),
        };
        drop(d);
        BalloonControl {
            device,
            ram,
            reading,
        }
    }

    /// What the monitors read: updated by the device on every report.
    pub(crate) fn reading(&self) -> BalloonReading {
        self.reading.clone()
    }

    /// Sets the statistics polling interval (0: none), which the main
    /// loop's timer follows.
    pub(crate) fn set_interval(&self, secs: u32) {
        self.reading.interval.store(secs, Ordering::Release);
    }

    /// The statistics polling interval in seconds (0: none).
    pub(crate) fn interval(&self) -> u32 {
        self.reading.interval.load(Ordering::Acquire)
    }

    /// One tick of the polling timer: gives the driver back the stats
    /// buffer the device holds so it sends fresh numbers (nothing when it
    /// has not sent the last ones yet, as QEMU's timer).
    pub(crate) fn poll_stats(&self) {
        self.lock().inner.request_stats();
    }

    fn lock(&self) -> MutexGuard<'_, BalloonDevice> {
        self.device.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// QMP `balloon`: the guest should shrink (or grow back) to `target`
    /// bytes; more than the RAM size means "give everything back".
    pub(crate) fn set_target(&self, target: u64) {
        let pages = self.ram.saturating_sub(target.min(self.ram)) / PAGE;
        self.lock()
            .inner
            .set_target_pages(u32::try_from(pages).unwrap_or(u32::MAX));
    }

    /// QMP `query-balloon`: the guest's memory in bytes (the monitors read
    /// it through [`BalloonControl::reading`]).
    #[cfg(test)]
    fn actual(&self) -> u64 {
        self.reading.actual()
    }

    /// The pages the device is asking the driver to hold.
    #[cfg(test)]
    fn target_pages(&self) -> u32 {
        self.lock().inner.target_pages()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvirt_virtio::balloon::BalloonOptions;

    fn control(ram: u64) -> BalloonControl {
        let dev = BalloonDevice::new(
            Balloon::new(BalloonOptions::default()),
            ram,
            EventBus::new(),
        );
        BalloonControl::new(Arc::new(Mutex::new(dev)), ram, Some("balloon0".into()))
    }

    #[test]
    fn target_in_bytes_becomes_pages_as_in_qemu() {
        let c = control(128 << 20);
        assert_eq!(c.actual(), 128 << 20);
        c.set_target(64 << 20);
        assert_eq!(c.target_pages(), (64 << 20) / 4096);
        // More than the RAM: deflate completely.
        c.set_target(1 << 40);
        assert_eq!(c.target_pages(), 0);
        // Not a whole page: the balloon holds whole pages only.
        c.set_target((128 << 20) - 4095);
        assert_eq!(c.target_pages(), 0);
        c.set_target((128 << 20) - 4096);
        assert_eq!(c.target_pages(), 1);
    }

    #[test]
    fn the_drivers_actual_is_what_query_balloon_reports() {
        let c = control(128 << 20);
        // The driver writes `actual` (config offset 4) after inflating.
        c.lock().write_config(4, &1024u32.to_le_bytes());
        assert_eq!(c.actual(), (128 << 20) - 1024 * 4096);
    }
}
