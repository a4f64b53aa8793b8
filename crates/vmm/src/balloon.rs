//! The balloon as QMP sees it: `balloon` and `query-balloon` in bytes of
//! guest memory, and BALLOON_CHANGE when the driver moves `actual`.
//!
//! QEMU's arithmetic: the target is clamped to the RAM size and the device
//! is asked to hold `(ram - target) / 4 KiB` pages; the guest's memory is
//! `ram - actual * 4 KiB`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rvirt_qmp::{Event, EventBus};
use rvirt_virtio::balloon::Balloon;
use rvirt_virtio::{ActivateContext, ActivateError, VirtioDevice};

/// The balloon's page size, fixed by the virtio spec whatever the host's.
const PAGE: u64 = 4096;

/// The balloon device with the event its config writes raise. A wrapper
/// rather than a hook in the device model: the model knows nothing of QMP.
pub(crate) struct BalloonDevice {
    inner: Balloon,
    ram: u64,
    bus: EventBus,
    /// The guest's memory in bytes as the driver last reported it, for the
    /// monitor's read model (`query-balloon` reads it without a lock).
    actual: Arc<AtomicU64>,
}

impl BalloonDevice {
    pub(crate) fn new(inner: Balloon, ram: u64, bus: EventBus) -> Self {
        let mut d = BalloonDevice {
            inner,
            ram,
            bus,
            actual: Arc::new(AtomicU64::new(ram)),
        };
        d.publish();
        d
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
        self.inner.process_queue(queue)
    }
}

/// The balloon as the main loop drives it (QMP `balloon` arrives there as
/// a monitor request) and as the monitor's read model sees it.
#[derive(Clone)]
pub(crate) struct BalloonControl {
    device: Arc<Mutex<BalloonDevice>>,
    ram: u64,
    actual: Arc<AtomicU64>,
}

impl BalloonControl {
    pub(crate) fn new(device: Arc<Mutex<BalloonDevice>>, ram: u64) -> Self {
        let actual = device
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .actual
            .clone();
        BalloonControl {
            device,
            ram,
            actual,
        }
    }

    /// What `query-balloon` reads: updated by the device on every report.
    pub(crate) fn reading(&self) -> Arc<AtomicU64> {
        self.actual.clone()
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
        self.actual.load(Ordering::Acquire)
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
        BalloonControl::new(Arc::new(Mutex::new(dev)), ram)
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
