//! What kind of page this is: an article, a thread of posts, a product, a listing …
//!
//! Decided by rules over what the page says about itself (schema.org types in JSON-LD and
//! microdata, `og:type`, the generator) and over its address, in that order: a page's own
//! structured data is the strongest signal, the URL's shape the weakest.

use url::Url;

use super::content::Profile;
use super::meta::KindSignals;

/// The kind of page, which decides how its content is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageType {
    #[default]
    Article,
    Forum,
    Product,
    Collection,
    Listing,
    Documentation,
    Service,
}

impl PageType {
    pub fn as_str(self) -> &'static str {
        match self {
            PageType::Article => "article",
            PageType::Forum => "forum",
            PageType::Product => "product",
            PageType::Collection => "collection",
            PageType::Listing => "listing",
            PageType::Documentation => "documentation",
            PageType::Service => "service",
        }
    }

    /// How content is found on this kind of page. A thread keeps its posts (a question's
    /// page, `QAPage`, its question and answers without the comments under them); a listing or a
    /// service page is the whole page from its headline on (its text is spread over cards and
    /// sections, not held by one block, and the cards' links are the text); articles,
    /// documentation and products are the best-scoring block (a product's JSON-LD
    /// description is added when the page does not show it).
    pub(crate) fn profile(self, kind: &KindSignals) -> Profile {
        match self {
            PageType::Article => Profile::default(),
            PageType::Documentation => Profile {
                docs: true,
                ..Profile::default()
            },
            PageType::Product => Profile {
                product: true,
                ..Profile::default()
            },
            PageType::Forum => Profile {
                posts: true,
                answers: kind.schema_types.iter().any(|t| t == "QAPage"),
                ..Profile::default()
            },
            PageType::Collection | PageType::Listing | PageType::Service => Profile {
                whole_page: true,
                links: true,
                ..Profile::default()
            },
        }
    }
}

/// Software that makes forums, as named in `<meta name="generator">`.
const FORUM_GENERATORS: &[&str] = &[
    "discourse",
    "vbulletin",
    "xenforo",
    "phpbb",
    "invision",
    "mybb",
    "simple machines",
    "nodebb",
    "flarum",
    "vanilla",
];

/// Software that makes documentation sites.
const DOC_GENERATORS: &[&str] = &[
    "docusaurus",
    "mkdocs",
    "sphinx",
    "vitepress",
    "gitbook",
    "docfx",
    "antora",
    "mdbook",
    "nextra",
    "starlight",
];

/// Path segments of a thread of posts.
const FORUM_SEGMENTS: &[&str] = &[
    "t",
    "topic",
    "topics",
    "thread",
    "threads",
    "viewtopic.php",
    "showthread.php",
    "questions",
    "comments",
    "discussion",
    "discussions",
    "forum",
    "forums",
    "boards",
];

/// First labels of a forum's host name.
const FORUM_HOSTS: &[&str] = &[
    "forum",
    "forums",
    "community",
    "discuss",
    "discussion",
    "boards",
    "bbs",
    "answers",
];

/// Path segments of one product.
const PRODUCT_SEGMENTS: &[&str] = &["product", "products", "dp", "p", "pr", "item", "itm", "pdp"];

/// Path segments of a category of products.
const COLLECTION_SEGMENTS: &[&str] = &[
    "collections",
    "collection",
    "category",
    "categories",
    "product-category",
    "c",
    "cat",
    "shop",
    "b",
    "l",
    "w",
];

/// Path segments of documentation.
const DOC_SEGMENTS: &[&str] = &[
    "docs",
    "doc",
    "documentation",
    "reference",
    "manual",
    "api",
    "guide",
    "guides",
    "tutorial",
    "userguide",
    "handbook",
    "book",
    "learn",
    "wiki",
];

/// Path segments of a list of articles or entries.
const LISTING_SEGMENTS: &[&str] = &[
    "news", "blog", "list", "latest", "newest", "issues", "sections", "section", "tag", "tags",
    "archive", "archives", "jobs", "events", "search", "shows", "podcasts",
];

