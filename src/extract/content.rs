//! Finding the article's main content and turning it into clean text and HTML.
//!
//! Three passes over a flat view of the page ([`Dom`]): drop what is never article text
//! (scripts, hidden elements, navigation, and blocks whose class or id names page chrome);
//! score paragraphs Readability-style, crediting their containers, and pick the best
//! container plus its related siblings, or the whole pruned page when that container holds
//! little of its paragraph text; then walk that content, leaving out link lists (unless they
//! are all there is), headings of the page, blocks without words and furniture lines
//! (credits, bylines, datelines, "Read more").

use std::collections::HashMap;
use std::sync::LazyLock;

use ego_tree::NodeRef;
use regex::Regex;
use scraper::Node;
use scraper::node::Element;

use super::boiler;
use super::cards;
use super::docs;
use super::dom::{DNode, Dom, Kind, NONE, attr, is_block};
use super::forum;
use super::product;

/// Paragraphs shorter than this (non-space characters) do not vote for a container.
const MIN_PARAGRAPH: u32 = 25;
/// How many ancestor levels a paragraph's score reaches.
const SCORE_LEVELS: usize = 5;
/// A chrome-looking block holding more than this share of the page's text is a layout
/// wrapper (`<div class="has-sidebar">`), not chrome.
const WRAPPER_SHARE: f32 = 0.6;
/// Blocks whose text is mostly link text are navigation or related-article lists.
const MAX_LINK_DENSITY: f32 = 0.5;
/// An `<article>` around the chosen content is taken whole (headline area, standfirst) when
/// it adds at most this factor of text.
const ARTICLE_GROWTH: f32 = 1.6;

/// A chrome-looking block holding more than this share of the page's paragraph text is the
/// article with a misleading class (`article-content sticky-sidebar-relative`), unless it
/// names comments.
const PROTECTED_SHARE: f32 = 0.5;
/// When the chosen content has less text than this share of the pruned page's paragraph
/// text, the whole pruned page is taken instead (trafilatura's "baseline" idea).
const BASELINE_SHARE: f32 = 0.3;

/// A `<noscript>` or hidden block with at least this share of the page's text is the
/// readable page.
const REVEALED_SHARE: f32 = 0.5;

/// On a whole page, what comes before the first `<h1>` is menus and banners, unless it holds
/// more than this share of the page's text.
const MAX_BEFORE_HEADLINE: f32 = 0.3;

/// Share of paragraph text an enclosing container must add for the content to grow into it.
const CLIMB_GOOD_SHARE: f32 = 0.6;
/// Characters an enclosing container may add without paragraphs and still be climbed into:
/// a section's heading (a manual page's sections each wrap their heading and body).
const CLIMB_SLACK: u32 = 40;

/// Tags whose subtree is never article text.
fn is_dead_tag(tag: &str) -> bool {
    matches!(
        tag,
        "script"
            | "style"
            | "template"
            | "iframe"
            | "svg"
            | "math"
            | "canvas"
            | "object"
            | "embed"
            | "video"
            | "audio"
            | "select"
            | "option"
            | "button"
            | "input"
            | "textarea"
            | "head"
            | "dialog"
            | "menu"
            | "map"
            | "link"
            | "meta"
    )
}

/// Parts of a class name or id that name page chrome wherever they appear in it.
const CHROME_PARTS: &[&str] = &[
    "comment",
    "sidebar",
    "crumb",
    "author-bio",
    "author_bio",
    "authorbio",
    "author-box",
    "author_box",
    "authorbox",
    "author-info",
    "author-desc",
    "about-author",
    "about-the-author",
    "entry-author",
    "saboxplugin",
    "related-post",
    "related_post",
    "relatedpost",
    "related-article",
    "relacionad",
    "saiba-mais",
    "instagram-media",
    "fb-post",
    "tiktok-embed",
    "disclaimer",
    "donation",
    "affiliate",
    "readingtime",
    "reading-time",
    "read-time",
    "metadata",
    "postmeta",
    "post-meta",
    "entry-meta",
    "metaline",
    "print-button",
    "imagedescription",
    "kommentar",
    "newsletter",
    "subscri",
    "cookie",
    "consent",
    "advert",
    "popup",
    "sponsor",
    "pagination",
    "disqus",
    "outbrain",
    "taboola",
    "masthead",
    "navbar",
    "navigation",
    "toolbar",
    "signup",
    "shoutbox",
    "skiplink",
    "skip-link",
    "tagcloud",
    "caption",
    "credit",
    "copyright",
];

/// [`CHROME_PARTS`] as one scan: most names hold none of them, and one pass over a name is
/// far cheaper than a search per part.
static CHROME_PARTS_IN: LazyLock<Regex> = LazyLock::new(|| any_of(CHROME_PARTS));

