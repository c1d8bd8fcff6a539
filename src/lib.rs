//! feedwire turns web feeds into a clean, de-duplicated, reliable stream of articles.

pub mod dedup;
pub mod extract;
pub mod model;
