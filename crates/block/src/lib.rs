//! rvirt's block layer: disk images and the engines that run their I/O,
//! shared by the VMM's virtio-blk and the daemon's storage volumes.
//!
//! A [`Disk`] is an image — a [`Format`] (raw today; qcow2 through imago
//! next) over its storage (a [`DiskBackend`]: a file or a block device) —
//! with an engine: inline ([`AioMode::Sync`]), a worker pool
//! ([`AioMode::Threads`]) or io_uring ([`AioMode::IoUring`]). Callers hand
//! it [`Request`]s with an opaque tag of their own and host buffers
//! ([`IoBuf`]); asynchronous engines signal completions on an eventfd
//! ([`Disk::host_fd`]) and [`Disk::reap`] returns them with their tags.
//! Before each transfer the engines ask the format where the virtual
//! range lives ([`Format::map`]), so a format with metadata sits between
//! a device and the engines without either knowing. Reads and writes of
//! one batch that are adjacent on the disk go as one vectored transfer;
//! with O_DIRECT, buffers the file cannot take are bounced through aligned
//! memory.
//!
//! No guest memory, no device, no KVM: the daemon links this crate for its
//! volumes, and a daemon must never share code paths with a guest's
//! memory. The caller turns guest buffers into [`IoBuf`]s and keeps them
//! valid until each request is done ([`IoBuf::new`] says exactly how long).
//!
//! Options are typed ([`OpenOptions`]); how QEMU's command line spells them
//! is `rvirt-vmm-config`'s business.
//!
//! [`image`]: images as a storage pool sees them (create, inspect, resize,
//! copy raw and qcow2 images, on imago), for the daemon's volumes.

pub mod image;

mod aligned;
mod backend;
mod buf;
pub mod commit;
mod disk;
mod engine;
mod format;
mod open;
mod qcow2;
mod request;
mod stats;

pub use aligned::{AlignedBuf, BOUNCE_ALIGN};
pub use backend::{Alignment, DiskBackend, RawFile};
pub use buf::{total_len, IoBuf};
pub use disk::{Disk, DEFAULT_BOUND};
pub use engine::merge::{MAX_BYTES as MERGE_MAX_BYTES, MAX_IOV as MERGE_MAX_IOV};
pub use engine::threads::on_worker_start;
pub use engine::{BOUNCE_MAX, WORKERS};
pub use format::{Format, Layer, Mapping, Raw};
pub use open::{
    in_memory, no_passed_files, probe_alignment, AioMode, HostDisk, OpenError, OpenOptions,
    PassedFiles,
};
pub use qcow2::{Backing, ImageFormat, ImageSpec, Qcow2, Store, MAX_CHAIN};
pub use request::{Done, IoKind, Op, Range, Request};
pub use stats::{Stats, StatsSnapshot};
