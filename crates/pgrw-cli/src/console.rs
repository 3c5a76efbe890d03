//! One terminal shared by `pgrw up`'s live status block (stdout, rewritten in
//! place) and log lines (stderr). A log line written below the block would be
//! half overwritten by the block's next rewrite: so the block is cleared first,
//! the line takes its place, and the next refresh draws the block below it.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, MutexGuard};

/// How many lines of the live block are on the terminal now, below the cursor's
/// line; 0 when none (not a terminal, not drawn yet, or cleared for a log line).
static BLOCK_ON_SCREEN: Mutex<usize> = Mutex::new(0);

/// The block's line count, held while the block is written.
pub fn block_on_screen() -> MutexGuard<'static, usize> {
    BLOCK_ON_SCREEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// ANSI: move the cursor up `lines` lines (`\x1b[{n}A`), then clear to the
/// end of the screen (`\x1b[J`).
pub fn rewind(lines: usize) -> String {
    format!("\x1b[{lines}A\x1b[J")
}

/// Runs `write_line` (a log line to stderr) with the live block, if one is on
/// the same terminal, cleared off it first.
pub fn before_log_line<T>(write_line: impl FnOnce() -> T) -> T {
    let mut on_screen = block_on_screen();
    if *on_screen > 0 && std::io::stderr().is_terminal() {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(rewind(*on_screen).as_bytes());
        let _ = stdout.flush();
        *on_screen = 0;
    }
    write_line()
}
