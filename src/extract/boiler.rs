//! Short lines inside the article that are page furniture, not text: photo credits, bylines,
//! dates alone, "Read more" and "Share" prompts.

/// Only blocks up to this many non-space characters are checked; longer ones are prose.
pub(crate) const MAX_LINE: u32 = 120;

/// Words that open a credit or source line when a colon (or "by") follows them.
const CREDIT_WORDS: &[&str] = &[
    "foto",
    "fotos",
    "photo",
    "photos",
    "bild",
    "bilder",
    "bildquelle",
    "bildnachweis",
    "titelbild",
    "quelle",
    "quellen",
    "quellenangaben",
    "source",
    "sources",
    "image",
    "images",
    "credit",
    "credits",
    "crédit",
    "crédits",
    "crédits photos",
    "fuente",
    "fuentes",
    "źródło",
    "zdjęcie",
    "fot",
    "abbildung",
    "grafik",
    "illustration",
    "copyright",
    "von",
    "by",
    "text",
    "autor",
    "author",
];

/// Whole lines (lower case, without trailing punctuation) that are prompts or labels.
const PROMPTS: &[&str] = &[
    "share",
    "share this",
    "share this article",
    "teilen",
    "artikel teilen",
    "read more",
    "weiterlesen",
    "mehr lesen",
    "mehr erfahren",
    "lesen sie auch",
    "lesen sie mehr",
    "auch interessant",
    "das könnte sie auch interessieren",
    "zum weiterlesen",
    "mehr zum thema",
    "related",
    "related articles",
    "related posts",
    "you may also like",
    "see also",
    "advertisement",
    "anzeige",
    "werbung",
    "bild anzeigen",
    "wird geladen",
    "loading",
    "print",
    "drucken",
    "tags",
    "schlagwörter",
    "leer más",
    "lire aussi",
    "lire la suite",
    "en savoir plus",
    "über den autor",
    "about the author",
    "neueste artikel",
    "neueste beiträge",
    "latest articles",
    "latest posts",
    "meist gelesen",
    "meistgelesen",
    "most read",
    "most popular",
    "verwandte themen",
    "verwandte artikel",
    "ähnliche artikel",
    "ähnliche beiträge",
    "kommentar schreiben",
    "kommentare schreiben",
    "leave a comment",
    "leave a reply",
    "edit this page",
    "edit on github",
    "edit page",
    "improve this page",
    "suggest an edit",
    "suggest changes",
    "view source",
    "view page source",
    "table of contents",
    "on this page",
    "in this article",
    "was this page helpful",
    "was this page useful",
    "is this page useful",
    "is this page helpful",
    "was this helpful",
    "was this article helpful",
    "did this page help you",
    "cookie settings",
    "cookie preferences",
    "manage cookies",
];

/// Openings of a line that introduces a list of other articles.
const PROMPT_OPENINGS: &[&str] = &[
    "lesen sie auch",
    "auch interessant",
    "mehr zu ",
    "mehr zum thema",
    "zum weiterlesen",
    "read also",
    "read more:",
    "see also",
    "related:",
    "you may also like",
    "das könnte sie auch interessieren",
    "diese beiträge",
    "weitere artikel",
    "lire aussi",
    "leer también",
    "te puede interesar",
    "czytaj też",
    "czytaj także",
];

/// Labels of page metadata: a line opening with one of them and a colon is a dateline, a
/// counter or contact details.
const META_LABELS: &[&str] = &[
    "aktualisiert",
    "zuletzt aktualisiert",
    "veröffentlicht",
    "erstellt",
    "stand",
    "datum",
    "updated",
    "last updated",
    "last modified",
    "published",
    "posted",
    "release date",
    "date",
    "aufrufe",
    "views",
    "kategorie",
    "kategorien",
    "category",
    "categories",
    "rubrik",
    "tags",
    "schlagwörter",
    "schlagworte",
    "telefon",
    "tel",
    "fax",
    "e-mail",
    "email",
    "kommentare",
    "comments",
    "lesezeit",
    "reading time",
];

/// Words that, after a number, give a reading time ("4 min read", "11 minut czytania").
const READING_TIME_WORDS: &[&str] = &[
    "min", "min.", "mins", "minute", "minutes", "minuten", "minut",
];

