//! A small ordered XML tree with line numbers, read with quick-xml and
//! written in libvirt's layout (2-space indent, single-quoted attributes).
//!
//! The typed model is built from this tree; whatever the model does not
//! understand stays here so that it is written back unchanged.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Names and attribute values: the common ones are shared static strings,
/// which saves most of the allocations of reading a document.
pub type Text = Cow<'static, str>;

/// Element names, attribute names and attribute values that libvirt
/// documents use over and over.
const COMMON: &[&str] = &[
    "0",
    "0x0",
    "0x00",
    "0x0000",
    "0x01",
    "0x02",
    "0x03",
    "0x04",
    "0x05",
    "0x06",
    "0x07",
    "0x08",
    "0x09",
    "0x0a",
    "0x1",
    "0x2",
    "0x7",
    "1",
    "2",
    "3",
    "4",
    "KiB",
    "acpi",
    "address",
    "alias",
    "apic",
    "arch",
    "audio",
    "autoport",
    "backend",
    "backingStore",
    "boot",
    "bridge",
    "bus",
    "cache",
    "catchup",
    "cdrom",
    "channel",
    "check",
    "clock",
    "cmdline",
    "compression",
    "console",
    "controller",
    "cores",
    "cpu",
    "currentMemory",
    "delay",
    "description",
    "destroy",
    "dev",
    "device",
    "devices",
    "dies",
    "disk",
    "domain",
    "drive",
    "driver",
    "emulator",
    "enabled",
    "entry",
    "fallback",
    "feature",
    "features",
    "file",
    "filesystem",
    "function",
    "graphics",
    "hd",
    "hostdev",
    "hpet",
    "hvm",
    "id",
    "ide",
    "image",
    "index",
    "initrd",
    "input",
    "interface",
    "io",
    "isa-serial",
    "kernel",
    "keyboard",
    "kvm",
    "listen",
    "mac",
    "machine",
    "master",
    "memballoon",
    "memory",
    "metadata",
    "migratable",
    "mode",
    "model",
    "mouse",
    "multifunction",
    "name",
    "network",
    "no",
    "none",
    "off",
    "on",
    "on_crash",
    "on_poweroff",
    "on_reboot",
    "order",
    "os",
    "panic",
    "pc-i440fx-7.2",
    "pci",
    "pci-root",
    "pit",
    "placement",
    "pm",
    "policy",
    "port",
    "present",
    "protocol",
    "ps2",
    "pty",
    "qemu",
    "qxl",
    "raw",
    "readonly",
    "redirdev",
    "restart",
    "rng",
    "rtc",
    "sata",
    "serial",
    "shareable",
    "slot",
    "sockets",
    "sound",
    "source",
    "spice",
    "spicevmc",
    "startport",
    "state",
    "static",
    "suspend-to-disk",
    "suspend-to-mem",
    "tablet",
    "target",
    "threads",
    "tickpolicy",
    "timer",
    "title",
    "topology",
    "type",
    "unit",
    "usb",
    "utc",
    "uuid",
    "vcpu",
    "video",
    "virtio",
    "virtio-serial",
    "vmport",
    "watchdog",
    "x86_64",
    "yes",
];

const SLOTS: usize = 1024;

fn fnv1a(b: &[u8]) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for &x in b {
        h = (h ^ u32::from(x)).wrapping_mul(0x0100_0193);
    }
    h as usize
}

/// `COMMON` in an open-addressing hash table: one hash and usually one
/// comparison per lookup, cheaper than the allocation it saves.
fn common_table() -> &'static [Option<&'static str>] {
    static TABLE: std::sync::OnceLock<Vec<Option<&'static str>>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = vec![None; SLOTS];
        for s in COMMON {
            let mut i = fnv1a(s.as_bytes()) % SLOTS;
            while t[i].is_some() {
                i = (i + 1) % SLOTS;
            }
            t[i] = Some(*s);
        }
        t
    })
}

/// The shared static copy of `b`, if it is common.
fn common(b: &[u8]) -> Option<&'static str> {
    if b.len() > 16 {
        return None;
    }
    let table = common_table();
    let mut i = fnv1a(b) % SLOTS;
    // The table is less than a fifth full: every probe run ends at an empty slot.
    while let Some(c) = table[i] {
        if c.as_bytes() == b {
            return Some(c);
        }
        i = (i + 1) % SLOTS;
    }
    None
}

