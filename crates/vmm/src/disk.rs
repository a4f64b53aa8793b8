//! The VMM's disks: a virtio-blk device on the block layer for each
//! [`DiskConfig`], and what the monitor reports about them (`query-block`,
//! `query-blockstats`).
//!
//! The config is typed already (the command line's spellings were read in
//! rvirt-vmm-config); this maps it onto the block layer's open options.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rvirt_block::{AioMode, ImageSpec, Layer, OpenError, OpenOptions, Stats};
use rvirt_qmp::{
    BlockDeviceInfo, BlockDeviceStats, BlockInfo, BlockStats, BlockdevCacheInfo, FileNodeStats,
    ImageInfo,
};
use rvirt_virtio::blk::{Block, BlockError, BlockOptions, Disk};
use rvirt_vmm_config::{Aio, Backing, DiskConfig, FormatNode, ImageFormat, Protocol};

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

/// The block layer's description of a format node and the chain the
/// command line gave below it. Backing nodes are read-only whatever they
/// say (QEMU opens them so too).
pub fn image_spec(node: &FormatNode) -> ImageSpec {
    ImageSpec {
        path: node.path().to_path_buf(),
        format: match node.format {
            ImageFormat::Raw => rvirt_block::ImageFormat::Raw,
            ImageFormat::Qcow2 => rvirt_block::ImageFormat::Qcow2,
        },
        read_only: node.read_only(),
        backing: match &node.backing {
            Backing::FromImage => rvirt_block::Backing::FromImage,
            Backing::None => rvirt_block::Backing::None,
            Backing::Node(below) => {
                let mut spec = image_spec(below);
                spec.read_only = true;
                rvirt_block::Backing::Image(Box::new(spec))
            }
        },
    }
}

/// `query-block`'s `image` for `layers` (top first): each with the next
/// one nested as its `backing-image`. `actual-size` is read when asked.
fn image_info(layers: &[Layer]) -> Option<ImageInfo> {
    let (top, below) = layers.split_first()?;
    let full = top.backing_filename.as_ref().map(|b| {
        let p = std::path::Path::new(b);
        if p.is_absolute() {
            b.clone()
        } else {
            std::path::Path::new(&top.filename)
                .parent()
                .unwrap_or(std::path::Path::new(""))
                .join(p)
                .display()
                .to_string()
        }
    });
    let qcow2 = top.format == "qcow2";
    Some(ImageInfo {
        filename: top.filename.clone(),
        format: top.format.into(),
        // imago refuses images left dirty, so an open one is clean.
        dirty_flag: qcow2.then_some(false),
        actual_size: None,
        virtual_size: top.virtual_size,
        cluster_size: top.cluster_size,
        backing_filename_format: top
            .backing_filename
            .as_ref()
            .and(top.backing_format.clone()),
        backing_filename: top.backing_filename.clone(),
        full_backing_filename: full,
        backing_image: image_info(below).map(Box::new),
    })
}

/// Fills in each image's `actual-size` from the file system, now.
fn fill_actual_size(image: &mut ImageInfo) {
    use std::os::unix::fs::MetadataExt;
    image.actual_size = std::fs::metadata(&image.filename)
        .ok()
        .map(|m| m.blocks() * 512);
    if let Some(b) = image.backing_image.as_mut() {
        fill_actual_size(b);
    }
}

/// What the monitor knows about one disk, and the handle a snapshot
/// switches it through. Clones share the mutable parts: the monitor's
/// copy sees a snapshot the main loop made.
#[derive(Clone)]
pub(crate) struct DiskModel {
    /// Its place among the virtio devices (names its anonymous nodes).
    n: usize,
    /// The disk as configured, its image graph as it is now.
    config: Arc<Mutex<DiskConfig>>,
    info: Arc<Mutex<BlockInfo>>,
    /// The protocol node's name and driver.
    file_node: Arc<Mutex<String>>,
    file_driver: &'static str,
    discard: bool,
    stats: Arc<Stats>,
    /// The virtio-blk device, typed, for switching its image (ATA drives
    /// have none: they take no snapshot).
    block: Option<Arc<Mutex<Block>>>,
    /// A removable medium's live state, read at each `query-block`.
    tray: Option<Arc<dyn Fn() -> Tray + Send + Sync>>,
}

/// A CD-ROM's tray and medium as `query-block` reports them.
#[derive(Debug, Clone)]
pub(crate) struct Tray {
    pub(crate) open: bool,
    pub(crate) locked: bool,
    /// The medium's file, if one is in.
    pub(crate) file: Option<String>,
}

/// Opens the image of `d` with its chain: passed descriptors (the
/// parent's `-add-fd`, QMP `add-fd`, or those a node kept) where the paths
/// name fd sets.
pub(crate) fn open_disk(d: &DiskConfig) -> Result<Disk, OpenError> {
    open_disk_with(d, &open_options(d))
}

