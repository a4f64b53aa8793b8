//! Replays the inputs recorded from QEMU 7.2 (tests/golden/qemu-7.2, made
//! by tests/golden/capture.py) against rvirt's monitor and checks that the
//! replies have the same shape (field names and JSON types), that errors
//! have the same class and description, and that events come in the same
//! places.

mod common;

use common::Fixture;
use rvirt_qmp::RunState;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Compares field names and JSON types; arrays by their first elements.
fn same_shape(ours: &Value, theirs: &Value, at: &str) -> Result<(), String> {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            let ka: Vec<_> = a.keys().collect();
            let kb: Vec<_> = b.keys().collect();
            if ka != kb {
                return Err(format!("{at}: keys {ka:?} != QEMU's {kb:?}"));
            }
            for (k, v) in a {
                same_shape(v, &b[k], &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) => match (a.first(), b.first()) {
            (Some(x), Some(y)) => same_shape(x, y, &format!("{at}[0]")),
            _ => Ok(()),
        },
        (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => Ok(()),
        _ => Err(format!(
            "{at}: {ours} has another type than QEMU's {theirs}"
        )),
    }
}

/// HMP outputs that must match QEMU's text exactly.
const EXACT_TEXT: &[&str] = &[
    "hmp-info-status",
    "hmp-info-status-space",
    "hmp-unknown",
    "hmp-info-unknown",
    "hmp-empty",
];

fn replay(name: &str, case: &Value) -> Result<(), String> {
    // The state QEMU was in when the case was recorded.
    let state = match name {
        "stop-cont-stop" => RunState::Running,
        _ => RunState::Prelaunch,
    };
    let fx = Fixture::new(state);
    let mut c = fx.connect();
    let greeting = c.recv();
    same_shape(&greeting, &case["greeting"], "greeting")?;
    if case["negotiated"] == Value::Bool(true) {
        c.send(b"{\"execute\": \"qmp_capabilities\"}\n");
        c.recv();
    }
    // capture.py sent the input as Latin-1, one byte per character.
    let input: Vec<u8> = case["input"]
        .as_str()
        .unwrap()
        .chars()
        .map(|ch| u8::try_from(u32::from(ch)).unwrap())
        .collect();
    c.send(&input);
    let want = case["output"].as_array().unwrap();
    let mut got = Vec::new();
    while got.len() < want.len() {
        match c.try_recv(Duration::from_secs(2)) {
            Some(m) => got.push(m),
            None => break,
        }
    }
    if let Some(extra) = c.try_recv(Duration::from_millis(100)) {
        got.push(extra);
    }
    if got.len() != want.len() {
        return Err(format!(
            "{} messages, QEMU sent {}: {got:?}",
            got.len(),
            want.len()
        ));
    }
    for (i, (ours, theirs)) in got.iter().zip(want).enumerate() {
        same_shape(ours, theirs, &format!("message {i}"))?;
        if theirs.get("error").is_some() && ours["error"] != theirs["error"] {
            return Err(format!(
                "error {} != QEMU's {}",
                ours["error"], theirs["error"]
            ));
        }
        if theirs.get("event").is_some() && ours["event"] != theirs["event"] {
            return Err(format!(
                "event {} != QEMU's {}",
                ours["event"], theirs["event"]
            ));
        }
        if theirs.get("id") != ours.get("id") && !theirs["id"].is_f64() {
            return Err(format!(
                "id {:?} != QEMU's {:?}",
                ours.get("id"),
                theirs.get("id")
            ));
        }
        if EXACT_TEXT.contains(&name) && ours["return"] != theirs["return"] {
            return Err(format!(
                "text {} != QEMU's {}",
                ours["return"], theirs["return"]
            ));
        }
    }
    Ok(())
}

#[test]
fn replies_match_qemu_7_2() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/qemu-7.2");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 50,
        "golden data missing in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for path in &names {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let case: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        if let Err(e) = replay(&name, &case) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "differences from QEMU:\n{}",
        failures.join("\n")
    );
}
