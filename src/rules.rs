//! Filter and routing rules: which items are dropped, which pass, and which sinks they reach.
//!
//! A rule applies to some feeds (by name or tag, default every feed), holds conditions that
//! must all hold (a regex or a word list per field, a publication age, word-count bounds) and
//! an action. For one item:
//!
//! 1. the first matching `drop` rule drops it;
//! 2. when `keep` rules apply to its feed, an item matching none of them is dropped;
//! 3. every matching `route` rule adds its sinks. A sink named by any `route` rule receives
//!    only the items routed to it, so routing reads the same from the rule and the sink.
//!
//! Rules that look only at feed fields are decided before any article is fetched
//! ([`FeedRules::early`]); the rest once the article is cleaned ([`FeedRules::decide`]).
//! Regexes and words are matched case-insensitively with Unicode simple case folding;
//! words match whole words (a phrase's words may be separated by any white space). This
//! module is pure: values in, values out.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use regex::{Regex, RegexBuilder};

/// Compiled regexes may use this much memory each: a rule is a filter, not a program, and a
/// pathological pattern must fail `check` instead of slowing every poll.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A field of an item that a rule can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Title,
    Summary,
    /// The cleaned article text (or the feed's content when the page was not used).
    Content,
    Author,
    /// Matches when any one category matches.
    Categories,
    /// The canonical URL or the feed's own link.
    Url,
    /// The article's language, as detected from the page.
    Language,
}

impl Field {
    pub const ALL: [Field; 7] = [
        Field::Title,
        Field::Summary,
        Field::Content,
        Field::Author,
        Field::Categories,
        Field::Url,
        Field::Language,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Title => "title",
            Field::Summary => "summary",
            Field::Content => "content",
            Field::Author => "author",
            Field::Categories => "categories",
            Field::Url => "url",
            Field::Language => "language",
        }
    }

    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// Whether the field is known only after the article is fetched and cleaned.
    pub fn needs_article(self) -> bool {
        matches!(self, Field::Content | Field::Language)
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Drop,
    Keep,
    Route(Vec<String>),
}

/// A rule as the configuration gives it, before its patterns are compiled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSpec {
    pub name: String,
    /// Feed names it applies to; with `tags` empty too, every feed.
    pub feeds: Vec<String>,
    pub tags: Vec<String>,
    /// A regex per field.
    pub matches: Vec<(Field, String)>,
    /// Words or phrases per field; any one of them matching is enough.
    pub words: Vec<(Field, Vec<String>)>,
    /// Matches entries published longer ago than this (an undated entry never matches).
    pub older_than: Option<Duration>,
    pub min_words: Option<usize>,
    pub max_words: Option<usize>,
    pub action: Option<Action>,
}

/// One thing wrong with one rule; `key` is relative to the rule (`match.title`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    pub key: String,
    pub message: String,
}

#[derive(Debug)]
enum Condition {
    Pattern {
        field: Field,
        regex: Regex,
    },
    OlderThan(Duration),
    WordCount {
        min: Option<usize>,
        max: Option<usize>,
    },
}

impl Condition {
    fn needs_article(&self) -> bool {
        match self {
            Condition::Pattern { field, .. } => field.needs_article(),
            Condition::OlderThan(_) => false,
            Condition::WordCount { .. } => true,
        }
    }
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    feeds: Vec<String>,
    tags: Vec<String>,
    conditions: Vec<Condition>,
    pub action: Action,
    needs_article: bool,
    /// What it was compiled from: two rules are equal when they were written the same.
    spec: RuleSpec,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        self.spec == other.spec
    }
}

