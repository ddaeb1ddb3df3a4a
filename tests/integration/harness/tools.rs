//! External tools and files: openssl as an independent checker, temporary files for it, and
//! what a test does when a tool it needs is missing (says so on the real stderr, or fails under
//! `DBCERT_REQUIRE_TOOLS=1`, as CI runs).

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

/// Set to `1` (CI does) to make a missing tool or database fail the tests that need it
/// instead of skipping them.
pub const REQUIRE_VAR: &str = "DBCERT_REQUIRE_TOOLS";

/// Whether a missing tool fails the test ([`REQUIRE_VAR`] is `1`) rather than skipping it.
pub fn tools_required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1")
}

/// Skips the calling test because `what` is unavailable (`why`): writes `<test>: skipped: …` to
/// the process's stderr, which libtest does not capture (it captures only the print macros), so
/// the skip shows in `cargo test` output. Panics instead when [`tools_required`]. Returns `true`,
/// for `if missing && skip_missing_tool(..) { return; }`.
#[track_caller]
pub fn skip_missing_tool(what: &str, why: &str) -> bool {
    if tools_required() {
        panic!("{what} is required ({REQUIRE_VAR}=1) but unavailable: {why}");
    }
    // libtest runs each test on a thread named after it.
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(
        std::io::stderr(),
        "{test}: skipped: {what} unavailable ({why})"
    );
    true
}

/// Runs openssl with arguments, returning (success, stdout+stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Writes a file into a directory and returns its path as a string.
pub fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_string_lossy().into_owned()
}