/// [`open_disk`] for a device whose requests carry tags of type `T`, with
/// its own options.
fn open_disk_with<T: Send + 'static>(
    d: &DiskConfig,
    options: &OpenOptions,
) -> Result<rvirt_block::Disk<T>, OpenError> {
    // /dev/fdset/N: the files the parent opened and passed (-add-fd),
    // the backing images' too.
    let confined = rvirt_vmm_config::sandbox::fdset_of(d.path()).is_some();
    let passed = |path: &std::path::Path, write: bool| {
        crate::fdset::open(path, true, write).or_else(|| {
            // A parent that passes the image passes its chain (libvirt
            // names every node): a backing file named only in the image's
            // header is not the parent's choice and is not opened.
            confined.then(|| {
                Err(std::io::Error::other(format!(
                    "backing file of '{}' not passed by descriptor",
                    d.path().display()
                )))
            })
        })
    };
    rvirt_block::Disk::open_image_with(&image_spec(&d.image), options, &passed)
}

/// Opens `d`'s image chain for a device whose requests carry tags of type
/// `T`; returns it with its layers, top first.
pub(crate) fn open_image<T: Send + 'static>(
    d: &DiskConfig,
    options: &OpenOptions,
) -> Result<(rvirt_block::Disk<T>, Vec<Layer>), DiskError> {
    let disk = open_disk_with(d, options).map_err(DiskError::Open)?;
    let layers = layers_of(d, disk.chain(), disk.len().unwrap_or(0));
    Ok((disk, layers))
}

/// The image's layers, top first; a raw image's chain is just the file.
fn layers_of(d: &DiskConfig, mut layers: Vec<Layer>, len: u64) -> Vec<Layer> {
    if layers.is_empty() {
        layers.push(Layer {
            filename: d.path().display().to_string(),
            format: "raw",
            virtual_size: len,
            read_only: d.read_only(),
            backing_filename: None,
            backing_format: None,
            cluster_size: None,
        });
    }
    layers
}

/// `query-block`'s entry for disk `n`, configured as `d`, on `disk`.
fn block_info(n: usize, d: &DiskConfig, disk: &Disk) -> BlockInfo {
    let layers = layers_of(d, disk.chain(), disk.len().unwrap_or(0));
    block_info_of(n, d, &layers, false)
}

