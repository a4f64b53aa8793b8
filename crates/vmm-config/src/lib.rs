//! rvirt-vmm's configuration and its QEMU-compatible command line.
//!
//! This crate is the one place that knows QEMU's spelling. [`parse`] turns an
//! argument list into a [`VmConfig`] (plain data, validated), which the VMM
//! builds a machine from. Both the `key=value` and JSON forms of an option
//! go through [`opts::Opts`], so they are checked the same way.

pub mod caps;
pub mod chardev;
mod config;
pub mod disk;
pub mod opts;
mod parse;
pub mod sandbox;
pub mod size;
pub mod smp;
pub mod usb;
pub mod vnc;
pub mod watchdog;

pub use chardev::{ChardevBackend, ChardevConfig};
pub use config::*;
pub use disk::{Aio, Backing, Cache, FormatNode, ImageFormat, Protocol, ProtocolNode};
pub use parse::block::{blockdev_node, FileRef, FormatDef, NodeDef};
pub use parse::{
    parse, parse_device_add, parse_netdev, usage, Action, HotplugDevice, IGNORED_OPTIONS,
    VGA_ROMFILE,
};
pub use usb::{UsbControllerConfig, UsbDeviceConfig, UsbDeviceModel};
pub use vnc::{VncConfig, VncListen, VncShare};
pub use watchdog::{ParallelConfig, WatchdogAction, WatchdogConfig};

/// A command-line error: which option, and what is wrong with it. Displayed
/// as QEMU does, `-smp: …`, for the binary to prefix with its name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{option}: {message}")]
pub struct ConfigError {
    pub option: String,
    pub message: String,
}

impl ConfigError {
    /// An error about `option`.
    pub fn new(option: &str, message: impl Into<String>) -> Self {
        ConfigError {
            option: option.to_string(),
            message: message.into(),
        }
    }
}
