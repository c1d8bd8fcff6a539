//! Reading the merged TOML tree: tables walked by key path, typed leaves, every problem kept.
//!
//! A [`Table`] hands out its keys one at a time (`get::<Duration>("timeout")`), each read once,
//! converted by its [`Leaf`] kind and recorded with its key path. Keys nobody asked for are
//! reported as unknown when the table is [`finish`](Table::finish)ed. serde's derived structs
//! stop at the first bad value and `deny_unknown_fields` at the first unknown key; walking the
//! tree this way reports all of them at once, each with its path and (later) its line.

use std::cell::RefCell;
use std::collections::HashSet;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::{Map, Value};
use url::Url;

use super::{Backfill, LogFormat, Problem};
use crate::model::EventType;

/// The problems found so far, shared by every table of one parse.
#[derive(Default)]
pub(super) struct Problems(RefCell<Vec<Problem>>);

impl Problems {
    pub fn add(&self, path: &str, message: impl Into<String>) {
        self.0.borrow_mut().push(Problem {
            path: path.to_string(),
            line: None,
            message: message.into(),
        });
    }

    pub fn into_inner(self) -> Vec<Problem> {
        self.0.into_inner()
    }
}

/// One table of the tree (`[poll]`, `[sinks.hook]`, `[[feeds]]` number 2), with its key path.
pub(super) struct Table<'a> {
    path: String,
    map: Option<&'a Map<String, Value>>,
    used: RefCell<HashSet<&'a str>>,
    problems: &'a Problems,
}

impl<'a> Table<'a> {
    pub fn root(value: &'a Value, problems: &'a Problems) -> Self {
        Table::at(String::new(), Some(value), problems)
    }

    fn at(path: String, value: Option<&'a Value>, problems: &'a Problems) -> Self {
        let map = match value {
            None => None,
            Some(Value::Object(map)) => Some(map),
            Some(other) => {
                problems.add(&path, format!("expected a table, found {}", kind_of(other)));
                None
            }
        };
        Table {
            path,
            map,
            used: RefCell::new(HashSet::new()),
            problems,
        }
    }

    /// The key path of `key` in this table, as messages show it.
    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// A problem with the table itself (its name, its place).
    pub fn problem_here(&self, message: impl Into<String>) {
        self.problems.add(&self.path, message);
    }

    pub fn problem(&self, key: &str, message: impl Into<String>) {
        self.problems.add(&self.path_of(key), message);
    }

    /// The raw value of `key`, marked as read.
    pub fn value(&self, key: &str) -> Option<&'a Value> {
        let (k, v) = self.map?.get_key_value(key)?;
        self.used.borrow_mut().insert(k.as_str());
        Some(v)
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.is_some_and(|m| m.contains_key(key))
    }

    /// `key` converted by its leaf kind `L`; `None` when absent or wrong (the problem is kept).
    pub fn get<L: Leaf>(&self, key: &str) -> Option<L::Out> {
        let value = self.value(key)?;
        L::read(value, &self.path_of(key), self.problems)
    }

    /// The sub-table `key` (empty when absent).
    pub fn table(&self, key: &str) -> Table<'a> {
        Table::at(self.path_of(key), self.value(key), self.problems)
    }

    /// Each entry of the table `key` (`[sinks.NAME]`, `[hosts."NAME"]`) as its own table.
    pub fn entries(&self, key: &str) -> Vec<(&'a str, Table<'a>)> {
        let outer = self.table(key);
        let Some(map) = outer.map else {
            return Vec::new();
        };
        map.iter()
            .map(|(name, value)| {
                outer.used.borrow_mut().insert(name.as_str());
                (
                    name.as_str(),
                    Table::at(outer.path_of(name), Some(value), self.problems),
                )
            })
            .collect()
    }

    /// Each element of the array of tables `key` (`[[feeds]]`), with its index.
    pub fn array(&self, key: &str) -> Vec<Table<'a>> {
        let path = self.path_of(key);
        match self.value(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| Table::at(format!("{path}[{i}]"), Some(item), self.problems))
                .collect(),
            Some(other) => {
                self.problems.add(
                    &path,
                    format!("expected a list of tables, found {}", kind_of(other)),
                );
                Vec::new()
            }
        }
    }

    /// Reports every key of this table that was not read, with `message`.
    pub fn finish_with(&self, message: &str) {
        let Some(map) = self.map else { return };
        let used = self.used.borrow();
        for key in map.keys() {
            if !used.contains(key.as_str()) {
                self.problem(key, message);
            }
        }
    }

    /// Reports every key of this table that was not read as unknown.
    pub fn finish(&self) {
        self.finish_with("unknown key (check its spelling and section)");
    }
}

