//! A flat, pre-order view of the parsed page that the content scorer walks.
//!
//! Nodes sit in document order; a node's descendants are the contiguous range
//! `index + 1 .. end`, so subtrees are skipped and summed without recursion (deeply nested
//! tag soup cannot overflow the stack).

use ego_tree::NodeRef;
use html5ever::ns;
use scraper::Node;
use scraper::node::Element;

/// Marks a node without a parent (the document).
pub(crate) const NONE: usize = usize::MAX;

#[derive(Clone, Copy)]
pub(crate) enum Kind<'a> {
    Element(&'a scraper::node::Element),
    Text(&'a str),
    Other,
}

#[derive(Clone)]
pub(crate) struct DNode<'a> {
    pub kind: Kind<'a>,
    pub parent: usize,
    /// One past the last descendant.
    pub end: usize,
    /// Never shown: hidden, chrome (navigation, comments, ads …) or not text at all. Its
    /// subtree is not in the arena.
    pub dead: bool,
    /// Non-space characters of live text below this node.
    pub text: u32,
    /// … of which inside links.
    pub links: u32,
    /// … of which letters (a block without any is a date, a counter or a price).
    pub alpha: u32,
    /// Words (runs of non-space characters) of live text below this node: at least as many
    /// as any rendering of it has (a rendering joins or drops text, never splits a word).
    pub words: u32,
    pub commas: u32,
    /// Text and commas directly inside (text children and inline elements), as opposed to
    /// inside child blocks: a text run that Readability would wrap in a paragraph.
    pub own_text: u32,
    pub own_commas: u32,
    /// Inside an `<article>` element.
    pub in_article: bool,
    /// Holds the page's headline (`<h1>`), `<main>` or the schema.org article body: a layout
    /// wrapper, whatever its class says.
    pub holds_main: bool,
    /// Has a live block-level child (so it is a container, not a paragraph).
    pub block_child: bool,
    /// What this node itself adds to the counts, whatever is dropped around it: a text's
    /// characters, letters, commas and words (read once when the view is built, as every
    /// recount needs them), and whether an element is a headline, `<main>` or an article
    /// body.
    own: Own,
}

#[derive(Clone, Copy, Default)]
struct Own {
    text: u32,
    alpha: u32,
    commas: u32,
    words: u32,
    main: bool,
}

impl Own {
    fn of_text(t: &str) -> Own {
        let mut own = Own::default();
        let mut in_word = false;
        for c in t.chars() {
            if c.is_whitespace() {
                in_word = false;
                continue;
            }
            own.text += 1;
            own.words += u32::from(!in_word);
            in_word = true;
            if c.is_alphabetic() {
                own.alpha += 1;
            } else if matches!(c, ',' | '，' | '、' | '،') {
                own.commas += 1;
            }
        }
        own
    }

    fn of_element(e: &Element) -> Own {
        Own {
            main: matches!(e.name(), "h1" | "main") || attr(e, "itemprop") == Some("articleBody"),
            ..Own::default()
        }
    }
}

/// The value of an attribute without a namespace: what `Element::attr` returns, without
/// interning `name` on every call (a linear scan of an element's few attributes is cheaper).
pub(crate) fn attr<'e>(e: &'e Element, name: &str) -> Option<&'e str> {
    e.attrs
        .iter()
        .find(|(q, _)| q.prefix.is_none() && q.ns == ns!() && &*q.local == name)
        .map(|(_, v)| &**v)
}

impl<'a> DNode<'a> {
    pub fn tag(&self) -> &'a str {
        match self.kind {
            Kind::Element(e) => e.name(),
            _ => "",
        }
    }

    pub fn element(&self) -> Option<&'a scraper::node::Element> {
        match self.kind {
            Kind::Element(e) => Some(e),
            _ => None,
        }
    }

    pub fn link_density(&self) -> f32 {
        if self.text == 0 {
            0.0
        } else {
            self.links as f32 / self.text as f32
        }
    }
}

#[derive(Clone)]
pub(crate) struct Dom<'a> {
    pub nodes: Vec<DNode<'a>>,
}

/// Elements that start a new block of text.
pub(crate) fn is_block(tag: &str) -> bool {
    matches!(
        tag,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "center"
            | "dd"
            | "details"
            | "dialog"
            | "div"
            | "dl"
            | "dt"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "form"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "header"
            | "hgroup"
            | "hr"
            | "li"
            | "main"
            | "nav"
            | "ol"
            | "p"
            | "pre"
            | "section"
            | "summary"
            | "table"
            | "tbody"
            | "thead"
            | "tfoot"
            | "tr"
            | "td"
            | "th"
            | "caption"
            | "ul"
            | "body"
    )
}

