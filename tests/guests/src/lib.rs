//! Paths of the test-only guest components, built by this crate's build script.

/// `tests/escape-guest`: tries every way out of the sandbox, and exports
/// `hbutils:network/port` with hostile behaviour so that the CLI can run it
/// with `--component`.
pub const ESCAPE_GUEST: &str = env!("ESCAPE_GUEST_WASM");
