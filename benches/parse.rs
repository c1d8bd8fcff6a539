//! Feed bytes → parsed items with identities, against feed-rs parsing alone.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use url::Url;

const ITEMS: usize = 50;

fn rss() -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Bench</title><link>https://example.com/</link><description>d</description>",
    );
    for n in 0..ITEMS {
        s.push_str(&format!(
            "<item><guid>https://example.com/a/{n}</guid><title>Story {n} about something</title>\
             <link>https://example.com/a/{n}?utm_source=rss&amp;utm_medium=feed</link>\
             <pubDate>Fri, 27 Nov 2026 10:{:02}:00 GMT</pubDate>\
             <description>&lt;p&gt;A summary of story {n}, with &lt;b&gt;markup&lt;/b&gt; and an &lt;a href=\"/x\"&gt;inline link&lt;/a&gt;. \
             It runs to a couple of sentences, as summaries do.&lt;/p&gt;</description>\
             <category>news</category></item>",
            n % 60
        ));
    }
    s.push_str("</channel></rss>");
    s
}

fn atom() -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><feed xmlns=\"http://www.w3.org/2005/Atom\"><title>Bench</title><id>urn:b</id><updated>2026-11-27T10:00:00Z</updated>",
    );
    for n in 0..ITEMS {
        s.push_str(&format!(
            "<entry><id>urn:uuid:{n:08}</id><title>Story {n} about something</title>\
             <link rel=\"alternate\" href=\"/a/{n}?fbclid=abc\"/><published>2026-11-27T10:{:02}:00Z</published>\
             <updated>2026-11-27T10:{:02}:00Z</updated><author><name>Ann Writer</name></author>\
             <summary type=\"html\">&lt;p&gt;A summary of story {n}, with &lt;b&gt;markup&lt;/b&gt;. \
             It runs to a couple of sentences, as summaries do.&lt;/p&gt;</summary></entry>",
            n % 60,
            n % 60
        ));
    }
    s.push_str("</feed>");
    s
}

fn bench(c: &mut Criterion) {
    let url = Url::parse("https://example.com/feed").expect("url");
    for (name, doc) in [("rss50", rss()), ("atom50", atom())] {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(ITEMS as u64));
        g.bench_function("feed-rs alone", |b| {
            b.iter(|| feed_rs::parser::parse(black_box(doc.as_bytes())).map(|f| f.entries.len()))
        });
        g.bench_function("parse + identity", |b| {
            b.iter(|| {
                feedwire::parse::parse_feed(
                    black_box(doc.as_bytes()),
                    &url,
                    feedwire::parse::Identity::Guid,
                )
                .map(|f| f.items.len())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
