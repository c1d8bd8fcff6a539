//! The log sink: each event as one JSON line on standard output or appended to a file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use super::{DeliverFuture, Fault, Outgoing, Sink, SinkError, TransportKind};
use crate::config::LogPath;

/// Lines claimed from the outbox per round trip.
const LOG_BATCH: usize = 64;

pub struct LogSink {
    target: LogPath,
    /// The open file, for a file target; reopened by [`LogSink::reopen`].
    file: Mutex<Option<File>>,
}

impl LogSink {
    pub fn new(target: LogPath) -> Result<LogSink, std::io::Error> {
        let file = match &target {
            LogPath::Stdout => None,
            LogPath::File(p) => Some(open_append(p)?),
        };
        Ok(LogSink {
            target,
            file: Mutex::new(file),
        })
    }

    /// Reopens the file (after logrotate moved it).
    pub fn reopen(&self) -> Result<(), std::io::Error> {
        if let LogPath::File(p) = &self.target {
            let fresh = open_append(p)?;
            let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
            *guard = Some(fresh);
        }
        Ok(())
    }

    fn write_line(&self, body: &str) -> Result<(), std::io::Error> {
        let mut line = Vec::with_capacity(body.len() + 1);
        line.extend_from_slice(body.as_bytes());
        line.push(b'\n');
        match &self.target {
            LogPath::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&line)?;
                out.flush()
            }
            LogPath::File(p) => {
                let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
                if guard.is_none() {
                    *guard = Some(open_append(p)?);
                }
                match guard.as_mut() {
                    Some(f) => {
                        f.write_all(&line)?;
                        f.flush()
                    }
                    None => Err(std::io::Error::other("log file is not open")),
                }
            }
        }
    }

    fn describe(&self) -> String {
        match &self.target {
            LogPath::Stdout => "standard output".to_string(),
            LogPath::File(p) => p.display().to_string(),
        }
    }
}

fn open_append(path: &Path) -> Result<File, std::io::Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(PathBuf::from(path))
}

impl Sink for LogSink {
    fn deliver<'a>(&'a self, event: Outgoing<'a>) -> DeliverFuture<'a> {
        Box::pin(async move {
            // A write error (full disk, closed pipe) may pass: the row is kept and retried.
            let started = Instant::now();
            self.write_line(event.body).map_err(|e| SinkError {
                fault: Fault::Transport(TransportKind::Io),
                retry_after: None,
                elapsed: started.elapsed(),
                message: format!("cannot write to {}: {e}", self.describe()),
            })
        })
    }

    /// Lines are written one at a time, in order; many per round trip to the store.
    fn batch_size(&self) -> usize {
        LOG_BATCH
    }
}
