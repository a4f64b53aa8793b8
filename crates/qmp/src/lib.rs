//! QMP, the QEMU Machine Protocol: the monitor server rvirt-vmm embeds and
//! the client rvirtd uses to drive it.
//!
//! - [`MonitorBackend`]: what the VMM implements (run state, stop/cont,
//!   reset, power button, quit, VM facts).
//! - [`EventBus`]: where the VMM posts [`Event`]s; every negotiated client
//!   receives them, timestamped when posted, in posting order.
//! - [`MonitorServer`]: starts monitors on UNIX sockets, stdio or
//!   descriptor pairs, one thread each.
//! - [`QmpClient`]: connects to a monitor socket, negotiates, runs commands
//!   and receives events.
//!
//! Behaviour follows QEMU 7.2: the same greeting, error classes and error
//! descriptions, JSON framing and error recovery (see `tests/golden`).

mod args;
mod backend;
mod bus;
pub mod client;
mod commands;
mod error;
mod event;
pub mod json;
mod message;
mod outbox;
mod server;
mod session;
mod types;

pub use backend::{JobVerb, MediumOp, MediumTarget, MonitorBackend};
pub use bus::EventBus;
pub use client::{ClientError, QmpClient, ReceivedEvent};
pub use commands::command_names;
pub use error::{ErrorClass, QmpError};
pub use event::{Event, EventMessage, GuestPanicAction, ShutdownCause, Timestamp, WatchdogAction};
pub use message::{Greeting, GreetingBody, Request, Response};
pub use server::{MonitorConfig, MonitorServer, ServerError};
pub use session::{Session, SessionOutput};
pub use types::{
    AddfdInfo, BlockCommit, BlockDeviceInfo, BlockDeviceStats, BlockInfo, BlockJobEvent,
    BlockJobInfo, BlockStats, BlockdevCacheInfo, ChardevInfo, CpuDefinitionInfo, CpuInfoFast,
    CpuModelInfo, CpuProps, FdsetFdInfo, FdsetInfo, FileNodeStats, ImageFormat, ImageInfo, KvmInfo,
    NameInfo, PciBridgeInfo, PciBusInfo, PciDeviceClass, PciDeviceId, PciDeviceInfo,
    PciDeviceRegion, PciInfo, PciMemoryRange, RunState, StatusInfo, UuidInfo, VersionInfo,
    VersionTriple, VncBasicInfo, VncInfo, VncServerInfo, NIL_UUID, QEMU_COMPAT_VERSION,
};
