//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every generated fixture (`vi-*.xml`, `dx-*.xml`), sorted.
pub fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    v.sort();
    v
}

/// Splits a shell command line as libvirt prints it (single quotes only).
pub fn shell_split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in line.trim().chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' if !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// libvirt's argv without the environment and the program name.
pub fn libvirt_args(argv_file: &str) -> Vec<String> {
    let words = shell_split(argv_file);
    let start = words
        .iter()
        .position(|w| w.ends_with("qemu-system-x86_64"))
        .expect("program name");
    words[start + 1..].to_vec()
}

/// Values of every occurrence of `flag`.
pub fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

/// An option value as a map: JSON objects flattened, or `driver,k=v,…`
/// keyval (the first bare item becomes `driver`/`type`).
pub fn props(v: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if v.starts_with('{') {
        let j: serde_json::Value = serde_json::from_str(v).unwrap();
        for (k, val) in j.as_object().unwrap() {
            let s = match val {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            m.insert(k.clone(), s);
        }
    } else {
        // Doubled commas are literal commas.
        let protected = v.replace(",,", "\u{0}");
        for (i, part) in protected.split(',').enumerate() {
            let part = part.replace('\u{0}', ",");
            match part.split_once('=') {
                Some((k, val)) => {
                    m.insert(k.to_string(), val.to_string());
                }
                None if i == 0 => {
                    m.insert("driver".into(), part);
                }
                None => {
                    m.insert(part, String::new());
                }
            }
        }
    }
    m
}
