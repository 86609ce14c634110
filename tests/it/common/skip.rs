//! The one guard for tests that need what a developer's machine may lack
//! (a tool from Debian, root, a mount): there they pass after saying what
//! they skipped; under CI (`.ci/run` sets `CI`), where everything must be
//! there, they fail instead of passing unseen.

use std::cell::Cell;

thread_local! {
    /// The test on this thread skipped (libtest runs each test on a
    /// thread of its own): its servers were not meant to be reached.
    static SKIPPED: Cell<bool> = const { Cell::new(false) };
}

/// Says why the test cannot run here, for the caller to return at once;
/// panics (fails the test) with `why` when the `CI` variable is set.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must be able to run this test, but {why}"
    );
    eprintln!("skipped: {why}");
    SKIPPED.with(|skipped| skipped.set(true));
}

/// Whether the test on this thread called [`skip`].
pub(super) fn skipped() -> bool {
    SKIPPED.with(Cell::get)
}

/// Whether `tool` runs (as `tool --version`); when it does not, [`skip`]s
/// naming the Debian `package` that has it.
pub fn require_tool(tool: &str, package: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        skip(&format!(
            "{tool} is not installed (apt-get install {package})"
        ));
    }
    found
}