impl Rule {
    /// Compiles one rule, reporting every problem in it at once.
    pub fn compile(spec: &RuleSpec) -> Result<Rule, Vec<RuleProblem>> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| {
            problems.push(RuleProblem {
                key: key.to_string(),
                message,
            })
        };
        let mut conditions = Vec::new();
        for (field, pattern) in &spec.matches {
            match compile_regex(pattern) {
                Ok(regex) => conditions.push(Condition::Pattern {
                    field: *field,
                    regex,
                }),
                Err(e) => problem(&format!("match.{}", field.as_str()), e),
            }
        }
        for (field, words) in &spec.words {
            let key = format!("words.{}", field.as_str());
            if words.iter().all(|w| w.trim().is_empty()) {
                problem(&key, "needs at least one word".into());
                continue;
            }
            match compile_regex(&words_pattern(words)) {
                Ok(regex) => conditions.push(Condition::Pattern {
                    field: *field,
                    regex,
                }),
                Err(e) => problem(&key, e),
            }
        }
        if let Some(age) = spec.older_than {
            conditions.push(Condition::OlderThan(age));
        }
        if let (Some(min), Some(max)) = (spec.min_words, spec.max_words)
            && min > max
        {
            problem(
                "word_count",
                format!("min ({min}) is larger than max ({max})"),
            );
        }
        if spec.min_words.is_some() || spec.max_words.is_some() {
            conditions.push(Condition::WordCount {
                min: spec.min_words,
                max: spec.max_words,
            });
        }
        if spec.matches.is_empty()
            && spec.words.is_empty()
            && spec.older_than.is_none()
            && spec.min_words.is_none()
            && spec.max_words.is_none()
        {
            problem(
                "match",
                "a rule needs a condition: match, words, older_than or word_count".into(),
            );
        }
        let action = match &spec.action {
            None => {
                problem(
                    "action",
                    "a rule needs an action: \"drop\", \"keep\" or \"route\"".into(),
                );
                Action::Drop
            }
            Some(Action::Route(sinks)) if sinks.is_empty() => {
                problem("sinks", "a route rule needs the sinks it routes to".into());
                Action::Route(Vec::new())
            }
            Some(a) => a.clone(),
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let needs_article = conditions.iter().any(Condition::needs_article);
        Ok(Rule {
            name: spec.name.clone(),
            feeds: spec.feeds.clone(),
            tags: spec.tags.clone(),
            conditions,
            action,
            needs_article,
            spec: spec.clone(),
        })
    }

    /// Whether this rule applies to a feed with this name and these tags.
    pub fn applies_to(&self, feed: &str, tags: &[String]) -> bool {
        (self.feeds.is_empty() && self.tags.is_empty())
            || self.feeds.iter().any(|f| f == feed)
            || self.tags.iter().any(|t| tags.contains(t))
    }

    /// Whether every condition holds. Article conditions on an item without its article
    /// yet do not hold.
    fn matches(&self, item: &ItemView<'_>, now: DateTime<Utc>) -> bool {
        self.conditions.iter().all(|c| match c {
            Condition::Pattern { field, regex } => item.any_value(*field, |v| regex.is_match(v)),
            Condition::OlderThan(age) => item
                .published
                .is_some_and(|p| chrono::Duration::from_std(*age).is_ok_and(|age| p < now - age)),
            Condition::WordCount { min, max } => item.article.as_ref().is_some_and(|a| {
                min.is_none_or(|m| a.word_count >= m) && max.is_none_or(|m| a.word_count <= m)
            }),
        })
    }
}

/// Regexes are case-insensitive unless they say `(?-i)`; the error shows where it fails.
fn compile_regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(text) => format!("not a valid regex:\n{text}"),
            regex::Error::CompiledTooBig(limit) => {
                format!("the regex is too large (over {limit} bytes compiled)")
            }
            other => format!("not a valid regex: {other}"),
        })
}

/// Whole words or phrases: boundaries are the ends of the text or a non-word character, so
/// words such as `c++` match too; a phrase's words may be split by any white space.
fn words_pattern(words: &[String]) -> String {
    let alternatives: Vec<String> = words
        .iter()
        .filter(|w| !w.trim().is_empty())
        .map(|w| {
            w.split_whitespace()
                .map(regex::escape)
                .collect::<Vec<_>>()
                .join(r"\s+")
        })
        .collect();
    format!(r"(?:^|\W)(?:{})(?:\W|$)", alternatives.join("|"))
}

/// The article-side fields of an item, once its content is known.
#[derive(Debug, Clone, Copy)]
pub struct ArticleView<'a> {
    pub content: &'a str,
    pub language: Option<&'a str>,
    pub word_count: usize,
}