/// Whether a string contains any of `parts`, in one scan of it.
pub(crate) fn any_of(parts: &[&str]) -> Regex {
    let alternatives: Vec<String> = parts.iter().map(|p| regex::escape(p)).collect();
    Regex::new(&alternatives.join("|")).expect("escaped literals make a valid pattern")
}

/// Words (split at non-alphanumerics) that name page chrome when they begin or end a class
/// name or id: `share-bar`, `post-tags`, but not `elementor-widget-wrap` or `tag-politics`
/// (WordPress adds one of those per tag to the article itself).
const CHROME_EDGE_WORDS: &[&str] = &[
    "ad",
    "ads",
    "nav",
    "menu",
    "share",
    "sharing",
    "social",
    "related",
    "recommended",
    "promo",
    "banner",
    "modal",
    "overlay",
    "pager",
    "rss",
    "footer",
    "ticker",
    "trending",
    "popular",
    "mostread",
    "login",
    "navi",
    "cta",
];

/// Words that name page chrome only at the end of a name (`article__tags`, not `tag-x`).
const CHROME_LAST_WORDS: &[&str] = &["tags", "tag", "meta", "byline", "author"];

/// Prefixes of class names that describe a block's options rather than what it is.
const MODIFIER_PREFIXES: &[&str] = &["no-", "no_", "has-", "has_", "with-", "without-"];

/// Whole class names or ids that name page chrome.
const CHROME_NAMES: &[&str] = &["hidden", "share", "tools", "links", "sr-only"];

/// Substrings of a class or id that name article content (score bonus).
const CONTENT_PARTS: &[&str] = &[
    "article", "body", "content", "entry", "main", "page", "post", "text", "blog", "story",
];

fn class_and_id(e: &Element) -> String {
    let mut s = String::new();
    if let Some(c) = attr(e, "class") {
        s.push_str(c);
    }
    if let Some(id) = attr(e, "id") {
        s.push(' ');
        s.push_str(id);
    }
    s.make_ascii_lowercase();
    s
}

/// How the page's kind changes the rules: which names are chrome, how much of the page is
/// the content, and whether link lists are content.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Profile {
    /// Comments, replies and per-post author lines are the content (a thread of posts).
    pub posts: bool,
    /// The whole pruned page is the content (cards, sections) rather than its best block.
    pub whole_page: bool,
    /// Blocks that are mostly links stay (cards of a listing link to what they describe).
    pub links: bool,
    /// A question and its answers (`QAPage`): comments on the question or an answer
    /// (schema.org `Comment` items inside them) are asides, not posts.
    pub answers: bool,
    /// A product's page: its reviews are chrome.
    pub product: bool,
    /// A documentation page: its table of contents, edit link and prev/next links are chrome.
    pub docs: bool,
}

impl Profile {
    /// Everything but chrome: the last resort when no content was found.
    pub fn everything() -> Profile {
        Profile {
            posts: false,
            whole_page: true,
            links: true,
            answers: false,
            product: false,
            docs: false,
        }
    }
}

/// Parts of class names that, on a thread of posts, name a post or its author line.
const POST_PARTS: &[&str] = &[
    "comment",
    "post",
    "reply",
    "message",
    "author",
    "meta",
    "user",
    "byline",
    "kommentar",
];

fn looks_like_chrome(names: &str) -> bool {
    looks_like_chrome_in(names, Profile::default())
}

/// Parts of class names that, on a thread of posts, name a post's furniture: the poster's
/// signature, rank, banner, badges and counters, which repeat on every post.
const POST_CHROME_PARTS: &[&str] = &[
    "signature",
    "usertitle",
    "userbanner",
    "userextra",
    "user-extra",
    "flair",
    "badge",
];

static POST_PARTS_IN: LazyLock<Regex> = LazyLock::new(|| any_of(POST_PARTS));
static POST_CHROME_PARTS_IN: LazyLock<Regex> = LazyLock::new(|| any_of(POST_CHROME_PARTS));

fn looks_like_chrome_in(names: &str, profile: Profile) -> bool {
    names.split_ascii_whitespace().any(|token| {
        if profile.posts && (POST_CHROME_PARTS_IN.is_match(token) || forum::is_quote(token)) {
            return true;
        }
        if profile.posts && POST_PARTS_IN.is_match(token) {
            return false;
        }
        if (profile.product && product::is_chrome(token))
            || (profile.docs && docs::is_chrome(token))
        {
            return true;
        }
        // `no-share`, `has-sidebar`, `with-ads`: a modifier of the block, not its role.
        if MODIFIER_PREFIXES.iter().any(|p| token.starts_with(p)) {
            return false;
        }
        if CHROME_NAMES.contains(&token) || CHROME_PARTS_IN.is_match(token) {
            return true;
        }
        let mut words = token
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty());
        let first = words.next().unwrap_or("");
        let last = words.next_back().unwrap_or(first);
        CHROME_EDGE_WORDS.contains(&first)
            || CHROME_EDGE_WORDS.contains(&last)
            || CHROME_LAST_WORDS.contains(&last)
    })
}