impl<'a> Dom<'a> {
    /// Flattens the tree below `root`; `is_dead` decides which elements are dropped with their
    /// subtree (it sees the element and whether an `<article>` encloses it).
    pub fn build(
        root: NodeRef<'a, Node>,
        is_dead: impl Fn(&scraper::node::Element, bool) -> bool,
    ) -> Dom<'a> {
        let mut nodes: Vec<DNode<'a>> = Vec::new();
        // Open ancestors: (arena index, inside an <article>).
        let mut open: Vec<(usize, bool)> = Vec::new();
        let mut cur = Some(root);
        while let Some(n) = cur {
            let idx = nodes.len();
            let (parent, in_article) = open.last().copied().unwrap_or((NONE, false));
            let (kind, dead, article, own) = match n.value() {
                Node::Element(e) => {
                    let dead = is_dead(e, in_article);
                    let own = if dead {
                        Own::default()
                    } else {
                        Own::of_element(e)
                    };
                    (
                        Kind::Element(e),
                        dead,
                        in_article || e.name() == "article",
                        own,
                    )
                }
                Node::Text(t) => (
                    Kind::Text(&t.text),
                    false,
                    in_article,
                    Own::of_text(&t.text),
                ),
                Node::Document | Node::Fragment => (Kind::Other, false, in_article, Own::default()),
                _ => (Kind::Other, true, in_article, Own::default()),
            };
            nodes.push(DNode {
                kind,
                parent,
                end: idx + 1,
                dead,
                text: 0,
                links: 0,
                alpha: 0,
                words: 0,
                commas: 0,
                own_text: 0,
                own_commas: 0,
                in_article,
                holds_main: false,
                block_child: false,
                own,
            });
            if !dead && let Some(child) = n.first_child() {
                open.push((idx, article));
                cur = Some(child);
                continue;
            }
            // Move to the next node in document order, closing finished ancestors.
            let mut m = n;
            cur = None;
            loop {
                if let Some(sibling) = m.next_sibling() {
                    cur = Some(sibling);
                    break;
                }
                match (m.parent(), open.pop()) {
                    (Some(p), Some((o, _))) => {
                        nodes[o].end = nodes.len();
                        m = p;
                    }
                    _ => break,
                }
            }
        }
        let mut dom = Dom { nodes };
        dom.count();
        dom
    }

    /// Walks the live nodes in document order and drops each subtree whose root `drop`
    /// picks (its nodes are not visited); recounts when anything was dropped.
    pub fn drop_subtrees(&mut self, mut drop: impl FnMut(usize, &DNode<'a>) -> bool) {
        let mut changed = false;
        let mut i = 0;
        while i < self.nodes.len() {
            let n = &self.nodes[i];
            if n.dead {
                i = n.end;
            } else if drop(i, n) {
                let end = n.end;
                self.nodes[i].dead = true;
                changed = true;
                i = end;
            } else {
                i += 1;
            }
        }
        if changed {
            self.count();
        }
    }

    /// (Re)computes the text statistics bottom-up, ignoring dead subtrees.
    pub fn count(&mut self) {
        for n in &mut self.nodes {
            n.text = 0;
            n.links = 0;
            n.alpha = 0;
            n.words = 0;
            n.commas = 0;
            n.own_text = 0;
            n.own_commas = 0;
            n.holds_main = false;
            n.block_child = false;
        }
        for i in (0..self.nodes.len()).rev() {
            if self.nodes[i].dead {
                continue;
            }
            let n = &mut self.nodes[i];
            n.text += n.own.text;
            n.alpha += n.own.alpha;
            n.words += n.own.words;
            n.commas += n.own.commas;
            n.holds_main |= n.own.main;
            if n.tag() == "a" {
                n.links = n.text;
            }
            let n = &self.nodes[i];
            let (parent, text, links, alpha, words, commas, block, main) = (
                n.parent,
                n.text,
                n.links,
                n.alpha,
                n.words,
                n.commas,
                is_block(n.tag()),
                n.holds_main,
            );
            if parent != NONE {
                let p = &mut self.nodes[parent];
                p.text += text;
                p.links += links;
                p.alpha += alpha;
                p.words += words;
                p.commas += commas;
                p.block_child |= block;
                p.holds_main |= main;
                if !block {
                    p.own_text += text;
                    p.own_commas += commas;
                }
            }
        }
    }

    /// Live children of `i`, in order.
    pub fn children(&self, i: usize) -> Children<'_, 'a> {
        Children {
            dom: self,
            next: i + 1,
            end: self.nodes[i].end,
        }
    }

    /// Every node outside a dead subtree, in document order.
    pub fn live(&self) -> impl Iterator<Item = usize> + '_ {
        let mut i = 0;
        std::iter::from_fn(move || {
            while let Some(n) = self.nodes.get(i) {
                if n.dead {
                    i = n.end;
                } else {
                    i += 1;
                    return Some(i - 1);
                }
            }
            None
        })
    }

    /// The ancestors of `i`, nearest first.
    pub fn ancestors(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let mut next = self.nodes.get(i).map_or(NONE, |n| n.parent);
        std::iter::from_fn(move || {
            let current = next;
            next = self.nodes.get(current)?.parent;
            Some(current)
        })
    }
}

pub(crate) struct Children<'d, 'a> {
    dom: &'d Dom<'a>,
    next: usize,
    end: usize,
}

impl Iterator for Children<'_, '_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.next >= self.end {
            return None;
        }
        let i = self.next;
        self.next = self.dom.nodes[i].end;
        Some(i)
    }
}
