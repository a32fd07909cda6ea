//! Paths of the guest components the tests and examples run, built by this
//! crate's build script.

/// `tests/escape-guest`: tries every way out of the sandbox, and exports
/// `hbutils:network/port` with hostile behaviour so that the CLI can run it
/// with `--component`.
pub const ESCAPE_GUEST: &str = env!("ESCAPE_GUEST_WASM");

/// `examples/echo-server`: it imports `hbutils:network/port`, reserves a
/// port, takes the listening socket and echoes on it.
pub const ECHO_SERVER: &str = env!("ECHO_SERVER_WASM");