/// A shared static copy of `s` if it is common, an owned one otherwise.
pub fn intern(s: &str) -> Text {
    match common(s.as_bytes()) {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(s.to_string()),
    }
}

/// Like [`intern`] for raw names: common ones skip UTF-8 validation.
fn intern_bytes(b: &[u8]) -> Result<Text, std::str::Utf8Error> {
    match common(b) {
        Some(c) => Ok(Cow::Borrowed(c)),
        None => std::str::from_utf8(b).map(|s| Cow::Owned(s.to_string())),
    }
}

/// Deeper nesting than this is refused: no libvirt document comes close, and
/// it keeps the recursive writer and drop bounded on hostile input.
const MAX_DEPTH: usize = 128;

/// A 1-based source line (0 for nodes built in code). Lines are where a
/// value came from, not part of it: any two compare equal, so a model read
/// back from its own output equals the original.
#[derive(Debug, Clone, Copy, Default)]
pub struct Line(pub u32);

impl PartialEq for Line {
    fn eq(&self, _: &Line) -> bool {
        true
    }
}

impl Eq for Line {}

/// One node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

/// An element with its attributes in document order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: Text,
    pub attrs: Vec<(Text, Text)>,
    pub children: Vec<Node>,
    /// Line of the start tag.
    pub line: Line,
}

/// A document that is not well-formed XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Malformed XML at line {line}, column {column}: {message}")]
pub struct XmlError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl Element {
    pub fn new(name: &'static str) -> Self {
        Element {
            name: Cow::Borrowed(name),
            ..Default::default()
        }
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }

    /// Removes and returns an attribute.
    pub fn take_attr(&mut self, name: &str) -> Option<String> {
        let i = self.attrs.iter().position(|(k, _)| k == name)?;
        Some(self.attrs.remove(i).1.into_owned())
    }

    /// Sets an attribute, replacing an existing one in place.
    pub fn set_attr(&mut self, name: &str, value: impl Into<String>) {
        let value: String = value.into();
        let value = intern(&value);
        match self.attrs.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((intern(name), value)),
        }
    }

    /// Builder form of `set_attr` that skips `None`.
    pub fn with_attr(mut self, name: &str, value: Option<impl Into<String>>) -> Self {
        if let Some(v) = value {
            self.set_attr(name, v);
        }
        self
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// Removes and returns the first child element with this name.
    pub fn take_child(&mut self, name: &str) -> Option<Element> {
        let i = self
            .children
            .iter()
            .position(|n| matches!(n, Node::Element(e) if e.name == name))?;
        match self.children.remove(i) {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        }
    }

    /// Removes and returns every child element with this name, in order.
    pub fn take_children(&mut self, name: &str) -> Vec<Element> {
        if self.child(name).is_none() {
            return Vec::new();
        }
        let mut taken = Vec::new();
        let mut kept = Vec::with_capacity(self.children.len());
        for n in std::mem::take(&mut self.children) {
            match n {
                Node::Element(e) if e.name == name => taken.push(e),
                other => kept.push(other),
            }
        }
        self.children = kept;
        taken
    }

    /// Removes and returns every child element, leaving text.
    pub fn take_all_elements(&mut self) -> Vec<Element> {
        let mut taken = Vec::new();
        self.children.retain_mut(|n| match n {
            Node::Element(e) => {
                taken.push(std::mem::take(e));
                false
            }
            Node::Text(_) => true,
        });
        taken
    }

    /// Concatenated text content of this element (not of its descendants).
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s
    }

    /// Removes the text content and returns it.
    pub fn take_text(&mut self) -> String {
        // The usual case, a single text node, is moved out without a copy.
        if let [Node::Text(_)] = self.children.as_slice() {
            if let Some(Node::Text(t)) = self.children.pop() {
                return t;
            }
        }
        let s = self.text();
        self.children.retain(|n| matches!(n, Node::Element(_)));
        s
    }

    pub fn push(&mut self, e: Element) {
        self.children.push(Node::Element(e));
    }

    /// Adds a child before the first `before` element (at the end if there
    /// is none), keeping the content in the shape a re-read gives it.
    pub fn insert_before(&mut self, before: &str, child: Element) {
        let pos = self
            .children
            .iter()
            .position(|n| matches!(n, Node::Element(x) if x.name == before))
            .unwrap_or(self.children.len());
        self.children.insert(pos, Node::Element(child));
        tidy(self);
    }

    fn has_elements(&self) -> bool {
        self.children.iter().any(|n| matches!(n, Node::Element(_)))
    }

    /// Appends text, joining it to a text node just before (entity
    /// references arrive as separate pieces).
    pub fn push_text(&mut self, t: impl Into<String>) {
        let t = t.into();
        match self.children.last_mut() {
            Some(Node::Text(prev)) => prev.push_str(&t),
            _ => self.children.push(Node::Text(t)),
        }
    }

    /// Builder: an element holding only text.
    pub fn with_text(mut self, t: impl Into<String>) -> Self {
        self.push_text(t);
        self
    }

    /// Appends what is left in `rest` (unknown attributes and children) after
    /// the known parts already written here.
    pub fn merge(&mut self, rest: &Element) {
        for (k, v) in &rest.attrs {
            if self.attr(k).is_none() {
                self.attrs.push((k.clone(), v.clone()));
            }
        }
        self.children.extend(rest.children.iter().cloned());
    }

    /// True when the element carries nothing at all.
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty() && self.children.is_empty()
    }

    /// Stable-sorts the child elements by `rank`; text stays first.
    /// Names the table does not know keep their order after the known ones.
    pub fn sort_children(&mut self, rank: impl Fn(&str) -> usize) {
        self.children.sort_by_cached_key(|n| match n {
            Node::Text(_) => 0,
            Node::Element(e) => rank(&e.name) + 1,
        });
    }
}

