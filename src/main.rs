//! The `feedwire` command: parse the command line, run the command on a tokio runtime, and
//! turn errors into one readable message and an exit code (0 ok, 1 runtime failure, 2 usage
//! or config). The commands live in [`cli`].

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// Threads for blocking work, per core, and at least.
const BLOCKING_THREADS_PER_CORE: usize = 2;
const MIN_BLOCKING_THREADS: usize = 4;

/// glibc gives each thread that meets a locked arena a new one, up to 8 per core, and an
/// arena keeps what it once held: a burst of feeds parsed on the blocking threads left the
/// daemon ~10 MiB larger at 10,000 feeds. One arena per core (at least 2) keeps that down;
/// the threads doing CPU work are about as many as the cores anyway. `MALLOC_ARENA_MAX` in
/// the environment still wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn cap_allocator_arenas(cores: usize) {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets an allocator parameter; it is called before any other
    // thread exists, and a refused value (return 0) leaves glibc's default.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn cap_allocator_arenas(_cores: usize) {}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Blocking work is CPU work here (parsing feeds, cleaning pages): more threads than
    // cores only add memory (stacks, allocator arenas), not speed.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    cap_allocator_arenas(cores);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads((cores * BLOCKING_THREADS_PER_CORE).max(MIN_BLOCKING_THREADS))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("feedwire: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("feedwire: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
