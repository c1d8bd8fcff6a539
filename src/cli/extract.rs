//! `feedwire extract`: fetch (for a URL) and clean one page, or a folder of pages.

use std::path::Path;

use feedwire::config;

use super::{ExtractArgs, ExtractFormat, Failure};

/// `feedwire extract`: one file or URL to standard output, or a folder to files.
pub async fn run(explicit: Option<&Path>, args: ExtractArgs) -> Result<u8, Failure> {
    use feedwire::extract;
    if let (Some(input), Some(output)) = (&args.dir, &args.out) {
        let (input, output) = (input.clone(), output.clone());
        let report = tokio::task::spawn_blocking(move || extract::extract_dir(&input, &output))
            .await
            .map_err(|e| Failure {
                code: 1,
                message: format!("extraction stopped: {e}"),
            })?
            .map_err(|e| Failure {
                code: 1,
                message: e.to_string(),
            })?;
        let secs = report.elapsed.as_secs_f64();
        eprintln!(
            "extracted {} pages in {secs:.2}s ({:.0} pages/s), {} failed",
            report.done,
            report.done as f64 / secs.max(1e-9),
            report.failed.len()
        );
        for f in &report.failed {
            eprintln!("  {}: {}", f.path.display(), f.reason);
        }
        return Ok(if report.failed.is_empty() { 0 } else { 1 });
    }
    let Some(target) = args.target else {
        return Err(Failure::usage("give a file or URL, or --dir IN --out OUT"));
    };
    let base = match &args.base_url {
        Some(b) => Some(
            url::Url::parse(b)
                .map_err(|e| Failure::usage(format!("invalid --base-url {b:?}: {e}")))?,
        ),
        None => None,
    };
    let (bytes, content_type, base) =
        if target.starts_with("http://") || target.starts_with("https://") {
            let url = url::Url::parse(&target)
                .map_err(|e| Failure::usage(format!("invalid URL {target:?}: {e}")))?;
            // The config's user agent, limits and address policy, when there is a config.
            let config = config::locate(explicit)
                .ok()
                .and_then(|p| config::load(&p).ok());
            // Without a config, the defaults (an empty config is valid).
            let config = config.unwrap_or_else(|| {
                config::parse("", Path::new("(defaults)"), &Default::default())
                    .expect("an empty config is valid")
            });
            let settings = feedwire::fetch::ClientSettings {
                // One page: one connection.
                max_connections: 1,
                per_host_connections: 1,
                ..feedwire::fetch::ClientSettings::of(&config)
            };
            let (timeout, max) = (config.article.timeout, config.article.max_page_size);
            let http = feedwire::fetch::HttpClient::new(&settings).map_err(|e| Failure {
                code: 1,
                message: e.to_string(),
            })?;
            let body = http
                .get_article(&url, timeout, max)
                .await
                .map_err(|e| Failure {
                    code: 1,
                    message: format!("cannot fetch {url}: {e}"),
                })?;
            (body.bytes, body.content_type, base.or(Some(body.url)))
        } else {
            let bytes = std::fs::read(&target).map_err(|e| Failure {
                code: 1,
                message: format!("cannot read {target}: {e}"),
            })?;
            (bytes, None, base)
        };
    let (html, encoding, rule) = extract::decode(&bytes, content_type.as_deref());
    let article = tokio::task::spawn_blocking(move || extract::extract(&html, base.as_ref()))
        .await
        .map_err(|e| Failure {
            code: 1,
            message: format!("extraction stopped: {e}"),
        })?;
    match args.format {
        ExtractFormat::Text => outln!("{}", article.text),
        ExtractFormat::Html => outln!("{}", article.html),
        ExtractFormat::Json => outln!(
            "{}",
            extract::article_json(&article, Some((encoding.name(), rule)))
        ),
    }
    Ok(0)
}