/// Comment threads are chrome however much paragraph text they hold.
fn names_comments(names: &str) -> bool {
    names.contains("comment") || names.contains("kommentar") || names.contains("disqus")
}

/// A cookie or consent dialog is chrome however much text it holds: its long paragraphs of
/// legal prose can outweigh a thread of short posts.
fn names_consent(names: &str) -> bool {
    CONSENT_PARTS_IN.is_match(names)
}

static CONSENT_PARTS_IN: LazyLock<Regex> = LazyLock::new(|| any_of(CONSENT_PARTS));

/// Parts of class names or ids of consent dialogs (not `cookie` alone: a recipe is not one).
const CONSENT_PARTS: &[&str] = &[
    "consent",
    "onetrust",
    "cookiebot",
    "cookielaw",
    "cookie-banner",
    "cookie-notice",
    "cookie-law",
    "gdpr",
];

fn looks_like_content(names: &str) -> bool {
    CONTENT_PARTS_IN.is_match(names)
}

static CONTENT_PARTS_IN: LazyLock<Regex> = LazyLock::new(|| any_of(CONTENT_PARTS));

/// Hidden from readers, or a landmark that is not the article.
fn is_hidden(e: &Element) -> bool {
    if attr(e, "hidden").is_some() || attr(e, "aria-hidden") == Some("true") {
        return true;
    }
    if let Some(role) = attr(e, "role")
        && matches!(
            role,
            "navigation"
                | "banner"
                | "contentinfo"
                | "complementary"
                | "dialog"
                | "alertdialog"
                | "menu"
                | "menubar"
                | "search"
        )
    {
        return true;
    }
    if let Some(style) = attr(e, "style") {
        let style: String = style
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if style.contains("display:none") || style.contains("visibility:hidden") {
            return true;
        }
    }
    false
}

fn is_dead(e: &Element, in_article: bool) -> bool {
    let tag = e.name();
    if is_dead_tag(tag) {
        return true;
    }
    let _ = in_article;
    false
}

/// The chosen content: the roots of the kept subtrees, in document order.
pub(crate) struct Content<'a> {
    pub dom: Dom<'a>,
    pub roots: Vec<usize>,
    pub profile: Profile,
    /// On a whole page, the card each node lies in ([`NONE`] outside cards).
    pub cards: Vec<usize>,
}

/// The flat view of the page below `root`, built once and shared by every [`find`] on it.
pub(crate) fn page(root: NodeRef<'_, Node>) -> Dom<'_> {
    Dom::build(root, is_dead)
}

/// The content of the page (its view from [`page`]) under the rules of `profile`.
impl Content<'_> {
    /// Words of the live text below the roots: at least as many as [`render`] makes of it.
    pub fn words(&self) -> usize {
        self.roots
            .iter()
            .map(|&r| self.dom.nodes[r].words as usize)
            .sum()
    }
}

pub(crate) fn find<'a>(page: &Dom<'a>, profile: Profile) -> Content<'a> {
    let mut dom = page.clone();
    drop_hidden(&mut dom, profile);
    prune_chrome(&mut dom, profile);
    let good = paragraph_text(&dom);
    let roots = if profile.whole_page {
        body(&dom).into_iter().collect()
    } else {
        // A product's page is often spread over blocks: its best block is kept small so that
        // the whole-page baseline can take over.
        let slack = if profile.product { 0 } else { CLIMB_SLACK };
        let roots = choose(&dom, &good, slack);
        if profile.posts {
            thread_of(&dom, roots)
        } else {
            roots
        }
    };
    let cards = if profile.whole_page {
        cards::card_marks(&dom)
    } else {
        Vec::new()
    };
    Content {
        dom,
        roots,
        profile,
        cards,
    }
}

/// Drops hidden blocks and `<noscript>` copies. A `<noscript>` holding most of the page's
/// text is the page as served without scripts (Discourse does this), and a hidden block
/// holding most of it is the page that a script reveals (shop themes do this); a smaller one
/// is a fallback copy of something already on the page, a dialog or a "please enable
/// JavaScript" notice.
///
/// On documentation and product pages, a hidden tab panel is one of the page's tabs (the
/// example in another language, the specifications beside the description), shown when
/// clicked: text of the page, not a copy.
fn drop_hidden(dom: &mut Dom<'_>, profile: Profile) {
    let total = dom.nodes.first().map_or(0, |n| n.text);
    let tabs = profile.docs || profile.product;
    dom.drop_subtrees(|_, n| {
        n.element().is_some_and(|e| {
            (e.name() == "noscript" || is_hidden(e))
                && !(tabs && attr(e, "role") == Some("tabpanel"))
        }) && (n.text as f32) < total as f32 * REVEALED_SHARE
    });
}

