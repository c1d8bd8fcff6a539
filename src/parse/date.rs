//! Feed dates as instants: RFC 3339 / W3C-DTF / ISO 8601 (Atom, Dublin Core) and RFC 822
//! (RSS), read the lenient way feeds need: a missing zone is UTC, a date alone is midnight,
//! a two-digit year or a misspelt weekday does not lose the date.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if t.is_empty() || t.len() > 64 {
        return None;
    }
    if t.as_bytes()[0].is_ascii_digit() && t.as_bytes().get(4) == Some(&b'-') {
        return iso8601(t).or_else(|| rfc822(t));
    }
    rfc822(t).or_else(|| iso8601(t))
}

fn iso8601(t: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    let t = t.replace(' ', "T");
    let t = t.trim_end_matches('T');
    // Split the zone off: `Z`, `+hh:mm`, `+hhmm`, `+hh`, or none (UTC).
    let (local, offset) = split_zone(t)?;
    let formats = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y%m%dT%H%M%S",
    ];
    let naive = formats
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(local, f).ok())
        .or_else(|| {
            ["%Y-%m-%d", "%Y%m%d"]
                .iter()
                .find_map(|f| NaiveDate::parse_from_str(local, f).ok())
                .or_else(|| NaiveDate::parse_from_str(&format!("{local}-01"), "%Y-%m-%d").ok())
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    Some(Utc.from_utc_datetime(&naive) - chrono::Duration::seconds(offset))
}

/// The local part and the zone offset in seconds east of UTC.
fn split_zone(t: &str) -> Option<(&str, i64)> {
    if let Some(local) = t.strip_suffix(['Z', 'z']) {
        return Some((local, 0));
    }
    // A sign after the time part (the date's own dashes come before a `T`).
    let time_start = t.find('T').unwrap_or(t.len());
    if let Some(pos) = t[time_start..].rfind(['+', '-']).map(|p| p + time_start) {
        let zone = t[pos + 1..].replace(':', "");
        let sign = if &t[pos..=pos] == "-" { -1 } else { 1 };
        let (h, m) = match zone.len() {
            2 => (zone.parse::<i64>().ok()?, 0),
            4 => (
                zone[..2].parse::<i64>().ok()?,
                zone[2..].parse::<i64>().ok()?,
            ),
            _ => return None,
        };
        return Some((&t[..pos], sign * (h * 3600 + m * 60)));
    }
    Some((t, 0))
}

fn rfc822(t: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc2822(t) {
        return Some(d.with_timezone(&Utc));
    }
    // Drop the weekday (often wrong or not English), then read "d Mon y h:m[:s] [zone]".
    let rest = match t.find(',') {
        Some(comma) => &t[comma + 1..],
        None => t,
    };
    let mut words: Vec<&str> = rest.split_whitespace().collect();
    if words
        .first()
        .is_some_and(|w| w.chars().all(char::is_alphabetic) && month(w).is_none())
    {
        words.remove(0);
    }
    if words.len() < 3 {
        return None;
    }
    // "Mon d y" as well as "d Mon y".
    let (day, mon) = match (words[0].parse::<u32>(), month(words[0])) {
        (Ok(d), _) => (d, month(words[1])?),
        (_, Some(m)) => (words[1].trim_end_matches(',').parse().ok()?, m),
        _ => return None,
    };
    let mut year: i32 = words[2].parse().ok()?;
    if year < 100 {
        year += if year < 50 { 2000 } else { 1900 };
    }
    let (mut h, mut mi, mut s) = (0, 0, 0);
    let mut offset = 0i64;
    if let Some(time) = words.get(3) {
        let parts: Vec<u32> = time.split(':').filter_map(|p| p.parse().ok()).collect();
        match parts.as_slice() {
            [a, b] => (h, mi) = (*a, *b),
            [a, b, c, ..] => (h, mi, s) = (*a, *b, *c),
            _ => {}
        }
        if let Some(zone) = words.get(4) {
            offset = zone_offset(zone).unwrap_or(0);
        }
    }
    let naive = NaiveDate::from_ymd_opt(year, mon, day)?.and_hms_opt(h, mi, s.min(59))?;
    Some(Utc.from_utc_datetime(&naive) - chrono::Duration::seconds(offset))
}

fn month(w: &str) -> Option<u32> {
    let w = w.get(..3)?.to_ascii_lowercase();
    let m = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| *m == w)?;
    Some(m as u32 + 1)
}

fn zone_offset(zone: &str) -> Option<i64> {
    let z = zone.to_ascii_uppercase();
    let hours = match z.as_str() {
        "GMT" | "UT" | "UTC" | "Z" => 0,
        "EST" => -5,
        "EDT" => -4,
        "CST" => -6,
        "CDT" => -5,
        "MST" => -7,
        "MDT" => -6,
        "PST" => -8,
        "PDT" => -7,
        _ => {
            let sign = match z.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits = z[1..].replace(':', "");
            if digits.len() != 4 {
                return None;
            }
            let h: i64 = digits[..2].parse().ok()?;
            let m: i64 = digits[2..].parse().ok()?;
            return Some(sign * (h * 3600 + m * 60));
        }
    };
    Some(hours * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &str) {
        assert_eq!(
            parse(text).map(|d| d.to_rfc3339()),
            Some(expected.to_string()),
            "{text}"
        );
    }

    #[test]
    fn reads_the_dates_feeds_write() {
        check("2003-12-31T10:14:55Z", "2003-12-31T10:14:55+00:00");
        check("2003-12-31T10:14:55-08:00", "2003-12-31T18:14:55+00:00");
        check("2003-12-31T10:14:55+0100", "2003-12-31T09:14:55+00:00");
        check("2003-12-31T10:14", "2003-12-31T10:14:00+00:00");
        check("2003-12-31", "2003-12-31T00:00:00+00:00");
        check("Wed, 31 Dec 2003 10:14:55 GMT", "2003-12-31T10:14:55+00:00");
        check(
            "Thu, 31 Dec 2003 10:14:55 -0500",
            "2003-12-31T15:14:55+00:00",
        );
        check("31 Dec 03 10:14 EST", "2003-12-31T15:14:00+00:00");
        assert_eq!(parse("not a date"), None);
    }
}
