//! The sections of chat presets (`type = "slack"`, …) and of webhook templates and headers.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::defaults as d;
use super::read::{HttpUrl, Int, List, Table, Text, kind_of};
use super::{PresetSink, SecretSource};
use crate::sinks::presets::Preset;
use crate::sinks::template::{HeaderSource, Template, TemplateSource};

/// A secret named by `<key>_env` or `<key>_file`, never inline; required unless `optional`.
fn secret(t: &Table<'_>, key: &str, what: &str, optional: bool) -> Option<SecretSource> {
    let env_key = format!("{key}_env");
    let file_key = format!("{key}_file");
    match (t.get::<Text>(&env_key), t.get::<Text>(&file_key)) {
        (Some(_), Some(_)) => {
            t.problem(
                &file_key,
                format!("give either {env_key} or {file_key}, not both"),
            );
            None
        }
        (Some(var), None) => Some(SecretSource::Env(var)),
        (None, Some(file)) => Some(SecretSource::File(PathBuf::from(file))),
        (None, None) => {
            if !optional && !t.has(&env_key) && !t.has(&file_key) {
                t.problem(
                    &env_key,
                    format!("needs the {what}: {env_key} = \"VAR\" or {file_key} = \"/path\""),
                );
            }
            None
        }
    }
}

/// The keys of a preset sink.
pub(super) fn preset(kind: &str, t: &Table<'_>) -> Option<PresetSink> {
    let preset = match kind {
        "slack" | "discord" => {
            if t.has("url") {
                t.problem(
                    "url",
                    "the webhook URL is a secret: give url_env or url_file instead",
                );
            }
            let url = secret(t, "url", "webhook URL", false);
            match kind {
                "slack" => url.map(|url| Preset::Slack { url }),
                _ => url.map(|url| Preset::Discord { url }),
            }
        }
        "telegram" => {
            let token = secret(t, "token", "bot token", false);
            let chat_id = chat_id(t);
            let api_url = t.get::<HttpUrl>("api_url").unwrap_or_else(|| {
                url::Url::parse(d::TELEGRAM_API_URL).expect("the default API URL is valid")
            });
            Some(Preset::Telegram {
                token: token?,
                chat_id: chat_id?,
                api_url,
            })
        }
        "ntfy" => {
            let url = t.get::<HttpUrl>("url");
            if !t.has("url") {
                t.problem("url", "an ntfy sink needs its topic url");
            }
            let token = secret(t, "token", "access token", true);
            Some(Preset::Ntfy { url: url?, token })
        }
        "matrix" => {
            let homeserver = t.get::<HttpUrl>("homeserver");
            if !t.has("homeserver") {
                t.problem("homeserver", "a matrix sink needs its homeserver URL");
            }
            let room = t.get::<Text>("room");
            match room.as_deref() {
                Some(r) if r.starts_with('!') && r.contains(':') => {}
                Some(r) => t.problem(
                    "room",
                    format!("{r:?} is not a room id (like \"!abc123:example.org\")"),
                ),
                None => t.problem("room", "a matrix sink needs its room id"),
            }
            let token = secret(t, "token", "access token", false);
            Some(Preset::Matrix {
                homeserver: homeserver?,
                room: room?,
                token: token?,
            })
        }
        _ => None,
    };
    let sink = PresetSink {
        preset: preset?,
        timeout: t.get::<Duration>("timeout").unwrap_or(d::WEBHOOK_TIMEOUT),
        max_attempts: t
            .get::<Int<1, 1_000>>("max_attempts")
            .map_or(d::WEBHOOK_MAX_ATTEMPTS, |n| n as u32),
        max_age: t.get::<Duration>("max_age").unwrap_or(d::WEBHOOK_MAX_AGE),
        concurrency: t
            .get::<Int<1, 64>>("concurrency")
            .map_or(d::PRESET_CONCURRENCY, |n| n as usize),
        retry_schedule: t
            .get::<List<Duration>>("retry_schedule")
            .unwrap_or_default(),
    };
    Some(sink)
}

/// A chat id: a number (written as a number or a string) or `@channelname`.
fn chat_id(t: &Table<'_>) -> Option<String> {
    match t.value("chat_id") {
        None => {
            t.problem("chat_id", "a telegram sink needs the chat_id to post to");
            None
        }
        Some(Value::Number(n)) if n.as_i64().is_some() => Some(n.to_string()),
        Some(Value::String(s))
            if s.parse::<i64>().is_ok() || (s.starts_with('@') && s.len() > 1) =>
        {
            Some(s.clone())
        }
        Some(other) => {
            t.problem(
                "chat_id",
                format!("expected a chat id (a number or \"@channel\"), found {other}"),
            );
            None
        }
    }
}