/// Drops blocks whose class or id names page chrome, unless they wrap most of the page.
fn prune_chrome(dom: &mut Dom<'_>, profile: Profile) {
    let total = dom.nodes.first().map_or(0, |n| n.text).max(1) as f32;
    let good = paragraph_text(dom);
    let page_good = good.first().copied().unwrap_or(0) as f32;
    // End of the question or answer being walked, on a Q&A page.
    let mut post_end = 0;
    // Whether a class-and-id string names chrome, per string: a page repeats its few
    // names over many elements.
    let mut named_chrome: HashMap<String, bool> = HashMap::new();
    dom.drop_subtrees(|i, n| {
        let Some(e) = n.element() else {
            return false;
        };
        if profile.answers && (is_item(e, "Question") || is_item(e, "Answer")) {
            post_end = post_end.max(n.end);
        }
        // A comment on a question or an answer is an aside; a comment that is not inside one
        // is a reply of the thread (Discourse marks its posts so).
        let aside = profile.answers && i < post_end && is_item(e, "Comment");
        let names = class_and_id(e);
        // A whole page's consent panels and search filters are chrome however much
        // paragraph text they hold (a listing's cards have little).
        let page_chrome = profile.whole_page && cards::names_page_chrome(&names);
        aside
            || (page_chrome && n.text as f32 <= total * WRAPPER_SHARE && !n.holds_main)
            || (n.text as f32 <= total * WRAPPER_SHARE
                && !n.holds_main
                && is_chrome(e, &names, n.in_article, profile, || {
                    if let Some(&chrome) = named_chrome.get(&names) {
                        return chrome;
                    }
                    let chrome = looks_like_chrome_in(&names, profile);
                    named_chrome.insert(names.clone(), chrome);
                    chrome
                })
                && (good[i] as f32 <= page_good * PROTECTED_SHARE
                    || (!profile.posts && names_comments(&names))))
            || (!n.holds_main
                && !matches!(e.name(), "html" | "body" | "main")
                && names_consent(&names))
    });
}

/// Whether the element is a schema.org item of this type (`itemtype`).
fn is_item(e: &Element, kind: &str) -> bool {
    attr(e, "itemtype").is_some_and(|t| {
        t.trim_end_matches('/')
            .strip_suffix(kind)
            .is_some_and(|rest| rest.ends_with("schema.org/"))
    })
}

/// Page chrome by its tag or by its class or id. A page header is chrome; a header inside
/// the article holds its headline and lead. `<main>` is never chrome, nor is `<article>` unless
/// it is a comment.
/// `names` are the element's class and id, and `named_chrome` says whether they name chrome
/// ([`looks_like_chrome_in`] of them).
fn is_chrome(
    e: &Element,
    names: &str,
    in_article: bool,
    profile: Profile,
    named_chrome: impl FnOnce() -> bool,
) -> bool {
    match e.name() {
        "html" | "body" | "main" => false,
        "article" => !profile.posts && names_comments(names),
        "nav" | "aside" | "footer" => true,
        "header" if !in_article => !profile.posts,
        _ => attr(e, "itemprop") != Some("articleBody") && named_chrome(),
    }
}

fn base_score(n: &DNode<'_>) -> f32 {
    let Some(e) = n.element() else {
        return 0.0;
    };
    let tag_score = match e.name() {
        "div" | "article" | "section" | "main" => 5.0,
        "pre" | "td" | "blockquote" => 3.0,
        "address" | "ol" | "ul" | "dl" | "dd" | "dt" | "li" | "form" => -3.0,
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "th" => -5.0,
        _ => 0.0,
    };
    let names = class_and_id(e);
    let mut weight = 0.0;
    if looks_like_chrome(&names) {
        weight -= 25.0;
    }
    if looks_like_content(&names) {
        weight += 25.0;
    }
    if attr(e, "itemprop") == Some("articleBody") {
        weight += 50.0;
    }
    tag_score + weight
}

/// A paragraph's vote: its text length, commas, and the node it credits first. A paragraph
/// credits its container; loose text beside child blocks credits the element holding it (as
/// if it were wrapped in a paragraph of its own).
fn vote(dom: &Dom<'_>, i: usize) -> Option<(u32, u32, usize)> {
    let n = &dom.nodes[i];
    let tag = n.tag();
    let paragraph = match tag {
        "p" | "pre" | "td" => true,
        "div" | "section" | "article" | "li" | "blockquote" => !n.block_child,
        _ => false,
    };
    if paragraph && n.text >= MIN_PARAGRAPH {
        Some((n.text, n.commas, n.parent))
    } else if !paragraph
        && n.own_text >= MIN_PARAGRAPH
        && matches!(
            tag,
            "div"
                | "section"
                | "article"
                | "td"
                | "li"
                | "blockquote"
                | "main"
                | "form"
                | "span"
                | "font"
                | "center"
        )
    {
        Some((n.own_text, n.own_commas, i))
    } else {
        None
    }
}