/// Schema.org types and what they make the page. A thread names its posts, a shop its
/// products, a listing its items.
fn by_schema(types: &[String]) -> Option<PageType> {
    let has = |names: &[&str]| types.iter().any(|t| names.contains(&t.as_str()));
    let count = |name: &str| types.iter().filter(|t| t.as_str() == name).count();
    if has(&["DiscussionForumPosting", "QAPage"]) {
        return Some(PageType::Forum);
    }
    let products = count("Product") + count("ProductGroup");
    if products > 1 || (products >= 1 && has(&["ItemList", "CollectionPage", "OfferCatalog"])) {
        return Some(PageType::Collection);
    }
    if products == 1 {
        return Some(PageType::Product);
    }
    if has(&["TechArticle", "APIReference"]) {
        return Some(PageType::Documentation);
    }
    if types.iter().any(|t| {
        t.contains("Article")
            || t.contains("BlogPosting")
            || matches!(t.as_str(), "Report" | "Recipe" | "Review")
    }) {
        return Some(PageType::Article);
    }
    if has(&["CollectionPage", "ItemList", "SearchResultsPage"]) {
        return Some(PageType::Listing);
    }
    None
}

/// Schema.org types of a business's own page.
fn names_service(types: &[String]) -> bool {
    types.iter().any(|t| SERVICE_TYPES.contains(&t.as_str()))
}

const SERVICE_TYPES: &[&str] = &[
    "Service",
    "ProfessionalService",
    "LocalBusiness",
    "FAQPage",
    "SoftwareApplication",
    "WebApplication",
];

