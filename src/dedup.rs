//! Canonical URLs and content fingerprints used to recognise the same story; pure, no IO.

use url::Url;

/// Query parameters that only track the reader and never select content.
const TRACKING_PARAMS: &[&str] = &[
    "fbclid", "gclid", "mc_cid", "mc_eid", "igshid", "yclid", "msclkid", "dclid",
];

/// Query parameter prefixes that only track the reader.
const TRACKING_PREFIXES: &[&str] = &["utm_"];

fn is_tracking(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    TRACKING_PARAMS.contains(&name.as_str())
        || TRACKING_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The canonical form of a link (DESIGN §4): scheme and host lower-cased (the `url` crate
/// already does both and drops default ports), no fragment, tracking parameters removed and
/// the remaining parameters sorted.
pub fn canonical_url(url: &Url) -> Url {
    let mut out = url.clone();
    out.set_fragment(None);
    if url.query().is_some() {
        let mut pairs: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !is_tracking(k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        pairs.sort();
        if pairs.is_empty() {
            out.set_query(None);
        } else {
            out.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        let url = Url::parse(input).expect("test URL parses");
        assert_eq!(
            canonical_url(&url).as_str(),
            expected,
            "canonical form of {input}"
        );
    }

    #[test]
    fn removes_tracking_and_sorts_query() {
        check(
            "HTTPS://Example.COM:443/a/123?utm_source=rss&b=2&a=1#top",
            "https://example.com/a/123?a=1&b=2",
        );
        check("http://example.com:80/x?fbclid=abc", "http://example.com/x");
        check(
            "http://example.com:8080/x?id=7",
            "http://example.com:8080/x?id=7",
        );
    }
}
