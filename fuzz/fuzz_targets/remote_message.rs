//! Fuzzes what a peer can send rvirtd or rvirsh: the frame reader fed in
//! arbitrary chunks, the header, the server's call classification, and
//! every procedure's argument and return decoder. Decoded values must
//! re-encode to bytes that decode to the same encoding again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvirt_remote::server::decode_incoming;
use rvirt_remote::xdr::{from_bytes, to_bytes};
use rvirt_remote::{Args, FrameDecoder, Procedure, RemoteError, Ret};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    // Partial reads: deliver the stream in chunks of 1..=256 bytes.
    let chunk = usize::from(chunk) + 1;
    let mut frames = FrameDecoder::new();
    for piece in stream.chunks(chunk) {
        frames.push(piece);
        loop {
            match frames.next_message() {
                Ok(Some(m)) => {
                    if let Err(refused) = decode_incoming(&m) {
                        let _ = refused.reply();
                    }
                    check_payload(m.header.proc_, &m.payload);
                }
                Ok(None) => break,
                // The connection would be dropped here.
                Err(_) => return,
            }
        }
    }
    // The bytes as a bare payload too, so the decoders see every shape.
    check_payload(
        i32::from(data[0]) + 256 * i32::from(data.len() % 2 == 0),
        stream,
    );
});

fn check_payload(proc_: i32, payload: &[u8]) {
    if let Some(p) = Procedure::from_i32(proc_) {
        if let Ok(a) = Args::decode(p, payload) {
            let once = a.encode();
            let again = Args::decode(p, &once).expect("re-encoded args decode");
            assert_eq!(again.encode(), once);
        }
        if let Ok(r) = Ret::decode(p, payload) {
            let once = r.encode();
            let again = Ret::decode(p, &once).expect("re-encoded ret decodes");
            assert_eq!(again.encode(), once);
        }
    }
    if let Ok(e) = from_bytes::<RemoteError>(payload) {
        let once = to_bytes(&e);
        assert_eq!(to_bytes(&from_bytes::<RemoteError>(&once).unwrap()), once);
    }
}
