//! Which character encoding a feed is in, decided once (RFC 7303 §3 and XML 1.0 appendix F):
//! a byte order mark; else the HTTP `charset` of a `text/*` or `application/*+xml` answer;
//! else the XML declaration; else detection. A document whose bytes do not fit the encoding
//! it names is read again in the one it uses.

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};

/// How many bytes the statistical detector looks at; enough to decide, cheap on big feeds.
const DETECT_BYTES: usize = 64 * 1024;

/// How far into the document the XML declaration is looked for.
const DECLARATION_BYTES: usize = 1024;

/// The encodings encoding_rs does not carry, which feeds still use now and then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Standard(&'static Encoding),
    Utf32Le,
    Utf32Be,
}

impl Charset {
    pub fn name(self) -> &'static str {
        match self {
            Charset::Standard(e) => e.name(),
            Charset::Utf32Le => "UTF-32LE",
            Charset::Utf32Be => "UTF-32BE",
        }
    }
}

/// Which rule decided the encoding, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Bom,
    HttpHeader,
    Declaration,
    /// No usable label: the byte pattern of `<?xml`, valid UTF-8, or chardetng's guess.
    Detected,
    /// The label named one encoding, the bytes are in another (or in two): re-decoded.
    Redecoded,
}

/// The decision and the text.
#[derive(Debug)]
pub struct Decoded {
    pub text: String,
    pub charset: Charset,
    pub rule: Rule,
}

/// Decodes feed bytes; `content_type` is the HTTP `Content-Type` value, if any. Malformed
/// sequences become U+FFFD; this never fails. C1 control characters, which no text holds,
/// are read as the Windows-1252 characters their code points stand for (curly quotes
/// converted to "Unicode" by a tool that took Windows-1252 for Latin-1).
pub fn decode(bytes: &[u8], content_type: Option<&str>) -> Decoded {
    let mut decoded = decode_labelled(bytes, content_type);
    if has_c1(&decoded.text) {
        decoded.text = decoded.text.chars().map(demoronize).collect();
    }
    decoded
}

fn has_c1(text: &str) -> bool {
    // U+0080–U+009F are 0xC2 0x80–0x9F in UTF-8.
    text.as_bytes()
        .windows(2)
        .any(|w| w[0] == 0xC2 && (0x80..0xA0).contains(&w[1]))
}

fn demoronize(c: char) -> char {
    if ('\u{80}'..='\u{9f}').contains(&c) {
        let byte = [c as u32 as u8];
        let (text, _) = WINDOWS_1252.decode_without_bom_handling(&byte);
        text.chars().next().unwrap_or(c)
    } else {
        c
    }
}

fn decode_labelled(bytes: &[u8], content_type: Option<&str>) -> Decoded {
    let (charset, rule, skip) = decide(bytes, content_type);
    let body = &bytes[skip..];
    match charset {
        Charset::Utf32Le | Charset::Utf32Be => Decoded {
            text: decode_utf32(body, charset == Charset::Utf32Be),
            charset,
            rule,
        },
        Charset::Standard(encoding) if encoding == UTF_8 => match std::str::from_utf8(body) {
            Ok(text) => Decoded {
                text: text.to_string(),
                charset,
                rule,
            },
            Err(_) => redecode(body),
        },
        Charset::Standard(encoding) => {
            let (text, had_errors) = encoding.decode_without_bom_handling(body);
            // A declared single-byte encoding is never "wrong" byte-wise; a multi-byte one
            // (UTF-16, Shift_JIS, …) that fails on these bytes is.
            if had_errors && std::str::from_utf8(body).is_ok() {
                return Decoded {
                    text: String::from_utf8_lossy(body).into_owned(),
                    charset: Charset::Standard(UTF_8),
                    rule: Rule::Redecoded,
                };
            }
            Decoded {
                text: text.into_owned(),
                charset,
                rule,
            }
        }
    }
}

