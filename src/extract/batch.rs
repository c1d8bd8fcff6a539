//! A folder of saved pages to clean text and JSON, on every core.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Pages larger than this are reported as failed instead of parsed (bounded memory per page).
pub const MAX_PAGE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("cannot read input folder {path}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create output folder {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read page {path}")]
    ReadPage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("page {path} is larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A page the batch could not turn into output, and why.
#[derive(Debug)]
pub struct FailedPage {
    pub path: PathBuf,
    pub reason: String,
}

/// What a batch did.
#[derive(Debug)]
pub struct BatchReport {
    /// Pages whose `.txt` and `.json` were written.
    pub done: usize,
    pub failed: Vec<FailedPage>,
    pub elapsed: Duration,
}

/// For every `*.html` in `input`, writes `output/<stem>.txt` (the clean text) and
/// `output/<stem>.json` ([`super::article_json`]). Pages are spread over all cores; a page
/// that cannot be read or written is listed in the report and the others go on.
pub fn extract_dir(input: &Path, output: &Path) -> Result<BatchReport, ExtractError> {
    let start = Instant::now();
    let entries = std::fs::read_dir(input).map_err(|source| ExtractError::ReadDir {
        path: input.to_path_buf(),
        source,
    })?;
    let mut pages: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ExtractError::ReadDir {
            path: input.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("html"))
            && path.is_file()
        {
            pages.push(path);
        }
    }
    pages.sort();
    std::fs::create_dir_all(output).map_err(|source| ExtractError::CreateDir {
        path: output.to_path_buf(),
        source,
    })?;

    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(pages.len().max(1));
    // Work is handed out one page at a time so a few huge pages do not idle the other cores.
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = pages.get(i) else { break };
                    match one_page(path, output) {
                        Ok(()) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            let reason = error_chain(&e);
                            if let Ok(mut f) = failed.lock() {
                                f.push(FailedPage {
                                    path: path.clone(),
                                    reason,
                                });
                            }
                        }
                    }
                }
            });
        }
    });
    let mut failed = failed.into_inner().unwrap_or_else(|e| e.into_inner());
    failed.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(BatchReport {
        done: done.into_inner(),
        failed,
        elapsed: start.elapsed(),
    })
}

fn one_page(path: &Path, output: &Path) -> Result<(), ExtractError> {
    let read_err = |source| ExtractError::ReadPage {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > MAX_PAGE_BYTES {
        return Err(ExtractError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_PAGE_BYTES,
        });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    let (html, encoding, rule) = super::decode(&bytes, None);
    drop(bytes);
    let article = super::extract(&html, None);
    let stem = path.file_stem().unwrap_or_default();
    let write = |ext: &str, body: &str| {
        let mut target = output.join(stem);
        target.set_extension(ext);
        std::fs::write(&target, body).map_err(|source| ExtractError::Write {
            path: target,
            source,
        })
    };
    write("txt", &article.text)?;
    write(
        "json",
        &super::article_json(&article, Some((encoding.name(), rule))),
    )
}

/// The error and its causes as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