/// Text of the paragraphs that are not link lists, summed into every ancestor of the node
/// each paragraph credits.
fn paragraph_text(dom: &Dom<'_>) -> Vec<u32> {
    let mut good: Vec<u32> = vec![0; dom.nodes.len()];
    for i in dom.live() {
        let n = &dom.nodes[i];
        if let Some((text, _, first)) = vote(dom, i)
            && n.link_density() < MAX_LINK_DENSITY
        {
            good[first] += text;
            for a in dom.ancestors(first) {
                good[a] += text;
            }
        }
    }
    good
}

/// Readability-style: each paragraph votes for its ancestors; the best container, scaled by
/// how little of it is links, wins, and siblings that look like more of the same join it.
fn choose(dom: &Dom<'_>, good: &[u32], slack: u32) -> Vec<usize> {
    let len = dom.nodes.len();
    let mut score: Vec<f32> = vec![0.0; len];
    let mut touched: Vec<bool> = vec![false; len];
    for i in dom.live() {
        let vote = vote(dom, i);
        if let Some((text, commas, first)) = vote {
            let s = 1.0 + commas as f32 + (text as f32 / 100.0).min(3.0);
            let chain = std::iter::once(first).chain(dom.ancestors(first));
            for (level, a) in chain.take(SCORE_LEVELS).enumerate() {
                if a == NONE {
                    break;
                }
                if dom.nodes[a].element().is_none() {
                    break;
                }
                if !touched[a] {
                    touched[a] = true;
                    score[a] = base_score(&dom.nodes[a]);
                }
                let divider = match level {
                    0 => 1.0,
                    1 => 2.0,
                    l => l as f32 * 3.0,
                };
                score[a] += s / divider;
            }
        }
    }
    let mut top = NONE;
    let mut top_score = f32::MIN;
    for j in 0..len {
        if touched[j] {
            score[j] *= 1.0 - dom.nodes[j].link_density();
            if score[j] > top_score {
                top_score = score[j];
                top = j;
            }
        }
    }
    if top == NONE {
        return body(dom).into_iter().collect();
    }
    let parent = dom.nodes[top].parent;
    let mut roots = vec![top];
    if parent != NONE && dom.nodes[parent].element().is_some() {
        roots.clear();
        let threshold = (top_score * 0.2).max(10.0);
        let top_class = dom.nodes[top].element().and_then(|e| attr(e, "class"));
        for c in dom.children(parent) {
            let n = &dom.nodes[c];
            if n.dead || n.element().is_none() {
                continue;
            }
            let keep = if c == top {
                true
            } else {
                let bonus = if top_class.is_some()
                    && n.element().and_then(|e| attr(e, "class")) == top_class
                {
                    top_score * 0.2
                } else {
                    0.0
                };
                if touched[c] && score[c] + bonus >= threshold {
                    true
                } else if n.tag() == "p" {
                    let ld = n.link_density();
                    (n.text > 80 && ld < 0.25) || (n.alpha > 20 && ld == 0.0)
                } else {
                    false
                }
            };
            if keep {
                roots.push(c);
            }
        }
    }
    // Climb while the container around adds mostly paragraph text: an article split into
    // several sections, a lead beside the body.
    let mut cur = if roots.len() > 1 { parent } else { top };
    loop {
        let a = dom.nodes[cur].parent;
        if a == NONE
            || matches!(dom.nodes[a].tag(), "body" | "html")
            || dom.nodes[a].element().is_none()
        {
            break;
        }
        let extra = dom.nodes[a].text.saturating_sub(dom.nodes[cur].text);
        let extra_good = good[a].saturating_sub(good[cur]);
        if extra as f32 * CLIMB_GOOD_SHARE <= extra_good as f32 || extra <= slack {
            roots = vec![a];
            cur = a;
        } else {
            break;
        }
    }
    // The enclosing <article> also holds the headline area and standfirst.
    let chosen: u32 = roots.iter().map(|&r| dom.nodes[r].text).sum();
    for a in dom.ancestors(top) {
        let n = &dom.nodes[a];
        if matches!(n.tag(), "body" | "html") {
            break;
        }
        if n.tag() == "article" {
            if n.text as f32 <= chosen as f32 * ARTICLE_GROWTH + 200.0 {
                roots = vec![a];
            }
            break;
        }
    }
    // Baseline: when the chosen content holds little of the pruned page's paragraph text,
    // the article is spread over blocks the scorer did not join; take the whole pruned page.
    let chosen_text: u32 = roots.iter().map(|&r| dom.nodes[r].text).sum();
    if let Some(b) = body(dom) {
        let page_good = good[b];
        if (chosen_text as f32) < BASELINE_SHARE * page_good as f32 {
            return vec![b];
        }
    }
    roots
}

