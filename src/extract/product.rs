//! Product pages: what on them is not the product.
//!
//! A product's page is its name, description, specifications and price; around them shops put
//! customers' reviews (often longer than the description, and about the buyer's experience,
//! not the product), ratings widgets and the review services' embeds.

/// Words of a class name or id (split at non-alphanumerics) that, on a product page, name a
/// block of reviews.
const REVIEW_WORDS: &[&str] = &[
    "review",
    "reviews",
    "yotpo",
    "bazaarvoice",
    "okendo",
    "jdgm",
    "trustpilot",
];

/// Whether one class name or id names reviews on a product page (`product-reviews`,
/// `yotpo-main-widget`, but not `preview`).
pub(crate) fn is_chrome(token: &str) -> bool {
    token
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| REVIEW_WORDS.contains(&w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reviews_are_named_by_whole_words() {
        assert!(is_chrome("product-reviews"));
        assert!(is_chrome("yotpo-main-widget"));
        assert!(!is_chrome("cart-preview"));
        assert!(!is_chrome("product-description"));
    }
}
