//! Builds the product's component for `wasm32-wasip2` so that `port-host`
//! embeds it with no step beyond `cargo build`; composes the echo-server
//! example with it (wac), so that `port-host serve-echo` runs a consumer
//! whose only imports are WASI; then compiles both to native code, so that
//! `port-host` starts without Cranelift. Test fixtures are built by
//! `tests/guests`, never here.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

#[path = "src/engine_config.rs"]
mod engine_config;
#[path = "build/guests.rs"]
mod guests;

use guests::fail;

/// The interface the echo server imports and the component exports.
const PORT: &str = "hbutils:network/port@0.3.0";
const SERVER: &str = "hbutils:echo/server@0.1.0";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("port-host lives in the workspace");
    for input in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "src",
        "wit",
        "examples/echo-server",
        "host-example/build",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }

    let built = guests::build(root, &["hbutils-port", "echo-server"]);
    // The component as shipped: without its debug names (see below).
    let component = strip_component_names(&built.join("hbutils_port.wasm"));
    let echo = compose(
        &component,
        &strip_component_names(&built.join("echo_server.wasm")),
    );

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let shipped = guests::guest_target_dir();
    for (wasm, file, var) in [
        (&component, "hbutils_port.wasm", "PORT_COMPONENT"),
        (&echo, "echo_server.wasm", "ECHO_COMPONENT"),
    ] {
        let path = shipped.join(file);
        fs::write(&path, wasm)
            .unwrap_or_else(|e| fail(&format!("writing {}: {e}", path.display())));
        println!("cargo:rustc-env={var}_WASM={}", path.display());
        let precompiled = out_dir.join(file).with_extension("cwasm");
        precompile(wasm, &precompiled);
        println!("cargo:rustc-env={var}_CWASM={}", precompiled.display());
    }
}

/// Plugs the component's `hbutils:network/port` export into the consumer's
/// import of it. What neither satisfies (WASI) stays an import of the result,
/// one import per name for both. The port interface is exported as well as the
/// server: the server's functions use its types (`candidates`, `error-code`),
/// and a component may only export what names types it exports or imports.
fn compose(provider: &[u8], consumer: &[u8]) -> Vec<u8> {
    use wac_graph::{CompositionGraph, EncodeOptions, types::Package};
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
    use wasmparser::{Chunk, Parser, Payload};
    let wasm =
        fs::read(input).unwrap_or_else(|e| fail(&format!("reading {}: {e}", input.display())));
    let mut stripped = Vec::with_capacity(wasm.len());
    let mut parser = Parser::new(0);
    let mut rest = &wasm[..];
    loop {
        let (consumed, payload) = match parser.parse(rest, true) {
            Ok(Chunk::Parsed { consumed, payload }) => (consumed, payload),
            Ok(Chunk::NeedMoreData(_)) => fail(&format!("{} is truncated", input.display())),
            Err(error) => fail(&format!("{} is not wasm: {error}", input.display())),
        };
        let (section, after) = rest.split_at(consumed);
        rest = after;
        match payload {
            Payload::End(_) => break,
            // Nested modules and components are copied whole: the parser
            // hands over only their header and steps past the body itself.
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                let body = usize::try_from(unchecked_range.end - unchecked_range.start)
                    .unwrap_or_else(|_| fail("a nested module too large for this machine"));
                stripped.extend_from_slice(section);
                stripped.extend_from_slice(&rest[..body]);
                rest = &rest[body..];
            }
            Payload::CustomSection(custom) if custom.name() == "component-name" => {}
            _ => stripped.extend_from_slice(section),
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