/// On a thread, the best block is one post: the content is the run of posts it belongs to,
/// the nearest container with at least [`MIN_POSTS`] children shaped like the post's own
/// ancestor (same tag and first class: `post` and `post comment` are both posts).
fn thread_of(dom: &Dom<'_>, roots: Vec<usize>) -> Vec<usize> {
    let Some(&first) = roots.first() else {
        return roots;
    };
    let mut cur = first;
    while cur != NONE {
        let parent = dom.nodes[cur].parent;
        if parent == NONE || matches!(dom.nodes[parent].tag(), "html") {
            break;
        }
        let shape = |i: usize| {
            dom.nodes[i].element().map(|e| {
                let class = attr(e, "class").unwrap_or("");
                (
                    e.name(),
                    class.split_ascii_whitespace().next().unwrap_or(""),
                )
            })
        };
        if let Some(mine) = shape(cur)
            && !mine.1.is_empty()
            && dom
                .children(parent)
                .filter(|&c| !dom.nodes[c].dead && dom.nodes[c].text > 0 && shape(c) == Some(mine))
                .count()
                >= MIN_POSTS
        {
            return vec![parent];
        }
        cur = parent;
    }
    roots
}

/// Posts of the same shape that make a thread.
const MIN_POSTS: usize = 2;

fn body(dom: &Dom<'_>) -> Option<usize> {
    (0..dom.nodes.len()).find(|&i| dom.nodes[i].tag() == "body")
}

/// Plain text being assembled: whitespace folded, paragraph breaks pending until the next
/// visible character, Unicode format characters (soft hyphen, zero-width space …) dropped.
pub(crate) struct TextOut {
    pub out: String,
    space: bool,
    /// 0: none, 1: line break, 2: paragraph break.
    brk: u8,
}

impl TextOut {
    pub fn new() -> TextOut {
        TextOut {
            out: String::new(),
            space: false,
            brk: 0,
        }
    }

    pub fn brk(&mut self, level: u8) {
        self.brk = self.brk.max(level);
    }

    pub fn push(&mut self, text: &str, pre: bool) {
        for c in text.chars() {
            if is_format(c) {
                continue;
            }
            if pre && c == '\n' {
                self.brk(1);
                continue;
            }
            if c.is_whitespace() && !pre {
                self.space = true;
                continue;
            }
            if !self.out.is_empty() {
                match self.brk {
                    2 => self.out.push_str("\n\n"),
                    1 => self.out.push('\n'),
                    _ if self.space => self.out.push(' '),
                    _ => {}
                }
            }
            self.brk = 0;
            self.space = false;
            self.out.push(c);
        }
    }
}

/// Unicode general category Cf (format characters) that show up in web text.
pub(crate) fn is_format(c: char) -> bool {
    // Most text is below the first of them.
    if c < '\u{00AD}' {
        return false;
    }
    matches!(c,
        '\u{00AD}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}'
        | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}' | '\u{110BD}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0001}' | '\u{E0020}'..='\u{E007F}')
}

/// Whether an element inside the chosen content is left out.
fn skip_inside(dom: &Dom<'_>, i: usize, lenient: bool, whole: bool, cards: &[usize]) -> bool {
    let n = &dom.nodes[i];
    let tag = n.tag();
    // An article's headline is metadata (`title`); a product's or a service's name opens its
    // content. Captions and credits are not text.
    if tag == "figcaption" || (tag == "h1" && !whole) {
        return true;
    }
    if n.text > 0
        && n.text <= boiler::MAX_LINE
        && !matches!(tag, "td" | "th" | "tr" | "table" | "tbody" | "")
        && boiler::is_furniture(&subtree_text(dom, i), is_block(tag) || is_dateline(dom, i))
    {
        return true;
    }
    if !is_block(tag) || tag == "td" || tag == "th" || tag == "tr" {
        return false;
    }
    if n.text == 0 {
        // Keeps figures and rules; text-free wrappers add nothing to the text anyway.
        return false;
    }
    if n.alpha == 0 {
        return true;
    }
    // A link list, unless the content has nothing else (a page that is a list of links).
    if n.link_density() > MAX_LINK_DENSITY && !lenient {
        return true;
    }
    // A heading that ends its section or introduces something left out ("Read more",
    // "Related posts") goes with it, but on a whole page a card's title is what the card
    // says, even when nothing follows it.
    if matches!(tag, "h2" | "h3" | "h4" | "h5" | "h6") {
        return match next_text_sibling(dom, i) {
            None => !(whole && (card_title(dom, i) || cards::card_heading(dom, i, cards))),
            Some(j) => skip_inside(dom, j, lenient, whole, cards),
        };
    }
    false
}

