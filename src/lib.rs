//! feedwire turns web feeds into a clean, de-duplicated, reliable stream of articles.

pub mod config;
pub mod dedup;
pub mod extract;
pub mod model;
