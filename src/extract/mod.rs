//! Page HTML to a clean article: main text, metadata and sanitized HTML; pure, no IO.

mod text;

pub use text::html_to_text;
