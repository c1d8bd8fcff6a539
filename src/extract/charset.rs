//! Page bytes to text: which character encoding a page uses, and why we think so.

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

/// How many leading bytes are searched for a `<meta charset>` (the HTML prescan window).
const PRESCAN_BYTES: usize = 4096;

/// How many bytes the statistical detector looks at; enough to decide, cheap on big pages.
const DETECT_BYTES: usize = 64 * 1024;

/// Which rule decided a page's encoding, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharsetRule {
    /// A byte order mark at the start of the body.
    Bom,
    /// The `charset` parameter of the HTTP `Content-Type` header.
    HttpHeader,
    /// A `<meta charset>` or `http-equiv="Content-Type"` tag near the start of the page.
    MetaTag,
    /// Statistical detection over the bytes (valid UTF-8, or chardetng's guess).
    Detected,
    /// Nothing to go on (plain ASCII or empty): UTF-8.
    Default,
}

impl CharsetRule {
    pub fn as_str(self) -> &'static str {
        match self {
            CharsetRule::Bom => "bom",
            CharsetRule::HttpHeader => "http-header",
            CharsetRule::MetaTag => "meta",
            CharsetRule::Detected => "detected",
            CharsetRule::Default => "default",
        }
    }
}

/// Decodes page bytes: BOM, then the HTTP `Content-Type` charset, then a `<meta>` charset in
/// the first 4 KiB, then detection. Malformed sequences become U+FFFD; this never fails.
pub fn decode(
    bytes: &[u8],
    content_type: Option<&str>,
) -> (String, &'static Encoding, CharsetRule) {
    let (encoding, rule) = sniff(bytes, content_type);
    // `decode` strips a BOM matching any UTF encoding, so a header naming one wins cleanly.
    let (text, actual, _) = encoding.decode(bytes);
    (text.into_owned(), actual, rule)
}

fn sniff(bytes: &[u8], content_type: Option<&str>) -> (&'static Encoding, CharsetRule) {
    if let Some((encoding, _)) = Encoding::for_bom(bytes) {
        return (encoding, CharsetRule::Bom);
    }
    if let Some(encoding) = content_type.and_then(header_charset) {
        return (encoding, CharsetRule::HttpHeader);
    }
    if let Some(encoding) = prescan(&bytes[..bytes.len().min(PRESCAN_BYTES)]) {
        return (encoding, CharsetRule::MetaTag);
    }
    if bytes.is_ascii() {
        return (UTF_8, CharsetRule::Default);
    }
    if std::str::from_utf8(bytes).is_ok() {
        return (UTF_8, CharsetRule::Detected);
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    let sample = &bytes[..bytes.len().min(DETECT_BYTES)];
    detector.feed(sample, sample.len() == bytes.len());
    (
        detector.guess(None, chardetng::Utf8Detection::Allow),
        CharsetRule::Detected,
    )
}

/// The encoding named by a `Content-Type` value such as `text/html; charset="utf-8"`.
fn header_charset(content_type: &str) -> Option<&'static Encoding> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("charset") {
            return None;
        }
        label(value.trim().trim_matches(['"', '\'']).as_bytes())
    })
}

/// An encoding label as HTML resolves it: UTF-16 named in a meta tag means UTF-8 (the page
/// could not have been read that far otherwise) and `x-user-defined` means windows-1252.
fn label(name: &[u8]) -> Option<&'static Encoding> {
    let encoding = Encoding::for_label(name)?;
    if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE {
        Some(UTF_8)
    } else if encoding == encoding_rs::X_USER_DEFINED {
        Some(WINDOWS_1252)
    } else {
        Some(encoding)
    }
}

/// A simplified HTML prescan: the first `<meta>` tag carrying `charset=` (either as its own
/// attribute or inside an `http-equiv` `content` value) names the encoding.
fn prescan(head: &[u8]) -> Option<&'static Encoding> {
    let mut rest = head;
    while let Some(start) = find_ci(rest, b"<meta") {
        let after = &rest[start + 5..];
        let end = after.iter().position(|&b| b == b'>').unwrap_or(after.len());
        let tag = &after[..end];
        if let Some(pos) = find_ci(tag, b"charset") {
            let mut value = &tag[pos + 7..];
            value = trim_start(value);
            if let Some(stripped) = value.strip_prefix(b"=") {
                value = trim_start(stripped);
                value = value.strip_prefix(b"\"").unwrap_or(value);
                value = value.strip_prefix(b"'").unwrap_or(value);
                let len = value
                    .iter()
                    .position(|&b| {
                        b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b';' | b'/' | b'>')
                    })
                    .unwrap_or(value.len());
                if let Some(encoding) = label(&value[..len]) {
                    return Some(encoding);
                }
            }
        }
        rest = &after[end..];
    }
    None
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let skip = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &bytes[skip..]
}

/// Position of `needle` (lower-case ASCII) in `hay`, ignoring ASCII case.
fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_charset_is_parsed_with_quotes() {
        assert_eq!(
            header_charset("text/html; Charset=\"ISO-8859-1\""),
            Some(WINDOWS_1252)
        );
        assert_eq!(header_charset("text/html"), None);
    }

    #[test]
    fn prescan_reads_http_equiv_content() {
        let page = b"<html><head><META HTTP-EQUIV=\"Content-Type\" CONTENT=\"text/html; charset=windows-1251\">";
        assert_eq!(prescan(page), Some(encoding_rs::WINDOWS_1251));
        assert_eq!(prescan(b"<meta charset='utf-16'>"), Some(UTF_8));
    }
}
