//! Errors of parsing and validation, each tied to a source line.

use std::fmt;

use crate::xml::XmlError;

/// One thing wrong with a definition: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based source line (0 when the element was not read from a document).
    pub line: u32,
    /// Column, for malformed XML only.
    pub column: Option<u32>,
    /// The element at fault, e.g. `memory` or `disk/target`.
    pub element: String,
    /// The attribute at fault, if any.
    pub attribute: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn new(line: u32, element: &str, attribute: Option<&str>, message: String) -> Self {
        Problem {
            line,
            column: None,
            element: element.to_string(),
            attribute: attribute.map(str::to_string),
            message,
        }
    }
}

/// Formats as `<element> attribute 'a': message` (without the line, which
/// the caller prefixes in its own style).
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(col) = self.column {
            write!(f, "column {col}: ")?;
        }
        if !self.element.is_empty() {
            write!(f, "<{}>", self.element)?;
            if let Some(a) = &self.attribute {
                write!(f, " attribute '{a}'")?;
            }
            write!(f, ": ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why a document was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Malformed(#[from] XmlError),
    #[error("Invalid domain definition: {}", render(.0))]
    Invalid(Vec<Problem>),
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("line {}: {p}", p.line))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// Every problem found, in document order, with its line.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            Error::Malformed(e) => vec![Problem {
                line: e.line,
                column: Some(e.column),
                element: String::new(),
                attribute: None,
                message: format!("malformed XML: {}", e.message),
            }],
            Error::Invalid(p) => p.clone(),
        }
    }
}

/// Collects problems while a document is read, so that one pass reports
/// all of them.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, line: u32, element: &str, attribute: Option<&str>, message: String) {
        self.0.push(Problem::new(line, element, attribute, message));
    }

    /// Parses a number, reporting a problem (and returning `None`) if it is not one.
    pub fn number<T: std::str::FromStr>(
        &mut self,
        line: u32,
        element: &str,
        attribute: Option<&str>,
        value: &str,
    ) -> Option<T> {
        let v = value.trim();
        // libvirt accepts hexadecimal for some numbers; decimal covers the ones read here.
        match v.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                self.push(
                    line,
                    element,
                    attribute,
                    format!("'{value}' is not a valid number"),
                );
                None
            }
        }
    }

    pub fn into_result(mut self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            self.0.sort_by_key(|p| p.line);
            Err(Error::Invalid(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_line_element_and_attribute() {
        let p = Problem::new(4, "memory", Some("unit"), "unknown unit 'x'".into());
        assert_eq!(p.to_string(), "<memory> attribute 'unit': unknown unit 'x'");
        let e = Error::Invalid(vec![p, Problem::new(9, "name", None, "bad".into())]);
        assert_eq!(
            e.to_string(),
            "Invalid domain definition: line 4: <memory> attribute 'unit': unknown unit 'x'; line 9: <name>: bad"
        );
        let m = Error::Malformed(XmlError {
            line: 2,
            column: 7,
            message: "oops".into(),
        });
        assert_eq!(m.to_string(), "Malformed XML at line 2, column 7: oops");
        assert_eq!(m.problems()[0].to_string(), "column 7: malformed XML: oops");
    }
}
