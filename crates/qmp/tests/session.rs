//! Properties of the protocol core over arbitrary input: no panic, every
//! reply a single well-formed message, and chunking never changes the
//! outcome (the framing is truly incremental).

mod common;

use common::MockVm;
use proptest::prelude::*;
use rvirt_qmp::json::{Framed, Streamer};
use rvirt_qmp::{EventBus, RunState, Session, SessionOutput};
use serde_json::Value;
use std::sync::Arc;

#[derive(Default)]
struct Collect(Vec<Value>);

impl SessionOutput for Collect {
    fn send(&mut self, line: Vec<u8>) {
        assert!(line.ends_with(b"\r\n"));
        let mut s = Streamer::new(usize::MAX);
        s.feed(&line).unwrap();
        match s.next() {
            Some(Framed::Message(v)) => {
                assert!(v.get("return").is_some() != v.get("error").is_some(), "{v}");
                self.0.push(v);
            }
            other => panic!("reply is not one JSON value: {other:?}"),
        }
        assert!(s.next().is_none());
    }
}

fn run(input: &[u8], chunk: usize) -> (Vec<Value>, bool) {
    let vm = Arc::new(MockVm::new(EventBus::new(), RunState::Prelaunch));
    let mut session = Session::new(vm, 256);
    let mut out = Collect::default();
    session
        .process(br#"{"execute": "qmp_capabilities"}"#, &mut out)
        .unwrap();
    for piece in input.chunks(chunk.max(1)) {
        match session.process(piece, &mut out) {
            Ok(n) => assert_eq!(n, piece.len(), "an uncongested session consumes everything"),
            Err(_) => return (out.0, true),
        }
    }
    (out.0, false)
}

/// Fragments that make inputs likely to hit interesting paths.
fn qmpish() -> impl Strategy<Value = Vec<u8>> {
    let atoms = prop_oneof![
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b"\"execute\"".to_vec()),
        Just(b"\"arguments\"".to_vec()),
        Just(b"\"id\"".to_vec()),
        Just(b"\"query-status\"".to_vec()),
        Just(b"\"human-monitor-command\"".to_vec()),
        Just(b"\"command-line\"".to_vec()),
        Just(b"\"info cpus\"".to_vec()),
        Just(b":".to_vec()),
        Just(b",".to_vec()),
        Just(b"'".to_vec()),
        Just(b"\\u".to_vec()),
        Just(b"12".to_vec()),
        Just(b"-0.5e3".to_vec()),
        Just(b"true".to_vec()),
        Just(b"nul".to_vec()),
        Just(b"\n".to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(atoms, 0..80).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn chunking_does_not_change_replies(input in qmpish(), chunk in 1usize..40) {
        let whole = run(&input, input.len());
        let pieces = run(&input, chunk);
        prop_assert_eq!(whole, pieces);
    }

    #[test]
    fn arbitrary_bytes_never_break_the_session(input in prop::collection::vec(any::<u8>(), 0..600)) {
        run(&input, 7);
    }
}

#[test]
fn congestion_pauses_consumption() {
    struct Full(usize);
    impl SessionOutput for Full {
        fn send(&mut self, _: Vec<u8>) {
            self.0 += 1;
        }
        fn congested(&self) -> bool {
            self.0 >= 2
        }
    }
    let vm = Arc::new(MockVm::new(EventBus::new(), RunState::Running));
    let mut s = Session::new(vm, 1 << 20);
    let mut out = Full(0);
    let input =
        br#"{"execute": "qmp_capabilities"}{"execute": "query-kvm"}{"execute": "query-kvm"}"#;
    let n = s.process(input, &mut out).unwrap();
    assert_eq!(out.0, 2);
    assert!(n < input.len(), "kept reading while congested");
}
