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
//!
//! The wasm32-wasip2 target is named in rust-toolchain.toml, but rustup only
//! adds it when it installs the toolchain; a toolchain that was already there
//! (and `RUSTUP_AUTO_INSTALL=0`) leaves it out. So a missing target is added
//! here with rustup, and where that cannot be done the build stops with one
//! line that says what to run.

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
    ensure_target(root);
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let built = build(root, &out_dir, &["escape-guest", "echo-server"]);
    // The paths the tests use are in OUT_DIR, which cargo owns: removing the
    // shared wasm build folder cannot leave them pointing at nothing.
    for (var, file) in [
        ("ESCAPE_GUEST_WASM", "escape_guest.wasm"),
        ("ECHO_SERVER_WASM", "echo_server.wasm"),
    ] {
        let kept = out_dir.join(file);
        if let Err(error) = std::fs::copy(built.join(file), &kept) {
            fail(&format!("copying {file} into OUT_DIR failed: {error}"));
        }
        println!("cargo:rustc-env={var}={}", kept.display());
    }
}

/// Makes sure the toolchain has the wasm target's standard library, adding
/// it with rustup when it is missing.
fn ensure_target(root: &Path) {
    let libdir = target_libdir(root);
    // Removing the target must bring this script back to add it again;
    // cargo reruns a build script whose watched path has gone.
    println!("cargo:rerun-if-changed={}", libdir.display());
    if has_core(&libdir) {
        return;
    }
    let mut rustup = Command::new("rustup");
    rustup.current_dir(root).args(["target", "add", TARGET]);
    // The rustup proxy names the toolchain it chose (rust-toolchain.toml's).
    if let Some(toolchain) = env::var_os("RUSTUP_TOOLCHAIN") {
        rustup.arg("--toolchain").arg(toolchain);
    }
    let added = rustup.status().is_ok_and(|status| status.success());
    if !added || !has_core(&libdir) {
        fail(&format!(
            "the {TARGET} target is not installed and rustup could not add it: run `rustup target add {TARGET}`"
        ));
    }
    println!("cargo:warning=added the {TARGET} target with rustup (the test guests build for it)");
}

/// Where this toolchain keeps the wasm target's libraries, installed or not.
fn target_libdir(root: &Path) -> PathBuf {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let printed = Command::new(rustc)
        .current_dir(root)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output();
    match printed {
        Ok(output) if output.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        }
        Ok(output) => fail(&format!(
            "rustc does not know the {TARGET} target: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => fail(&format!("rustc could not start: {error}")),
    }
}

fn has_core(libdir: &Path) -> bool {
    std::fs::read_dir(libdir).is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with("libcore-") && name.ends_with(".rlib"))
        })
    })
}

/// Builds `packages` of the workspace at `root` for wasm and returns where
/// their artifacts are: `<dir>/<crate_name>.wasm`. The wasm build goes to one
/// folder beside the host's build output, shared by every host profile, so
/// that `cargo test`, `cargo clippy` and `cargo doc` reuse one guest build
/// (cargo's lock on that folder keeps two of them apart), and so do the
/// builds for every `--target`: the guests are wasm whatever the host is.
fn build(root: &Path, out_dir: &Path, packages: &[&str]) -> PathBuf {
    // OUT_DIR is <target-dir>/[<triple>/]<profile>/build/<pkg>/out; cargo
    // marks the target directory with CACHEDIR.TAG, and with `--target` its
    // <triple> folder too.
    let tagged = out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .unwrap_or(out_dir);
    let triple = env::var_os("TARGET");
    let target_dir = match tagged.parent() {
        Some(parent)
            if tagged.file_name() == triple.as_deref() && parent.join("CACHEDIR.TAG").is_file() =>
        {
            parent
        }
        _ => tagged,
    }
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
