//! Opening an image with its backing chain.
//!
//! rvirt opens every file of a chain itself and hands each backing image
//! to imago explicitly; imago's implicit opening stays denied. Which files
//! may be opened is the caller's [`ImageSpec`]: an explicit backing image
//! (libvirt's `-blockdev` with `"backing": "NODE"`), none at all
//! (`"backing": null`: nothing but the image is opened, whatever its
//! header says), or the one the image's header names (QEMU's behaviour
//! for `-drive` and for `-blockdev` without `backing`). That last one
//! follows QEMU with one exception: the header must name the backing
//! file's format. QEMU 7.2 would probe it, and probing lets whoever could
//! write the backing file (a guest that once ran on it as raw) choose its
//! format, and through a qcow2 header of its own, any host file as *its*
//! backing file. Backing images are always read-only, so a running guest
//! can change no header the VMM will follow.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use imago::qcow2::Qcow2 as ImagoQcow2;
use imago::raw::Raw as ImagoRaw;
use imago::{DenyImplicitOpenGate, FormatAccess, FormatDriverBuilder};

use super::store::Anchors;
use super::{Qcow2, Store};
use crate::backend::DiskBackend;
use crate::buf::IoBuf;
use crate::format::Layer;
use crate::open::{open_host, OpenError, OpenOptions, PassedFiles};

/// Image formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ImageFormat {
    #[default]
    Raw,
    Qcow2,
}

impl ImageFormat {
    /// QEMU's driver name.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
        }
    }
}

/// Where an image's backing image comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Backing {
    /// The one the image's header names, if any (its format must be
    /// named too); recursively.
    #[default]
    FromImage,
    /// None, whatever the header says.
    None,
    /// This image.
    Image(Box<ImageSpec>),
}

/// An image to open: a file, its format, and its backing chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSpec {
    pub path: PathBuf,
    pub format: ImageFormat,
    /// Opened read-only (backing images always are).
    pub read_only: bool,
    pub backing: Backing,
}

/// Images in one chain at most: deeper is a loop (an image that is its
/// own backing file, directly or not) or a mistake.
pub const MAX_CHAIN: usize = 64;

/// Opens `spec` (qcow2) and its chain; `opts` as for every image of the
/// chain (cache modes apply to backing files as in QEMU, where they
/// inherit the overlay's), the backing images read-only.
pub(crate) fn open_qcow2(
    spec: &ImageSpec,
    opts: &OpenOptions,
    passed: PassedFiles,
) -> Result<Qcow2, OpenError> {
    let read_only = spec.read_only || opts.read_only;
    let (host, _) = open_host(&spec.path, opts, read_only, passed)?;
    let storage: Arc<dyn DiskBackend> = Arc::new(host);
    let mut chain = Vec::new();
    // A writable qcow2 image's anchored writes wait for its refcounts
    // (`Anchors`); an image too short for a header is left to imago to
    // refuse.
    let anchors = if read_only {
        None
    } else {
        cluster_size(&*storage)
            .and_then(|c| Anchors::new(&*storage, c))
            .ok()
            .map(Arc::new)
    };
    let top = open_layer(
        spec,
        opts,
        passed,
        storage.clone(),
        !read_only,
        anchors.clone(),
        &mut chain,
    )?;
    let cluster_size = chain.first().and_then(|l| l.cluster_size).unwrap_or(65536);
    if !read_only {
        // QEMU reads past a file's end as zeroes and may leave an image
        // ending inside its last cluster; the engines read whole host
        // extents and take the end as an error, so the last cluster is
        // made whole once, before any request.
        let len = storage.len().map_err(|e| format_error(&spec.path, e))?;
        if len % cluster_size != 0 {
            let end = len.next_multiple_of(cluster_size);
            super::store::write_zeroes(&*storage, len, end - len)
                .map_err(|e| format_error(&spec.path, e))?;
        }
    }
    Ok(Qcow2 {
        path: spec.path.clone(),
        top,
        storage,
        cluster_size,
        chain,
        anchors,
    })
}