/// The kind of the page from its own signals and its address.
pub(crate) fn detect(kind: &KindSignals, url: Option<&Url>) -> PageType {
    let generator = kind.generator.as_deref().unwrap_or("").to_ascii_lowercase();
    if FORUM_GENERATORS.iter().any(|g| generator.contains(g)) || kind.forum_software {
        return PageType::Forum;
    }
    if let Some(t) = by_schema(&kind.schema_types) {
        return t;
    }
    if DOC_GENERATORS.iter().any(|g| generator.contains(g)) {
        return PageType::Documentation;
    }
    let og = kind.og_type.as_deref().unwrap_or("").to_ascii_lowercase();
    if og.starts_with("product") || kind.has_price_meta {
        return PageType::Product;
    }
    // WordPress and WooCommerce name the template in `<body class>`.
    let body = kind
        .body_class
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    let body_has = |name: &str| body.split_ascii_whitespace().any(|c| c == name);
    if body_has("single-product") {
        return PageType::Product;
    }
    if body_has("single-post") {
        return PageType::Article;
    }
    if body_has("tax-product_cat") || body_has("post-type-archive-product") {
        return PageType::Collection;
    }
    if body_has("archive") || body_has("blog") {
        return PageType::Listing;
    }
    let Some(url) = url else {
        return if og != "article" && names_service(&kind.schema_types) {
            PageType::Service
        } else {
            PageType::Article
        };
    };
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    let first_label = host.split('.').next().unwrap_or("");
    let segments: Vec<String> = url
        .path_segments()
        .map(|s| {
            s.filter(|s| !s.is_empty())
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default();
    let has_segment = |names: &[&str]| segments.iter().any(|s| names.contains(&s.as_str()));
    if FORUM_HOSTS.contains(&first_label) || has_segment(FORUM_SEGMENTS) {
        return PageType::Forum;
    }
    if first_label.starts_with("doc")
        || first_label == "developer"
        || host.contains("readthedocs")
        || has_segment(DOC_SEGMENTS)
    {
        return PageType::Documentation;
    }
    if og == "article" {
        return PageType::Article;
    }
    if names_service(&kind.schema_types) {
        return PageType::Service;
    }
    if has_segment(PRODUCT_SEGMENTS) {
        return PageType::Product;
    }
    if has_segment(COLLECTION_SEGMENTS) {
        return PageType::Collection;
    }
    if segments.iter().any(|s| is_year(s)) || kind.long_paragraphs >= PROSE_PARAGRAPHS {
        return PageType::Article;
    }
    // `/blog` lists posts; `/blog/a-post` is one.
    if segments.last().is_some_and(|s| {
        LISTING_SEGMENTS.contains(&s.as_str())
            || s.starts_with("list_of")
            || s.starts_with("category:")
    }) {
        return PageType::Listing;
    }
    if kind.articles >= MIN_LISTED_ARTICLES {
        return PageType::Listing;
    }
    // A site's home page presents the business; any other page without signals is taken
    // for an article, the most common thing a feed links to.
    if segments.is_empty() {
        return PageType::Service;
    }
    PageType::Article
}

/// A page whose address says little and that has this many paragraphs of prose is an
/// article (a service page or a listing has fewer: its text is in cards and short blurbs).
const PROSE_PARAGRAPHS: usize = 15;

/// A page with this many `<article>` elements and no article of its own lists them.
const MIN_LISTED_ARTICLES: usize = 5;

/// `/2024/05/…`: a dated address.
fn is_year(segment: &str) -> bool {
    segment.len() == 4
        && segment.chars().all(|c| c.is_ascii_digit())
        && (segment.starts_with("19") || segment.starts_with("20"))
}

/// When the best block has less than this share of the words of the whole page (menus and
/// chrome left out), the page's text is spread over cards or sections and it is taken whole,
/// unless the best block holds most of the page's long paragraphs (an article in a page of
/// many teasers).
const SPREAD_SHARE: f32 = 0.3;
/// … and below this share, when the best block holds few of the page's long paragraphs (a
/// run of cards or sections, one of which scored best) and is not itself short (beside a
/// short text, the page's chrome weighs as much as the text).
const SPREAD_SHARE_FEW_PARAGRAPHS: f32 = 0.7;
/// A paragraph of this many words is prose; a card's blurb is shorter.
const LONG_PARAGRAPH_WORDS: usize = 30;
/// The best block holds most of the long paragraphs when it holds at least this many …
const MOST_LONG_PARAGRAPHS: usize = 2;
/// … and this share of them.
const MOST_LONG_SHARE: f32 = 0.6;
/// It holds few when it has at most this many …
const FEW_LONG_PARAGRAPHS: usize = 1;
/// … or less than this share of them.
const FEW_LONG_SHARE: f32 = 0.3;
/// Words of a best block that is short.
const SHORT_BLOCK_WORDS: usize = 50;
/// Whether the page's structured data names several products or a list of them (a shop's
/// category page), not the one product of a product page.
pub(crate) fn names_many_products(kind: &KindSignals) -> bool {
    kind.schema_types.iter().filter(|t| *t == "Product").count() > 1
        || kind.schema_types.iter().any(|t| t == "ItemList")
}

/// Whether the page names itself an article: a schema.org `…Article`, `BlogPosting` or
/// `Report`, or `og:type` `article`.
fn says_article(kind: &KindSignals) -> bool {
    kind.og_type.as_deref() == Some("article")
        || kind
            .schema_types
            .iter()
            .any(|t| t.ends_with("Article") || t == "BlogPosting" || t == "Report")
}

/// Price blocks that make a page taken whole a collection of products.
const MIN_LISTED_PRICES: usize = 3;

/// Whether [`spread`] can hold for a best block with this text on a page of this kind with
/// at most `page_words()` words of text in all: a cheap test that spares rendering the whole
/// page of most articles. A page that names itself an article is spread only when its best
/// block tells no story on a long page, so one with long paragraphs is decided before the
/// words of the whole page are counted.
pub(crate) fn may_spread(
    best: &str,
    kind: &KindSignals,
    page_words: impl FnOnce() -> usize,
) -> bool {
    let article = says_article(kind);
    if article && long_paragraphs(best) > FEW_LONG_PARAGRAPHS {
        return false;
    }
    let page_words = page_words();
    if article && page_words < MIN_SPREAD_PAGE_WORDS {
        return false;
    }
    (best.split_whitespace().count() as f32) < SPREAD_SHARE_FEW_PARAGRAPHS * page_words as f32
}

/// Paragraphs of at least [`LONG_PARAGRAPH_WORDS`] words, as [`spread`] counts them.
fn long_paragraphs(text: &str) -> usize {
    text.split("\n\n")
        .filter(|p| p.split_whitespace().count() >= LONG_PARAGRAPH_WORDS)
        .count()
}

/// Whether [`spread`] can hold for a best block with this text beside a whole page whose
/// rendering has at most `whole_words` words (the words of the live text it walks): when the
/// best block has this share of them or more, the whole page need not be rendered. The
/// margin over [`SPREAD_SHARE_FEW_PARAGRAPHS`] keeps the test clear of the rounding of the
/// share that [`spread`] computes.
pub(crate) fn may_spread_over(best: &str, whole_words: usize) -> bool {
    let share = f64::from(SPREAD_SHARE_FEW_PARAGRAPHS) + SHARE_MARGIN;
    (best.split_whitespace().count() as f64) < share * whole_words as f64
}

/// Share added to [`SPREAD_SHARE_FEW_PARAGRAPHS`] by [`may_spread_over`]: far above the
/// rounding error of an `f32` share, far below what would spare a render that decides.
const SHARE_MARGIN: f64 = 0.01;
/// Words of a whole page (chrome left out) from which a best block without a story, or one
/// outnumbered by titled cards, makes the page spread: a short article beside a few teasers
/// and a related-stories box has fewer.
const MIN_SPREAD_PAGE_WORDS: usize = 1000;
/// A best block with more long paragraphs than this tells a story (an article, a manual
/// page), however many titled boxes surround it.
const MAX_LONG_BESIDE_CARDS: usize = 5;
/// Words of a whole product page (chrome left out) under which a small product block is
/// only part of the product's details (specifications, options, notes beside it); a longer
/// page is a shop around the product (recommendations, other products' cards).
const MAX_SPREAD_PRODUCT_WORDS: usize = 1000;
/// Cards with a title per long paragraph of the best block that make a page of cards or
/// sections rather than a story with a few titled boxes beside it.
const TITLED_CARDS_PER_LONG_PARAGRAPH: usize = 3;

/// A page taken for an article or a product on weak signals whose text is spread over the page rather
/// than held by one block, told from the text of its best block (`best`) and of the whole
/// page without chrome (`whole`), and from the number of the whole page's cards that have a
/// title (`titled_cards`, see [`super::cards::titled_cards`]): its kind, when it is such a
/// page. A page of priced cards is a collection, a page of repeated `<article>`s a listing,
/// any other a service page; a product page (`taken_for`) that is spread stays a product.
pub(crate) fn spread(
    best: &str,
    whole: &str,
    kind: &KindSignals,
    titled_cards: usize,
    taken_for: PageType,
) -> Option<PageType> {
    let paragraphs = |t: &str| {
        let mut words = 0;
        let mut long = 0;
        for p in t.split("\n\n") {
            let n = p.split_whitespace().count();
            words += n;
            long += usize::from(n >= LONG_PARAGRAPH_WORDS);
        }
        (words, long)
    };
    let ((best_words, best_long), (whole_words, whole_long)) =
        (paragraphs(best), paragraphs(whole));
    if whole_words <= best_words {
        return None;
    }
    let share = best_words as f32 / whole_words.max(1) as f32;
    let (best_long_f, whole_long_f) = (best_long as f32, whole_long as f32);
    let most_long =
        best_long >= MOST_LONG_PARAGRAPHS && best_long_f >= MOST_LONG_SHARE * whole_long_f;
    let few_long = best_long <= FEW_LONG_PARAGRAPHS || best_long_f < FEW_LONG_SHARE * whole_long_f;
    // The best block tells no story: at most one paragraph of prose, and a part of the page.
    let no_story = best_long <= FEW_LONG_PARAGRAPHS
        && share < SPREAD_SHARE_FEW_PARAGRAPHS
        && whole_words >= MIN_SPREAD_PAGE_WORDS;
    if taken_for == PageType::Product && !names_many_products(kind) {
        // One product: its block is taken unless it is a small part of a short page without
        // prose (the product's name and blurb above its specifications and options).
        return (share < SPREAD_SHARE
            && best_long <= FEW_LONG_PARAGRAPHS
            && whole_words < MAX_SPREAD_PRODUCT_WORDS)
            .then_some(PageType::Product);
    }
    let spread = if says_article(kind) {
        // The page calls itself an article: its text is the story, however much else the
        // page holds, unless its best block tells none (a site's home page or a section
        // front whose template names every page an article).
        no_story
    } else {
        let titled = titled_cards >= TITLED_CARDS_PER_LONG_PARAGRAPH * best_long.max(1)
            && best_long <= MAX_LONG_BESIDE_CARDS
            && share < SPREAD_SHARE_FEW_PARAGRAPHS
            && whole_words >= MIN_SPREAD_PAGE_WORDS;
        (share < SPREAD_SHARE && !most_long)
            || (share < SPREAD_SHARE_FEW_PARAGRAPHS && few_long && best_words >= SHORT_BLOCK_WORDS)
            || no_story
            || titled
    };
    if !spread {
        return None;
    }
    Some(if kind.prices >= MIN_LISTED_PRICES {
        PageType::Collection
    } else if kind.articles >= MIN_LISTED_ARTICLES {
        PageType::Listing
    } else {
        PageType::Service
    })
}
