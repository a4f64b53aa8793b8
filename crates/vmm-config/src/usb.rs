//! USB: the `qemu-xhci` controller and the HID devices on it
//! (`-device usb-tablet|usb-kbd|usb-mouse`).

use crate::config::PciAddr;

/// `-device qemu-xhci,id=,p2=,p3=,bus=,addr=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbControllerConfig {
    pub id: Option<String>,
    /// USB 2 and USB 3 ports (QEMU's default 4 + 4, at most 15 each).
    pub p2: u8,
    pub p3: u8,
    pub addr: PciAddr,
}

impl UsbControllerConfig {
    /// The name of its bus, which devices' `bus=` gives (QEMU's
    /// `<id>.0`, or `usb-bus.N` for one without an id).
    pub fn bus_name(&self, index: usize) -> String {
        match &self.id {
            Some(id) => format!("{id}.0"),
            None => format!("usb-bus.{index}"),
        }
    }
}

/// A USB HID device's model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsbDeviceModel {
    Tablet,
    Keyboard,
    Mouse,
}

impl UsbDeviceModel {
    pub fn driver(self) -> &'static str {
        match self {
            UsbDeviceModel::Tablet => "usb-tablet",
            UsbDeviceModel::Keyboard => "usb-kbd",
            UsbDeviceModel::Mouse => "usb-mouse",
        }
    }
}

/// `-device usb-tablet|usb-kbd|usb-mouse,id=,bus=,port=`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbDeviceConfig {
    pub model: UsbDeviceModel,
    pub id: Option<String>,
    /// Index in [`crate::VmConfig::usb_controllers`].
    pub controller: usize,
    /// The root port, 1-based (`port=`, or the first free one).
    pub port: u8,
}