fn format_error(path: &Path, source: io::Error) -> OpenError {
    OpenError::Format {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens one image on `host` (its file) and, below it, its backing chain;
/// appends their descriptions to `chain`, this one first.
fn open_layer(
    spec: &ImageSpec,
    opts: &OpenOptions,
    passed: PassedFiles,
    host: Arc<dyn DiskBackend>,
    writable: bool,
    anchors: Option<Arc<Anchors>>,
    chain: &mut Vec<Layer>,
) -> Result<FormatAccess<Store>, OpenError> {
    if chain.len() >= MAX_CHAIN {
        return Err(OpenError::ChainTooLong {
            path: spec.path.clone(),
        });
    }
    let mut store = Store::new(host.clone(), &spec.path);
    if let Some(a) = anchors {
        store = store.anchored(a);
    }
    let err = |e| format_error(&spec.path, e);
    match spec.format {
        ImageFormat::Raw => {
            if spec.backing != Backing::None && spec.backing != Backing::FromImage {
                return Err(OpenError::RawBacking {
                    path: spec.path.clone(),
                });
            }
            let raw = ImagoRaw::builder(store)
                .write(writable)
                .open(DenyImplicitOpenGate::default())
                .map_err(err)?;
            let access = FormatAccess::new(raw);
            chain.push(Layer {
                filename: spec.path.display().to_string(),
                format: "raw",
                virtual_size: access.size(),
                read_only: !writable,
                backing_filename: None,
                backing_format: None,
                cluster_size: None,
            });
            Ok(access)
        }
        ImageFormat::Qcow2 => {
            let mut q = ImagoQcow2::<Store>::builder(store)
                .write(writable)
                .backing(None)
                .data_file(None)
                .open(DenyImplicitOpenGate::default())
                .map_err(err)?;
            let cluster_size = cluster_size(&*host).map_err(err)?;
            if writable {
                // imago 0.2 loses guest data with 64-bit refcounts: a
                // refcount update lands in the last 8 bytes of a data
                // cluster (crates/block/tests/qcow2.rs found it with
                // 512-byte clusters). Such images are refused for writing
                // until that is fixed; read-only layers are never written.
                if refcount_order(&*host).map_err(err)? == 6 {
                    return Err(OpenError::Feature {
                        path: spec.path.clone(),
                        feature: "64-bit refcounts (refcount_bits=64)",
                    });
                }
                check_metadata_refcounts(&*host, cluster_size).map_err(err)?;
            }
            if q.requires_external_data_file() {
                return Err(OpenError::Feature {
                    path: spec.path.clone(),
                    feature: "an external data file",
                });
            }
            let header_file = q.implicit_backing_file().cloned();
            let header_format = q.implicit_backing_format().cloned();
            let index = chain.len();
            chain.push(Layer {
                filename: spec.path.display().to_string(),
                format: "qcow2",
                virtual_size: 0,
                read_only: !writable,
                backing_filename: header_file.clone(),
                backing_format: header_format.clone(),
                cluster_size: Some(cluster_size),
            });
            let below = match &spec.backing {
                Backing::None => None,
                Backing::Image(b) => Some((**b).clone()),
                Backing::FromImage => match header_file {
                    None => None,
                    Some(file) => Some(ImageSpec {
                        path: resolve(&spec.path, &file),
                        format: match header_format.as_deref() {
                            Some("qcow2") => ImageFormat::Qcow2,
                            Some("raw" | "file") => ImageFormat::Raw,
                            other => {
                                return Err(OpenError::BackingFormat {
                                    path: spec.path.clone(),
                                    backing: file,
                                    format: other.map(str::to_string),
                                })
                            }
                        },
                        read_only: true,
                        backing: Backing::FromImage,
                    }),
                },
            };
            if let Some(b) = below {
                let (file, _) = open_host(&b.path, opts, true, passed)?;
                let lower = open_layer(&b, opts, passed, Arc::new(file), false, None, chain)?;
                q.set_backing(Some(lower));
            }
            let access = FormatAccess::new(q);
            chain[index].virtual_size = access.size();
            Ok(access)
        }
    }
}

/// A backing file name from a header, relative to the image's directory
/// (as QEMU resolves it).
fn resolve(image: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    image.parent().unwrap_or(Path::new("")).join(p)
}

/// The header's cluster size (its `cluster_bits` at byte 20), which imago
/// keeps to itself.
fn cluster_size(host: &dyn DiskBackend) -> io::Result<u64> {
    let align = host.alignment();
    let n = align.offset.max(512);
    let mut buf = crate::aligned::AlignedBuf::with_len(align.memory.max(1), n);
    host.read_at(buf.as_mut_slice(), 0)?;
    let b = buf.as_slice();
    let bits = u32::from_be_bytes([b[20], b[21], b[22], b[23]]);
    if !(9..=21).contains(&bits) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cluster bits {bits} out of range (9 to 21)"),
        ));
    }
    Ok(1 << bits)
}

/// Refuses a writable image whose header, L1 table or refcount table has
/// no refcount.
///
/// imago 0.2 trusts the refcounts when it allocates: a cluster with
/// refcount 0 is free, so a guest's write could land on the header (and
/// with it a backing file name of the guest's choosing) or on a table.
/// And an image whose refcount table has no block for the first clusters
/// makes imago place a new refcount block at cluster 0, which the table
/// cannot point to (offset 0 means "none"), so imago recurses until the
/// stack overflows (found by the `qcow2_image` fuzz target). QEMU guards
/// against both with its overlap checks; rvirt checks once at open that
/// what the header anchors is allocated, which a consistent image always
/// is (`qemu-img check -r all` repairs one that is not).
/// The image's refcount order (log2 of its refcount width): the header's
/// for version 3, 4 for version 2.
fn refcount_order(host: &dyn DiskBackend) -> io::Result<u32> {
    let header = read_exact(host, 0, 104)?;
    let be32 = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().unwrap());
    Ok(if be32(4) >= 3 && be32(100) >= 104 {
        be32(96)
    } else {
        4
    })
}

