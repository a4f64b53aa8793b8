//! Image files as a storage pool sees them: create raw and qcow2 images,
//! read what an image is (format, virtual size, allocation, backing file),
//! resize and copy them. The storage driver's volumes are these; the VMM's
//! I/O path is elsewhere in this crate.
//!
//! qcow2 is imago's: its create builder formats an image (with a backing
//! file and metadata preallocation), its open reads the header (size,
//! backing file and format) and refuses what it cannot handle with a
//! message naming the feature, which the error here puts beside the
//! image's path. What rvirt adds around it: the format probe (qcow2's
//! magic, else raw, as libvirt's storage driver decides for a dir pool),
//! files created exclusively with mode 0600 and removed again when
//! formatting fails, raw images (plain files: `set_len`, `fallocate`), and
//! the copy loop of a clone, which writes only the chunks that are not
//! zero so a copy stays sparse.

mod copy;

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use imago::qcow2::Qcow2;
use imago::{
    DenyImplicitOpenGate, FormatAccess, FormatCreateBuilder, FormatDriverBuilder,
    StorageOpenOptions,
};

pub use copy::copy;

/// The image formats rvirt creates and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Raw,
    Qcow2,
}

impl ImageFormat {
    /// libvirt's and QEMU's name (`<format type='qcow2'/>`).
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
        }
    }

    /// The format named `s`, if rvirt can create it.
    pub fn from_name(s: &str) -> Option<ImageFormat> {
        match s {
            "raw" => Some(ImageFormat::Raw),
            "qcow2" => Some(ImageFormat::Qcow2),
            _ => None,
        }
    }
}

/// qcow2's magic, the first four bytes of every qcow2 image.
const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";

/// What an image file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: ImageFormat,
    /// The disk size a guest sees, in bytes.
    pub capacity: u64,
    /// Bytes the file occupies on the host (its allocated blocks).
    pub allocation: u64,
    /// The file's length in bytes.
    pub physical: u64,
    /// The backing file named in a qcow2 header, as written there.
    pub backing: Option<BackingFile>,
}

/// A backing file as a qcow2 header names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingFile {
    /// The name as written (relative names are relative to the image).
    pub name: String,
    /// Its format as written (`raw`, `qcow2`), if the header says.
    pub format: Option<String>,
}

impl BackingFile {
    /// The backing file's path, resolving a relative name against the
    /// image's directory as QEMU does.
    pub fn path_from(&self, image: &Path) -> PathBuf {
        let p = Path::new(&self.name);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        image.parent().unwrap_or(Path::new("/")).join(p)
    }
}

/// How much of a new image to allocate up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prealloc {
    /// Nothing: a sparse raw file, a qcow2 image with no clusters.
    #[default]
    Off,
    /// qcow2's metadata (every cluster mapped); for raw the same as `Off`.
    Metadata,
    /// Every byte allocated (raw: fallocate).
    Full,
}

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    pub format: ImageFormat,
    /// Virtual size in bytes.
    pub capacity: u64,
    pub prealloc: Prealloc,
    /// A qcow2 image's backing file: the name written into the header and
    /// its format.
    pub backing: Option<(String, ImageFormat)>,
}

