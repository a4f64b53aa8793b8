//! The VMM's disks: a virtio-blk device on the block layer for each
//! [`DiskConfig`], and what the monitor reports about them (`query-block`,
//! `query-blockstats`).
//!
//! The config is typed already (the command line's spellings were read in
//! rvirt-vmm-config); this maps it onto the block layer's open options.

use std::path::PathBuf;
use std::sync::Arc;

use rvirt_block::{AioMode, OpenError, OpenOptions, Stats};
use rvirt_qmp::{BlockDeviceInfo, BlockDeviceStats, BlockInfo, BlockStats, FileNodeStats};
use rvirt_virtio::blk::{Block, BlockError, BlockOptions, Disk};
use rvirt_vmm_config::{Aio, DiskConfig, Protocol};

/// Why a disk cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error(transparent)]
    Open(OpenError),
    #[error("'{}'", path.display())]
    Block {
        path: PathBuf,
        #[source]
        source: BlockError,
    },
}

/// The block layer's options for a disk: the effective cache and discard
/// of its node graph, the guest's write cache, the engine.
pub fn open_options(d: &DiskConfig) -> OpenOptions {
    let cache = d.cache();
    OpenOptions {
        read_only: d.read_only(),
        direct: cache.direct,
        no_flush: cache.no_flush,
        write_cache: d.write_cache,
        discard: d.discard(),
        aio: match d.aio() {
            Aio::Threads => AioMode::Threads,
            // rvirt serves Linux AIO's requests through io_uring too (the
            // parser kept QEMU's rule that it needs O_DIRECT).
            Aio::Native | Aio::IoUring => AioMode::IoUring,
        },
        queue_bound: rvirt_virtio::blk::QUEUE_SIZE,
    }
}

/// What the monitor knows about one disk.
#[derive(Clone)]
pub(crate) struct DiskModel {
    info: BlockInfo,
    /// The protocol node's name and driver.
    file_node: String,
    file_driver: &'static str,
    discard: bool,
    stats: Arc<Stats>,
}

/// Opens disk `n` (its place among the virtio devices names its
/// anonymous nodes) and builds its device.
pub(crate) fn open(n: usize, d: &DiskConfig) -> Result<(Block, DiskModel), DiskError> {
    let opts = open_options(d);
    // /dev/fdset/N: the image the parent opened and passed (-add-fd).
    let disk = match crate::fdset::open(d.path(), true, !opts.read_only) {
        Some(file) => {
            let file = file.map_err(|source| {
                DiskError::Open(OpenError::Open {
                    path: d.path().to_path_buf(),
                    source,
                })
            })?;
            Disk::from_file(file, d.path(), &opts)
        }
        None => Disk::open(d.path(), &opts),
    }
    .map_err(DiskError::Open)?;
    let opts = BlockOptions {
        read_only: d.read_only(),
        serial: d.serial.clone(),
    };
    let block = Block::with_disk(disk, opts).map_err(|source| DiskError::Block {
        path: d.path().to_path_buf(),
        source,
    })?;
    // As QEMU: a -drive is named by its id and gets anonymous nodes; a
    // -blockdev disk only by its nodes.
    let anon = |k: usize| format!("#block{:03}", n * 128 + k);
    let (device, node_name) = if d.blockdev {
        (String::new(), d.drive.clone())
    } else {
        (d.drive.clone(), anon(100))
    };
    let file_node = d.image.file.node_name.clone().unwrap_or_else(|| anon(1));
    let info = BlockInfo {
        device,
        qdev: d.id.clone(),
        kind: "unknown".into(),
        removable: false,
        locked: false,
        inserted: Some(BlockDeviceInfo {
            file: d.path().display().to_string(),
            node_name: Some(node_name),
            ro: d.read_only(),
            drv: d.image.format.as_str().into(),
            encrypted: false,
            detect_zeroes: "off".into(),
            bps: 0,
            bps_rd: 0,
            bps_wr: 0,
            iops: 0,
            iops_rd: 0,
            iops_wr: 0,
            write_threshold: 0,
        }),
    };
    let model = DiskModel {
        info,
        file_node,
        file_driver: match d.image.file.driver {
            Protocol::File => "file",
            Protocol::HostDevice => "host_device",
        },
        discard: d.discard(),
        stats: block.stats(),
    };
    Ok((block, model))
}

impl DiskModel {
    /// `query-block`'s entry.
    pub(crate) fn info(&self) -> BlockInfo {
        self.info.clone()
    }

    fn node_name(&self) -> Option<String> {
        self.info
            .inserted
            .as_ref()
            .and_then(|i| i.node_name.clone())
    }

    /// `query-blockstats`' entry: the device's counters over its format
    /// node, and the file node below with node-level counters (QEMU counts
    /// at the device only; a node reports its highest write and, for a
    /// file, the discards that reached it).
    pub(crate) fn stats(&self, query_nodes: bool) -> Vec<BlockStats> {
        let s = self.stats.snapshot();
        let node_level = || BlockDeviceStats {
            wr_highest_offset: s.wr_highest_offset,
            ..Default::default()
        };
        let file = BlockStats {
            node_name: Some(self.file_node.clone()),
            stats: node_level(),
            driver_specific: Some(FileNodeStats {
                driver: self.file_driver.into(),
                discard_nb_ok: if self.discard { s.unmap_operations } else { 0 },
                discard_nb_failed: if self.discard {
                    s.failed_unmap_operations
                } else {
                    0
                },
                discard_bytes_ok: if self.discard { s.unmap_bytes } else { 0 },
            }),
            ..Default::default()
        };
        if query_nodes {
            let format = BlockStats {
                node_name: self.node_name(),
                stats: node_level(),
                parent: Some(Box::new(file.clone())),
                ..Default::default()
            };
            return vec![format, file];
        }
        let device = BlockDeviceStats {
            rd_bytes: s.rd_bytes,
            wr_bytes: s.wr_bytes,
            unmap_bytes: s.unmap_bytes,
            rd_operations: s.rd_operations,
            wr_operations: s.wr_operations,
            flush_operations: s.flush_operations,
            unmap_operations: s.unmap_operations,
            wr_highest_offset: s.wr_highest_offset,
            rd_merged: s.rd_merged,
            wr_merged: s.wr_merged,
            idle_time_ns: s.idle_time_ns,
            failed_rd_operations: s.failed_rd_operations,
            failed_wr_operations: s.failed_wr_operations,
            failed_flush_operations: s.failed_flush_operations,
            failed_unmap_operations: s.failed_unmap_operations,
            invalid_rd_operations: s.invalid_rd_operations,
            invalid_wr_operations: s.invalid_wr_operations,
            invalid_flush_operations: s.invalid_flush_operations,
            invalid_unmap_operations: s.invalid_unmap_operations,
            account_invalid: true,
            account_failed: true,
            ..Default::default()
        };
        vec![BlockStats {
            device: Some(self.info.device.clone()),
            qdev: self.info.qdev.clone(),
            node_name: self.node_name(),
            stats: device,
            parent: Some(Box::new(file)),
            ..Default::default()
        }]
    }
}