/// On a thread, a short element that is the board's furniture (a poster's details, a
/// counter, a button): see [`forum::is_furniture`].
fn post_furniture(dom: &Dom<'_>, i: usize) -> bool {
    let n = &dom.nodes[i];
    n.element().is_some()
        && n.text > 0
        && n.text <= forum::MAX_FURNITURE
        && !matches!(n.tag(), "pre" | "code" | "blockquote")
        && forum::is_furniture(&subtree_text(dom, i))
}

/// On a thread, a short element that names a post's author (`<h4 class="message-name"><a
/// href="/members/…">crumbcoat</a></h4>`): kept although it is a lone link or a heading with
/// nothing of its own after it, since who wrote a post is part of the thread.
fn poster_name(dom: &Dom<'_>, i: usize) -> bool {
    let n = &dom.nodes[i];
    n.text > 0
        && n.text <= forum::MAX_POSTER_NAME
        && n.element()
            .and_then(|e| e.attr("class"))
            .is_some_and(forum::names_poster)
}

/// A card's title: a heading wrapped in the link to what the card describes
/// (`<a href><h3>…</h3></a>`). A linked heading alone (`<h4><a>…</a></h4>`) is as often a
/// teaser of the site's own pages, so it is not taken for one.
fn card_title(dom: &Dom<'_>, i: usize) -> bool {
    dom.nodes
        .get(dom.nodes[i].parent)
        .is_some_and(|p| p.tag() == "a")
}

/// A `<time>` (or made-up `<date>`) element outside a paragraph: a dateline, not prose.
fn is_dateline(dom: &Dom<'_>, i: usize) -> bool {
    let n = &dom.nodes[i];
    matches!(n.tag(), "time" | "date")
        && dom
            .nodes
            .get(n.parent)
            .is_none_or(|p| !matches!(p.tag(), "p" | "li" | "td" | "dd"))
}

/// The live text below `i`, as it reads.
fn subtree_text(dom: &Dom<'_>, i: usize) -> String {
    let mut s = String::new();
    let mut j = i + 1;
    while j < dom.nodes[i].end {
        let n = &dom.nodes[j];
        if n.dead {
            j = n.end;
            continue;
        }
        if let Kind::Text(t) = n.kind {
            s.push_str(t);
        }
        j += 1;
    }
    s
}

/// The next live element with text after `i` under the same parent.
fn next_text_sibling(dom: &Dom<'_>, i: usize) -> Option<usize> {
    let parent = dom.nodes[i].parent;
    let end = dom.nodes.get(parent)?.end;
    let mut j = dom.nodes[i].end;
    while j < end {
        let n = &dom.nodes[j];
        if !n.dead && n.text > 0 {
            return n.element().map(|_| j);
        }
        j = n.end;
    }
    None
}

const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr",
];

/// Attributes worth passing to the sanitizer; it decides again what stays.
const KEPT_ATTRS: &[&str] = &[
    "href", "src", "alt", "title", "colspan", "rowspan", "datetime", "lang", "cite",
];

/// When the content without its link lists has fewer words than this, the link lists are
/// the content (a blog post that is a list of links).
const MIN_WORDS_STRICT: usize = 20;

/// A paragraph with fewer non-space characters than this may repeat (a label, a short line
/// of a list, "Read more").
const MIN_REPEATED_TEXT: u32 = 40;

/// The paragraphs a rendering has written, by a hash of their words.
struct Repeats {
    on: bool,
    seen: std::collections::HashSet<u64>,
    /// End of the last paragraph written: what is inside it is that paragraph.
    inside: usize,
}

impl Repeats {
    /// `on` is false where repeated text is the content's own (documentation: the same call
    /// in every language's tab, a note under each option).
    fn new(on: bool) -> Repeats {
        Repeats {
            on,
            seen: std::collections::HashSet::new(),
            inside: 0,
        }
    }

    /// Whether element `i` is a paragraph whose words were already written. Code, tables and
    /// containers are never skipped: a repeated row or line of code is the page's own.
    fn seen_before(&mut self, dom: &Dom<'_>, i: usize) -> bool {
        let n = &dom.nodes[i];
        if !self.on
            || i < self.inside
            || n.text < MIN_REPEATED_TEXT
            || n.block_child
            || !matches!(
                n.tag(),
                "p" | "li" | "dd" | "blockquote" | "h2" | "h3" | "h4" | "h5" | "h6" | "div"
            )
        {
            return false;
        }
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let mut j = i + 1;
        while j < n.end {
            let d = &dom.nodes[j];
            if d.dead || matches!(d.tag(), "pre" | "code" | "table") {
                if !d.dead {
                    // Code inside a paragraph: the paragraph is the page's own.
                    return false;
                }
                j = d.end;
                continue;
            }
            if let Kind::Text(t) = d.kind {
                for word in t.split_whitespace() {
                    word.hash(&mut hasher);
                }
            }
            j += 1;
        }
        if self.seen.insert(hasher.finish()) {
            self.inside = n.end;
            false
        } else {
            true
        }
    }
}

