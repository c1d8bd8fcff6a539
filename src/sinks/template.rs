//! Body templates for webhook sinks: a minijinja template rendered over the §5 payload,
//! and custom headers whose values may come from the environment or a file.
//!
//! The template sees the payload as it is on the wire (`type`, `id`, `feed.*`, `item.*`, …).
//! Printing a field that does not exist is an error (so a typo dead-letters the event with
//! the reason instead of sending a hole); testing it in `{% if %}` is not. A `null` prints as
//! nothing. Output is not escaped: use the `tojson` filter to put strings into JSON.

use std::path::PathBuf;

use minijinja::{Environment, UndefinedBehavior, Value};

/// The name the template is known by in error messages.
const TEMPLATE_NAME: &str = "template";

/// Why a template could not be compiled or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template syntax: {0}")]
    Syntax(String),
    #[error("cannot read template file {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the event body is not a JSON payload: {0}")]
    Payload(String),
    #[error("template failed to render: {0}")]
    Render(String),
    #[error("the template rendered an empty body")]
    Empty,
    #[error("the template rendered invalid JSON for content type {content_type}: {message}")]
    NotJson {
        content_type: String,
        message: String,
    },
}

/// Where a template comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateSource {
    Inline(String),
    File(PathBuf),
}

impl TemplateSource {
    pub fn read(&self) -> Result<String, TemplateError> {
        match self {
            TemplateSource::Inline(s) => Ok(s.clone()),
            TemplateSource::File(path) => {
                std::fs::read_to_string(path).map_err(|source| TemplateError::File {
                    path: path.display().to_string(),
                    source,
                })
            }
        }
    }
}

/// A compiled body template.
pub struct Template {
    env: Environment<'static>,
    /// When the content type is JSON, the rendered body must parse as JSON.
    json: Option<String>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template").finish_non_exhaustive()
    }
}

/// Whether a content type names JSON (`application/json`, `application/ld+json`, …).
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

impl Template {
    /// Compiles `source`; a syntax error names the line.
    pub fn compile(source: &str, content_type: &str) -> Result<Template, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_keep_trailing_newline(true);
        // The body is sent as written: no HTML escaping; `null` prints as nothing.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_formatter(|out, state, value| {
            if value.is_none() {
                Ok(())
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        Ok(Template {
            env,
            json: is_json(content_type).then(|| content_type.to_string()),
        })
    }

    /// Renders the template over one event's JSON body.
    pub fn render(&self, payload: &str) -> Result<String, TemplateError> {
        // Straight into the engine's values: no intermediate JSON tree.
        let value: Value =
            serde_json::from_str(payload).map_err(|e| TemplateError::Payload(e.to_string()))?;
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| TemplateError::Render(describe(&e)))?;
        let body = template
            .render(value)
            .map_err(|e| TemplateError::Render(describe(&e)))?;
        if body.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        if let Some(content_type) = &self.json
            && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&body)
        {
            return Err(TemplateError::NotJson {
                content_type: content_type.clone(),
                message: e.to_string(),
            });
        }
        Ok(body)
    }
}

/// One line: the error and where it happened (`undefined value: … at line 1`).
fn describe(e: &minijinja::Error) -> String {
    let mut text = match (e.detail(), e.line()) {
        (Some(detail), Some(line)) => format!("{}: {detail} at line {line}", e.kind()),
        (None, Some(line)) => format!("{} at line {line}", e.kind()),
        _ => e.to_string(),
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Where a custom header's value comes from: written in the config, or (for secrets) read
/// from the environment or a file when the sink starts.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderSource {
    Value(String),
    Env(String),
    File(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("header {name}: environment variable {var} is not set")]
    MissingEnv { name: String, var: String },
    #[error("header {name}: cannot read {path}: {source}")]
    File {
        name: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("header {name}: not a valid header name or value")]
    Invalid { name: String },
}

/// Reads every header's value; a file's trailing newline is not part of the value.
pub fn resolve_headers(
    headers: &[(String, HeaderSource)],
) -> Result<reqwest::header::HeaderMap, HeaderError> {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, source) in headers {
        let value = match source {
            HeaderSource::Value(v) => v.clone(),
            HeaderSource::Env(var) => std::env::var(var).map_err(|_| HeaderError::MissingEnv {
                name: name.clone(),
                var: var.clone(),
            })?,
            HeaderSource::File(path) => std::fs::read_to_string(path)
                .map_err(|source| HeaderError::File {
                    name: name.clone(),
                    path: path.display().to_string(),
                    source,
                })?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        };
        let invalid = || HeaderError::Invalid { name: name.clone() };
        let header_name =
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let mut header_value =
            reqwest::header::HeaderValue::from_str(&value).map_err(|_| invalid())?;
        // Secrets are kept out of debug output.
        header_value.set_sensitive(!matches!(source, HeaderSource::Value(_)));
        map.insert(header_name, header_value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &str = r#"{"type":"item.new","id":"01J","feed":{"name":"ex","tags":["a"]},
        "item":{"title":"Ça \"marche\"","url":"https://example.com/a","author":null,"categories":["x","y"]}}"#;

    #[test]
    fn renders_fields_and_json_strings() {
        let t = Template::compile(
            r#"{"text": {{ (item.title ~ " " ~ item.url) | tojson }}, "by": "{{ item.author }}"}"#,
            "application/json",
        )
        .expect("compiles");
        let body = t.render(PAYLOAD).expect("renders");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["text"], "Ça \"marche\" https://example.com/a");
        assert_eq!(v["by"], "");
    }

    #[test]
    fn missing_fields_fail_when_printed_not_when_tested() {
        let t = Template::compile("{{ item.titel }}", "text/plain").expect("compiles");
        let err = t.render(PAYLOAD).expect_err("undefined");
        assert!(err.to_string().contains("undefined"), "{err}");
        let t = Template::compile(
            "{% if item.titel %}x{% else %}{{ item.title }}{% endif %}",
            "text/plain",
        )
        .expect("compiles");
        assert_eq!(t.render(PAYLOAD).expect("renders"), "Ça \"marche\"");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = Template::compile("line one\n{{ item.title ", "text/plain").expect_err("bad");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn json_bodies_must_be_json_and_bodies_not_empty() {
        let t = Template::compile(r#"{"text": "{{ item.title }}"}"#, "application/json")
            .expect("compiles");
        assert!(matches!(
            t.render(PAYLOAD),
            Err(TemplateError::NotJson { .. })
        ));
        let t = Template::compile("{% if false %}x{% endif %}  ", "text/plain").expect("compiles");
        assert!(matches!(t.render(PAYLOAD), Err(TemplateError::Empty)));
    }

    #[test]
    fn headers_come_from_values_and_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "Bearer s3cret\n").expect("write");
        let map = resolve_headers(&[
            ("X-Plain".into(), HeaderSource::Value("yes".into())),
            ("Authorization".into(), HeaderSource::File(file)),
        ])
        .expect("resolves");
        assert_eq!(map["x-plain"], "yes");
        assert_eq!(map["authorization"], "Bearer s3cret");
        assert!(map["authorization"].is_sensitive());
        assert!(matches!(
            resolve_headers(&[(
                "X".into(),
                HeaderSource::Env("FEEDWIRE_TEST_SURELY_UNSET".into())
            )]),
            Err(HeaderError::MissingEnv { .. })
        ));
    }
}
