//! The one clock every component reads. In a build with the cargo feature `test-clock`
//! (tests only: never the release build or the image), `now()` adds an offset in seconds
//! read from the file named by `SAMSKAB_TEST_CLOCK_FILE`, so a test harness can jump time
//! for running processes by writing that file ([`TestClockFile`]).

use chrono::{DateTime, Utc};

/// The variable naming the offset file of a `test-clock` build.
pub const TEST_CLOCK_VAR: &str = "SAMSKAB_TEST_CLOCK_FILE";

/// Now, on the system's clock (plus the test offset in a `test-clock` build).
pub fn now() -> DateTime<Utc> {
    let real = Utc::now();
    #[cfg(feature = "test-clock")]
    {
        real + test_offset()
    }
    #[cfg(not(feature = "test-clock"))]
    {
        real
    }
}

/// Whether this build reads a test offset (logged at start so that no one mistakes such a
/// build for a production one).
pub const fn is_test_clock() -> bool {
    cfg!(feature = "test-clock")
}

/// The offset file of a `test-clock` build: `SAMSKAB_TEST_CLOCK_FILE`, or the one a test
/// process named with [`use_test_file`].
#[cfg(feature = "test-clock")]
static TEST_FILE: std::sync::RwLock<Option<std::path::PathBuf>> = std::sync::RwLock::new(None);

/// Makes this process read its offset from `path` (a test running the system in-process,
/// where setting an environment variable under running threads is unsound). No effect in
/// a build without `test-clock`.
pub fn use_test_file(path: &std::path::Path) {
    #[cfg(feature = "test-clock")]
    if let Ok(mut f) = TEST_FILE.write() {
        *f = Some(path.to_owned());
    }
    #[cfg(not(feature = "test-clock"))]
    let _ = path;
}

#[cfg(feature = "test-clock")]
fn test_offset() -> chrono::Duration {
    let named = TEST_FILE.read().ok().and_then(|f| f.clone());
    let Some(path) = named.or_else(|| std::env::var_os(TEST_CLOCK_VAR).map(Into::into)) else {
        return chrono::Duration::zero();
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(chrono::Duration::try_seconds)
        .unwrap_or_else(chrono::Duration::zero)
}

/// The offset file a test harness writes to move a `test-clock` build's time.
#[derive(Debug, Clone)]
pub struct TestClockFile {
    path: std::path::PathBuf,
}

impl TestClockFile {
    /// An offset file at `path`, starting at zero.
    pub fn create(path: impl Into<std::path::PathBuf>) -> std::io::Result<Self> {
        let f = TestClockFile { path: path.into() };
        f.set_offset_seconds(0)?;
        Ok(f)
    }

    /// Where it is (the value for [`TEST_CLOCK_VAR`]).
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Moves the clock so that it reads `at` now (the offset is whole seconds).
    pub fn jump_to(&self, at: DateTime<Utc>) -> std::io::Result<()> {
        self.set_offset_seconds((at - Utc::now()).num_seconds())
    }

    /// Sets the offset from the system's clock. Written to a temporary file and renamed,
    /// so a reader never sees a half-written number.
    pub fn set_offset_seconds(&self, seconds: i64) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, seconds.to_string())?;
        std::fs::rename(tmp, &self.path)
    }
}

/// Warns, once per process, when this build's clock can be moved: such a build is for
/// tests only and must never serve a chapter.
pub fn warn_if_movable() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if is_test_clock() {
        ONCE.call_once(|| {
            tracing::warn!(
                variable = TEST_CLOCK_VAR,
                "built with the test clock (cargo feature test-clock): not for production"
            )
        });
    }
}