/// Walks the chosen content, writing the text and the (unsanitized) HTML.
pub(crate) fn render(content: &Content<'_>) -> (String, String) {
    let (text, html) = render_with(content, content.profile.links);
    if text.split_whitespace().count() >= MIN_WORDS_STRICT {
        return (text, html);
    }
    let (lenient_text, lenient_html) = render_with(content, true);
    if lenient_text.len() > text.len() {
        (lenient_text, lenient_html)
    } else {
        (text, html)
    }
}

fn render_with(content: &Content<'_>, lenient: bool) -> (String, String) {
    let dom = &content.dom;
    let whole = content.profile.whole_page;
    let start = if whole { headline_start(dom) } else { 0 };
    let mut text = TextOut::new();
    let mut html = String::new();
    // Paragraphs already written: a page that carries its text twice (a layout for each screen
    // size, a teaser above the story, every post's copy in a slider) gives it once.
    let mut written = Repeats::new(!content.profile.docs);
    for &root in &content.roots {
        // Open elements: (end index, tag, is pre).
        let mut open: Vec<(usize, &str, bool)> = Vec::new();
        let mut i = root;
        let end = dom.nodes[root].end;
        while i < end {
            while let Some(&(e, tag, _)) = open.last() {
                if e > i {
                    break;
                }
                close(tag, &mut text, &mut html);
                open.pop();
            }
            let n = &dom.nodes[i];
            // Before the page's headline: a whole page's menus, banners and hero links.
            let before = i < start && n.end <= start;
            if n.dead
                || before
                || (i != root
                    && skip_inside(dom, i, lenient, whole, &content.cards)
                    && !(content.profile.posts && poster_name(dom, i)))
                || (content.profile.posts && post_furniture(dom, i))
            {
                i = n.end;
                continue;
            }
            let pre = open.last().is_some_and(|o| o.2);
            if !pre && written.seen_before(dom, i) {
                i = n.end;
                continue;
            }
            match n.kind {
                Kind::Text(t) => {
                    text.push(t, pre);
                    escape_text(t, &mut html);
                }
                Kind::Element(e) => {
                    let tag = e.name();
                    if tag == "br" {
                        text.brk(1);
                    } else if matches!(tag, "td" | "th") {
                        text.push(" ", false);
                    } else if is_block(tag) {
                        text.brk(2);
                    }
                    open_tag(e, &mut html);
                    if !VOID.contains(&tag) {
                        open.push((n.end, tag, pre || tag == "pre"));
                    }
                }
                Kind::Other => {}
            }
            i += 1;
        }
        while let Some((_, tag, _)) = open.pop() {
            close(tag, &mut text, &mut html);
        }
        text.brk(2);
    }
    (text.out, html)
}

/// Where a whole page's content begins: its first `<h1>`, unless most of the page's text
/// comes before it (a headline at the foot of the page, or a logo).
fn headline_start(dom: &Dom<'_>) -> usize {
    let total = dom.nodes.first().map_or(0, |n| n.text);
    let mut before = 0u32;
    for i in dom.live() {
        let n = &dom.nodes[i];
        if n.tag() == "h1" && n.text > 0 {
            return if before as f32 <= total as f32 * MAX_BEFORE_HEADLINE {
                i
            } else {
                0
            };
        }
        if let Kind::Text(_) = n.kind {
            before += n.text;
        }
    }
    0
}

fn close(tag: &str, text: &mut TextOut, html: &mut String) {
    if matches!(tag, "td" | "th") {
        text.push(" ", false);
    } else if is_block(tag) {
        text.brk(2);
    }
    html.push_str("</");
    html.push_str(tag);
    html.push('>');
}

fn open_tag(e: &Element, html: &mut String) {
    html.push('<');
    html.push_str(e.name());
    let lazy = attr(e, "data-src")
        .or_else(|| attr(e, "data-lazy-src"))
        .or_else(|| attr(e, "data-original"));
    for (name, value) in e.attrs() {
        if !KEPT_ATTRS.contains(&name) {
            continue;
        }
        let value = if name == "src" && value.starts_with("data:") {
            match lazy {
                Some(l) => l,
                None => continue,
            }
        } else {
            value
        };
        push_attr(name, value, html);
    }
    if e.name() == "img"
        && attr(e, "src").is_none()
        && let Some(l) = lazy
    {
        push_attr("src", l, html);
    }
    html.push('>');
}

fn push_attr(name: &str, value: &str, html: &mut String) {
    html.push(' ');
    html.push_str(name);
    html.push_str("=\"");
    for c in value.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '"' => html.push_str("&quot;"),
            '<' => html.push_str("&lt;"),
            c => html.push(c),
        }
    }
    html.push('"');
}

fn escape_text(t: &str, html: &mut String) {
    for c in t.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            c if is_format(c) => {}
            c => html.push(c),
        }
    }
}