/// Adds a parsed child, dropping the layout whitespace just before it.
fn add_child(parent: &mut Element, child: Element) {
    if matches!(parent.children.last(), Some(Node::Text(t)) if t.trim().is_empty()) {
        parent.children.pop();
    }
    parent.push(child);
}

fn line_col(input: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(input.len());
    let before = &input.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = offset
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

/// Counts lines incrementally, so parsing stays linear in the input size.
struct LineCounter<'a> {
    input: &'a [u8],
    pos: usize,
    line: u32,
}

impl LineCounter<'_> {
    fn line_at(&mut self, offset: usize) -> u32 {
        let offset = offset.min(self.input.len());
        if offset > self.pos {
            let n = self.input[self.pos..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.line = self
                .line
                .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
            self.pos = offset;
        }
        self.line
    }
}

fn err_at(input: &str, offset: usize, message: impl Into<String>) -> XmlError {
    let (line, column) = line_col(input, offset);
    XmlError {
        line,
        column,
        message: message.into(),
    }
}

fn start_element(
    input: &str,
    offset: usize,
    e: &BytesStart<'_>,
    line: u32,
) -> Result<Element, XmlError> {
    let name = intern_bytes(e.name().as_ref())
        .map_err(|_| err_at(input, offset, "element name is not UTF-8"))?;
    // quick-xml reads `<\n/>` as an element with no name; XML has none.
    if name.is_empty() {
        return Err(err_at(input, offset, "element without a name"));
    }
    // One allocation of the right size: every attribute has one '=' (a
    // value may hold more, which only over-reserves).
    let eqs = e.attributes_raw().iter().filter(|&&b| b == b'=').count();
    let mut el = Element {
        name,
        attrs: Vec::with_capacity(eqs),
        line: Line(line),
        ..Default::default()
    };
    // quick-xml's attribute iterator refuses duplicate names itself.
    for a in e.attributes() {
        let a = a.map_err(|x| err_at(input, offset, x.to_string()))?;
        let key = intern_bytes(a.key.as_ref())
            .map_err(|_| err_at(input, offset, "attribute name is not UTF-8"))?;
        let value = intern(
            &a.unescape_value()
                .map_err(|x| err_at(input, offset, x.to_string()))?,
        );
        el.attrs.push((key, value));
    }
    Ok(el)
}

