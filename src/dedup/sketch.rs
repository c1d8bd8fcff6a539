//! Near-duplicate fingerprints: a shingle sketch for the verification and the LSH bands
//! under which the store indexes it for the candidate search.
//!
//! A text's shingles are its runs of [`SKETCH_SHINGLE_WORDS`] normalised words, taken from
//! its longer lines (see [`shingle_hashes`]). Each shingle is hashed once to 64 bits, and
//! that one hash serves twice:
//!
//! - **Candidate search**: one-permutation MinHash (Li, Owen and Zhang, NIPS 2012): the
//!   hash's low 32 bits pick one of `LSH_BANDS × LSH_ROWS` bins, its high 32 bits are the
//!   value, and each bin keeps its minimum. Two texts agree on a bin with a probability
//!   equal to their Jaccard similarity `J`; a band is `LSH_ROWS` bins hashed together, so
//!   two texts share at least one band with probability `1 − (1 − J^rows)^bands` (Broder's
//!   banding). The store keeps one indexed row per band, keyed by a 32-bit hash of the
//!   band's number and its bins' minima.
//! - **Verification**: a bottom-k sketch (Broder 1997; Cohen and Kaplan 2007): the
//!   [`SKETCH_SIZE`] smallest distinct shingle values and the number of distinct shingles.
//!   For texts of up to [`SKETCH_SIZE`] distinct shingles (about as many words) the sketch
//!   *is* the shingle set and the Jaccard similarity and containment computed from two
//!   sketches are exact; for longer texts they are computed on the shingles below a common
//!   threshold, a uniform sample of both sets.
//!
//! The decision ([`Similarity::is_match`]) is a match when the containment of the smaller
//! text in the larger reaches [`MIN_CONTAINMENT`] and the two are not too different in
//! size ([`MIN_SIZE_RATIO`]). Both thresholds were measured on the corpus;
//! `tests/dedup_corpus.rs` prints the figures.
//!
//! Everything here is stored, so it must be the same on every run, machine and version:
//! a change to the shingles, the hash, the bins or the bands is a change of stored data.

use super::fingerprint::{MIN_LINE_WORDS, fold, shingle_hash, words};

/// Words per shingle of the sketch. Measured on the corpus (`tests/dedup_corpus.rs`,
/// `shingle_size_measurement`): 2-word shingles share too much between reports from one
/// template ("of the", "points to"), 4-word shingles lose light rewrites; 3 keeps the
/// widest gap between same-story and different-story pairs.
pub const SKETCH_SHINGLE_WORDS: usize = 3;

/// Fewer words than this (in the lines that count) and the text gets no sketch: copies
/// of short texts differ in too large a share of their shingles, and short texts (teasers,
/// paywall notices) are alike across different stories.
pub const MIN_SKETCH_WORDS: usize = 60;

/// Shingle values kept per item for the verification: 4 bytes each, so a sketch is at
/// most about half a KiB; texts of up to about this many words are kept whole. Measured
/// on the corpus: with 64 values the sampling noise narrows the gap between the lowest
/// same-story containment (0.77) and the highest different-story one (0.66) to a few
/// hundredths on the same-story side of [`MIN_CONTAINMENT`]; with 128 it is 0.82 / 0.69.
pub const SKETCH_SIZE: usize = 128;

/// Bands of the LSH index: one indexed row per band per item.
pub const LSH_BANDS: usize = 6;

/// MinHash bins per band. With 3-word shingles unrelated texts share a few percent of
/// their shingles at most, so two bins together almost never collide by chance, while a
/// copy with `J = 0.5` shares a given band with probability 0.25 and at least one of
/// the bands with probability 0.82, one with `J = 0.7` with probability 0.99.
pub const LSH_ROWS: usize = 2;

const LSH_BINS: usize = LSH_BANDS * LSH_ROWS;

