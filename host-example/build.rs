//! Builds the workspace's guest components for `wasm32-wasip2` so that
//! `port-host` can embed the real component and the tests can load the
//! adversarial guest, with no step beyond `cargo build`; composes the
//! echo-server example with the component (wac), so that `port-host
//! serve-echo` runs a consumer whose only imports are WASI; then compiles both
//! to native code, so that `port-host` starts without Cranelift.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, exit};

#[path = "src/engine_config.rs"]
mod engine_config;

const TARGET: &str = "wasm32-wasip2";
/// The size-tuned profile in the workspace manifest; the host keeps `release`.
const PROFILE: &str = "component";
/// (package, artifact, environment variable naming its path)
const GUESTS: [(&str, &str, &str); 3] = [
    ("hbutils-port", "hbutils_port.wasm", "PORT_COMPONENT_WASM"),
    ("echo-server", "echo_server.wasm", "ECHO_COMPONENT_WASM"),
    ("escape-guest", "escape_guest.wasm", "ESCAPE_GUEST_WASM"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("host-example lives in the workspace");
    for input in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "src",
        "wit",
        "tests/escape-guest",
        "examples/echo-server",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }

    ensure_target_installed();

    let target_dir = guest_target_dir();
    let mut cargo = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(root)
        .args([
            "build",
            "--target",
            TARGET,
            "--profile",
            PROFILE,
            "--target-dir",
        ])
        .arg(&target_dir);
    for (package, _, _) in GUESTS {
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

    let built = |artifact: &str| target_dir.join(TARGET).join(PROFILE).join(artifact);
    let (escape, escape_var) = (GUESTS[2].1, GUESTS[2].2);
    println!("cargo:rustc-env={escape_var}={}", built(escape).display());

    // The component as shipped: without its debug names (see below).
    let component = strip_component_names(&built(GUESTS[0].1));
    let echo = compose(&component, &strip_component_names(&built(GUESTS[1].1)));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    for ((_, artifact, var), wasm) in GUESTS.iter().zip([&component, &echo]) {
        let path = target_dir.join(artifact);
        fs::write(&path, wasm)
            .unwrap_or_else(|e| fail(&format!("writing {}: {e}", path.display())));
        println!("cargo:rustc-env={var}={}", path.display());
        let precompiled = out_dir.join(artifact).with_extension("cwasm");
        precompile(wasm, &precompiled);
        let cwasm_var = var.replace("_WASM", "_CWASM");
        println!("cargo:rustc-env={cwasm_var}={}", precompiled.display());
    }
}

/// Plugs the component's `hbutils:network/port` export into the consumer's
/// import of it. What neither satisfies (WASI) stays an import of the result,
/// one import per name for both. The port interface is exported as well as the
/// server: the server's functions use its types (`candidates`, `error-code`),
/// and a component may only export what names types it exports or imports.
fn compose(provider: &[u8], consumer: &[u8]) -> Vec<u8> {
    use wac_graph::{CompositionGraph, EncodeOptions, types::Package};
    const PORT: &str = "hbutils:network/port@0.2.0";
    const SERVER: &str = "hbutils:echo/server@0.1.0";
    let composed = (|| -> Result<Vec<u8>, Box<dyn std::error::Error>> {
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
    })();
    composed.unwrap_or_else(|error| {
        let mut message = format!("composing the echo server: {error}");
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        fail(&message)
    })
}

/// `strip = true` strips the core module, but wasm-component-ld still writes
/// a top-level `component-name` section, a twelfth of the component; nothing
/// reads it at run time. Every other section is copied byte for byte.
fn strip_component_names(input: &Path) -> Vec<u8> {
    let wasm =
        fs::read(input).unwrap_or_else(|e| fail(&format!("reading {}: {e}", input.display())));
    let leb128 = |at: &mut usize| -> usize {
        let (mut value, mut shift) = (0usize, 0);
        loop {
            let byte = wasm[*at];
            *at += 1;
            value |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte < 0x80 {
                return value;
            }
        }
    };
    let mut stripped = wasm[..8].to_vec(); // magic and version
    let mut at = 8;
    while at < wasm.len() {
        let start = at;
        let id = wasm[at];
        at += 1;
        let size = leb128(&mut at);
        let body = at;
        at += size;
        let is_names = id == 0 && {
            let mut name_at = body;
            let len = leb128(&mut name_at);
            &wasm[name_at..name_at + len] == b"component-name"
        };
        if !is_names {
            stripped.extend_from_slice(&wasm[start..at]);
        }
    }
    stripped
}

/// Cranelift output for the machine the host is built for, with the engine
/// settings the library uses to load it.
fn precompile(wasm: &[u8], output: &Path) {
    let mut config = engine_config::engine_config(None);
    let (host, target) = (env::var("HOST"), env::var("TARGET"));
    if let (Ok(host), Ok(target)) = (host, target)
        && host != target
    {
        config
            .target(&target)
            .unwrap_or_else(|e| fail(&format!("wasmtime cannot compile for {target}: {e}")));
    }
    let engine =
        wasmtime::Engine::new(&config).unwrap_or_else(|e| fail(&format!("wasmtime engine: {e}")));
    let compiled = engine
        .precompile_component(wasm)
        .unwrap_or_else(|e| fail(&format!("precompiling the component: {e}")));
    fs::write(output, compiled)
        .unwrap_or_else(|e| fail(&format!("writing {}: {e}", output.display())));
}

/// The pinned toolchain lists the wasm target, but rustup only installs listed
/// targets with the toolchain itself: a machine that already had 1.95.0 lacks it.
fn ensure_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc).args(["--print", "sysroot"]).output();
    let Ok(output) = output else {
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
fn guest_target_dir() -> PathBuf {
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

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1);
}
