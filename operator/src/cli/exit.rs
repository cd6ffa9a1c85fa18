//! What `check` and `posture` share at their edge: exit codes, how input that was not read is
//! reported, and the entry that turns every failure into exit 2.

use std::fmt::Display;
use std::io::{self, Write};

use jiff::Timestamp;

use super::escape::printable;
use crate::manifests::Loaded;

/// Exit code: findings at or above `--fail-on`.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code: the result cannot be trusted (input not read, no object, a bad flag).
pub const EXIT_UNUSABLE: u8 = 2;

/// Writes to `err` what was not read (as errors, or as skipped with `--skip-unreadable`) and
/// the loader's notes.
pub fn write_loading(
    err: &mut dyn Write,
    loaded: &Loaded,
    skip_unreadable: bool,
) -> io::Result<()> {
    let verb = if skip_unreadable { "skipped" } else { "error" };
    for e in &loaded.errors {
        writeln!(err, "{verb}: {}", printable(&e.to_string()))?;
    }
    for n in &loaded.notes {
        writeln!(err, "note: {}", printable(&n.to_string()))?;
    }
    Ok(())
}

/// Writes why the result cannot be trusted.
pub fn write_unusable(err: &mut dyn Write, why: &str) -> io::Result<()> {
    writeln!(err, "error: {} (exit {EXIT_UNUSABLE})", printable(why))
}

/// The binary's entry for a command: real stdout, stderr and clock; every failure is exit 2.
pub fn entry<E: Display>(
    run: impl FnOnce(Timestamp, &mut dyn Write, &mut dyn Write) -> Result<u8, E>,
) -> std::process::ExitCode {
    let code = match run(
        Timestamp::now(),
        &mut io::stdout().lock(),
        &mut io::stderr().lock(),
    ) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", printable(&e.to_string()));
            EXIT_UNUSABLE
        }
    };
    std::process::ExitCode::from(code)
}
