//! The `[[rules]]` section: each rule read into a [`RuleSpec`] and compiled by
//! [`crate::rules`]; every problem named by the rule's key path and the rule's name.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use super::read::{Int, Strings, Table, Text, kind_of};
use crate::rules::{Action, Field, Rule, RuleSet, RuleSpec};

pub(super) fn rules(
    tables: &[Table<'_>],
    feeds: &BTreeSet<String>,
    sinks: &BTreeSet<String>,
) -> RuleSet {
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for t in tables {
        if let Some(rule) = rule(t, feeds, sinks, &mut names) {
            out.push(rule);
        }
    }
    RuleSet::new(out)
}

fn fields_list() -> String {
    Field::ALL
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn rule(
    t: &Table<'_>,
    feeds: &BTreeSet<String>,
    sinks: &BTreeSet<String>,
    names: &mut BTreeSet<String>,
) -> Option<Rule> {
    let name = t.get::<Text>("name");
    match &name {
        None if !t.has("name") => t.problem("name", "a rule needs a name"),
        Some(n) if !super::sections::valid_name(n) => t.problem(
            "name",
            format!("{n:?}: rule names use letters, digits, '.', '-' and '_' only"),
        ),
        Some(n) if !names.insert(n.clone()) => {
            t.problem("name", format!("another rule is already named {n:?}"))
        }
        _ => {}
    }
    let label = name.clone().unwrap_or_default();
    let rule_feeds = t.get::<Strings>("feeds").unwrap_or_default();
    for f in &rule_feeds {
        if !feeds.contains(f) {
            t.problem(
                "feeds",
                format!("rule {label:?}: no feed named {f:?} is configured"),
            );
        }
    }
    let tags = t.get::<Strings>("tags").unwrap_or_default();
    let mut spec = RuleSpec {
        name: label.clone(),
        feeds: rule_feeds,
        tags,
        ..RuleSpec::default()
    };
    for (field, value) in field_table(t, "match") {
        match value {
            Value::String(s) => spec.matches.push((field, s.clone())),
            other => t.table("match").problem(
                field.as_str(),
                format!(
                    "rule {label:?}: expected a regex (a string), found {}",
                    kind_of(other)
                ),
            ),
        }
    }
    for (field, value) in field_table(t, "words") {
        let words = match value {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            other => {
                t.table("words").problem(
                    field.as_str(),
                    format!(
                        "rule {label:?}: expected a list of words, found {}",
                        kind_of(other)
                    ),
                );
                continue;
            }
        };
        spec.words.push((field, words));
    }
    spec.older_than = t.get::<Duration>("older_than");
    let bounds = t.table("word_count");
    spec.min_words = bounds.get::<Int<0, 10_000_000>>("min").map(|n| n as usize);
    spec.max_words = bounds.get::<Int<0, 10_000_000>>("max").map(|n| n as usize);
    bounds.finish();
    let rule_sinks = t.get::<Strings>("sinks");
    spec.action = match t.get::<Text>("action").as_deref() {
        Some("drop") => Some(Action::Drop),
        Some("keep") => Some(Action::Keep),
        Some("route") => Some(Action::Route(rule_sinks.clone().unwrap_or_default())),
        Some(other) => {
            t.problem(
                "action",
                format!(
                    "rule {label:?}: unknown action {other:?}; use \"drop\", \"keep\" or \"route\""
                ),
            );
            None
        }
        None => None,
    };
    if rule_sinks.is_some() && !matches!(spec.action, Some(Action::Route(_))) {
        t.problem(
            "sinks",
            format!("rule {label:?}: sinks are for action = \"route\""),
        );
    }
    for s in rule_sinks.iter().flatten() {
        if !sinks.contains(s) {
            t.problem(
                "sinks",
                format!("rule {label:?}: no sink named {s:?} is configured"),
            );
        }
    }
    t.finish();
    let action_given = t.has("action");
    match Rule::compile(&spec) {
        Ok(rule) => Some(rule),
        Err(problems) => {
            for p in problems {
                // An action that was given but wrong is reported above already.
                if p.key == "action" && action_given {
                    continue;
                }
                let message = format!("rule {label:?}: {}", p.message);
                match p.key.split_once('.') {
                    Some((table, key)) => t.table(table).problem(key, message),
                    None => t.problem(&p.key, message),
                }
            }
            None
        }
    }
}

/// The fields of `match` or `words`, each checked to be one rules know.
fn field_table<'a>(t: &Table<'a>, key: &str) -> Vec<(Field, &'a Value)> {
    let Some(value) = t.value(key) else {
        return Vec::new();
    };
    let Value::Object(map) = value else {
        t.problem(
            key,
            format!("expected a table of fields, found {}", kind_of(value)),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, v) in map {
        match Field::parse(name) {
            Some(field) => out.push((field, v)),
            None => t.table(key).problem(
                name,
                format!("unknown field; rules match {}", fields_list()),
            ),
        }
    }
    out
}
