//! The `feedwire` command: parse the command line, run the command on a tokio runtime, and
//! turn errors into one readable message and an exit code (0 ok, 1 runtime failure, 2 usage
//! or config). The commands live in [`cli`].

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// Threads for blocking work, per core, and at least.
const BLOCKING_THREADS_PER_CORE: usize = 2;
const MIN_BLOCKING_THREADS: usize = 4;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Blocking work is CPU work here (parsing feeds, cleaning pages): more threads than
    // cores only add memory (stacks, allocator arenas), not speed.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
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