/// Drops layout whitespace: in an element that has child elements, text is
/// trimmed and whitespace-only text removed (libvirt does the same on read).
fn tidy(el: &mut Element) {
    let adjacent_text = el
        .children
        .windows(2)
        .any(|w| matches!(w, [Node::Text(_), Node::Text(_)]));
    let mixed = el.has_elements() && el.children.iter().any(|n| matches!(n, Node::Text(_)));
    if !adjacent_text && !mixed {
        return;
    }
    // Adjacent text nodes (split by entity references) are joined first.
    let mut merged: Vec<Node> = Vec::with_capacity(el.children.len());
    for n in std::mem::take(&mut el.children) {
        match (merged.last_mut(), n) {
            (Some(Node::Text(prev)), Node::Text(t)) => prev.push_str(&t),
            (_, n) => merged.push(n),
        }
    }
    el.children = merged;
    if el.children.iter().any(|n| matches!(n, Node::Element(_))) {
        // Stray text in mixed content becomes one trimmed node in front,
        // which is where and how the writer puts it.
        let mut text = Vec::new();
        el.children.retain(|n| match n {
            Node::Text(t) => {
                if !t.trim().is_empty() {
                    text.push(t.trim().to_string());
                }
                false
            }
            Node::Element(_) => true,
        });
        if !text.is_empty() {
            el.children.insert(0, Node::Text(text.join(" ")));
        }
    }
}

fn resolve_entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix('x') {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code);
    }
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    }
}

