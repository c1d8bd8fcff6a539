//! Fingerprints of an article's clean text: its words, an exact hash, the shingle hash.
//!
//! Both hashes are stored, so both must be the same on every run, machine and version: the word
//! hash is FNV-1a 64 with MurmurHash3's `fmix64` finaliser, spelled out below, never
//! `std`'s randomly keyed hasher. A change to the normalisation or the hash is a change
//! of stored data and needs a migration that recomputes them.

use icu_normalizer::ComposingNormalizerBorrowed;
use sha2::{Digest, Sha256};

/// Fewer normalised words than this and the text gets no content hash: short texts
/// ("Read more", "Photo gallery", a paywall notice) are the same across different stories.
pub const MIN_CONTENT_WORDS: usize = 15;

/// Lines with fewer words than this do not count towards the sketch (see
/// [`super::shingle_hashes`]).
pub const MIN_LINE_WORDS: usize = 20;

/// The text as its words: NFKC, Unicode lower case, every run of letters and digits one
/// word, everything else (whitespace, punctuation, symbols) a separator. Han and kana
/// characters are one word each, as those scripts do not separate words with spaces.
pub fn normalize_text(text: &str) -> String {
    words(&fold(text)).join(" ")
}

pub(super) fn fold(text: &str) -> String {
    ComposingNormalizerBorrowed::new_nfkc()
        .normalize(text)
        .to_lowercase()
}

pub(super) fn words(folded: &str) -> Vec<&str> {
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

pub(super) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub(super) const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 over the shingle's words separated by a space, then `fmix64` so that every
/// output bit depends on every input bit (FNV alone leaves the high bits weak, and the sketch
/// uses all 64).
pub(super) fn shingle_hash(words: &[&str]) -> u64 {
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

pub(super) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}