/// `feeds[2]` + `url` → `feeds[2].url`; a key with a dot is quoted: `hosts."a.com"`.
fn join(parent: &str, key: &str) -> String {
    let key = if key.contains('.') {
        format!("\"{key}\"")
    } else {
        key.to_string()
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// How one kind of value is read from what the user wrote. Environment overrides arrive as
/// strings, so numbers, booleans and lists are also read from their string form.
pub(super) trait Leaf {
    type Out;
    /// The value, or `None` after adding the problem at `path`.
    fn read(value: &Value, path: &str, problems: &Problems) -> Option<Self::Out>;
}

/// A string.
pub(super) struct Text;

impl Leaf for Text {
    type Out = String;
    fn read(value: &Value, path: &str, problems: &Problems) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            other => {
                problems.add(path, format!("expected a string, found {}", kind_of(other)));
                None
            }
        }
    }
}

/// `true` or `false`.
pub(super) struct Flag;

impl Leaf for Flag {
    type Out = bool;
    fn read(value: &Value, path: &str, problems: &Problems) -> Option<bool> {
        match value {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            other => {
                problems.add(path, format!("expected true or false, found {other}"));
                None
            }
        }
    }
}

/// A whole number from `MIN` to `MAX`.
pub(super) struct Int<const MIN: u64, const MAX: u64>;

impl<const MIN: u64, const MAX: u64> Leaf for Int<MIN, MAX> {
    type Out = u64;
    fn read(value: &Value, path: &str, problems: &Problems) -> Option<u64> {
        let n = match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if (MIN..=MAX).contains(&n) => Some(n),
            _ => {
                problems.add(
                    path,
                    format!("expected a whole number from {MIN} to {MAX}, found {value}"),
                );
                None
            }
        }
    }
}

/// A duration string such as `"90s"`, `"15m"`, `"24h"`, more than zero.
impl Leaf for Duration {
    type Out = Duration;
    fn read(value: &Value, path: &str, problems: &Problems) -> Option<Duration> {
        let Value::String(s) = value else {
            problems.add(
                path,
                format!(
                    "expected a duration string like \"15m\", found {}",
                    kind_of(value)
                ),
            );
            return None;
        };
        match humantime::parse_duration(s.trim()) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                problems.add(path, format!("duration {s:?} must be more than zero"));
                None
            }
            Err(e) => {
                problems.add(
                    path,
                    format!("invalid duration {s:?} ({e}); write e.g. \"90s\", \"15m\", \"24h\""),
                );
                None
            }
        }
    }
}

/// A duration that may also be zero (`"0s"`), such as a delay one can switch off.
pub(super) struct DurationOrZero;

impl Leaf for DurationOrZero {
    type Out = Duration;
    fn read(value: &Value, path: &str, problems: &Problems) -> Option<Duration> {
        match value {
            Value::String(s) if s.trim() == "0s" || s.trim() == "0" => Some(Duration::ZERO),
            other => Duration::read(other, path, problems),
        }
    }
}

/// A size string such as `"512KiB"` or `"5MiB"`, in bytes, more than zero.
pub(super) struct Size;

impl Leaf for Size {
    type Out = u64;
    fn read(value: &Value, path: &str, problems: &Problems) -> Option<u64> {
        let Value::String(s) = value else {
            problems.add(
                path,
                format!(
                    "expected a size string like \"5MiB\", found {}",
                    kind_of(value)
                ),
            );
            return None;
        };
        match s.trim().parse::<bytesize::ByteSize>() {
            Ok(b) if b.as_u64() > 0 => Some(b.as_u64()),
            Ok(_) => {
                problems.add(path, format!("size {s:?} must be more than zero"));
                None
            }
            Err(_) => {
                problems.add(
                    path,
                    format!("invalid size {s:?}; write e.g. \"512KiB\", \"5MiB\""),
                );
                None
            }
        }
    }
}

/// An absolute `http` or `https` URL with a host.
pub(super) struct HttpUrl;

impl Leaf for HttpUrl {
    type Out = Url;
    fn read(value: &Value, path: &str, problems: &Problems) -> Option<Url> {
        let s = Text::read(value, path, problems)?;
        match Url::parse(s.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            Ok(u) => {
                problems.add(
                    path,
                    format!(
                        "{s:?} is not an http or https URL (scheme {:?})",
                        u.scheme()
                    ),
                );
                None
            }
            Err(e) => {
                problems.add(path, format!("invalid URL {s:?}: {e}"));
                None
            }
        }
    }
}

/// A list of values of kind `L`; from the environment, a comma-separated string. A bad
/// element is reported at its index and left out.
pub(super) struct List<L>(PhantomData<L>);

impl<L: Leaf> Leaf for List<L> {
    type Out = Vec<L::Out>;
    fn read(value: &Value, path: &str, problems: &Problems) -> Option<Self::Out> {
        match value {
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| L::read(item, &format!("{path}[{i}]"), problems))
                    .collect(),
            ),
            Value::String(s) => Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .enumerate()
                    .filter_map(|(i, item)| {
                        L::read(
                            &Value::String(item.to_string()),
                            &format!("{path}[{i}]"),
                            problems,
                        )
                    })
                    .collect(),
            ),
            other => {
                problems.add(
                    path,
                    format!("expected a list of strings, found {}", kind_of(other)),
                );
                None
            }
        }
    }
}