/// The fields of an item that rules look at.
#[derive(Debug, Clone, Copy, Default)]
pub struct ItemView<'a> {
    pub title: Option<&'a str>,
    pub summary: Option<&'a str>,
    pub author: Option<&'a str>,
    pub categories: &'a [String],
    pub url: Option<&'a str>,
    pub link: Option<&'a str>,
    pub published: Option<DateTime<Utc>>,
    /// `None` before the article stage.
    pub article: Option<ArticleView<'a>>,
}

impl ItemView<'_> {
    fn any_value(&self, field: Field, mut f: impl FnMut(&str) -> bool) -> bool {
        match field {
            Field::Title => self.title.is_some_and(f),
            Field::Summary => self.summary.is_some_and(f),
            Field::Author => self.author.is_some_and(f),
            Field::Categories => self.categories.iter().any(|c| f(c)),
            Field::Url => self.url.is_some_and(&mut f) || self.link.is_some_and(f),
            Field::Content => self.article.is_some_and(|a| f(a.content)),
            Field::Language => self.article.and_then(|a| a.language).is_some_and(f),
        }
    }
}

/// Every rule of the configuration, compiled.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RuleSet {
    rules: Vec<Arc<Rule>>,
    /// Sinks named by a route rule: they take only what is routed to them.
    routed: BTreeSet<String>,
}

impl RuleSet {
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        let routed = rules
            .iter()
            .filter_map(|r| match &r.action {
                Action::Route(sinks) => Some(sinks.iter().cloned()),
                _ => None,
            })
            .flatten()
            .collect();
        RuleSet {
            rules: rules.into_iter().map(Arc::new).collect(),
            routed,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|r| r.as_ref())
    }

    /// The rules that apply to one feed, in configuration order.
    pub fn for_feed(&self, feed: &str, tags: &[String]) -> FeedRules {
        FeedRules {
            rules: self
                .rules
                .iter()
                .filter(|r| r.applies_to(feed, tags))
                .cloned()
                .collect(),
            routed: self.routed.clone(),
        }
    }
}

/// What the rules decided for one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Stored as seen, never sent; the name of the rule that dropped it.
    Drop(String),
    /// Sent; with the sinks that route rules added.
    Pass { routes: BTreeSet<String> },
}

/// Before the article stage: whether the item can already be dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Early {
    Drop(String),
    Continue,
}

/// The rules of one feed.
#[derive(Debug, Default, Clone)]
pub struct FeedRules {
    rules: Vec<Arc<Rule>>,
    routed: BTreeSet<String>,
}

impl FeedRules {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides what feed fields alone can decide, so a dropped item's page is never fetched.
    pub fn early(&self, item: &ItemView<'_>, now: DateTime<Utc>) -> Early {
        let item = ItemView {
            article: None,
            ..*item
        };
        for rule in &self.rules {
            if rule.action == Action::Drop && !rule.needs_article && rule.matches(&item, now) {
                return Early::Drop(rule.name.clone());
            }
        }
        let mut keeps = self.rules.iter().filter(|r| r.action == Action::Keep);
        let first_keep = keeps.clone().next();
        if let Some(first) = first_keep
            && keeps.all(|r| !r.needs_article && !r.matches(&item, now))
        {
            return Early::Drop(first.name.clone());
        }
        Early::Continue
    }

    /// The whole decision, with the article's fields when the item has them.
    pub fn decide(&self, item: &ItemView<'_>, now: DateTime<Utc>) -> Verdict {
        self.decide_inner(item, now, false)
    }

    /// The decision for an item that [`FeedRules::early`] let through: the drop rules on
    /// feed fields are known not to match and are not evaluated again.
    pub fn decide_after_early(&self, item: &ItemView<'_>, now: DateTime<Utc>) -> Verdict {
        self.decide_inner(item, now, true)
    }

    fn decide_inner(&self, item: &ItemView<'_>, now: DateTime<Utc>, after_early: bool) -> Verdict {
        let mut first_keep: Option<&Rule> = None;
        let mut kept = false;
        let mut routes = BTreeSet::new();
        for rule in &self.rules {
            match &rule.action {
                Action::Drop => {
                    if (rule.needs_article || !after_early) && rule.matches(item, now) {
                        return Verdict::Drop(rule.name.clone());
                    }
                }
                Action::Keep => {
                    first_keep.get_or_insert(rule);
                    kept = kept || rule.matches(item, now);
                }
                Action::Route(sinks) => {
                    if rule.matches(item, now) {
                        routes.extend(sinks.iter().cloned());
                    }
                }
            }
        }
        match first_keep {
            Some(rule) if !kept => Verdict::Drop(rule.name.clone()),
            _ => Verdict::Pass { routes },
        }
    }

