//! Writing to stdout and stderr without panicking when the reader is gone.
//!
//! Rust ignores SIGPIPE, so writing to a pipe whose reader has closed
//! (`deckhand jobs list | head -1`) fails with `EPIPE`, and `println!`
//! panics on that. Restoring SIGPIPE's default action would make the kernel
//! kill the process instead, and not only on stdout: a write to a Docker
//! socket the daemon has just closed raises it too (unix sockets are written
//! without `MSG_NOSIGNAL`), which would kill a process in the middle of a
//! job. So SIGPIPE stays ignored and the CLI prints through [`outln!`],
//! [`out!`] and [`errln!`]:
//!
//! - once stdout's reader is gone, later output is dropped and the command
//!   goes on to its normal end (a job keeps running to its end, a listing
//!   stops costing anything), with its own exit code;
//! - any other failure to write stdout (a full disk under `> file`) stops
//!   the output too, and [`finish`] reports it and makes the exit code a
//!   failure: output that was lost is never a success;
//! - stderr that cannot be written is ignored: there is nowhere to say so.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// `println!` that never panics; see the module docs.
macro_rules! outln {
    () => {
        $crate::cli::out::stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::out::stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that never panics; see the module docs.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out::stdout(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics; see the module docs.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::out::stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Whether stdout takes no more output (its reader left, or it failed).
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// The first failure to write stdout other than its reader leaving.
static STDOUT_FAILED: OnceLock<String> = OnceLock::new();

fn note(e: io::Error) {
    STDOUT_GONE.store(true, Ordering::Relaxed);
    if e.kind() != io::ErrorKind::BrokenPipe {
        let _ = STDOUT_FAILED.set(e.to_string());
    }
}

/// Write to stdout, unless it is gone.
pub fn stdout(args: fmt::Arguments<'_>) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = io::stdout().lock().write_fmt(args) {
        note(e);
    }
}

/// Write to stderr, ignoring failure.
pub fn stderr(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// Whether stdout's reader has gone (or writing it failed).
pub fn stdout_gone() -> bool {
    STDOUT_GONE.load(Ordering::Relaxed)
}

/// Flush stdout and settle the exit code: `code`, unless output was lost
/// for another reason than the reader leaving.
pub fn finish(code: ExitCode) -> ExitCode {
    if !STDOUT_GONE.load(Ordering::Relaxed)
        && let Err(e) = io::stdout().lock().flush()
    {
        note(e);
    }
    match STDOUT_FAILED.get() {
        Some(e) => {
            errln!("error: cannot write the output: {e}");
            ExitCode::FAILURE
        }
        None => code,
    }
}
