//! Fingerprints of an article's clean text: an exact hash and a 64-bit SimHash.
//!
//! Both are stored, so both must be the same on every run, machine and version: the word
//! hash is FNV-1a 64 with MurmurHash3's `fmix64` finaliser, spelled out below, never
//! `std`'s randomly keyed hasher. A change to the normalisation or the hash is a change
//! of stored data and needs a migration that recomputes them.

use icu_normalizer::ComposingNormalizerBorrowed;
use sha2::{Digest, Sha256};

/// Fewer normalised words than this and the text gets no content hash: short texts
/// ("Read more", "Photo gallery", a paywall notice) are the same across different stories.
pub const MIN_CONTENT_WORDS: usize = 15;

/// Fewer normalised words than this and the text gets no SimHash. Measured on the corpus
/// (`tests/dedup_corpus.rs`, copies cut to their first N words): the mean distance between
/// copies of one story is 13 bits at 20 words, 8 at 40 and 3–6 from 60 on, while different
/// stories stay 14 or more apart; below about 60 words copies are too far apart to match
/// and a fingerprint would only add boilerplate collisions.
pub const MIN_SIMHASH_WORDS: usize = 60;

/// Lines with fewer words than this do not count towards the SimHash (see [`simhash`]).
pub const MIN_LINE_WORDS: usize = 20;

/// Words per shingle. Measured on the corpus (same-story max distance / different-story
/// min distance): 1 word 6 / 4 (template reports nearly collide), 2 words 11 / 13,
/// 3 words 13 / 20; 2 keeps copies closest while keeping look-alikes apart.
pub const SHINGLE_WORDS: usize = 2;

/// The text as its words: NFKC, Unicode lower case, every run of letters and digits one
/// word, everything else (whitespace, punctuation, symbols) a separator. Han and kana
/// characters are one word each, as those scripts do not separate words with spaces.
pub fn normalize_text(text: &str) -> String {
    words(&fold(text)).join(" ")
}

fn fold(text: &str) -> String {
    ComposingNormalizerBorrowed::new_nfkc()
        .normalize(text)
        .to_lowercase()
}

fn words(folded: &str) -> Vec<&str> {
    let mut out = Vec::with_capacity(folded.len() / 5);
    let mut start = None;
    for (i, c) in folded.char_indices() {
        if is_ideographic(c) {
            if let Some(s) = start.take() {
                out.push(&folded[s..i]);
            }
            out.push(&folded[i..i + c.len_utf8()]);
        } else if c.is_alphanumeric() {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            out.push(&folded[s..i]);
        }
    }
    if let Some(s) = start {
        out.push(&folded[s..]);
    }
    out
}

fn is_ideographic(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}'   // hiragana, katakana
        | '\u{3400}'..='\u{4DBF}' // CJK extension A
        | '\u{4E00}'..='\u{9FFF}' // CJK unified ideographs
        | '\u{F900}'..='\u{FAFF}' // CJK compatibility ideographs
        | '\u{20000}'..='\u{2FA1F}')
}

/// SHA-256 of the normalised text ([`normalize_text`]), or `None` when it has fewer than
/// [`MIN_CONTENT_WORDS`] words. Texts that differ only in case, spacing, punctuation or
/// Unicode compatibility forms have the same hash.
pub fn content_hash(text: &str) -> Option<[u8; 32]> {
    let folded = fold(text);
    let words = words(&folded);
    if words.len() < MIN_CONTENT_WORDS {
        return None;
    }
    let mut hasher = Sha256::new();
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            hasher.update(b" ");
        }
        hasher.update(word.as_bytes());
    }
    Some(hasher.finalize().into())
}

/// The 64-bit SimHash of the text over shingles of [`SHINGLE_WORDS`] normalised words,
/// each shingle counted as often as it occurs, taken from the text's lines of at least
/// [`MIN_LINE_WORDS`] words (all lines when none is that long); `None` when those lines
/// hold fewer than [`MIN_SIMHASH_WORDS`] words, too few for a distance to mean anything.
///
/// Short lines are left out because they are where copies of one story differ most and
/// say least: headlines rewritten by each publisher, bylines, datelines, captions, and
/// the share/newsletter/"read more" lines an extractor leaves behind. On the corpus this
/// halves the mean distance between copies of a story (see `tests/dedup_corpus.rs`).
pub fn simhash(text: &str) -> Option<u64> {
    simhash_with(text, SHINGLE_WORDS, MIN_SIMHASH_WORDS)
}

/// [`simhash`] with another shingle size and length floor; only for measuring the choice
/// of those two figures (`tests/dedup_corpus.rs`). Stored fingerprints use [`simhash`].
#[doc(hidden)]
pub fn simhash_with(text: &str, shingle_words: usize, min_words: usize) -> Option<u64> {
    let shingle_words = shingle_words.max(1);
    let folded: Vec<String> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(fold)
        .collect();
    let mut lines: Vec<Vec<&str>> = folded.iter().map(|line| words(line)).collect();
    if lines.iter().any(|w| w.len() >= MIN_LINE_WORDS) {
        lines.retain(|w| w.len() >= MIN_LINE_WORDS);
    }
    let total: usize = lines.iter().map(Vec::len).sum();
    if total < min_words.max(shingle_words) {
        return None;
    }
    let mut weights = [0i32; 64];
    for line in &lines {
        // A line shorter than a shingle is one shingle of its words.
        for shingle in line.windows(shingle_words.min(line.len()).max(1)) {
            let h = shingle_hash(shingle);
            for (bit, weight) in weights.iter_mut().enumerate() {
                if h >> bit & 1 == 1 {
                    *weight += 1;
                } else {
                    *weight -= 1;
                }
            }
        }
    }
    Some(
        weights
            .iter()
            .enumerate()
            .filter(|(_, w)| **w > 0)
            .fold(0u64, |acc, (bit, _)| acc | 1 << bit),
    )
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 over the shingle's words separated by a space, then `fmix64` so that every
/// output bit depends on every input bit (FNV alone leaves the high bits weak, and SimHash
/// uses all 64).
fn shingle_hash(words: &[&str]) -> u64 {
    let mut h = FNV_OFFSET;
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            h = (h ^ u64::from(b' ')).wrapping_mul(FNV_PRIME);
        }
        for b in word.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }
    fmix64(h)
}

fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// Number of differing bits between two SimHashes.
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// The blocks under which a SimHash is indexed so that every fingerprint within
/// `max_distance` bits shares at least one block exactly (pigeonhole: `max_distance`
/// differing bits cannot touch all `max_distance + 1` blocks).
///
/// Returns `max_distance + 1` pairs `(block index, block bits)`, blocks as equal as
/// possible, most significant first (64 bits, 4 blocks: 16 bits each; 3 blocks: 22, 21,
/// 21). `max_distance` is capped at 63 (one bit per block). A stored item and a candidate
/// must be banded with the same `max_distance`: when the setting changes, the stored bands
/// must be recomputed.
pub fn simhash_bands(h: u64, max_distance: u32) -> Vec<(u8, u64)> {
    let blocks = max_distance.min(63) + 1;
    let base = 64 / blocks;
    let extra = 64 % blocks;
    let mut out = Vec::with_capacity(blocks as usize);
    let mut shift = 64;
    for index in 0..blocks {
        let width = base + u32::from(index < extra);
        shift -= width;
        let mask = if width == 64 {
            u64::MAX
        } else {
            (1u64 << width) - 1
        };
        // `index` < 64, so it fits a u8.
        out.push((index as u8, h >> shift & mask));
    }
    out
}
