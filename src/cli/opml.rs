//! `feedwire opml import|export`: subscription lists in and out of the config.

use std::path::{Path, PathBuf};

use feedwire::config;

use super::{Failure, OpmlCommand, load};

pub fn run(explicit: Option<&Path>, command: OpmlCommand) -> Result<u8, Failure> {
    use feedwire::opml;
    let (path, config) = load(explicit)?;
    let (file, write) = match command {
        OpmlCommand::Export { flat } => {
            out!("{}", opml::write(&owned(&config.feeds), flat));
            return Ok(0);
        }
        OpmlCommand::Import { file, write } => (file, write),
    };
    let bytes = std::fs::read(&file)
        .map_err(|e| Failure::usage(format!("cannot read OPML file {}: {e}", file.display())))?;
    let document = opml::parse_bytes(&bytes)
        .map_err(|e| Failure::usage(format!("cannot import {}: {e}", file.display())))?;
    let plan = opml::plan_import(&document, &owned(&config.feeds));
    for (feed, why) in &plan.invalid {
        eprintln!("feedwire: skipped {:?}: {why}", feed.title);
    }
    let summary = format!(
        "{} new, {} already configured, {} with an unusable URL, {} outlines without a feed URL",
        plan.new.len(),
        plan.already.len(),
        plan.invalid.len(),
        document.not_feeds
    );
    if !write {
        eprintln!("feedwire: {}: {summary}", file.display());
        out!("{}", opml::to_toml(&plan.new));
        return Ok(0);
    }
    if plan.new.is_empty() {
        outln!("nothing to add to {} ({summary})", path.display());
        return Ok(0);
    }
    let write_error =
        |e: std::io::Error| Failure::from(anyhow::anyhow!("cannot write {}: {e}", path.display()));
    let text = std::fs::read_to_string(&path).map_err(write_error)?;
    let newline = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let addition = format!(
        "{newline}\n# Imported from {}\n{}",
        file.display().to_string().replace(char::is_control, " "),
        opml::to_toml(&plan.new)
    );
    // Never leave a config that does not load: check the result before touching the file.
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    config::parse(&format!("{text}{addition}"), &path, &env).map_err(|e| {
        Failure::usage(format!(
            "not writing {}: with the imported feeds it would not load: {e}",
            path.display()
        ))
    })?;
    let mut backup = path.clone().into_os_string();
    backup.push(".bak");
    std::fs::copy(&path, &backup).map_err(write_error)?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, addition.as_bytes()))
        .map_err(write_error)?;
    outln!(
        "added {} feeds to {} ({summary}); the previous version is {}",
        plan.new.len(),
        path.display(),
        PathBuf::from(backup).display()
    );
    Ok(0)
}

/// The configured feeds as the OPML functions take them (a one-off copy for a command).
fn owned(feeds: &[std::sync::Arc<config::Feed>]) -> Vec<config::Feed> {
    feeds.iter().map(|f| (**f).clone()).collect()
}