/// Share of the smaller text's shingles found in the larger at and above which two texts
/// are the same story. Containment rather than Jaccard similarity, because a copy with a
/// paragraph added or cut keeps nearly all of the shorter text's shingles while its
/// Jaccard similarity falls with the length difference. Measured on the corpus
/// (`threshold_measurement` in `tests/dedup_corpus.rs`): same-story pairs reach 0.82 and
/// more (a rewritten copy cut by a paragraph against a rewritten one), different stories
/// at most 0.69 (two quarterly releases from one template), follow-ups 0.32; the
/// threshold sits between the two.
pub const MIN_CONTAINMENT: f64 = 0.75;

/// The smaller text must have at least this share of the larger's shingles: a story is
/// not the same as a digest or a live page that quotes it among others. Copies with
/// paragraphs cut or added stay above 0.5 on the corpus.
pub const MIN_SIZE_RATIO: f64 = 0.4;

/// What a text's shingles are recognised by: the bottom-k sketch for the verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sketch {
    /// Distinct shingles in the text.
    shingles: u32,
    /// The smallest [`SKETCH_SIZE`] distinct shingle values, ascending.
    values: Vec<u32>,
}

/// How alike two sketched texts are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    /// Jaccard similarity of the shingle sets.
    pub jaccard: f64,
    /// Share of the smaller set found in the larger.
    pub containment: f64,
    /// Size of the smaller set over that of the larger.
    pub size_ratio: f64,
}

impl Similarity {
    /// Whether this is the same story by the measured thresholds.
    pub fn is_match(self) -> bool {
        self.containment >= MIN_CONTAINMENT && self.size_ratio >= MIN_SIZE_RATIO
    }
}

/// The hashes of a text's shingles ([`SKETCH_SHINGLE_WORDS`] words, inside one line), from
/// its lines of at least `MIN_LINE_WORDS` words (all lines when none is that long), and
/// the number of words those lines hold.
///
/// Short lines are left out because they are where copies of one story differ most and
/// say least: headlines rewritten by each publisher, bylines, datelines, captions, and the
/// share/newsletter/"read more" lines an extractor leaves behind.
pub fn shingle_hashes(text: &str, shingle_words: usize) -> (Vec<u64>, usize) {
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
    let total = lines.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(total);
    for line in &lines {
        // A line shorter than a shingle is one shingle of its words.
        for shingle in line.windows(shingle_words.min(line.len()).max(1)) {
            out.push(shingle_hash(shingle));
        }
    }
    (out, total)
}

/// The sketch and the band keys of a text, or `None` when it has fewer than
/// [`MIN_SKETCH_WORDS`] words in the lines that count.
pub fn sketch(text: &str) -> Option<(Sketch, Vec<i32>)> {
    let (hashes, total) = shingle_hashes(text, SKETCH_SHINGLE_WORDS);
    if total < MIN_SKETCH_WORDS {
        return None;
    }
    Some((Sketch::from_hashes(&hashes), bands(&hashes)))
}

/// The band keys of a shingle set: for each band whose bins are all filled, a 32-bit key
/// naming the band and its bins' minima. Two texts that share a key share that band.
///
/// 32 bits rather than 64, because the key is what the band index is made of (one row per
/// band per item) and SQLite stores a 32-bit integer in 4 bytes, a 64-bit hash in 8. The
/// key hashes in the band's number, so keys of different bands never meet by design, and
/// two unrelated items meet on one band's key by chance with probability 2⁻³²: among a
/// million stored items a lookup finds such a stray candidate about once in 700 lookups,
/// one sketch read that the verification then turns away.
pub fn bands(hashes: &[u64]) -> Vec<i32> {
    let mut bins = [u32::MAX; LSH_BINS];
    let mut filled = [false; LSH_BINS];
    for &h in hashes {
        let bin = (h as u32 as usize) % LSH_BINS;
        let value = (h >> 32) as u32;
        filled[bin] = true;
        bins[bin] = bins[bin].min(value);
    }
    (0..LSH_BANDS)
        .filter(|band| {
            filled[band * LSH_ROWS..(band + 1) * LSH_ROWS]
                .iter()
                .all(|f| *f)
        })
        .map(|band| {
            let mut key = super::fingerprint::FNV_OFFSET;
            for b in (band as u64).to_le_bytes() {
                key = (key ^ u64::from(b)).wrapping_mul(super::fingerprint::FNV_PRIME);
            }
            for value in &bins[band * LSH_ROWS..(band + 1) * LSH_ROWS] {
                for b in value.to_le_bytes() {
                    key = (key ^ u64::from(b)).wrapping_mul(super::fingerprint::FNV_PRIME);
                }
            }
            // The high half of the mixed hash (what migration 12 keeps of the 64-bit keys
            // stored before: `key >> 32`).
            (super::fingerprint::fmix64(key) >> 32) as u32 as i32
        })
        .collect()
}

