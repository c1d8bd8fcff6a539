//! Recognising the same story: canonical URLs, content hashes and shingle sketches; pure,
//! no IO.
//!
//! The store keeps, per item, its URL keys ([`dedup_key`]), its [`content_hash`] and its
//! [`Sketch`] with the LSH [`bands`] that index it, and asks [`same_story`] about the
//! candidates a lookup returns.

mod fingerprint;
mod link;
mod sketch;

pub use fingerprint::{MIN_CONTENT_WORDS, MIN_LINE_WORDS, content_hash, normalize_text};
pub use link::{
    CanonicalDecision, CanonicalSource, canonical_url, dedup_key, resolve_page_canonical,
};
pub use sketch::{
    LSH_BANDS, LSH_ROWS, MIN_CONTAINMENT, MIN_SIZE_RATIO, MIN_SKETCH_WORDS, SKETCH_SHINGLE_WORDS,
    SKETCH_SIZE, Similarity, Sketch, bands, shingle_hashes, sketch,
};

/// Why an item was recognised as a story already seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DuplicateReason {
    /// One of its URL keys is one of the other item's.
    Url,
    /// Its normalised clean text is the same.
    Content,
    /// It shares an LSH band with the other item and their shingle sets are alike
    /// ([`Similarity::is_match`]).
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
    /// [`sketch`] of the clean text: the sketch and its band keys.
    pub sketch: Option<(Sketch, Vec<i32>)>,
}

impl Fingerprint {
    /// The fingerprint of an item known by `decision` whose clean text is `text`.
    pub fn new(decision: &CanonicalDecision, text: &str) -> Self {
        Fingerprint {
            url_keys: decision.dedup_keys.clone(),
            content_hash: content_hash(text),
            sketch: sketch(text),
        }
    }
}

/// Whether `candidate` is the same story as the stored item `stored`, and by which rule;
/// the strongest reason first (URL, then exact content, then near content).
///
/// Near content is looked at only when `near_duplicates` is on (`[dedup] near_duplicates`)
/// and, as in the store's lookup, only when the two share a band. Missing fingerprints
/// (text too short) never match.
pub fn same_story(
    candidate: &Fingerprint,
    stored: &Fingerprint,
    near_duplicates: bool,
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
    match (&candidate.sketch, &stored.sketch) {
        (Some((a, a_bands)), Some((b, b_bands)))
            if near_duplicates
                && a_bands.iter().any(|k| b_bands.contains(k))
                && a.similarity(b).is_match() =>
        {
            Some(DuplicateReason::Near)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
