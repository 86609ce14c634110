//! Running one test in a process of its own, for the tests that measure
//! the peak memory of the postie they start. In the shared test binary
//! both measures would count other tests' memory: Linux starts a child's
//! peak resident set (`ru_maxrss`) at the spawning process's peak, taken
//! over when the child execs, and `RUSAGE_CHILDREN` covers every child the
//! process has reaped.

use std::process::Command;

/// Set in the process that runs the test alone.
const ALONE: &str = "POSTIE_TEST_ALONE";

/// Runs the calling test again, alone in a new process of the test binary,
/// and returns true: the caller returns at once, having passed if that
/// run passed (this panics with its output otherwise). In that process it
/// returns false, and the test goes on. Call it before starting anything.
pub fn rerun_alone() -> bool {
    if std::env::var_os(ALONE).is_some() {
        return false;
    }
    // libtest names each test's thread after the test.
    let current = std::thread::current();
    let test = current.name().expect("a test thread, named after its test");
    let binary = std::env::current_exe().expect("the test binary");
    let output = Command::new(binary)
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(ALONE, "1")
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprint!("{stderr}");
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{test}, run alone, failed: {}\n{stdout}{stderr}",
        output.status
    );
    true
}