/// The encoding, the rule, and how many leading bytes (a BOM) to skip.
fn decide(bytes: &[u8], content_type: Option<&str>) -> (Charset, Rule, usize) {
    // UTF-32 first: its little-endian BOM starts like UTF-16's.
    if bytes.starts_with(&[0xFF, 0xFE, 0, 0]) {
        return (Charset::Utf32Le, Rule::Bom, 4);
    }
    if bytes.starts_with(&[0, 0, 0xFE, 0xFF]) {
        return (Charset::Utf32Be, Rule::Bom, 4);
    }
    if let Some((encoding, len)) = Encoding::for_bom(bytes) {
        return (Charset::Standard(encoding), Rule::Bom, len);
    }
    // Without a BOM, how `<?` (or any first `<`) is laid out says the code unit size.
    let family = match bytes {
        [0, 0, 0, b'<', ..] => Some(Charset::Utf32Be),
        [b'<', 0, 0, 0, ..] => Some(Charset::Utf32Le),
        [0, b'<', ..] => Some(Charset::Standard(UTF_16BE)),
        [b'<', 0, ..] => Some(Charset::Standard(UTF_16LE)),
        _ => None,
    };
    if let Some(charset) = content_type.and_then(header_charset) {
        // A header naming an 8-bit encoding for a document laid out in 16-bit units is wrong.
        return match family {
            Some(f) if f != charset && !is_wide(charset) => (f, Rule::Redecoded, 0),
            _ => (charset, Rule::HttpHeader, 0),
        };
    }
    if let Some(f) = family {
        // The declaration inside can only refine the byte order, which the layout gave.
        return (f, Rule::Detected, 0);
    }
    if let Some(charset) = declared(bytes) {
        return (charset, Rule::Declaration, 0);
    }
    if bytes.is_ascii() || std::str::from_utf8(bytes).is_ok() {
        return (Charset::Standard(UTF_8), Rule::Detected, 0);
    }
    (Charset::Standard(detect(bytes)), Rule::Detected, 0)
}

fn is_wide(c: Charset) -> bool {
    match c {
        Charset::Utf32Be | Charset::Utf32Le => true,
        Charset::Standard(e) => e == UTF_16BE || e == UTF_16LE,
    }
}

/// The `charset` parameter, for media types where it is authoritative (RFC 7303 §3): text
/// types and XML types. Other types (`application/octet-stream`, a JSON type) leave the
/// decision to the document.
fn header_charset(content_type: &str) -> Option<Charset> {
    let mut parts = content_type.split(';');
    let media = parts.next()?.trim().to_ascii_lowercase();
    let xml_type = media.starts_with("text/")
        || media == "application/xml"
        || (media.starts_with("application/") && media.ends_with("+xml"));
    if !xml_type {
        return None;
    }
    parts.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("charset") {
            return None;
        }
        label(value.trim().trim_matches(['"', '\'']))
    })
}

fn label(name: &str) -> Option<Charset> {
    let lower = name.trim().to_ascii_lowercase();
    match lower.as_str() {
        "utf-32" | "utf32" | "utf-32be" | "ucs-4" => return Some(Charset::Utf32Be),
        "utf-32le" => return Some(Charset::Utf32Le),
        // UTF-16 without a byte order: big-endian unless the bytes say otherwise.
        "utf-16" | "utf16" | "ucs-2" => return Some(Charset::Standard(UTF_16BE)),
        _ => {}
    }
    Encoding::for_label(lower.as_bytes()).map(Charset::Standard)
}

/// The `encoding` of an ASCII-compatible XML declaration.
fn declared(bytes: &[u8]) -> Option<Charset> {
    let head = &bytes[..bytes.len().min(DECLARATION_BYTES)];
    let start = head.windows(5).position(|w| w == b"<?xml")?;
    let decl = &head[start..];
    let end = decl.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&decl[..end]).ok()?;
    let at = decl.find("encoding")?;
    let rest = decl[at + 8..].trim_start().strip_prefix('=')?.trim_start();
    let quote = rest.chars().next().filter(|q| *q == '"' || *q == '\'')?;
    let value = &rest[1..];
    let value = &value[..value.find(quote)?];
    let charset = label(value)?;
    // An 8-bit document cannot be UTF-16 (it would not have been readable this far).
    if is_wide(charset) {
        return Some(Charset::Standard(UTF_8));
    }
    Some(charset)
}

fn detect(bytes: &[u8]) -> &'static Encoding {
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    let sample = &bytes[..bytes.len().min(DETECT_BYTES)];
    detector.feed(sample, sample.len() == bytes.len());
    let guess = detector.guess(None, chardetng::Utf8Detection::Allow);
    // A guess that turns bytes into C1 control characters (an ISO 8859 part for a document
    // with a few curly quotes) is wrong: text never holds those, Windows-1252 has quotes there.
    let (text, _) = guess.decode_without_bom_handling(sample);
    if text.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)) {
        return WINDOWS_1252;
    }
    guess
}

