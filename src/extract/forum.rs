//! Threads of posts: the signals that a page is one, beyond what it declares about itself.
//!
//! Forum software credits itself in the page's footer ("Powered by phpBB") with a link to its
//! maker's site, and many installs carry no `generator` tag and no canonical URL: that link
//! is then the surest sign that the page is a board or a thread. Inside a thread, a reply's
//! copy of the post it answers is that post again, not the reply.

use url::Url;

use super::content;
use super::dom::Dom;
use super::meta::KindSignals;
use super::page_type::PageType;

/// An article with fewer words than this may be the opening post of a discussion whose
/// replies (marked as comments) the article rules dropped.
const MAX_OPENING_WORDS: usize = 250;

/// The discussion replaces the article when it has at least this factor of its words: the
/// page is the discussion (a link aggregator's thread, a story with its readers' debate), not
/// an article with a few comments under it.
const DISCUSSION_FACTOR: usize = 8;

/// A short article's page read again as a thread: when its posts hold many times the
/// article's words, the page is a discussion and the thread is its content (text, HTML and
/// kind); otherwise the article stays as it was.
pub(crate) fn discussion_of(
    page: &Dom<'_>,
    kind: &KindSignals,
    text: String,
    html: String,
) -> (String, String, PageType) {
    let words = text.split_whitespace().count();
    // An empty article is left to the whole-page fallback.
    if words == 0 || words >= MAX_OPENING_WORDS {
        return (text, html, PageType::Article);
    }
    // A rendering has at most the words of the live text it walks: when even those are too
    // few (on the whole page, then in the thread found), the thread cannot replace the
    // article and need not be found or rendered.
    let enough = DISCUSSION_FACTOR * words;
    if page.nodes.first().map_or(0, |n| n.words as usize) < enough {
        return (text, html, PageType::Article);
    }
    let thread = content::find(page, PageType::Forum.profile(kind));
    if thread.words() < enough {
        return (text, html, PageType::Article);
    }
    let (thread_text, thread_html) = content::render(&thread);
    if thread_text.split_whitespace().count() >= enough {
        (thread_text, thread_html, PageType::Forum)
    } else {
        (text, html, PageType::Article)
    }
}

/// Hosts of forum software makers, as linked from the "Powered by" line.
const SOFTWARE_HOSTS: &[&str] = &[
    "phpbb.com",
    "fluxbb.org",
    "punbb.informer.com",
    "simplemachines.org",
    "mybb.com",
    "xenforo.com",
    "vbulletin.com",
    "invisioncommunity.com",
    "invisionpower.com",
    "nodebb.org",
    "flarum.org",
    "vanillaforums.com",
    "discourse.org",
    "yabbforum.com",
    "woltlab.com",
];

/// Whether a link points at the home page of forum software (a credit, not a citation: a
/// page about phpBB links to its documentation, a board's footer to its front page).
pub(crate) fn is_software_credit(href: &str) -> bool {
    // Most links name none of these hosts: no URL parse for them.
    if !SOFTWARE_HOSTS.iter().any(|h| href.contains(h)) {
        return false;
    }
    let Ok(url) = Url::parse(href.trim()) else {
        return false;
    };
    if !matches!(url.path(), "" | "/") {
        return false;
    }
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    SOFTWARE_HOSTS.contains(&host)
}

/// Class names of a reply's copy of the post it answers, as forum software marks it
/// (XenForo, vBulletin, Invision). Whole names only: XenForo also names every post's own
/// text `SelectQuoteContainer` or `js-selectToQuote`.
const QUOTE_NAMES: &[&str] = &[
    "bbcodeblock--quote",
    "bbcodequote",
    "bbcode_quote",
    "quotecontainer",
    "ipsquote",
];

/// Whether one (lower-cased) class name marks a quoted post inside a reply.
pub(crate) fn is_quote(token: &str) -> bool {
    QUOTE_NAMES.contains(&token)
}

/// A poster's name is at most this many non-space characters.
pub(crate) const MAX_POSTER_NAME: u32 = 40;

/// Parts of class names of the element holding a post's author name, as forum software
/// writes them (XenForo's `message-name`, `username` on phpBB and many others).
const POSTER_NAME_PARTS: &[&str] = &[
    "message-name",
    "username",
    "user-name",
    "author-name",
    "authorname",
    "poster-name",
    "postername",
];

/// Whether an element's class attribute names the author of a post.
pub(crate) fn names_poster(class: &str) -> bool {
    class.split_ascii_whitespace().any(|token| {
        let token = token.to_ascii_lowercase();
        POSTER_NAME_PARTS.iter().any(|p| token.contains(p))
    })
}

/// Only elements up to this many non-space characters are checked for furniture.
pub(crate) const MAX_FURNITURE: u32 = 60;

/// Labels of a poster's details and a thread's counters: a short line opening with one of
/// them and a colon ("Posts: 4032", "Joined: Mar 2019", "Last edited:") is the board's, not
/// the poster's words.
const POSTER_LABELS: &[&str] = &[
    "posts",
    "joined",
    "registered",
    "member since",
    "messages",
    "reaction score",
    "points",
    "solutions",
    "likes received",
    "last edited",
    "thread starter",
    "start date",
    "replies",
    "views",
    "status",
    "founded",
    "karma",
    "reputation",
    "rep",
    "join date",
    "date joined",
    "date created",
    "last reply",
    "last activity",
    "trophies",
];

/// Counters written label first, without a colon ("Replies 12", "Views 26.2k").
const LABELLED_COUNTS: &[&str] = &["replies", "views", "posts", "likes", "votes", "members"];

