//! Argument checking with the errors of QEMU's QAPI input visitor.

use crate::error::QmpError;
use serde_json::{Map, Value};

/// A parameter's QAPI type, as far as the commands here need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgType {
    /// `str`.
    Str,
    /// `int` (fits i64).
    Int,
    /// `bool`.
    Bool,
    /// `[str]`: a list of enum strings (`qmp_capabilities`'s `enable`).
    StrList,
    /// A JSON object (a struct argument, checked by its command).
    Object,
    /// `any` (`qom-set`'s value): checked by whoever takes it.
    Any,
}

/// One parameter of a command.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// The argument's name.
    pub name: &'static str,
    /// Its type.
    pub ty: ArgType,
    /// Whether it may be left out.
    pub optional: bool,
}

impl Param {
    /// A required parameter.
    pub const fn required(name: &'static str, ty: ArgType) -> Self {
        Self {
            name,
            ty,
            optional: false,
        }
    }

    /// An optional parameter.
    pub const fn optional(name: &'static str, ty: ArgType) -> Self {
        Self {
            name,
            ty,
            optional: true,
        }
    }

    /// Any further arguments, checked by the command itself (the
    /// properties of `device_add` and `netdev_add`, which QEMU's schema
    /// leaves open).
    pub const fn rest() -> Self {
        Self {
            name: REST,
            ty: ArgType::Any,
            optional: true,
        }
    }
}

/// The name of [`Param::rest`].
const REST: &str = "*";

fn type_ok(ty: ArgType, v: &Value) -> Result<(), &'static str> {
    match ty {
        ArgType::Str if v.is_string() => Ok(()),
        ArgType::Str => Err("string"),
        ArgType::Int if v.is_i64() => Ok(()),
        ArgType::Int => Err("integer"),
        ArgType::Bool if v.is_boolean() => Ok(()),
        ArgType::Bool => Err("boolean"),
        ArgType::StrList if v.is_array() => Ok(()),
        ArgType::StrList => Err("array"),
        ArgType::Object if v.is_object() => Ok(()),
        ArgType::Object => Err("object"),
        ArgType::Any => Ok(()),
    }
}

/// Checks `args` against `params` in schema order (the order QEMU's
/// marshallers visit them), then rejects leftovers.
pub fn check(params: &[Param], args: &Map<String, Value>) -> Result<(), QmpError> {
    check_open(params, args)?;
    if params.iter().any(|p| p.name == REST) {
        return Ok(());
    }
    match args
        .keys()
        .find(|k| !params.iter().any(|p| p.name == k.as_str()))
    {
        Some(extra) => Err(QmpError::unexpected_parameter(extra)),
        None => Ok(()),
    }
}

/// Checks the `params` among `args`, leaving the others to the command.
pub fn check_open(params: &[Param], args: &Map<String, Value>) -> Result<(), QmpError> {
    for p in params {
        match args.get(p.name) {
            None if p.optional => {}
            None => return Err(QmpError::missing_parameter(p.name)),
            Some(v) => {
                type_ok(p.ty, v).map_err(|t| QmpError::invalid_parameter_type(p.name, t))?;
                if let (ArgType::StrList, Value::Array(items)) = (p.ty, v) {
                    for (i, item) in items.iter().enumerate() {
                        if !item.is_string() {
                            let name = format!("{}[{i}]", p.name);
                            return Err(QmpError::invalid_parameter_type(&name, "string"));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HMP: &[Param] = &[
        Param::required("command-line", ArgType::Str),
        Param::optional("cpu-index", ArgType::Int),
    ];

    fn run(params: &[Param], v: Value) -> Result<(), String> {
        check(params, v.as_object().unwrap()).map_err(|e| e.desc)
    }

    #[test]
    fn qemu_wording() {
        assert_eq!(
            run(HMP, json!({})),
            Err("Parameter 'command-line' is missing".into())
        );
        assert_eq!(
            run(HMP, json!({"command-line": 42})),
            Err("Invalid parameter type for 'command-line', expected: string".into())
        );
        assert_eq!(
            run(HMP, json!({"command-line": "x", "cpu-index": 0.5})),
            Err("Invalid parameter type for 'cpu-index', expected: integer".into())
        );
        assert_eq!(
            run(HMP, json!({"command-line": "x", "y": 1})),
            Err("Parameter 'y' is unexpected".into())
        );
        assert_eq!(
            run(HMP, json!({"command-line": "x", "cpu-index": 1})),
            Ok(())
        );
        assert_eq!(
            run(&[], json!({"verbose": true})),
            Err("Parameter 'verbose' is unexpected".into())
        );
    }

    #[test]
    fn string_lists() {
        let p = &[Param::optional("enable", ArgType::StrList)];
        assert_eq!(
            run(p, json!({"enable": "oob"})),
            Err("Invalid parameter type for 'enable', expected: array".into())
        );
        assert_eq!(
            run(p, json!({"enable": ["oob", 1]})),
            Err("Invalid parameter type for 'enable[1]', expected: string".into())
        );
        assert_eq!(run(p, json!({"enable": []})), Ok(()));
    }
}
