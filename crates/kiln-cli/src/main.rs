//! `kiln`: run open-weight LLMs locally. Each subcommand parses its arguments
//! and calls one library function.

mod args;
mod commands;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // candle asks for its thread count on every matmul and, without this
    // variable, recomputes it by reading /proc/cpuinfo each time (~8% of a
    // decode step in a profile). Set it once, before any thread starts.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    // Keep freed buffers for reuse instead of faulting fresh pages in for
    // every layer (a quarter of an F16 prompt's time otherwise).
    kiln_models::allocator::keep_freed_memory();
    let cli = args::Cli::parse();
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // `kiln … | head` closing the pipe early is not a failure.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
