//! Recognising the same story: canonical URLs, content hashes and SimHash; pure, no IO.
//!
//! The store keeps, per item, its URL keys ([`dedup_key`]), its [`content_hash`] and its
//! [`simhash`] with the [`simhash_bands`] that index it, and asks [`same_story`] about the
//! candidates a lookup returns.

mod fingerprint;
mod link;

pub use fingerprint::{
    MIN_CONTENT_WORDS, MIN_LINE_WORDS, MIN_SIMHASH_WORDS, SHINGLE_WORDS, content_hash, hamming,
    normalize_text, simhash, simhash_bands, simhash_with,
};
pub use link::{
    CanonicalDecision, CanonicalSource, canonical_url, dedup_key, resolve_page_canonical,
};

/// Why an item was recognised as a story already seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DuplicateReason {
    /// One of its URL keys is one of the other item's.
    Url,
    /// Its normalised clean text is the same.
    Content,
    /// Its SimHash is within `max_distance` bits.
    Near,
}

impl DuplicateReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DuplicateReason::Url => "url",
            DuplicateReason::Content => "content",
            DuplicateReason::Near => "near",
        }
    }
}

/// What an item is recognised by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint {
    /// [`CanonicalDecision::dedup_keys`].
    pub url_keys: Vec<String>,
    /// [`content_hash`] of the clean text.
    pub content_hash: Option<[u8; 32]>,
    /// [`simhash`] of the clean text.
    pub simhash: Option<u64>,
}

impl Fingerprint {
    /// The fingerprint of an item known by `decision` whose clean text is `text`.
    pub fn new(decision: &CanonicalDecision, text: &str) -> Self {
        Fingerprint {
            url_keys: decision.dedup_keys.clone(),
            content_hash: content_hash(text),
            simhash: simhash(text),
        }
    }
}

/// Whether `candidate` is the same story as the stored item `stored`, and by which rule;
/// the strongest reason first (URL, then exact content, then near content).
///
/// `max_distance` is `[dedup] max_distance`, or `None` when near-duplicates are off
/// (`[dedup] near_duplicates = false`). Missing fingerprints (text too short) never match.
pub fn same_story(
    candidate: &Fingerprint,
    stored: &Fingerprint,
    max_distance: Option<u32>,
) -> Option<DuplicateReason> {
    if candidate
        .url_keys
        .iter()
        .any(|key| stored.url_keys.contains(key))
    {
        return Some(DuplicateReason::Url);
    }
    if candidate.content_hash.is_some() && candidate.content_hash == stored.content_hash {
        return Some(DuplicateReason::Content);
    }
    match (candidate.simhash, stored.simhash, max_distance) {
        (Some(a), Some(b), Some(max)) if hamming(a, b) <= max => Some(DuplicateReason::Near),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
