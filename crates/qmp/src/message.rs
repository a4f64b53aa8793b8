//! The messages of the protocol other than events: the greeting, requests
//! and replies.

use crate::error::QmpError;
use crate::types::VersionInfo;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The body of the greeting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GreetingBody {
    /// The server's version.
    pub version: VersionInfo,
    /// Capabilities offered for negotiation. rvirt offers none: it has no
    /// out-of-band execution, so it must not advertise `oob`.
    pub capabilities: Vec<String>,
}

/// `{"QMP": {...}}`, sent when a client connects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greeting {
    /// The body.
    #[serde(rename = "QMP")]
    pub qmp: GreetingBody,
}

impl Greeting {
    /// A greeting with no capabilities.
    pub fn new(version: VersionInfo) -> Self {
        Self {
            qmp: GreetingBody {
                version,
                capabilities: Vec::new(),
            },
        }
    }
}

/// A checked command request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The command name.
    pub execute: String,
    /// The arguments (empty when absent).
    pub arguments: Map<String, Value>,
    /// The client's id, echoed verbatim.
    pub id: Option<Value>,
}

/// Why a JSON value is not a request; the id, if one was readable, is kept
/// so the error reply can carry it, as QEMU's does.
#[derive(Debug, PartialEq)]
pub struct BadRequest {
    /// The id to echo.
    pub id: Option<Value>,
    /// The error.
    pub error: QmpError,
}

impl Request {
    /// Checks a message the way QEMU's `qmp_dispatch_check_obj` does.
    pub fn from_value(value: Value) -> Result<Self, BadRequest> {
        let Value::Object(mut obj) = value else {
            return Err(BadRequest {
                id: None,
                error: QmpError::generic("QMP input must be a JSON object"),
            });
        };
        let id = obj.remove("id");
        let fail = |id, desc: String| BadRequest {
            id,
            error: QmpError::generic(desc),
        };
        // `exec-oob` is only legal after `oob` was negotiated, which rvirt
        // never offers, so it falls under "unexpected" like QEMU's.
        if let Some(key) = obj.keys().find(|k| *k != "execute" && *k != "arguments") {
            let desc = format!("QMP input member '{key}' is unexpected");
            return Err(fail(id, desc));
        }
        let execute = match obj.remove("execute") {
            Some(Value::String(s)) => s,
            Some(_) => {
                return Err(fail(
                    id,
                    "QMP input member 'execute' must be a string".into(),
                ))
            }
            None => return Err(fail(id, "QMP input lacks member 'execute'".into())),
        };
        let arguments = match obj.remove("arguments") {
            None => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(fail(
                    id,
                    "QMP input member 'arguments' must be an object".into(),
                ))
            }
        };
        Ok(Self {
            execute,
            arguments,
            id,
        })
    }
}

/// A reply: `{"return": ..., "id": ...}` or `{"error": ..., "id": ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The result on success.
    #[serde(rename = "return", skip_serializing_if = "Option::is_none", default)]
    pub ret: Option<Value>,
    /// The error on failure.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<QmpError>,
    /// The request's id, verbatim.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<Value>,
}

impl Response {
    /// A reply for a command's outcome.
    pub fn new(result: Result<Value, QmpError>, id: Option<Value>) -> Self {
        match result {
            Ok(v) => Self {
                ret: Some(v),
                error: None,
                id,
            },
            Err(e) => Self {
                ret: None,
                error: Some(e),
                id,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;
    use serde_json::json;

    fn bad(v: Value) -> (Option<Value>, String) {
        let e = Request::from_value(v).unwrap_err();
        (e.id, e.error.desc)
    }

    #[test]
    fn parses_request_with_any_id() {
        let r = Request::from_value(json!({"execute": "stop", "id": {"a": [1]}})).unwrap();
        assert_eq!(r.execute, "stop");
        assert!(r.arguments.is_empty());
        assert_eq!(r.id, Some(json!({"a": [1]})));
    }

    #[test]
    fn rejects_like_qemu() {
        assert_eq!(
            bad(json!([1])),
            (None, "QMP input must be a JSON object".into())
        );
        assert_eq!(
            bad(json!({"id": 3})),
            (Some(json!(3)), "QMP input lacks member 'execute'".into())
        );
        assert_eq!(
            bad(json!({"execute": 1, "id": 4})).1,
            "QMP input member 'execute' must be a string"
        );
        assert_eq!(
            bad(json!({"execute": "x", "arguments": null})).1,
            "QMP input member 'arguments' must be an object"
        );
        assert_eq!(
            bad(json!({"execute": "x", "foo": 1})).1,
            "QMP input member 'foo' is unexpected"
        );
        assert_eq!(
            bad(json!({"exec-oob": "x"})).1,
            "QMP input member 'exec-oob' is unexpected"
        );
    }

    #[test]
    fn reply_shapes() {
        let ok = serde_json::to_value(Response::new(Ok(json!({})), Some(json!("a")))).unwrap();
        assert_eq!(ok, json!({"return": {}, "id": "a"}));
        let err = Response::new(Err(QmpError::command_not_found("x")), None);
        assert_eq!(
            serde_json::to_value(err).unwrap(),
            json!({"error": {"class": "CommandNotFound", "desc": "The command x has not been found"}})
        );
        assert_eq!(
            ErrorClass::KVMMissingCap,
            serde_json::from_value(json!("KVMMissingCap")).unwrap()
        );
    }

    #[test]
    fn greeting_shape() {
        let g = serde_json::to_value(Greeting::new(VersionInfo::rvirt())).unwrap();
        assert_eq!(
            g["QMP"]["version"]["qemu"],
            json!({"major": 7, "minor": 2, "micro": 0})
        );
        assert_eq!(g["QMP"]["capabilities"], json!([]));
        assert!(g["QMP"]["version"]["package"]
            .as_str()
            .unwrap()
            .starts_with("rvirt "));
    }
}
