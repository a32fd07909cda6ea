//! Builds the guests the tests and examples run, in the manner of wasmtime's
//! test-programs-artifacts: only port-host's tests and examples depend on
//! this crate, so the product's build never compiles a fixture.
//!
//! - `tests/escape-guest`: tries every way out of the sandbox.
//! - `examples/echo-server`, composed (wac) with the component port-host
//!   ships: a consumer that serves on the socket its reservation hands over.

use std::env;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, exit};

const TARGET: &str = "wasm32-wasip2";
/// The size-tuned profile in the workspace manifest.
const PROFILE: &str = "component";
/// The interface the echo server imports and the component exports.
const PORT: &str = "hbutils:network/port@0.3.0";
const SERVER: &str = "hbutils:echo/server@0.1.0";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("tests/guests lives in the workspace");
    let shipped = root.join("host-example/component/hbutils_port.wasm");
    for input in [
        Path::new("Cargo.lock"),
        Path::new("wit"),
        Path::new("tests/escape-guest"),
        Path::new("examples/echo-server"),
        &shipped,
    ] {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let built = build(root, &out_dir, &["escape-guest", "echo-server"]);

    let escape = built.join("escape_guest.wasm");
    println!("cargo:rustc-env=ESCAPE_GUEST_WASM={}", escape.display());

    let component = read(&shipped);
    let composed = compose(&component, &read(&built.join("echo_server.wasm")))
        .unwrap_or_else(|error| fail(&format!("composing the echo server: {}", chain(&*error))));
    let echo = out_dir.join("echo_server.wasm");
    fs::write(&echo, composed)
        .unwrap_or_else(|e| fail(&format!("writing {}: {e}", echo.display())));
    println!("cargo:rustc-env=ECHO_SERVER_WASM={}", echo.display());
}

/// Builds `packages` of the workspace at `root` for wasm and returns where
/// their artifacts are: `<dir>/<crate_name>.wasm`. The wasm build goes to one
/// folder beside the host's build output, shared by every host profile, so
/// that `cargo test`, `cargo clippy` and `cargo doc` reuse one guest build
/// (cargo's lock on that folder keeps two of them apart); what this script
/// makes of it goes to `out_dir`.
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

/// Plugs the component's `hbutils:network/port` export into the consumer's
/// import of it. What neither satisfies (WASI) stays an import of the result,
/// one import per name for both. The port interface is exported as well as the
/// server: the server's functions use its types (`candidates`, `error-code`),
/// and a component may only export what names types it exports or imports.
fn compose(provider: &[u8], consumer: &[u8]) -> Result<Vec<u8>, Box<dyn Error>> {
    use wac_graph::{CompositionGraph, EncodeOptions, types::Package};
    let mut graph = CompositionGraph::new();
    let provider = Package::from_bytes("hbutils:port", None, provider, graph.types_mut())?;
    let provider = graph.register_package(provider)?;
    let consumer = Package::from_bytes("hbutils:echo", None, consumer, graph.types_mut())?;
    let consumer = graph.register_package(consumer)?;
    let provider = graph.instantiate(provider);
    let port = graph.alias_instance_export(provider, PORT)?;
    graph.export(port, PORT)?;
    let consumer = graph.instantiate(consumer);
    graph.set_instantiation_argument(consumer, PORT, port)?;
    let server = graph.alias_instance_export(consumer, SERVER)?;
    graph.export(server, SERVER)?;
    Ok(graph.encode(EncodeOptions::default())?)
}

fn chain(error: &dyn Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| fail(&format!("reading {}: {e}", path.display())))
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1);
}