/// Why an image operation failed; each names the image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot create {0}")]
    Create(PathBuf, #[source] io::Error),
    #[error("cannot open {0}")]
    Open(PathBuf, #[source] io::Error),
    #[error("cannot read {0}")]
    Read(PathBuf, #[source] io::Error),
    #[error("cannot write {0}")]
    Write(PathBuf, #[source] io::Error),
    #[error("cannot resize {0}")]
    Resize(PathBuf, #[source] io::Error),
    #[error("{0}: a backing file needs the qcow2 format")]
    BackingNeedsQcow2(PathBuf),
    #[error("{path}: cannot shrink from {from} to {to} bytes without the shrink flag")]
    Shrink { path: PathBuf, from: u64, to: u64 },
}

/// Reads the first bytes of `path` to tell qcow2 from raw.
pub fn probe_format(path: &Path) -> Result<ImageFormat, ImageError> {
    let mut f = File::open(path).map_err(|e| ImageError::Open(path.into(), e))?;
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match f.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ImageError::Read(path.into(), e)),
        }
    }
    Ok(if got == 4 && magic == QCOW2_MAGIC {
        ImageFormat::Qcow2
    } else {
        ImageFormat::Raw
    })
}

/// `path` as imago's storage object, opened here rather than through an
/// open gate (which would be asked, and refuse, for the image itself).
fn open_storage(path: &Path, writable: bool) -> io::Result<imago::file::File> {
    let f = OpenOptions::new().read(true).write(writable).open(path)?;
    imago::file::File::from_open_file(f, StorageOpenOptions::new().filename(path).write(writable))
}

/// Opens a qcow2 image for reading its header only: no backing file and
/// no data file is opened.
fn open_qcow2_header(path: &Path) -> Result<Qcow2<imago::file::File>, ImageError> {
    let s = open_storage(path, false).map_err(|e| ImageError::Open(path.into(), e))?;
    Qcow2::<imago::file::File>::builder(s)
        .backing(None)
        .data_file(None)
        .open(DenyImplicitOpenGate::default())
        .map_err(|e| ImageError::Open(path.into(), e))
}

/// What `path` is: format, virtual size, allocation, backing file.
pub fn inspect(path: &Path) -> Result<ImageInfo, ImageError> {
    let meta = std::fs::metadata(path).map_err(|e| ImageError::Open(path.into(), e))?;
    let format = probe_format(path)?;
    let (capacity, backing) = match format {
        ImageFormat::Raw => (meta.len(), None),
        ImageFormat::Qcow2 => {
            let q = open_qcow2_header(path)?;
            let backing = q.implicit_backing_file().map(|name| BackingFile {
                name: name.clone(),
                format: q.implicit_backing_format().cloned(),
            });
            let size = imago::format::drivers::FormatDriverInstance::size(&q);
            (size, backing)
        }
    };
    Ok(ImageInfo {
        format,
        capacity,
        allocation: meta.blocks() * 512,
        physical: meta.len(),
        backing,
    })
}

/// Creates `path` (which must not exist) as an image; on failure nothing
/// is left behind.
pub fn create(path: &Path, opts: &CreateOptions) -> Result<(), ImageError> {
    if opts.backing.is_some() && opts.format != ImageFormat::Qcow2 {
        return Err(ImageError::BackingNeedsQcow2(path.into()));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ImageError::Create(path.into(), e))?;
    let result = match opts.format {
        ImageFormat::Raw => format_raw(&file, opts.capacity, opts.prealloc),
        ImageFormat::Qcow2 => format_qcow2(file, opts),
    };
    result.map_err(|e| {
        let _ = std::fs::remove_file(path);
        ImageError::Create(path.into(), e)
    })
}

fn format_raw(file: &File, size: u64, prealloc: Prealloc) -> io::Result<()> {
    file.set_len(size)?;
    if prealloc == Prealloc::Full && size > 0 {
        rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, size)?;
    }
    file.sync_all()
}

fn format_qcow2(file: File, opts: &CreateOptions) -> io::Result<()> {
    let storage = imago::file::File::from_open_file(
        file.try_clone()?,
        StorageOpenOptions::new().write(true),
    )?;
    let mut b = Qcow2::<imago::file::File>::create_builder(storage)
        .size(opts.capacity)
        .preallocate(match opts.prealloc {
            Prealloc::Off => imago::format::PreallocateMode::None,
            Prealloc::Metadata => imago::format::PreallocateMode::FormatAllocate,
            Prealloc::Full => imago::format::PreallocateMode::FullAllocate,
        });
    if let Some((name, fmt)) = &opts.backing {
        b = b.backing(name.clone(), fmt.name().to_string());
    }
    b.create()?;
    file.sync_all()
}

/// Opens `path` (raw or qcow2) for writing, without its backing file.
fn open_writable(path: &Path, format: ImageFormat) -> io::Result<FormatAccess<imago::file::File>> {
    Ok(match format {
        ImageFormat::Qcow2 => FormatAccess::new(
            Qcow2::<imago::file::File>::builder(open_storage(path, true)?)
                .write(true)
                .backing(None)
                .data_file(None)
                .open(DenyImplicitOpenGate::default())?,
        ),
        ImageFormat::Raw => FormatAccess::new(
            imago::raw::Raw::<imago::file::File>::builder(open_storage(path, true)?)
                .write(true)
                .open(DenyImplicitOpenGate::default())?,
        ),
    })
}

/// Changes the virtual size of `path` to `capacity` bytes. Shrinking
/// needs `shrink`; `allocate` allocates the new space of a raw image.
pub fn resize(path: &Path, capacity: u64, shrink: bool, allocate: bool) -> Result<(), ImageError> {
    let info = inspect(path)?;
    if capacity < info.capacity && !shrink {
        return Err(ImageError::Shrink {
            path: path.into(),
            from: info.capacity,
            to: capacity,
        });
    }
    let err = |e| ImageError::Resize(path.into(), e);
    match info.format {
        ImageFormat::Raw => {
            let f = OpenOptions::new().write(true).open(path).map_err(err)?;
            f.set_len(capacity).map_err(err)?;
            if allocate && capacity > info.capacity {
                rustix::fs::fallocate(
                    &f,
                    rustix::fs::FallocateFlags::empty(),
                    info.capacity,
                    capacity - info.capacity,
                )
                .map_err(|e| err(e.into()))?;
            }
            f.sync_all().map_err(err)
        }
        ImageFormat::Qcow2 => {
            let mut img = open_writable(path, ImageFormat::Qcow2).map_err(err)?;
            img.resize(capacity, imago::format::PreallocateMode::None)
                .map_err(err)?;
            img.flush().map_err(err)?;
            img.sync().map_err(err)
        }
    }
}

#[cfg(test)]
mod tests;
