//! Threads of posts: the signals that a page is one, beyond what it declares about itself.
//!
//! Forum software credits itself in the page's footer ("Powered by phpBB") with a link to its
//! maker's site, and many installs carry no `generator` tag and no canonical URL: that link
//! is then the surest sign that the page is a board or a thread. Inside a thread, a reply's
//! copy of the post it answers is that post again, not the reply.

use url::Url;

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

#[cfg(test)]
mod tests {
    use super::*;

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
