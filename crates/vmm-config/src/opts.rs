//! QEMU's option-value syntax: `key=value,key=value` (with `,,` for a literal
//! comma and an optional leading implied key) and, for the options modern
//! libvirt writes that way, a JSON object. Both parse into the same ordered
//! list of string pairs, so every option is validated by one code path.
//!
//! Hand-written because QEMU's QemuOpts/keyval grammar (implied first key,
//! comma doubling, JSON alternative) is not what any general-purpose
//! key-value crate parses.

use std::collections::BTreeSet;

use crate::ConfigError;

/// The parsed `key=value` pairs of one option, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Opts {
    option: String,
    pairs: Vec<(String, String)>,
    used: BTreeSet<String>,
    /// Keys given as JSON `null` (their value in `pairs` is empty).
    nulls: BTreeSet<String>,
}

fn split_commas(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                if let Some(p) = parts.last_mut() {
                    p.push(',');
                }
            } else {
                parts.push(String::new());
            }
        } else if let Some(p) = parts.last_mut() {
            p.push(c);
        }
    }
    parts
}

fn json_scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(if *b { "on" } else { "off" }.into()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Flattens nested JSON objects with dots, as QEMU's keyval does
/// (`"cache":{"direct":true}` is `cache.direct=on`).
fn flatten(
    option: &str,
    prefix: &str,
    obj: &serde_json::Map<String, serde_json::Value>,
    repeatable: &[&str],
    pairs: &mut Vec<(String, String)>,
    nulls: &mut BTreeSet<String>,
) -> Result<(), ConfigError> {
    for (k, v) in obj {
        let key = format!("{prefix}{k}");
        match v {
            serde_json::Value::Object(inner) => {
                flatten(option, &format!("{key}."), inner, repeatable, pairs, nulls)?
            }
            // A repeatable key's list (QAPI's `['String']`: strings or
            // `{"str": …}` objects) is that key given once per item.
            serde_json::Value::Array(items) if repeatable.contains(&key.as_str()) => {
                for item in items {
                    let s = json_scalar(item)
                        .or_else(|| item.get("str").and_then(json_scalar))
                        .ok_or_else(|| {
                            ConfigError::new(option, format!("unsupported value for '{key}'"))
                        })?;
                    pairs.push((key.clone(), s));
                }
            }
            serde_json::Value::Null => {
                nulls.insert(key.clone());
                pairs.push((key, String::new()));
            }
            v => match json_scalar(v) {
                Some(s) => pairs.push((key, s)),
                None => {
                    return Err(ConfigError::new(
                        option,
                        format!("unsupported value for '{key}'"),
                    ))
                }
            },
        }
    }
    Ok(())
}

impl Opts {
    /// Parses `value` for `option`. `implied` names the key of a leading
    /// element without `=` (QEMU's "implied key": `-m 512` is `size=512`).
    /// `flags` lists keys that may appear bare to mean `on` (`server`,
    /// `nowait` in the old socket syntax).
    pub fn parse(option: &str, value: &str, implied: Option<&str>) -> Result<Self, ConfigError> {
        Self::parse_repeating(option, value, implied, &[])
    }

    /// [`Opts::parse`] where the keys in `repeatable` may be given more
    /// than once (`hostfwd=` of `-netdev user`); in the JSON form their
    /// value is a list of strings or of `{"str": …}` objects (QAPI's
    /// `['String']`). Read them with [`Opts::get_all`].
    pub fn parse_repeating(
        option: &str,
        value: &str,
        implied: Option<&str>,
        repeatable: &[&str],
    ) -> Result<Self, ConfigError> {
        let mut pairs = Vec::new();
        let mut nulls = BTreeSet::new();
        if value.trim_start().starts_with('{') {
            let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(value)
                .map_err(|e| ConfigError::new(option, format!("invalid JSON: {e}")))?;
            flatten(option, "", &obj, repeatable, &mut pairs, &mut nulls)?;
        } else {
            for (i, part) in split_commas(value).into_iter().enumerate() {
                if part.is_empty() {
                    // "a,,b" is handled above; a trailing comma is harmless.
                    continue;
                }
                match part.split_once('=') {
                    Some((k, v)) => pairs.push((k.to_string(), v.to_string())),
                    None => match (i, implied) {
                        (0, Some(key)) => pairs.push((key.to_string(), part)),
                        // A bare key is a boolean flag (QEMU's "server",
                        // "nowait"); "nofoo" means foo=off.
                        _ => match part.strip_prefix("no") {
                            Some(k) if !k.is_empty() => pairs.push((k.to_string(), "off".into())),
                            _ => pairs.push((part, "on".into())),
                        },
                    },
                }
            }
        }
        let mut seen = BTreeSet::new();
        for (k, _) in &pairs {
            if !seen.insert(k.clone()) && !repeatable.contains(&k.as_str()) {
                return Err(ConfigError::new(
                    option,
                    format!("parameter '{k}' given twice"),
                ));
            }
        }
        Ok(Opts {
            option: option.to_string(),
            pairs,
            used: BTreeSet::new(),
            nulls,
        })
    }

    /// A reference that JSON may give as `null` (a blockdev's `backing`):
    /// None when absent, Some(None) for null, Some(Some(name)) otherwise.
    pub fn get_ref(&mut self, key: &str) -> Option<Option<String>> {
        let v = self.get(key)?;
        Some((!self.nulls.contains(key)).then_some(v))
    }

    /// Whether any key starts with `prefix.` (an inline child object, such
    /// as a blockdev's `file.driver`, `file.filename`).
    pub fn has_prefix(&self, prefix: &str) -> bool {
        let dotted = format!("{prefix}.");
        self.pairs.iter().any(|(k, _)| k.starts_with(&dotted))
    }

    /// The keys under `prefix.`, without it, as options of their own (an
    /// inline child object); they count as understood here.
    pub fn child(&mut self, prefix: &str) -> Opts {
        let dotted = format!("{prefix}.");
        let mut child = Opts {
            option: self.option.clone(),
            ..Default::default()
        };
        for (k, v) in &self.pairs {
            if let Some(rest) = k.strip_prefix(&dotted) {
                child.pairs.push((rest.to_string(), v.clone()));
                if self.nulls.contains(k) {
                    child.nulls.insert(rest.to_string());
                }
                self.used.insert(k.clone());
            }
        }
        child
    }

    /// The value of `key`, if given, marking it as understood.
    pub fn get(&mut self, key: &str) -> Option<String> {
        let v = self
            .pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone());
        if v.is_some() {
            self.used.insert(key.to_string());
        }
        v
    }

    /// Every value of a repeatable `key`, in order.
    pub fn get_all(&mut self, key: &str) -> Vec<String> {
        self.used.insert(key.to_string());
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The value of `key`, which must be given.
    pub fn require(&mut self, key: &str) -> Result<String, ConfigError> {
        self.get(key)
            .ok_or_else(|| ConfigError::new(&self.option, format!("parameter '{key}' is missing")))
    }

    /// A QEMU boolean: on/off, yes/no, true/false.
    pub fn get_bool(&mut self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key).as_deref() {
            None => Ok(None),
            Some("on" | "yes" | "true") => Ok(Some(true)),
            Some("off" | "no" | "false") => Ok(Some(false)),
            Some(other) => Err(self.error(format!(
                "parameter '{key}' expects 'on' or 'off', not '{other}'"
            ))),
        }
    }

    /// An unsigned integer.
    pub fn get_u32(&mut self, key: &str) -> Result<Option<u32>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| self.error(format!("parameter '{key}' expects a number, not '{v}'"))),
        }
    }

    /// Marks keys as accepted without effect.
    pub fn ignore(&mut self, keys: &[&str]) {
        for k in keys {
            self.get(k);
        }
    }

    /// Fails on any key nobody asked for, naming it.
    pub fn finish(self) -> Result<(), ConfigError> {
        match self.pairs.iter().find(|(k, _)| !self.used.contains(k)) {
            Some((k, _)) => Err(self.error(format!("invalid parameter '{k}'"))),
            None => Ok(()),
        }
    }

    /// An error for this option.
    pub fn error(&self, message: String) -> ConfigError {
        ConfigError::new(&self.option, message)
    }

    /// The option name these came from.
    pub fn option(&self) -> &str {
        &self.option
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_with_implied_key_and_escaped_commas() {
        let mut o = Opts::parse("-drive", "file=a,,b.img,format=raw", None).unwrap();
        assert_eq!(o.get("file").as_deref(), Some("a,b.img"));
        assert_eq!(o.get("format").as_deref(), Some("raw"));
        o.finish().unwrap();
        let mut o = Opts::parse("-m", "512M", Some("size")).unwrap();
        assert_eq!(o.get("size").as_deref(), Some("512M"));
        let mut o = Opts::parse(
            "-chardev",
            "socket,id=m,path=/x,server,nowait",
            Some("backend"),
        )
        .unwrap();
        assert_eq!(o.get_bool("server").unwrap(), Some(true));
        assert_eq!(o.get_bool("wait").unwrap(), Some(false));
    }

    #[test]
    fn json_form_is_the_same() {
        let mut o = Opts::parse(
            "-device",
            r#"{"driver":"isa-serial","chardev":"charserial0","id":"serial0","index":0,"x":true}"#,
            None,
        )
        .unwrap();
        assert_eq!(o.get("driver").as_deref(), Some("isa-serial"));
        assert_eq!(o.get("index").as_deref(), Some("0"));
        assert_eq!(o.get_bool("x").unwrap(), Some(true));
        let e = Opts::parse("-device", "{bad", None).unwrap_err();
        assert!(e.to_string().starts_with("-device: invalid JSON"), "{e}");
    }

    #[test]
    fn json_nesting_and_null() {
        let mut o = Opts::parse(
            "-blockdev",
            r#"{"driver":"raw","file":{"driver":"file","cache":{"direct":true}},"backing":null,"x":"null"}"#,
            None,
        )
        .unwrap();
        assert_eq!(o.get_ref("backing"), Some(None));
        assert_eq!(o.get_ref("x"), Some(Some("null".into())));
        assert_eq!(o.get_ref("nope"), None);
        assert!(o.has_prefix("file"));
        let mut file = o.child("file");
        assert_eq!(file.get("driver").as_deref(), Some("file"));
        assert_eq!(file.get_bool("cache.direct").unwrap(), Some(true));
        file.finish().unwrap();
        o.get("driver");
        o.finish().unwrap();
        let e = Opts::parse("-blockdev", r#"{"a":[1]}"#, None).unwrap_err();
        assert_eq!(e.to_string(), "-blockdev: unsupported value for 'a'");
    }

    #[test]
    fn repeatable_keys_in_both_forms() {
        let mut o = Opts::parse_repeating(
            "-netdev",
            "user,id=n0,hostfwd=tcp::1-:2,hostfwd=udp::3-:4",
            Some("type"),
            &["hostfwd"],
        )
        .unwrap();
        assert_eq!(o.get_all("hostfwd"), ["tcp::1-:2", "udp::3-:4"]);
        let mut o = Opts::parse_repeating(
            "-netdev",
            r#"{"type":"user","id":"n0","hostfwd":[{"str":"tcp::1-:2"},"udp::3-:4"]}"#,
            None,
            &["hostfwd"],
        )
        .unwrap();
        assert_eq!(o.get_all("hostfwd"), ["tcp::1-:2", "udp::3-:4"]);
        o.get("type");
        o.get("id");
        o.finish().unwrap();
        let e = Opts::parse_repeating("-netdev", "user,id=a,id=b", None, &["hostfwd"]).unwrap_err();
        assert_eq!(e.to_string(), "-netdev: parameter 'id' given twice");
    }

    #[test]
    fn unknown_and_duplicate_keys_are_errors() {
        let mut o = Opts::parse("-smp", "4,sockets=2,frob=1", Some("cpus")).unwrap();
        o.get("cpus");
        o.get("sockets");
        assert_eq!(
            o.finish().unwrap_err().to_string(),
            "-smp: invalid parameter 'frob'"
        );
        let e = Opts::parse("-smp", "cpus=1,cpus=2", None).unwrap_err();
        assert_eq!(e.to_string(), "-smp: parameter 'cpus' given twice");
        let mut o = Opts::parse("-x", "a=maybe", None).unwrap();
        assert!(o
            .get_bool("a")
            .unwrap_err()
            .to_string()
            .contains("expects 'on' or 'off'"));
    }
}