/// `headers = { Name = "value", Secret = { env = "VAR" }, Other = { file = "/path" } }`.
pub(super) fn headers(t: &Table<'_>) -> Vec<(String, HeaderSource)> {
    let Some(value) = t.value("headers") else {
        return Vec::new();
    };
    let Value::Object(map) = value else {
        t.problem(
            "headers",
            format!("expected a table of header names, found {}", kind_of(value)),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, v) in map {
        let key = format!("headers.{name}");
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            t.problem(&key, "not a valid header name");
            continue;
        }
        let source = match v {
            Value::String(s) => {
                if reqwest::header::HeaderValue::from_str(s).is_err() {
                    t.problem(&key, "not a valid header value");
                    continue;
                }
                HeaderSource::Value(s.clone())
            }
            Value::Object(m) if m.len() == 1 => match m.iter().next() {
                Some((k, Value::String(s))) if k == "env" => HeaderSource::Env(s.clone()),
                Some((k, Value::String(s))) if k == "file" => HeaderSource::File(PathBuf::from(s)),
                _ => {
                    t.problem(&key, "expected { env = \"VAR\" } or { file = \"/path\" }");
                    continue;
                }
            },
            other => {
                t.problem(
                    &key,
                    format!(
                        "expected a value or {{ env = … }} / {{ file = … }}, found {}",
                        kind_of(other)
                    ),
                );
                continue;
            }
        };
        out.push((name.clone(), source));
    }
    out
}

/// `template` (inline) or `template_file`, checked for syntax now so that `check` finds it.
pub(super) fn template(t: &Table<'_>, content_type: &str) -> Option<TemplateSource> {
    let source = match (t.get::<Text>("template"), t.get::<Text>("template_file")) {
        (Some(_), Some(_)) => {
            t.problem(
                "template_file",
                "give either template or template_file, not both",
            );
            return None;
        }
        (Some(text), None) => (TemplateSource::Inline(text), "template"),
        (None, Some(file)) => (TemplateSource::File(PathBuf::from(file)), "template_file"),
        (None, None) => return None,
    };
    match source.0.read() {
        Ok(text) => {
            if let Err(e) = Template::compile(&text, content_type) {
                t.problem(source.1, e.to_string());
            }
        }
        Err(e) => t.problem(source.1, e.to_string()),
    }
    Some(source.0)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use crate::config::{ConfigError, SinkKind, parse};
    use crate::sinks::presets::Preset;

    fn problems(text: &str) -> Vec<(String, String)> {
        match parse(text, Path::new("t.toml"), &BTreeMap::new()) {
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.into_iter().map(|p| (p.path, p.message)).collect()
            }
            Ok(_) => Vec::new(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn presets_need_their_keys_and_keep_secrets_out_of_the_file() {
        let p = problems(
            "[sinks.d]\ntype = \"discord\"\nurl = \"https://discord.com/api/webhooks/1/x\"\n\
             [sinks.t]\ntype = \"telegram\"\ntoken_env = \"T\"\nchat_id = \"general\"\n\
             [sinks.m]\ntype = \"matrix\"\nhomeserver = \"https://m.example\"\nroom = \"#alias:m.example\"\ntoken_env = \"M\"\n\
             [sinks.n]\ntype = \"ntfy\"\nchat_id = 1\n",
        );
        let paths: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        for expected in [
            "sinks.d.url",
            "sinks.d.url_env",
            "sinks.t.chat_id",
            "sinks.m.room",
            "sinks.n.url",
            "sinks.n.chat_id",
        ] {
            assert!(paths.contains(&expected), "{expected} missing from {p:?}");
        }
    }

    #[test]
    fn presets_and_templates_are_read() {
        let text = "[sinks.t]\ntype = \"telegram\"\ntoken_env = \"T\"\nchat_id = -100123\n\
                    [sinks.h]\ntype = \"webhook\"\nurl = \"https://example.com/h\"\n\
                    template = \"{{ item.title }}\"\ncontent_type = \"text/plain\"\n\
                    headers = { X-Key = { env = \"K\" } }\n";
        let c = parse(text, Path::new("t.toml"), &BTreeMap::new()).expect("valid");
        let SinkKind::Preset(p) = &c.sinks["t"].kind else {
            panic!("a preset");
        };
        assert!(matches!(&p.preset, Preset::Telegram { chat_id, .. } if chat_id == "-100123"));
        assert_eq!(p.concurrency, 1);
        let SinkKind::Webhook(w) = &c.sinks["h"].kind else {
            panic!("a webhook");
        };
        assert_eq!(w.content_type, "text/plain");
        assert_eq!(w.headers.len(), 1);
        assert!(w.template.is_some());
        let bad = problems(
            "[sinks.h]\ntype = \"webhook\"\nurl = \"https://example.com/h\"\ntemplate = \"{% if %}\"\n",
        );
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].0, "sinks.h.template");
    }

    #[test]
    fn sinks_select_feeds_by_tag() {
        let text = "[sinks.all]\ntype = \"log\"\n[sinks.fr]\ntype = \"log\"\npath = \"fr.jsonl\"\ntags = [\"fr\"]\n\
                    [[feeds]]\nurl = \"https://a.example/f\"\nname = \"a\"\ntags = [\"fr\"]\n\
                    [[feeds]]\nurl = \"https://b.example/f\"\nname = \"b\"\n";
        let c = parse(text, Path::new("t.toml"), &BTreeMap::new()).expect("valid");
        assert_eq!(c.feeds[0].sinks, ["all", "fr"]);
        assert_eq!(c.feeds[1].sinks, ["all"]);
        let p = problems(
            "[sinks.fr]\ntype = \"log\"\ntags = [\"fr\"]\n[[feeds]]\nurl = \"https://b.example/f\"\nsinks = [\"fr\"]\n",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "feeds[0].sinks");
    }
}
