//! Builds workspace crates as `wasm32-wasip2` components from a build script:
//! shared by this package's build script (the product's component) and the
//! test guests' (fixtures that only the tests use).

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, exit};

pub const TARGET: &str = "wasm32-wasip2";
/// The size-tuned profile in the workspace manifest; hosts keep `release`.
pub const PROFILE: &str = "component";

/// Builds `packages` of the workspace at `root` and returns where their
/// artifacts are: `<dir>/<crate_name>.wasm`.
pub fn build(root: &Path, packages: &[&str]) -> PathBuf {
    ensure_target_installed();
    let target_dir = guest_target_dir();
    let mut cargo = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(root)
        .args(["build", "--target", TARGET, "--profile", PROFILE])
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
    run(&mut cargo, "building the wasm32-wasip2 guests");
    target_dir.join(TARGET).join(PROFILE)
}

/// The pinned toolchain lists the wasm target, but rustup only installs listed
/// targets with the toolchain itself: a machine that already had 1.95.0 lacks it.
fn ensure_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(output) = Command::new(&rustc).args(["--print", "sysroot"]).output() else {
        fail("cannot run rustc to find its sysroot");
    };
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .is_dir()
    {
        return;
    }
    println!(
        "cargo:warning=installing the {TARGET} target with rustup (listed in rust-toolchain.toml)"
    );
    run(
        Command::new("rustup").args(["target", "add", TARGET]),
        "rustup target add",
    );
}

/// A folder beside the host's own build output, shared by every host profile
/// so that `cargo build`, `cargo test` and `cargo clippy` reuse one guest build.
pub fn guest_target_dir() -> PathBuf {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    // OUT_DIR is <target-dir>/[<triple>/]<profile>/build/<pkg>/out; cargo marks
    // the target directory itself with CACHEDIR.TAG.
    let target_root = out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .unwrap_or(&out_dir);
    target_root.join("guests")
}

fn run(command: &mut Command, what: &str) {
    match command.status() {
        Ok(status) if status.success() => {}
        Ok(status) => fail(&format!("{what} failed ({status})")),
        Err(error) => fail(&format!("{what} could not start: {error}")),
    }
}

pub fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1);
}
