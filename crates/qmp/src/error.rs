//! QMP error replies: the error class and the human-readable description.

use serde::{Deserialize, Serialize};

/// QEMU's error classes (qapi/error.json). Clients such as libvirt branch on
/// these names, so they are spelled exactly as QEMU spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorClass {
    /// Any error without a more specific class; almost every QMP error.
    GenericError,
    /// The command does not exist (or negotiation has not happened yet).
    CommandNotFound,
    /// A device exists but is not active.
    DeviceNotActive,
    /// The named device does not exist.
    DeviceNotFound,
    /// KVM lacks a capability the request needs.
    KVMMissingCap,
}

/// An error a command returns, sent as `{"error": {"class", "desc"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{class:?}: {desc}")]
pub struct QmpError {
    /// The error class.
    pub class: ErrorClass,
    /// QEMU-style description, a sentence without a trailing period.
    pub desc: String,
}

impl QmpError {
    /// A `GenericError` with the given description.
    pub fn generic(desc: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::GenericError,
            desc: desc.into(),
        }
    }

    /// `CommandNotFound` for an unknown command, worded as QEMU words it.
    /// QEMU's answer when a command names a device that does not exist.
    pub fn device_not_found(name: &str) -> Self {
        QmpError {
            class: ErrorClass::DeviceNotFound,
            desc: format!("Device '{name}' not found"),
        }
    }

    /// QEMU's answer to `balloon` / `query-balloon` on a VM without one.
    pub fn no_balloon() -> Self {
        QmpError {
            class: ErrorClass::DeviceNotActive,
            desc: "No balloon device has been activated".into(),
        }
    }

    pub fn command_not_found(name: &str) -> Self {
        Self {
            class: ErrorClass::CommandNotFound,
            desc: format!("The command {name} has not been found"),
        }
    }

    /// What QEMU answers to any command but `qmp_capabilities` before
    /// negotiation.
    pub fn negotiation_expected() -> Self {
        Self {
            class: ErrorClass::CommandNotFound,
            desc: "Expecting capabilities negotiation with 'qmp_capabilities'".into(),
        }
    }

    /// A required argument is absent.
    pub fn missing_parameter(name: &str) -> Self {
        Self::generic(format!("Parameter '{name}' is missing"))
    }

    /// An argument the command does not take.
    pub fn unexpected_parameter(name: &str) -> Self {
        Self::generic(format!("Parameter '{name}' is unexpected"))
    }

    /// An argument of the wrong JSON type; `expected` is QAPI's type word
    /// ("string", "integer", "boolean", "array", "object", "number").
    pub fn invalid_parameter_type(name: &str, expected: &str) -> Self {
        Self::generic(format!(
            "Invalid parameter type for '{name}', expected: {expected}"
        ))
    }

    /// An argument of the right type but an unacceptable value.
    pub fn invalid_parameter_value(name: &str, expects: &str) -> Self {
        Self::generic(format!("Parameter '{name}' expects {expects}"))
    }
}
