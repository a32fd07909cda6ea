//! `cargo xtask component [--check] [--out FILE]`: builds the `hbutils-port`
//! component for `wasm32-wasip2` the way it ships inside `port-host`.
//! `cargo xtask dist`: the release folder (see `dist.rs`).
//!
//! port-host carries the built component as a file, as wasmtime's
//! `wasi-preview1-component-adapter-provider` carries its adapters, so that a
//! crate depending on port-host builds with no wasm toolchain and no copy of
//! this workspace. That is only honest while the file is exactly what the
//! source builds, so the build here is reproducible: the paths rustc would
//! embed (panic locations name source files) are remapped to fixed prefixes,
//! and `--check` rebuilds and compares byte for byte, which CI does.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod dist;

const TARGET: &str = "wasm32-wasip2";
/// The size-tuned profile in the workspace manifest.
const PROFILE: &str = "component";
/// Where port-host's package keeps the component it embeds.
const SHIPPED: &str = "host-example/component/hbutils_port.wasm";

fn main() -> ExitCode {
    match run(env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let usage = "usage: cargo xtask component [--check] [--out FILE] | cargo xtask dist [--out DIR] [--only PART...]";
    let mut args = args.into_iter();
    match args.next().as_deref() {
        Some("component") => {}
        Some("dist") => return dist::run(&workspace_root()?, args),
        _ => return Err(usage.into()),
    }
    let (mut check, mut out) = (false, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--out" => out = Some(PathBuf::from(args.next().ok_or(usage)?)),
            other => return Err(format!("unknown argument '{other}'; {usage}")),
        }
    }
    let root = workspace_root()?;
    let built = strip_component_names(&build(&root)?)?;
    let shipped = root.join(SHIPPED);
    if check {
        let committed =
            fs::read(&shipped).map_err(|e| format!("reading {}: {e}", shipped.display()))?;
        if committed != built {
            return Err(format!(
                "{SHIPPED} ({} bytes) is not what src/ builds ({} bytes): run `cargo xtask component` and commit it",
                committed.len(),
                built.len()
            ));
        }
        println!("{SHIPPED} is what src/ builds ({} bytes)", built.len());
        return Ok(());
    }
    let out = out.unwrap_or(shipped);
    fs::write(&out, &built).map_err(|e| format!("writing {}: {e}", out.display()))?;
    println!("{} ({} bytes)", out.display(), built.len());
    Ok(())
}

fn workspace_root() -> Result<PathBuf, String> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "xtask lives in the workspace".into())
}

/// Builds the component crate and returns its bytes.
fn build(root: &Path) -> Result<Vec<u8>, String> {
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    // Sources of this workspace and of registry crates are the only paths
    // that differ between machines; std's are already /rustc/<commit>.
    let flags = [
        format!("--remap-path-prefix={}=/hbutils-port", root.display()),
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
    ]
    .join("\x1f");
    // The test guests' folder and build-override settings (tests/guests/
    // build.rs): the proc macros and build scripts, which run on the host and
    // leave no trace in the component's bytes, are then compiled once for
    // both builds, unoptimised, instead of twice.
    let target_dir = root.join("target").join("guests");
    let status = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(root)
        .args(["build", "--quiet", "--locked", "-p", "hbutils-port"])
        .args(["--target", TARGET, "--profile", PROFILE])
        .args(["--config", "profile.component.build-override.opt-level=0"])
        .args([
            "--config",
            "profile.component.build-override.codegen-units=256",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // Flags of an outer build (a wrapper, native CPU flags) are not the
        // component's; its own are the remaps alone.
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET")
        .env("CARGO_ENCODED_RUSTFLAGS", flags)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building the component failed ({status})"));
    }
    let wasm = target_dir
        .join(TARGET)
        .join(PROFILE)
        .join("hbutils_port.wasm");
    fs::read(&wasm).map_err(|e| format!("reading {}: {e}", wasm.display()))
}

/// `strip = true` strips the core module, but wasm-component-ld still writes
/// a top-level `component-name` section, a twelfth of the component; nothing
/// reads it at run time. Every other section is copied byte for byte.
fn strip_component_names(wasm: &[u8]) -> Result<Vec<u8>, String> {
    use wasmparser::{Chunk, Parser, Payload};
    let mut stripped = Vec::with_capacity(wasm.len());
    let mut parser = Parser::new(0);
    let mut rest = wasm;
    loop {
        let (consumed, payload) = match parser.parse(rest, true) {
            Ok(Chunk::Parsed { consumed, payload }) => (consumed, payload),
            Ok(Chunk::NeedMoreData(_)) => return Err("the built component is truncated".into()),
            Err(error) => return Err(format!("the built component is not wasm: {error}")),
        };
        let (section, after) = rest.split_at(consumed);
        rest = after;
        match payload {
            Payload::End(_) => return Ok(stripped),
            // Nested modules and components are copied whole: the parser
            // hands over only their header and steps past the body itself.
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                let body = unchecked_range.end - unchecked_range.start;
                stripped.extend_from_slice(section);
                stripped.extend_from_slice(&rest[..body]);
                rest = &rest[body..];
            }
            Payload::CustomSection(custom) if custom.name() == "component-name" => {}
            _ => stripped.extend_from_slice(section),
        }
    }
}