impl Sketch {
    /// The bottom-k sketch of a list of shingle hashes (duplicates allowed).
    pub fn from_hashes(hashes: &[u64]) -> Self {
        let mut values: Vec<u32> = hashes.iter().map(|h| (h >> 32) as u32).collect();
        values.sort_unstable();
        values.dedup();
        let shingles = u32::try_from(values.len()).unwrap_or(u32::MAX);
        values.truncate(SKETCH_SIZE);
        Sketch { shingles, values }
    }

    /// Distinct shingles of the text.
    pub fn shingles(&self) -> u32 {
        self.shingles
    }

    /// Whether the sketch holds every shingle of its text.
    fn is_whole(&self) -> bool {
        self.values.len() as u64 == u64::from(self.shingles)
    }

    /// How alike the two texts are: exact when both sketches are whole, else computed on
    /// the shingles below the smaller of the two sketches' largest values (a uniform
    /// sample of the union that both sketches hold completely).
    pub fn similarity(&self, other: &Sketch) -> Similarity {
        let limit = match (self.is_whole(), other.is_whole()) {
            (true, true) => u32::MAX,
            (true, false) => other.values.last().copied().unwrap_or(u32::MAX),
            (false, true) => self.values.last().copied().unwrap_or(u32::MAX),
            (false, false) => self
                .values
                .last()
                .copied()
                .unwrap_or(u32::MAX)
                .min(other.values.last().copied().unwrap_or(u32::MAX)),
        };
        let (mut i, mut j) = (0, 0);
        let (mut both, mut union) = (0u32, 0u32);
        let (a, b) = (&self.values, &other.values);
        loop {
            let x = a.get(i).copied().filter(|v| *v <= limit);
            let y = b.get(j).copied().filter(|v| *v <= limit);
            match (x, y) {
                (None, None) => break,
                (Some(x), Some(y)) if x == y => {
                    both += 1;
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x < y => i += 1,
                (Some(_), None) => i += 1,
                _ => j += 1,
            }
            union += 1;
        }
        if union == 0 {
            return Similarity {
                jaccard: 0.0,
                containment: 0.0,
                size_ratio: 0.0,
            };
        }
        let jaccard = f64::from(both) / f64::from(union);
        // |A ∩ B| = J (|A| + |B|) / (1 + J)
        let (na, nb) = (f64::from(self.shingles), f64::from(other.shingles));
        let common = jaccard * (na + nb) / (1.0 + jaccard);
        let containment = (common / na.min(nb).max(1.0)).min(1.0);
        Similarity {
            jaccard,
            containment,
            size_ratio: na.min(nb) / na.max(nb).max(1.0),
        }
    }

    /// The stored form: the shingle count, then the values, each 4 bytes little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 4 * self.values.len());
        out.extend_from_slice(&self.shingles.to_le_bytes());
        for v in &self.values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Reads [`Sketch::to_bytes`]; `None` for bytes that are not a sketch.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 4 || !bytes.len().is_multiple_of(4) {
            return None;
        }
        let mut chunks = bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        let shingles = chunks.next()?;
        let values: Vec<u32> = chunks.collect();
        let sorted = values.windows(2).all(|w| w[0] < w[1]);
        (sorted && values.len() <= SKETCH_SIZE && values.len() as u64 <= u64::from(shingles))
            .then_some(Sketch { shingles, values })
    }
}