/// Bytes labelled UTF-8 that are not: when some of them are valid multi-byte UTF-8, the
/// document is UTF-8 with stray Windows-1252 bytes (curly quotes pasted from a word
/// processor), decoded byte by byte where invalid; otherwise it is in another encoding
/// altogether, which detection names.
fn redecode(bytes: &[u8]) -> Decoded {
    let has_multibyte = {
        let mut rest = bytes;
        let mut found = false;
        while !rest.is_empty() {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    found |= !s.is_ascii();
                    break;
                }
                Err(e) => {
                    let valid = &rest[..e.valid_up_to()];
                    if !valid.is_ascii() {
                        found = true;
                        break;
                    }
                    // No error length: the input ends inside a sequence.
                    let bad = e.error_len().unwrap_or(rest.len() - e.valid_up_to());
                    rest = &rest[e.valid_up_to() + bad.max(1)..];
                }
            }
        }
        found
    };
    if !has_multibyte {
        let encoding = detect(bytes);
        let encoding = if encoding == UTF_8 {
            WINDOWS_1252
        } else {
            encoding
        };
        let (text, _) = encoding.decode_without_bom_handling(bytes);
        return Decoded {
            text: text.into_owned(),
            charset: Charset::Standard(encoding),
            rule: Rule::Redecoded,
        };
    }
    let mut text = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                text.push_str(s);
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                text.push_str(std::str::from_utf8(valid).expect("checked valid up to here"));
                let bad = e.error_len().unwrap_or(after.len()).max(1);
                let (cp1252, _) = WINDOWS_1252.decode_without_bom_handling(&after[..bad]);
                text.push_str(&cp1252);
                rest = &after[bad..];
            }
        }
    }
    Decoded {
        text,
        charset: Charset::Standard(UTF_8),
        rule: Rule::Redecoded,
    }
}

fn decode_utf32(bytes: &[u8], big_endian: bool) -> String {
    bytes
        .chunks(4)
        .map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            let n = if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            };
            char::from_u32(n).unwrap_or('\u{FFFD}')
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8], content_type: Option<&str>, text: &str, charset: &str, rule: Rule) {
        let d = decode(bytes, content_type);
        assert_eq!(
            (d.text.as_str(), d.charset.name(), d.rule),
            (text, charset, rule)
        );
    }

    #[test]
    fn a_bom_wins_over_everything() {
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend("<a>é</a>".encode_utf16().flat_map(u16::to_le_bytes));
        check(
            &utf16,
            Some("text/xml; charset=iso-8859-1"),
            "<a>é</a>",
            "UTF-16LE",
            Rule::Bom,
        );
        let mut utf32 = vec![0, 0, 0xFE, 0xFF];
        utf32.extend("<a>é</a>".chars().flat_map(|c| (c as u32).to_be_bytes()));
        check(&utf32, None, "<a>é</a>", "UTF-32BE", Rule::Bom);
    }

    #[test]
    fn the_http_charset_wins_over_the_declaration_for_xml_types_only() {
        let doc = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><a>\xA3</a>";
        check(
            doc,
            Some("application/rss+xml; charset='iso-8859-1'"),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><a>£</a>",
            "windows-1252",
            Rule::HttpHeader,
        );
        let koi = b"<?xml version=\"1.0\" encoding=\"koi8-r\"?><a>\xF0</a>";
        check(
            koi,
            Some("application/octet-stream; charset=utf-8"),
            "<?xml version=\"1.0\" encoding=\"koi8-r\"?><a>П</a>",
            "KOI8-R",
            Rule::Declaration,
        );
    }

    #[test]
    fn without_labels_the_layout_or_detection_decides() {
        let utf16be: Vec<u8> = "<?xml version=\"1.0\"?><a/>"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        check(
            &utf16be,
            None,
            "<?xml version=\"1.0\"?><a/>",
            "UTF-16BE",
            Rule::Detected,
        );
        check(
            b"<a>caf\xC3\xA9</a>",
            None,
            "<a>café</a>",
            "UTF-8",
            Rule::Detected,
        );
        check(
            b"<?xml version=\"1.0\" encoding=\"x-no-such\"?><a/>",
            None,
            "<?xml version=\"1.0\" encoding=\"x-no-such\"?><a/>",
            "UTF-8",
            Rule::Detected,
        );
    }

    #[test]
    fn windows_1252_bytes_in_utf8_are_read_as_what_they_meant() {
        check(
            b"<a>caf\xC3\xA9 don\x92t</a>",
            Some("text/xml; charset=utf-8"),
            "<a>café don\u{2019}t</a>",
            "UTF-8",
            Rule::Redecoded,
        );
        check(
            b"<?xml version=\"1.0\" encoding=\"utf-8\"?><a>don\x92t</a>",
            None,
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><a>don\u{2019}t</a>",
            "windows-1252",
            Rule::Redecoded,
        );
    }
}