fn check_metadata_refcounts(host: &dyn DiskBackend, cluster_size: u64) -> io::Result<()> {
    let header = read_exact(host, 0, 104)?;
    let be32 = |at: usize| -> u64 {
        header
            .get(at..at + 4)
            .map_or(0, |b| u32::from_be_bytes(b.try_into().unwrap()).into())
    };
    let be64 = |at: usize| -> u64 {
        header
            .get(at..at + 8)
            .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()))
    };
    let refcount_order = if be32(4) >= 3 && be32(100) >= 104 {
        be32(96)
    } else {
        4
    };
    if refcount_order > 6 {
        return Err(invalid(format!(
            "refcount order {refcount_order} out of range (0 to 6)"
        )));
    }
    let (rt, rt_clusters) = (be64(48), be32(56));
    let (l1, l1_entries) = (be64(40), be32(36));
    // QEMU's own limits (QCOW_MAX_REFTABLE_SIZE, QCOW_MAX_L1_SIZE): no
    // image QEMU writes has larger tables, and they bound this check.
    if rt_clusters * cluster_size > 8 << 20 {
        return Err(invalid(format!(
            "refcount table of {rt_clusters} clusters too large"
        )));
    }
    if l1_entries * 8 > 32 << 20 {
        return Err(invalid(format!(
            "L1 table of {l1_entries} entries too large"
        )));
    }
    let cluster_bits = cluster_size.trailing_zeros();
    // Refcounts per refcount block, as a power of two.
    let rb_bits = cluster_bits + 3 - refcount_order as u32;
    let refcount = |offset: u64| -> io::Result<u64> {
        let cluster = offset >> cluster_bits;
        if (cluster >> rb_bits) >= rt_clusters << (cluster_bits - 3) {
            // Past the refcount table's end: no refcount block.
            return Ok(0);
        }
        let entry = (cluster >> rb_bits)
            .checked_mul(8)
            .and_then(|e| e.checked_add(rt))
            .and_then(|at| read_exact(host, at, 8).ok())
            .ok_or_else(|| invalid(format!("no refcount table entry for offset {offset:#x}")))?;
        let block = u64::from_be_bytes(entry[..8].try_into().unwrap()) & !0x1ff;
        if block == 0 {
            return Ok(0);
        }
        let index = cluster & ((1 << rb_bits) - 1);
        let bit = index << refcount_order;
        let width = 1u64 << refcount_order;
        let bytes = block
            .checked_add(bit / 8)
            .and_then(|at| read_exact(host, at, width.div_ceil(8)).ok())
            .ok_or_else(|| {
                invalid(format!(
                    "refcount block at {block:#x} past the end of the file"
                ))
            })?;
        Ok(if width < 8 {
            // Narrow refcounts fill a byte from its low bits (QEMU's
            // get_refcount_ro0..2).
            u64::from(bytes[0] >> (bit % 8)) & ((1 << width) - 1)
        } else {
            bytes.iter().fold(0, |v, b| v << 8 | u64::from(*b))
        })
    };
    let mut anchored = vec![("the header", 0)];
    for i in 0..rt_clusters {
        anchored.push(("the refcount table", rt.saturating_add(i * cluster_size)));
    }
    for i in 0..(l1_entries * 8).div_ceil(cluster_size) {
        anchored.push(("the L1 table", l1.saturating_add(i * cluster_size)));
    }
    for (what, offset) in anchored {
        if refcount(offset)? == 0 {
            return Err(invalid(format!(
                "{what} has refcount 0 at offset {offset:#x} (damaged image; qemu-img check -r all repairs it)"
            )));
        }
    }
    Ok(())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// `len` bytes at `offset`, read in whole aligned blocks (O_DIRECT).
fn read_exact(host: &dyn DiskBackend, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let align = host.alignment();
    let step = align.offset.max(1) as u64;
    let start = offset / step * step;
    let end = offset
        .checked_add(len)
        .and_then(|e| e.checked_next_multiple_of(step))
        .ok_or_else(|| invalid(format!("offset {offset:#x} out of range")))?;
    let mut buf = crate::aligned::AlignedBuf::with_len(align.memory.max(1), (end - start) as usize);
    // Past the end reads as zeroes (an image may end inside a block).
    // SAFETY: `buf` outlives the call that uses the IoBuf.
    let io = [unsafe { IoBuf::new(buf.as_mut_ptr(), buf.len()) }];
    super::store::read_full(host, &io, start)?;
    let from = (offset - start) as usize;
    Ok(buf.as_slice()[from..from + len as usize].to_vec())
}