/// A list of strings.
pub(super) type Strings = List<Text>;

/// A network such as `"127.0.0.1/32"`, or one address.
impl Leaf for IpNet {
    type Out = IpNet;
    fn read(value: &Value, path: &str, problems: &Problems) -> Option<IpNet> {
        let s = Text::read(value, path, problems)?;
        let parsed = s
            .parse::<IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => Some(net),
            Err(_) => {
                problems.add(
                    path,
                    format!("{s:?} is not a network like \"127.0.0.1/32\" or \"fd00::/8\""),
                );
                None
            }
        }
    }
}

/// A listen address; the empty string means none.
pub(super) struct Listen;

impl Leaf for Listen {
    type Out = Option<SocketAddr>;
    fn read(value: &Value, path: &str, problems: &Problems) -> Option<Option<SocketAddr>> {
        let s = Text::read(value, path, problems)?;
        if s.is_empty() {
            return Some(None);
        }
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(Some(a)),
            Err(_) => {
                problems.add(
                    path,
                    format!("{s:?} is not an address like \"127.0.0.1:9464\""),
                );
                None
            }
        }
    }
}

impl Leaf for LogFormat {
    type Out = LogFormat;
    fn read(value: &Value, path: &str, problems: &Problems) -> Option<LogFormat> {
        match Text::read(value, path, problems)?.as_str() {
            "auto" => Some(LogFormat::Auto),
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            other => {
                problems.add(path, format!("{other:?} is not one of auto, text, json"));
                None
            }
        }
    }
}

impl Leaf for Backfill {
    type Out = Backfill;
    fn read(value: &Value, path: &str, problems: &Problems) -> Option<Backfill> {
        match value {
            Value::String(s) if s == "all" => Some(Backfill::All),
            Value::String(s) if s == "none" => Some(Backfill::None),
            Value::Number(n) if n.as_u64().is_some() => {
                n.as_u64().map(|n| Backfill::Newest(n as usize))
            }
            Value::String(s) if s.parse::<usize>().is_ok() => s.parse().ok().map(Backfill::Newest),
            other => {
                problems.add(
                    path,
                    format!("expected \"all\", \"none\" or a whole number, found {other}"),
                );
                None
            }
        }
    }
}

/// A list of event names, without repeats.
pub(super) struct Events;

impl Leaf for Events {
    type Out = Vec<EventType>;
    fn read(value: &Value, path: &str, problems: &Problems) -> Option<Vec<EventType>> {
        let names = Strings::read(value, path, problems)?;
        let mut out = Vec::new();
        for name in names {
            match EventType::parse(&name) {
                Some(e) if !out.contains(&e) => out.push(e),
                Some(_) => {}
                None => {
                    let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
                    problems.add(
                        path,
                        format!("unknown event {name:?}; known events: {}", known.join(", ")),
                    );
                }
            }
        }
        Some(out)
    }
}

pub(super) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// Gives each problem the line of its key in the TOML text; the text is parsed once, for all.
pub(super) fn add_lines(text: &str, problems: &mut [Problem]) {
    let Ok(doc) = toml::de::DeTable::parse(text) else {
        return;
    };
    for p in problems.iter_mut() {
        p.line = line_of(text, &doc, &p.path);
    }
}

fn line_of(text: &str, doc: &toml::Spanned<toml::de::DeTable<'_>>, path: &str) -> Option<usize> {
    let mut span = doc.span();
    let mut table = doc.get_ref();
    let mut current: Option<&toml::Spanned<toml::de::DeValue<'_>>> = None;
    // A missing key (a required one, or one set only from the environment) points at the
    // deepest part of its path that is in the file.
    for seg in split_path(path) {
        let next = match (seg, current) {
            (Seg::Key(k), None) => table.get(k),
            (Seg::Key(k), Some(v)) => v.get_ref().as_table().and_then(|t| t.get(k)),
            (Seg::Index(i), Some(v)) => v.get_ref().as_array().and_then(|a| a.get(i)),
            (Seg::Index(_), None) => None,
        };
        let Some(value) = next else { break };
        span = value.span();
        current = Some(value);
        if let Some(t) = value.get_ref().as_table() {
            table = t;
        }
    }
    current?;
    Some(text[..span.start.min(text.len())].matches('\n').count() + 1)
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Seg<'_>> {
    // Split on dots outside double quotes: `hosts."a.com".min_delay` has three parts.
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in path.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => {
                parts.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&path[start..]);
    let mut out = Vec::new();
    for part in parts {
        if let Some(inner) = part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
            out.push(Seg::Key(inner));
            continue;
        }
        let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Seg::Key(key));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(i));
            }
        }
    }
    out
}