/// Whether a short element of the article (its text) is furniture. Bylines and dates count
/// only as whole blocks: inside a sentence they are part of it.
pub(crate) fn is_furniture(line: &str, block: bool) -> bool {
    let line = line.trim();
    if line.is_empty() {
        return false;
    }
    if line.starts_with('©') || line.starts_with("(c)") || line.starts_with("(C)") {
        return true;
    }
    let lower = line.to_lowercase();
    let bare = lower.trim_end_matches([':', '.', '…', '!', ' ', '»', '>']);
    if PROMPTS.contains(&bare) || PROMPT_OPENINGS.iter().any(|p| lower.starts_with(p)) {
        return true;
    }
    // A credit or a label has a colon, a `©` or a "by " after its opening word: most lines
    // have none, and need not be matched against every opening.
    let marked = lower.contains(':') || lower.contains('©') || lower.contains("by ");
    (marked && (is_credit(&lower) || starts_with_label(&lower)))
        || (block && (is_byline(line) || is_date_alone(line) || is_reading_time(&lower)))
}

/// "Foto: dpa", "(Photo: Getty)", "Photo by X on Unsplash", "Quelle:".
fn is_credit(lower: &str) -> bool {
    let s = lower.trim_start_matches(['(', '[']).trim_start();
    CREDIT_WORDS.iter().any(|w| {
        let Some(rest) = s.strip_prefix(w) else {
            return false;
        };
        let rest = rest.trim_start();
        rest.starts_with(':') || rest.starts_with('©') || (rest.starts_with("by ") && *w != "by")
    })
}

fn starts_with_label(lower: &str) -> bool {
    META_LABELS.iter().any(|l| {
        lower
            .strip_prefix(l)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    })
}

/// "4 min read", "21 minutes", "11 minut czytania".
fn is_reading_time(lower: &str) -> bool {
    let mut words = lower.split_whitespace();
    let (first, second) = (words.next(), words.next());
    first.is_some_and(|w| w.chars().all(|c| c.is_ascii_digit()))
        && second.is_some_and(|w| READING_TIME_WORDS.contains(&w))
        // At most four words: no fifth.
        && words.nth(2).is_none()
}

/// "Von Sina Giebel", "By Jane Doe": a preposition and at most four capitalized names.
fn is_byline(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let Some(first) = words.next() else {
        return false;
    };
    if !matches!(
        first.to_lowercase().as_str(),
        "von" | "by" | "par" | "por" | "door" | "di" | "autor:" | "von:" | "by:"
    ) {
        return false;
    }
    let rest: Vec<&str> = words.collect();
    !rest.is_empty()
        && rest.len() <= 4
        && rest
            .iter()
            .all(|w| w.chars().next().is_some_and(|c| c.is_uppercase()))
}

/// "12.12.2022, 08:30 Uhr": mostly digits, a few letters at most.
pub(crate) fn is_date_alone(line: &str) -> bool {
    let mut digits = 0;
    let mut letters = 0;
    let mut other = 0;
    for c in line.chars() {
        if c.is_ascii_digit() {
            digits += 1;
        } else if c.is_alphabetic() {
            letters += 1;
        } else if !c.is_whitespace() {
            other += 1;
        }
    }
    let total = digits + letters + other;
    total <= 30 && digits >= 4 && letters * 3 < total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn furniture_lines() {
        for line in [
            "Foto: Ingo Pertramer",
            "(Foto: ABr)",
            "Photo by ev on Unsplash",
            "© 2009-2012 Jonathan Krase",
            "Quelle:",
            "Crédits photos : Bestimage",
            "VON Sina Giebel",
            "12.12.2022, 08:30 Uhr",
            "Lesen Sie auch die folgenden Beiträge:",
            "Share",
            "Aktualisiert: 30.12.2016",
            "Kategorie: News",
            "11 minut czytania",
        ] {
            assert!(is_furniture(line, true), "{line}");
        }
        for line in [
            "Von allein wird es nicht besser!",
            "By setting this to Default, attributes are",
            "Von seinem Vorgänger unterscheidet",
            "Die Fotos zeigen den Zustand im Jahr 2020.",
            "Bilder des Jahres: eine Auswahl",
            "Datenschutz ist wichtig: ein Überblick",
            "4 minutes later the train arrived",
        ] {
            assert!(!is_furniture(line, true), "{line}");
        }
        // Inside a sentence, a date or a byline-like phrase stays.
        for line in ["12.12.2022", "Von Peter Müller"] {
            assert!(!is_furniture(line, false), "{line}");
        }
    }
}
