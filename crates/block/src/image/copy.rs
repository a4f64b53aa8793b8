//! Copying an image's content into a new image (a volume's clone, or a
//! volume created from another one), the way `qemu-img convert` does for
//! libvirt: the source is read through its whole backing chain, the copy
//! has none, and chunks that read as zeroes are not written, so the copy
//! stays sparse.

use std::path::Path;

use imago::qcow2::Qcow2;
use imago::raw::Raw;
use imago::{FormatAccess, FormatDriverBuilder, PermissiveImplicitOpenGate};

use super::{
    create, open_storage, open_writable, probe_format, CreateOptions, ImageError, ImageFormat,
};

/// Bytes read and written per step.
const CHUNK: usize = 1 << 20;

/// Opens `path` for reading with its backing chain (named in its header,
/// as the pool's own volumes name each other).
fn open_chain(path: &Path) -> Result<FormatAccess<imago::file::File>, ImageError> {
    let err = |e| ImageError::Open(path.into(), e);
    Ok(match probe_format(path)? {
        ImageFormat::Qcow2 => FormatAccess::new(
            Qcow2::<imago::file::File>::builder(open_storage(path, false).map_err(err)?)
                .open(PermissiveImplicitOpenGate::default())
                .map_err(err)?,
        ),
        ImageFormat::Raw => FormatAccess::new(
            Raw::<imago::file::File>::builder(open_storage(path, false).map_err(err)?)
                .open(PermissiveImplicitOpenGate::default())
                .map_err(err)?,
        ),
    })
}

/// Creates `dst` as `opts` says (at least as large as `src`) and copies
/// `src`'s content into it; on failure `dst` is removed.
pub fn copy(src: &Path, dst: &Path, opts: &CreateOptions) -> Result<(), ImageError> {
    let from = open_chain(src)?;
    let size = from.size();
    let mut opts = opts.clone();
    opts.capacity = opts.capacity.max(size);
    create(dst, &opts)?;
    let result = (|| {
        let to = open_writable(dst, opts.format).map_err(|e| ImageError::Open(dst.into(), e))?;
        let mut buf = vec![0u8; CHUNK];
        let mut offset = 0u64;
        while offset < size {
            let n = CHUNK.min((size - offset) as usize);
            let chunk = &mut buf[..n];
            from.read(&mut *chunk, offset)
                .map_err(|e| ImageError::Read(src.into(), e))?;
            if chunk.iter().any(|b| *b != 0) {
                to.write(&*chunk, offset)
                    .map_err(|e| ImageError::Write(dst.into(), e))?;
            }
            offset += n as u64;
        }
        to.flush().map_err(|e| ImageError::Write(dst.into(), e))?;
        to.sync().map_err(|e| ImageError::Write(dst.into(), e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(dst);
    }
    result
}
