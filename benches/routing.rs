//! What rules and a body template cost per item, at 10,000 items, next to what the ingest
//! path already spends on each item without them (parsing its feed and rendering its
//! payload; the store's transaction comes on top, so the share measured here is an upper
//! bound of what rules and templates add).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use feedwire::model::{Content, ContentSource, EventType, FeedItem};
use feedwire::rules::{Action, ArticleView, Field, ItemView, Rule, RuleSet, RuleSpec};
use feedwire::sinks::payload::{self, EventInput};
use feedwire::sinks::template::Template;
use url::Url;

const ITEMS: usize = 10_000;
const PER_FEED: usize = 50;
const RULES: usize = 20;

fn rss(doc: usize) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Bench</title><link>https://example.com/</link><description>d</description>",
    );
    for i in 0..PER_FEED {
        let n = doc * PER_FEED + i;
        s.push_str(&format!(
            "<item><guid>https://example.com/a/{n}</guid><title>Story {n} about something — été</title>\
             <link>https://example.com/a/{n}?utm_source=rss</link>\
             <pubDate>Fri, 27 Nov 2026 10:{:02}:00 GMT</pubDate>\
             <description>&lt;p&gt;A summary of story {n}, with &lt;b&gt;markup&lt;/b&gt;. \
             It runs to a couple of sentences, as summaries do.&lt;/p&gt;</description>\
             <category>news</category><category>world</category></item>",
            n % 60
        ));
    }
    s.push_str("</channel></rss>");
    s
}

/// Twenty rules of every kind: word lists and regexes over several fields, one by age.
fn rules() -> RuleSet {
    let topics = [
        "football",
        "cricket",
        "tennis",
        "golf",
        "rugby",
        "formula one",
        "boxing",
        "cycling",
        "baseball",
        "hockey",
    ];
    let mut out = Vec::new();
    for i in 0..RULES {
        let mut spec = RuleSpec {
            name: format!("rule-{i}"),
            action: Some(match i % 4 {
                0 => Action::Route(vec!["chat".into()]),
                _ => Action::Drop,
            }),
            ..RuleSpec::default()
        };
        match i % 5 {
            0 => spec.words = vec![(Field::Title, vec![topics[i % 10].into(), "sport".into()])],
            1 => spec.matches = vec![(Field::Summary, format!(r"\b{}\w*\b", topics[i % 10]))],
            2 => {
                spec.matches = vec![(Field::Categories, format!("^(?:{}|sport)$", topics[i % 10]))]
            }
            3 => spec.matches = vec![(Field::Url, format!(r"/{}/\d+", topics[i % 10]))],
            _ => {
                spec.matches = vec![(Field::Content, format!("(?:{}).*results", topics[i % 10]))];
                spec.older_than = Some(Duration::from_secs(365 * 86_400));
            }
        }
        out.push(Rule::compile(&spec).expect("valid rule"));
    }
    RuleSet::new(out)
}

fn feed() -> feedwire::config::Feed {
    let text = "[sinks.out]\ntype = \"log\"\n[[feeds]]\nname = \"bench\"\nurl = \"https://example.com/feed\"\ntags = [\"news\"]\n";
    let config = feedwire::config::parse(text, Path::new("bench.toml"), &BTreeMap::new())
        .expect("valid config");
    (*config.feeds[0]).clone()
}

fn content(item: &FeedItem) -> Content {
    let text = item.summary.clone().unwrap_or_default();
    Content {
        source: ContentSource::Feed,
        error: None,
        word_count: text.split_whitespace().count(),
        html: format!("<p>{text}</p>"),
        text,
        language: Some("en".into()),
        image: None,
        author: None,
        page_type: None,
    }
}

fn bench(c: &mut Criterion) {
    let url = Url::parse("https://example.com/feed").expect("url");
    let docs: Vec<String> = (0..ITEMS / PER_FEED).map(rss).collect();
    let parse_all = || -> Vec<FeedItem> {
        docs.iter()
            .flat_map(|d| {
                feedwire::parse::parse_feed(d.as_bytes(), &url, feedwire::parse::Identity::Guid)
                    .expect("parses")
                    .items
            })
            .collect()
    };
    let items = parse_all();
    assert_eq!(items.len(), ITEMS);
    let contents: Vec<Content> = items.iter().map(content).collect();
    let feed = feed();
    let created = Utc::now();
    let render = |item: &FeedItem, content: &Content| {
        payload::render(&EventInput {
            kind: EventType::ItemNew,
            item_id: "01JD0000000000000000000000",
            created,
            feed: &feed,
            feed_title: Some("Bench"),
            item,
            content,
            duplicate_of: None,
        })
    };
    let bodies: Vec<String> = items
        .iter()
        .zip(&contents)
        .map(|(i, c)| render(i, c))
        .collect();
    let rules = rules();
    let feed_rules = rules.for_feed("bench", &["news".to_string()]);
    let template = Template::compile(
        r#"{"text": {{ ("*" ~ item.title ~ "*\n" ~ item.summary ~ "\n" ~ item.url) | tojson }}, "feed": {{ feed.name | tojson }}{% if item.author %}, "by": {{ item.author | tojson }}{% endif %}}"#,
        "application/json",
    )
    .expect("template");

    let mut g = c.benchmark_group("routing_10k");
    g.throughput(Throughput::Elements(ITEMS as u64));
    g.sample_size(10);
    g.bench_function("baseline: parse + payload", |b| {
        b.iter(|| {
            let items = parse_all();
            items
                .iter()
                .zip(&contents)
                .map(|(i, c)| render(i, c).len())
                .sum::<usize>()
        })
    });
    g.bench_function("20 rules", |b| {
        let now = Utc::now();
        b.iter(|| {
            let mut passed = 0;
            for (item, content) in items.iter().zip(&contents) {
                let mut view = ItemView {
                    title: item.title.as_deref(),
                    summary: item.summary.as_deref(),
                    author: item.author.as_deref(),
                    categories: &item.categories,
                    url: item.url.as_ref().map(|u| u.as_str()),
                    link: item.link.as_ref().map(|u| u.as_str()),
                    published: item.published,
                    article: None,
                };
                if feed_rules.early(&view, now) != feedwire::rules::Early::Continue {
                    continue;
                }
                view.article = Some(ArticleView {
                    content: &content.text,
                    language: content.language.as_deref(),
                    word_count: content.word_count,
                });
                if matches!(
                    feed_rules.decide_after_early(black_box(&view), now),
                    feedwire::rules::Verdict::Pass { .. }
                ) {
                    passed += 1;
                }
            }
            passed
        })
    });
    g.bench_function("template", |b| {
        b.iter(|| {
            bodies
                .iter()
                .map(|body| template.render(black_box(body)).expect("renders").len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
