//! `feedwire preview`: one feed parsed, each entry shown as the daemon would emit it.

use std::path::Path;

use feedwire::config;
use feedwire::preview;

use super::{Failure, PreviewArgs, PreviewFormat};

/// The config (when there is one) is read only for the client's settings; the state
/// directory is not opened.
pub async fn run(explicit: Option<&Path>, args: PreviewArgs) -> Result<u8, Failure> {
    let config = config::locate(explicit)
        .ok()
        .and_then(|p| config::load(&p).ok());
    let settings = preview::Settings::from_config(config.as_ref());
    let shown = preview::preview(&args.target, &settings, args.extract)
        .await
        .map_err(|e| Failure::runtime(e.to_string()))?;
    match args.format {
        PreviewFormat::Text => out!("{}", preview::to_text(&shown)),
        PreviewFormat::Json => outln!("{}", preview::to_json(&shown)),
    }
    Ok(0)
}
