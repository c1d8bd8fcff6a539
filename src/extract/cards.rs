//! Listings, collections and service pages: pages whose text is spread over repeated cards
//! or many sections rather than held by one block.
//!
//! Such a page is taken whole (`Profile::whole_page`); two things are decided here: which of
//! its blocks are chrome that an article would not have (consent managers, search filters
//! and sort controls), and which headings are a card's title, kept even when the card's
//! byline or price is dropped as chrome.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use super::dom::{Dom, NONE, attr};

/// An element's tag and first class.
type Shape<'a> = (&'a str, &'a str);

/// Parts of class names or ids that, on a whole page, name chrome: consent managers
/// (OneTrust's `ot-` panels, TrustArc, Cookiebot, Didomi, Quantcast's `qc-cmp`), and the
/// filters, facets and sort controls beside a list of results.
const PAGE_CHROME_PARTS: &[&str] = &[
    "onetrust",
    "ot-sdk",
    "ot-pc-",
    "ot-cat",
    "truste",
    "cookiebot",
    "didomi",
    "qc-cmp",
    "gdpr",
    "privacy-center",
    "filter",
    "facet",
    "refine",
    "sort-by",
    "sortby",
];

/// Whether a class or id (lower case) names chrome of a listing or service page.
pub(crate) fn names_page_chrome(names: &str) -> bool {
    // No part holds a space, so a part inside one of the names is a part inside all of them.
    PAGE_CHROME_PARTS_IN.is_match(names)
}

static PAGE_CHROME_PARTS_IN: LazyLock<Regex> =
    LazyLock::new(|| super::content::any_of(PAGE_CHROME_PARTS));

/// Siblings of one shape (tag and first class) that make a run of cards.
pub(crate) const MIN_CARDS: usize = 3;

/// The card each node lies in, [`NONE`] outside cards. A card is a child of a parent with
/// at least [`MIN_CARDS`] live children of its own shape (tag and first class), each with
/// text; a node inside nested runs lies in the innermost card.
pub(crate) fn card_marks(dom: &Dom<'_>) -> Vec<usize> {
    let len = dom.nodes.len();
    let mut cards = vec![NONE; len];
    let shape = |i: usize| {
        dom.nodes[i].element().map(|e| {
            let class = attr(e, "class").unwrap_or("");
            (
                e.name(),
                class.split_ascii_whitespace().next().unwrap_or(""),
            )
        })
    };
    let mut kids: Vec<(usize, Shape<'_>)> = Vec::new();
    let mut counts: HashMap<Shape<'_>, usize> = HashMap::new();
    for i in dom.live() {
        if dom.nodes[i].block_child {
            kids.clear();
            counts.clear();
            for c in dom.children(i) {
                if dom.nodes[c].dead || dom.nodes[c].text == 0 {
                    continue;
                }
                if let Some(mine) = shape(c) {
                    kids.push((c, mine));
                    *counts.entry(mine).or_insert(0) += 1;
                }
            }
            for &(c, mine) in &kids {
                if counts[&mine] >= MIN_CARDS {
                    // Pre-order: an inner run, met later, overwrites its part of this card.
                    let end = dom.nodes[c].end;
                    for card in &mut cards[c..end] {
                        *card = c;
                    }
                }
            }
        }
    }
    cards
}

/// A card's title: a heading with a link, inside a card that holds more than its title (a
/// blurb, a category, or a byline, price or button dropped as chrome, so that nothing need
/// follow the title). A card that is only a linked title and a picture is a teaser of the
/// site's own pages, left out like other link lists.
pub(crate) fn card_heading(dom: &Dom<'_>, i: usize, cards: &[usize]) -> bool {
    let Some(&card) = cards.get(i) else {
        return false;
    };
    if card == NONE || !holds_link(dom, i) {
        return false;
    }
    let card_end = dom.nodes[card].end;
    dom.nodes[card].text > dom.nodes[i].text
        || dom.nodes[card..card_end]
            .iter()
            .any(|n| n.dead && n.element().is_some())
}

/// Whether a live link with text lies below node `i`.
fn holds_link(dom: &Dom<'_>, i: usize) -> bool {
    let end = dom.nodes[i].end;
    let mut j = i;
    while j < end {
        let n = &dom.nodes[j];
        if n.dead {
            j = n.end;
            continue;
        }
        if n.tag() == "a" && n.text > 0 {
            return true;
        }
        j += 1;
    }
    false
}

/// Cards of `cards` (see [`card_marks`]) that hold a heading with text: the titled items of a
/// listing, or the titled sections of a service page.
pub(crate) fn titled_cards(dom: &Dom<'_>, cards: &[usize]) -> usize {
    let mut titled = 0;
    // Cards already counted: a card with several headings (or nested runs) counts once.
    let mut counted = vec![false; dom.nodes.len()];
    for i in dom.live() {
        let n = &dom.nodes[i];
        let card = cards.get(i).copied().unwrap_or(NONE);
        if card != NONE
            && !counted[card]
            && matches!(n.tag(), "h2" | "h3" | "h4" | "h5")
            && n.text > 0
        {
            titled += 1;
            counted[card] = true;
        }
    }
    titled
}
