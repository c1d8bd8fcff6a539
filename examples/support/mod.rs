//! What the load and scale examples share: finding the daemon's release binary and reading
//! a process's CPU time.

use std::path::{Path, PathBuf};

/// The release binary of the daemon, next to the example's own directory.
pub fn daemon_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    // target/release/examples/NAME -> target/release/feedwire
    let candidate = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("feedwire"));
    match candidate {
        Some(p) if p.is_file() => Ok(p),
        _ => Err(format!(
            "the daemon binary is missing next to {}; run `cargo build --release` first",
            exe.display()
        )),
    }
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}