/// `query-block`'s entry for disk `n`, configured as `d`, opened as
/// `layers` (top first); `removable` for a CD-ROM.
fn block_info_of(n: usize, d: &DiskConfig, layers: &[Layer], removable: bool) -> BlockInfo {
    let (device, node_name) = if d.blockdev {
        (String::new(), d.drive.clone())
    } else {
        (d.drive.clone(), anon(n, 100))
    };
    BlockInfo {
        device,
        qdev: d.id.clone(),
        kind: "unknown".into(),
        removable,
        locked: false,
        tray_open: removable.then_some(false),
        inserted: Some(BlockDeviceInfo {
            file: d.path().display().to_string(),
            node_name: Some(node_name),
            backing_file: layers.first().and_then(|l| l.backing_filename.clone()),
            backing_file_depth: layers.len().saturating_sub(1) as u32,
            image: image_info(layers),
            cache: Some(BlockdevCacheInfo {
                writeback: d.write_cache,
                direct: d.cache().direct,
                no_flush: d.cache().no_flush,
            }),
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
    }
}

/// As QEMU: a -drive is named by its id and gets anonymous nodes; a
/// -blockdev disk only by its nodes.
fn anon(n: usize, k: usize) -> String {
    format!("#block{:03}", n * 128 + k)
}

/// Opens disk `n` (its place among the virtio devices names its
/// anonymous nodes) and builds its device.
pub(crate) fn open(n: usize, d: &DiskConfig) -> Result<(Arc<Mutex<Block>>, DiskModel), DiskError> {
    let disk = open_disk(d).map_err(DiskError::Open)?;
    let info = block_info(n, d, &disk);
    let opts = BlockOptions {
        read_only: d.read_only(),
        serial: d.serial.clone(),
    };
    let block = Block::with_disk(disk, opts).map_err(|source| DiskError::Block {
        path: d.path().to_path_buf(),
        source,
    })?;
    let file_node = d.image.file.node_name.clone().unwrap_or_else(|| anon(n, 1));
    let stats = block.stats();
    let block = Arc::new(Mutex::new(block));
    let model = DiskModel {
        n,
        config: Arc::new(Mutex::new(d.clone())),
        info: Arc::new(Mutex::new(info)),
        file_node: Arc::new(Mutex::new(file_node)),
        file_driver: match d.image.file.driver {
            Protocol::File => "file",
            Protocol::HostDevice => "host_device",
        },
        discard: d.discard(),
        stats,
        block: Some(block.clone()),
        tray: None,
    };
    Ok((block, model))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DiskModel {
    /// The monitor's view of disk `n` (its place names its anonymous
    /// nodes), opened as `layers` (top first), counted in `stats`;
    /// `removable` for a CD-ROM. A device built this way (an ATA drive)
    /// takes no snapshot.
    pub(crate) fn new(
        n: usize,
        d: &DiskConfig,
        layers: &[Layer],
        stats: Arc<Stats>,
        removable: bool,
    ) -> Self {
        let file_node = d.image.file.node_name.clone().unwrap_or_else(|| anon(n, 1));
        DiskModel {
            n,
            config: Arc::new(Mutex::new(d.clone())),
            info: Arc::new(Mutex::new(block_info_of(n, d, layers, removable))),
            file_node: Arc::new(Mutex::new(file_node)),
            file_driver: match d.image.file.driver {
                Protocol::File => "file",
                Protocol::HostDevice => "host_device",
            },
            discard: d.discard(),
            stats,
            block: None,
            tray: None,
        }
    }

    /// The same, its tray and medium read live from `tray`.
    pub(crate) fn with_tray(self, tray: Arc<dyn Fn() -> Tray + Send + Sync>) -> Self {
        DiskModel {
            tray: Some(tray),
            ..self
        }
    }

    fn virtio_block(&self) -> Result<&Mutex<Block>, String> {
        self.block
            .as_deref()
            .ok_or_else(|| "the device does not support this operation".to_string())
    }

    /// The format node the device uses (its `-blockdev` top node), if
    /// named.
    pub(crate) fn top_node(&self) -> Option<String> {
        lock(&self.config).image.node_name.clone()
    }

    /// The device's id, if it has one, else its drive's name (as the
    /// block graph names the device).
    pub(crate) fn qdev(&self) -> Option<String> {
        let c = lock(&self.config);
        Some(c.id.clone().unwrap_or_else(|| c.drive.clone()))
    }

    /// The image graph the device uses now.
    pub(crate) fn image(&self) -> FormatNode {
        lock(&self.config).image.clone()
    }

    /// See [`Block::settle_and_log`]; the caller has the device loop
    /// paused.
    pub(crate) fn settle_and_log(
        &self,
        log: Option<Arc<rvirt_block::commit::WriteLog>>,
    ) -> Result<(), String> {
        lock(self.virtio_block()?)
            .settle_and_log(log)
            .map_err(|e| e.to_string())
    }

    /// Puts the device on `image` (a snapshot's overlay over the image in
    /// use): see [`Block::switch_disk`] for the order. The caller has the
    /// device loop paused. On an error the device keeps its image.
    pub(crate) fn switch_image(&self, image: FormatNode) -> Result<(), String> {
        let mut cfg = lock(&self.config).clone();
        if cfg.blockdev {
            // A -blockdev disk is known by its top node.
            cfg.drive = image.node_name.clone().unwrap_or_default();
        }
        cfg.image = image;
        let mut info = None;
        let old = lock(self.virtio_block()?)
            .switch_disk(|| {
                let disk = open_disk(&cfg)?;
                info = Some(block_info(self.n, &cfg, &disk));
                Ok::<_, OpenError>(disk)
            })
            .map_err(|e| crate::error_chain(&e))?;
        // Closing the old image writes nothing new: it was settled.
        drop(old);
        if let Some(info) = info {
            *lock(&self.info) = info;
        }
        *lock(&self.file_node) = cfg
            .image
            .file
            .node_name
            .clone()
            .unwrap_or_else(|| anon(self.n, 1));
        *lock(&self.config) = cfg;
        Ok(())
    }

    /// `query-block`'s entry.
    pub(crate) fn info(&self) -> BlockInfo {
        let mut info = lock(&self.info).clone();
        if let Some(tray) = &self.tray {
            let t = tray();
            info.tray_open = Some(t.open);
            info.locked = t.locked;
            match t.file {
                None => info.inserted = None,
                Some(file) => {
                    if let Some(i) = info.inserted.as_mut() {
                        if i.file != file {
                            // A medium the monitor put in: a raw file.
                            i.file = file.clone();
                            i.backing_file = None;
                            i.backing_file_depth = 0;
                            i.drv = "raw".into();
                            i.image = None;
                        }
                    }
                }
            }
        }
        if let Some(image) = info.inserted.as_mut().and_then(|i| i.image.as_mut()) {
            fill_actual_size(image);
        }
        info
    }

    fn node_name(&self) -> Option<String> {
        lock(&self.info)
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
            node_name: Some(lock(&self.file_node).clone()),
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
        // One guard at a time: a temporary guard lives to the end of the
        // statement.
        let (device_name, qdev) = {
            let info = lock(&self.info);
            (info.device.clone(), info.qdev.clone())
        };
        vec![BlockStats {
            device: Some(device_name),
            qdev,
            node_name: self.node_name(),
            stats: device,
            parent: Some(Box::new(file)),
            ..Default::default()
        }]
    }
}
