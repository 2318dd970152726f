//! The `deckhand` binary: parse, run, exit code.

fn main() -> std::process::ExitCode {
    deckhand::cli::main()
}
