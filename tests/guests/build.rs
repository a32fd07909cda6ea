//! Builds the guests the tests and examples run, in the manner of wasmtime's
//! test-programs-artifacts: only port-host's tests and examples depend on
//! this crate, so the product's build never compiles a fixture.
//!
//! - `tests/escape-guest`: tries every way out of the sandbox.
//! - `examples/echo-server`: a consumer that serves on the socket its
//!   reservation hands over (the tests compose it with the shipped component).
//!
//! It has no build-dependencies, so cargo runs it (and its wasm build, most
//! of the test build's critical path) as early as it can.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, exit};

const TARGET: &str = "wasm32-wasip2";
/// The size-tuned profile in the workspace manifest.
const PROFILE: &str = "component";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("tests/guests lives in the workspace");
    for input in [
        "Cargo.lock",
        "wit",
        "tests/escape-guest",
        "examples/echo-server",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let built = build(root, &out_dir, &["escape-guest", "echo-server"]);
    for (var, file) in [
        ("ESCAPE_GUEST_WASM", "escape_guest.wasm"),
        ("ECHO_SERVER_WASM", "echo_server.wasm"),
    ] {
        println!("cargo:rustc-env={var}={}", built.join(file).display());
    }
}

/// Builds `packages` of the workspace at `root` for wasm and returns where
/// their artifacts are: `<dir>/<crate_name>.wasm`. The wasm build goes to one
/// folder beside the host's build output, shared by every host profile, so
/// that `cargo test`, `cargo clippy` and `cargo doc` reuse one guest build
/// (cargo's lock on that folder keeps two of them apart).
fn build(root: &Path, out_dir: &Path, packages: &[&str]) -> PathBuf {
    // OUT_DIR is <target-dir>/[<triple>/]<profile>/build/<pkg>/out; cargo
    // marks the target directory itself with CACHEDIR.TAG.
    let target_dir = out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .unwrap_or(out_dir)
        .join("guests");
    let mut cargo = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(root)
        .args(["build", "--quiet", "--target", TARGET, "--profile", PROFILE])
        // The guests' proc macros (wit-bindgen) and build scripts run once
        // per build: unoptimised they compile in a quarter of the time
        // (measured: 20 s against 75 s for both guests); the guests behave
        // the same (the bytes differ a little, which no test depends on).
        .args(["--config", "profile.component.build-override.opt-level=0"])
        .args([
            "--config",
            "profile.component.build-override.codegen-units=256",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    for package in packages {
        cargo.args(["-p", package]);
    }
    // The outer build's flags and wrappers are for the host (clippy's driver,
    // native CPU flags); the guests build for wasm with their own settings.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        cargo.env_remove(var);
    }
    match cargo.status() {
        Ok(status) if status.success() => {}
        Ok(status) => fail(&format!(
            "building the wasm32-wasip2 guests failed ({status})"
        )),
        Err(error) => fail(&format!("cargo could not start: {error}")),
    }
    target_dir.join(TARGET).join(PROFILE)
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1);
}