/// Words that, after a count, make a post's or a thread's counter ("3 Likes", "12 replies").
const COUNTED_WORDS: &[&str] = &[
    "like",
    "likes",
    "post",
    "posts",
    "reply",
    "replies",
    "view",
    "views",
    "vote",
    "votes",
    "point",
    "points",
    "answer",
    "answers",
    "comment",
    "comments",
    "reaction",
    "reactions",
];

/// Whole lines (lower case, without trailing punctuation) of a thread's buttons, prompts and
/// the question-and-answer sites' forms.
const THREAD_PROMPTS: &[&str] = &[
    "offline",
    "online",
    "original poster",
    "op posts",
    "quote",
    "reply",
    "report",
    "like",
    "permalink",
    "jump to content",
    "jump to",
    "sign in",
    "log in",
    "register",
    "related threads",
    "similar threads",
    "related questions",
    "linked",
    "ask question",
    "your answer",
    "post as a guest",
    "post your answer",
    "required, but never shown",
    "cancel",
    "start asking to get answers",
    "find the answer to your question by asking",
    "explore related questions",
    "see similar questions with these tags",
    "you must log in or register to reply here",
    "scroll to see replies",
    "reply to thread",
    "add a comment",
    "show more replies",
    "load more replies",
    "create an account",
    "register a new account",
    "sign in now",
    "thread starter",
    "replies",
    "views",
    "signature",
    "forum jump",
    "skip to content",
    "join the discussion",
    "sign in / join",
    "existing user? sign in",
    "view in the app",
    "a better way to browse. learn more",
];

/// Openings of a thread's notices to readers who are not signed in.
const NOTICE_OPENINGS: &[&str] = &[
    "you must log in",
    "you must be logged in",
    "you must be signed in",
    "you need to be a member",
    "create an account or sign in",
    "sign up for a new account",
    "already have an account",
    "this thread is not open",
    "this topic was automatically closed",
    "not open for further replies",
    "remember me not recommended",
    "sign up to request clarification",
    // The boards' prompts to install them as an app.
    "a full-screen app on your home screen",
    "to install this app on",
    "tap the share icon in safari",
    "scroll the menu and tap add to home screen",
    "tap add in the top-right corner",
    "tap add to home screen",
    "confirm by tapping install",
];

/// Openings of a question's dates and counters ("asked 3 years ago", "Viewed 12k times").
const THREAD_OPENINGS: &[&str] = &["asked ", "viewed ", "modified ", "answered ", "edited "];

/// Whether a short element of a thread (its text) is the board's furniture rather than a
/// poster's words: a poster's details, a counter, a button or a prompt.
pub(crate) fn is_furniture(line: &str) -> bool {
    let lower = line.trim().to_lowercase();
    let bare = lower.trim_end_matches([':', '.', '…', '!', ' ']);
    if bare.is_empty() {
        return false;
    }
    if THREAD_PROMPTS.contains(&bare) || NOTICE_OPENINGS.iter().any(|o| lower.starts_with(o)) {
        return true;
    }
    if THREAD_OPENINGS.iter().any(|o| lower.starts_with(o))
        && (lower.contains("ago") || lower.contains("times"))
    {
        return true;
    }
    if POSTER_LABELS.iter().any(|l| {
        lower
            .strip_prefix(l)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    }) {
        return true;
    }
    // The line's words are read once: its first two, and how many follow.
    let mut words = bare.split_whitespace();
    let first = words.next().unwrap_or("");
    let second = words.next().unwrap_or("");
    let more = words.count();
    // "Replies 12", "Views 26.2k".
    if more == 0 && LABELLED_COUNTS.contains(&first) && is_count(second) {
        return true;
    }
    // "3 Likes", "1.2k views", "42 posts Joined 2019".
    is_count(first) && COUNTED_WORDS.contains(&second) && 2 + more <= 5
}

/// A counter's figure: "12", "1,204", "26.2k", "3m".
fn is_count(word: &str) -> bool {
    word.chars().next().is_some_and(|c| c.is_ascii_digit())
        && word
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | 'k' | 'm'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poster_details_counters_and_prompts_are_furniture() {
        for line in [
            "Posts: 4032",
            "Joined: Mar 12, 2019",
            "Last edited:",
            "3 Likes",
            "1 Like",
            "1.2k views",
            "42 posts Joined 2019",
            "Offline",
            "Post as a guest",
            "Required, but never shown",
            "asked 3 years, 2 months ago",
            "Viewed 12k times",
            "You must log in or register to reply here.",
            "Thread starter",
            "Join date: Mar 2014",
            "Replies 12",
            "Views 26.2k",
            "To install this app on iOS and iPadOS",
            "View in the app",
        ] {
            assert!(is_furniture(line), "{line}");
        }
        for line in [
            "Posts are moderated before they appear.",
            "3 likes are not enough to prove it",
            "Asked my dealer, he said no.",
            "2 posts above I said the same",
            "Reply hazy, try again",
            "Views differ on this",
            "Replies 12 and 13 say it",
        ] {
            assert!(!is_furniture(line), "{line}");
        }
    }

    #[test]
    fn a_footer_credit_names_forum_software() {
        assert!(is_software_credit("https://www.phpbb.com/"));
        assert!(is_software_credit("http://fluxbb.org"));
        assert!(!is_software_credit("https://www.phpbb.com/support/docs/"));
        assert!(!is_software_credit("https://example.com/"));
        assert!(!is_software_credit("/relative"));
    }

    #[test]
    fn quotes_are_named_whole() {
        assert!(is_quote("bbcodeblock--quote"));
        assert!(!is_quote("selectquotecontainer"));
        assert!(!is_quote("js-selecttoquote"));
    }
}