/// Parses a whole document into its root element.
pub fn parse(input: &str) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(input);
    reader.config_mut().check_end_names = true;
    let mut lines = LineCounter {
        input: input.as_bytes(),
        pos: 0,
        line: 1,
    };
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = reader.read_event().map_err(|e| {
            let at = usize::try_from(reader.error_position()).unwrap_or(before);
            err_at(input, at, e.to_string())
        })?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() && stack.is_empty() => {
                return Err(err_at(
                    input,
                    before,
                    "extra content after the root element",
                ));
            }
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(err_at(input, before, "elements nested too deeply"));
                }
                let line = lines.line_at(before);
                stack.push(start_element(input, before, &e, line)?);
            }
            Event::Empty(e) => {
                let line = lines.line_at(before);
                let el = start_element(input, before, &e, line)?;
                match stack.last_mut() {
                    Some(parent) => add_child(parent, el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let Some(mut el) = stack.pop() else {
                    return Err(err_at(input, before, "unexpected end tag"));
                };
                tidy(&mut el);
                match stack.last_mut() {
                    Some(parent) => add_child(parent, el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let text = t
                    .decode()
                    .map_err(|e| err_at(input, before, e.to_string()))?;
                let blank = text.trim().is_empty();
                match stack.last_mut() {
                    // Layout between elements: dropped here rather than by
                    // `tidy`, which saves an allocation per line.
                    Some(parent) if blank && parent.has_elements() => {}
                    Some(parent) => parent.push_text(text.into_owned()),
                    None if blank => {}
                    None => return Err(err_at(input, before, "text outside the root element")),
                }
            }
            Event::CData(t) => {
                let text = std::str::from_utf8(&t)
                    .map_err(|_| err_at(input, before, "CDATA is not UTF-8"))?
                    .to_string();
                match stack.last_mut() {
                    Some(parent) => parent.push_text(text),
                    None => return Err(err_at(input, before, "text outside the root element")),
                }
            }
            Event::GeneralRef(r) => {
                let name = std::str::from_utf8(&r)
                    .map_err(|_| err_at(input, before, "entity name is not UTF-8"))?;
                let c = resolve_entity(name)
                    .ok_or_else(|| err_at(input, before, format!("unknown entity '&{name};'")))?;
                match stack.last_mut() {
                    Some(parent) => parent.push_text(c.to_string()),
                    None => return Err(err_at(input, before, "text outside the root element")),
                }
            }
            Event::Eof => break,
            // Comments, processing instructions and DOCTYPE are dropped, as libvirt does.
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(err_at(
            input,
            input.len(),
            "document ends inside an element",
        ));
    }
    root.ok_or_else(|| err_at(input, input.len(), "no root element"))
}

/// Escapes the five characters libvirt escapes in both text and attributes.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// How attributes and text are quoted: libvirt's own formatter, or libxml2's
/// node dump, which libvirt uses for the foreign XML inside `<metadata>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Libvirt,
    Libxml2,
}

fn escape_styled(out: &mut String, s: &str, style: Style, attr: bool) {
    if style == Style::Libvirt {
        return escape_into(out, s);
    }
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' => out.push_str("&#13;"),
            '"' if attr => out.push_str("&quot;"),
            '\n' if attr => out.push_str("&#10;"),
            '\t' if attr => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

/// Writes `el` at `depth` (2 spaces per level), ending with a newline.
pub fn write(out: &mut String, el: &Element, depth: usize) {
    write_styled(out, el, depth, Style::Libvirt);
}

fn write_styled(out: &mut String, el: &Element, depth: usize, style: Style) {
    indent(out, depth);
    out.push('<');
    out.push_str(&el.name);
    let quote = if style == Style::Libvirt { '\'' } else { '"' };
    for (k, v) in &el.attrs {
        out.push(' ');
        out.push_str(k);
        out.push('=');
        out.push(quote);
        escape_styled(out, v, style, true);
        out.push(quote);
    }
    if el.children.is_empty() {
        out.push_str("/>\n");
        return;
    }
    out.push('>');
    // The content of <metadata> is foreign XML that libvirt dumps with libxml2.
    let inner = if el.name == "metadata" {
        Style::Libxml2
    } else {
        style
    };
    if el.children.iter().any(|n| matches!(n, Node::Element(_))) {
        out.push('\n');
        for n in &el.children {
            match n {
                Node::Element(c) => write_styled(out, c, depth + 1, inner),
                Node::Text(t) => {
                    indent(out, depth + 1);
                    escape_styled(out, t, inner, false);
                    out.push('\n');
                }
            }
        }
        indent(out, depth);
    } else {
        for n in &el.children {
            if let Node::Text(t) = n {
                escape_styled(out, t, inner, false);
            }
        }
    }
    out.push_str("</");
    out.push_str(&el.name);
    out.push_str(">\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_entities_and_layout() {
        let doc = "<?xml version='1.0'?>\n<a x='1&amp;2'>\n  <!-- c -->\n  <b>t &lt; u</b>\n  <c/>\n</a>\n";
        let a = parse(doc).unwrap();
        assert_eq!(a.line.0, 2);
        assert_eq!(a.attr("x"), Some("1&2"));
        let b = a.child("b").unwrap();
        assert_eq!(b.line.0, 4);
        assert_eq!(b.text(), "t < u");
        assert_eq!(a.child("c").unwrap().line.0, 5);
        let mut out = String::new();
        write(&mut out, &a, 0);
        assert_eq!(out, "<a x='1&amp;2'>\n  <b>t &lt; u</b>\n  <c/>\n</a>\n");
    }

    #[test]
    fn reports_position_of_malformed_input() {
        let e = parse("<a>\n  <b></c>\n</a>").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("<a>\n<b>").unwrap_err();
        assert!(e.message.contains("ends inside"), "{e}");
        assert!(parse("").is_err());
        assert!(parse("<a/><b/>").is_err());
        assert!(parse("<a x='1' x='2'/>").is_err());
        assert!(parse("<a>&bogus;</a>").is_err());
    }

    #[test]
    fn interns_common_names_only() {
        assert!(matches!(intern("disk"), Cow::Borrowed("disk")));
        assert!(matches!(intern("disks"), Cow::Owned(_)));
        assert!(matches!(intern(""), Cow::Owned(_)));
        for c in COMMON {
            assert!(matches!(intern(c), Cow::Borrowed(x) if x == *c));
        }
    }

    #[test]
    fn metadata_content_is_written_as_libxml2_does() {
        let doc = "<d><metadata><a:x xmlns:a='u' k='&quot;v&apos;'>t&apos;s</a:x></metadata><e k='&apos;'/></d>";
        let mut out = String::new();
        write(&mut out, &parse(doc).unwrap(), 0);
        assert_eq!(
            out,
            "<d>\n  <metadata>\n    <a:x xmlns:a=\"u\" k=\"&quot;v'\">t's</a:x>\n  </metadata>\n  <e k='&apos;'/>\n</d>\n"
        );
    }

    #[test]
    fn refuses_deep_nesting() {
        let doc = "<a>".repeat(1000);
        assert!(parse(&doc).unwrap_err().message.contains("deeply"));
    }
}
