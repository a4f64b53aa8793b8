//! QEMU's `-netdev stream` framing as a peer (passt) may send it: an
//! arbitrary byte stream in arbitrary chunks through `FrameReader`. Nothing
//! may panic; every frame handed out is within its bounds and the bytes the
//! peer framed; a bad length is an error, after which nothing more is read.
#![no_main]

use std::io::{self, IoSliceMut, Read};

use libfuzzer_sys::fuzz_target;
use rvirt_hostnet::stream::{FrameReader, MAX_FRAME};

/// The input split into chunks: each chunk's size is the next byte.
struct Chunks<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_vectored(&mut [IoSliceMut::new(buf)])
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        if self.data.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let (size, rest) = self.sizes.split_first().unwrap_or((&255, &[]));
        self.sizes = rest;
        let mut chunk = usize::from(*size).max(1).min(self.data.len());
        let mut n = 0;
        for b in bufs.iter_mut() {
            let k = chunk.min(b.len());
            b[..k].copy_from_slice(&self.data[n..n + k]);
            n += k;
            chunk -= k;
        }
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, rest)) = input.split_first() else {
        return;
    };
    let split = usize::from(split).min(rest.len());
    let (sizes, data) = rest.split_at(split);
    let mut src = Chunks { data, sizes };
    let mut reader = FrameReader::default();
    let mut out = vec![0u8; MAX_FRAME];
    for _ in 0..data.len() + 1 {
        match reader.read_frame(&mut src, &mut out) {
            Ok(n) => assert!(n > 0 && n <= MAX_FRAME),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                break;
            }
        }
    }
});
