//! The pure-Rust core's tests (`core::tests`), in a test binary of their
//! own: the extension's own test build would link libpython (pyo3 links it
//! outside maturin), which a test binary cannot count on finding at run
//! time. The core names no pyo3 type, so this binary links none.

// The Python layer uses what these tests do not.
#[allow(dead_code)]
#[path = "core.rs"]
mod core;
#[allow(dead_code)]
#[cfg(unix)]
#[path = "fd.rs"]
mod fd;