    /// The sinks an item that passed goes to: the feed's own sinks less those that take only
    /// routed items, plus the sinks the rules routed it to.
    pub fn sinks(&self, base: &[String], routes: &BTreeSet<String>) -> Vec<String> {
        let mut out: Vec<String> = base
            .iter()
            .filter(|s| !self.routed.contains(*s))
            .cloned()
            .collect();
        for s in routes {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
            .expect("valid date")
            .with_timezone(&Utc)
    }

    fn rule(name: &str, action: Action, f: impl FnOnce(&mut RuleSpec)) -> Rule {
        let mut spec = RuleSpec {
            name: name.into(),
            action: Some(action),
            ..RuleSpec::default()
        };
        f(&mut spec);
        Rule::compile(&spec).expect("valid rule")
    }

    fn titled(title: &str) -> ItemView<'_> {
        ItemView {
            title: Some(title),
            ..ItemView::default()
        }
    }

    #[test]
    fn drop_rules_match_case_folded_unicode() {
        let rules = RuleSet::new(vec![rule("no-sport", Action::Drop, |s| {
            s.matches = vec![(Field::Title, "football|ÉTÉ".into())]
        })]);
        let feed = rules.for_feed("any", &[]);
        for title in ["FOOTBALL tonight", "Un été au lac", "ÉTÉ"] {
            assert_eq!(
                feed.early(&titled(title), now()),
                Early::Drop("no-sport".into()),
                "{title}"
            );
        }
        assert_eq!(feed.early(&titled("Chess"), now()), Early::Continue);
    }

    #[test]
    fn words_match_whole_words_and_phrases() {
        let r = rule("w", Action::Drop, |s| {
            s.words = vec![(
                Field::Title,
                vec!["rust".into(), "c++".into(), "climate change".into()],
            )]
        });
        let item_matches = |t: &str| r.matches(&titled(t), now());
        assert!(item_matches("Rust 2.0 released"));
        assert!(item_matches("Why C++ is hard"));
        assert!(item_matches("On climate\n  CHANGE"));
        assert!(!item_matches("Trusty tools"));
        assert!(!item_matches("climate"));
        // Word boundaries are Unicode-aware: "über" is one word.
        let u = rule("u", Action::Drop, |s| {
            s.words = vec![(Field::Title, vec!["ber".into()])]
        });
        assert!(!u.matches(&titled("über alles"), now()));
    }

    #[test]
    fn keep_rules_drop_what_matches_none() {
        let rules = RuleSet::new(vec![
            rule("rust-only", Action::Keep, |s| {
                s.words = vec![(Field::Title, vec!["rust".into()])]
            }),
            rule("or-go", Action::Keep, |s| {
                s.words = vec![(Field::Categories, vec!["go".into()])]
            }),
        ]);
        let feed = rules.for_feed("f", &[]);
        let cats = vec!["Go".to_string()];
        let go = ItemView {
            title: Some("Generics"),
            categories: &cats,
            ..ItemView::default()
        };
        assert_eq!(feed.early(&titled("Rust news"), now()), Early::Continue);
        assert_eq!(feed.early(&go, now()), Early::Continue);
        assert_eq!(
            feed.early(&titled("Python news"), now()),
            Early::Drop("rust-only".into())
        );
        assert_eq!(
            feed.decide(&titled("Python news"), now()),
            Verdict::Drop("rust-only".into())
        );
    }

