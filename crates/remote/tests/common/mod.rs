//! Shared by the integration tests: the parser for the trace text format
//! of tests/traces (`C->S len=28 prog=REMOTE(0x20008086) vers=1 proc=66
//! NAME type=CALL serial=0 status=OK payload[0]=`).

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use rvirt_remote::{MessageStatus, MessageType};

/// One captured message line.
#[derive(Debug, Clone)]
pub struct Captured {
    pub file: String,
    pub to_server: bool,
    pub len: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_: i32,
    pub type_: MessageType,
    pub serial: u32,
    pub status: MessageStatus,
    /// `None` when the summary cut the payload short.
    pub payload: Option<Vec<u8>>,
}

impl Captured {
    /// The frame's bytes rebuilt from the decoded text fields.
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [
            self.len,
            self.prog,
            self.vers,
            self.proc_ as u32,
            self.type_ as u32,
            self.serial,
            self.status as u32,
        ] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        b.extend_from_slice(self.payload.as_deref().unwrap_or_default());
        b
    }
}

pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

/// Parses the trace text format:
/// `C->S len=28 prog=REMOTE(0x20008086) vers=1 proc=66 NAME type=CALL serial=0 status=OK payload[0]=`
pub fn parse_line(file: &str, line: &str) -> Captured {
    let prog = field(line, "prog=");
    let prog_hex = prog
        .split_once("(0x")
        .and_then(|(_, h)| h.strip_suffix(')'))
        .expect("prog hex");
    let type_ = match field(line, "type=") {
        "CALL" => MessageType::Call,
        "REPLY" => MessageType::Reply,
        "MESSAGE" => MessageType::Message,
        "STREAM" => MessageType::Stream,
        t => panic!("type {t}"),
    };
    let status = match field(line, "status=") {
        "OK" => MessageStatus::Ok,
        "ERROR" => MessageStatus::Error,
        "CONTINUE" => MessageStatus::Continue,
        s => panic!("status {s}"),
    };
    let payload_word = line.split_whitespace().last().expect("payload");
    let (plen, data) = payload_word
        .strip_prefix("payload[")
        .and_then(|p| p.split_once("]="))
        .expect("payload field");
    let plen: usize = plen.parse().unwrap();
    let payload = if data.ends_with("...") {
        None
    } else {
        let p = hex(data);
        assert_eq!(p.len(), plen, "{file}: payload length");
        Some(p)
    };
    Captured {
        file: file.to_string(),
        to_server: line.starts_with("C->S"),
        len: field(line, "len=").parse().unwrap(),
        prog: u32::from_str_radix(prog_hex, 16).unwrap(),
        vers: field(line, "vers=").parse().unwrap(),
        proc_: field(line, "proc=").parse().unwrap(),
        type_,
        serial: field(line, "serial=").parse().unwrap(),
        status,
        payload,
    }
}

pub fn traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/traces")
}

pub fn sessions(sub: &str) -> Vec<(String, Vec<Captured>)> {
    let mut files: Vec<_> = fs::read_dir(traces_dir().join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = fs::read_to_string(p).unwrap();
            let msgs = text
                .lines()
                .filter(|l| l.starts_with("C->S") || l.starts_with("S->C"))
                .map(|l| parse_line(&name, l))
                .collect();
            (name, msgs)
        })
        .collect()
}