    #[test]
    fn article_rules_wait_for_the_article() {
        let rules = RuleSet::new(vec![
            rule("short", Action::Drop, |s| s.max_words = Some(50)),
            rule("english", Action::Keep, |s| {
                s.matches = vec![(Field::Language, "^en".into())]
            }),
        ]);
        let feed = rules.for_feed("f", &[]);
        let mut item = titled("Anything");
        assert_eq!(feed.early(&item, now()), Early::Continue);
        item.article = Some(ArticleView {
            content: "text",
            language: Some("en"),
            word_count: 10,
        });
        assert_eq!(feed.decide(&item, now()), Verdict::Drop("short".into()));
        assert_eq!(
            feed.decide_after_early(&item, now()),
            Verdict::Drop("short".into())
        );
        item.article = Some(ArticleView {
            content: "text",
            language: Some("fr"),
            word_count: 500,
        });
        assert_eq!(feed.decide(&item, now()), Verdict::Drop("english".into()));
        item.article = Some(ArticleView {
            content: "text",
            language: Some("en-GB"),
            word_count: 500,
        });
        assert!(matches!(feed.decide(&item, now()), Verdict::Pass { .. }));
    }

    #[test]
    fn older_than_needs_a_date() {
        let r = rule("old", Action::Drop, |s| {
            s.older_than = Some(Duration::from_secs(7 * 86_400))
        });
        let mut item = titled("x");
        assert!(!r.matches(&item, now()));
        item.published = Some(now() - chrono::Duration::days(8));
        assert!(r.matches(&item, now()));
        item.published = Some(now() - chrono::Duration::days(6));
        assert!(!r.matches(&item, now()));
    }

    #[test]
    fn all_conditions_of_a_rule_must_hold() {
        let r = rule("both", Action::Drop, |s| {
            s.matches = vec![
                (Field::Title, "sale".into()),
                (Field::Url, "shop\\.example".into()),
            ]
        });
        let mut item = titled("Big sale");
        assert!(!r.matches(&item, now()));
        item.link = Some("https://shop.example/x");
        assert!(r.matches(&item, now()));
    }

    #[test]
    fn routed_sinks_take_only_routed_items() {
        let rules = RuleSet::new(vec![rule(
            "rust-chat",
            Action::Route(vec!["chat".into()]),
            |s| {
                s.words = vec![(Field::Title, vec!["rust".into()])];
                s.tags = vec!["tech".into()];
            },
        )]);
        let base = vec!["log".to_string(), "chat".to_string()];
        let tech = rules.for_feed("f", &["tech".to_string()]);
        let Verdict::Pass { routes } = tech.decide(&titled("Rust news"), now()) else {
            panic!("passes");
        };
        assert_eq!(tech.sinks(&base, &routes), vec!["log", "chat"]);
        let Verdict::Pass { routes } = tech.decide(&titled("Other"), now()) else {
            panic!("passes");
        };
        assert_eq!(tech.sinks(&base, &routes), vec!["log"]);
        // A feed the rule does not apply to never reaches the routed sink.
        let other = rules.for_feed("g", &[]);
        let Verdict::Pass { routes } = other.decide(&titled("Rust news"), now()) else {
            panic!("passes");
        };
        assert_eq!(other.sinks(&base, &routes), vec!["log"]);
    }

    #[test]
    fn scope_by_feed_or_tag() {
        let r = rule("scoped", Action::Drop, |s| {
            s.older_than = Some(Duration::from_secs(1));
            s.feeds = vec!["a".into()];
            s.tags = vec!["news".into()];
        });
        assert!(r.applies_to("a", &[]));
        assert!(r.applies_to("b", &["news".to_string()]));
        assert!(!r.applies_to("b", &["fr".to_string()]));
    }

    #[test]
    fn bad_rules_report_every_problem() {
        let spec = RuleSpec {
            name: "broken".into(),
            matches: vec![(Field::Title, "foo(bar".into())],
            words: vec![(Field::Summary, vec![" ".into()])],
            min_words: Some(10),
            max_words: Some(5),
            action: Some(Action::Route(vec![])),
            ..RuleSpec::default()
        };
        let problems = Rule::compile(&spec).expect_err("invalid");
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["match.title", "words.summary", "word_count", "sinks"]
        );
        // The regex error shows the pattern and where it fails.
        assert!(
            problems[0].message.contains("foo(bar"),
            "{}",
            problems[0].message
        );
        assert!(problems[0].message.contains('^'), "{}", problems[0].message);
        let empty = RuleSpec {
            name: "empty".into(),
            action: Some(Action::Drop),
            ..RuleSpec::default()
        };
        assert_eq!(
            Rule::compile(&empty).expect_err("no condition")[0].key,
            "match"
        );
    }
}
