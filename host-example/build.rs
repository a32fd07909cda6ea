//! Compiles the shipped component (`component/hbutils_port.wasm`) to native
//! code for the target, so that a host process starts without running
//! Cranelift. It reads only this package's files and writes only under
//! `OUT_DIR`; the component itself is built by `cargo xtask component`.
//!
//! The build script's wasmtime is the library's (see `Cargo.toml`), so its
//! Cranelift has only the backend of the machine that builds. A cross build
//! for another architecture (aarch64 from x86_64, say) gets empty bytes
//! instead: the library finds no native code that loads and compiles the
//! component when a host starts (`PortHost::loaded_precompiled` is false),
//! and the crate says so with the `port_host_compiles_at_start` cfg.

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::exit;

#[path = "src/engine_config.rs"]
mod engine_config;

const COMPONENT: &str = "component/hbutils_port.wasm";

fn main() {
    println!("cargo:rerun-if-changed={COMPONENT}");
    println!("cargo:rerun-if-changed=src/engine_config.rs");
    println!("cargo:rustc-check-cfg=cfg(port_host_compiles_at_start)");
    let wasm = fs::read(COMPONENT).unwrap_or_else(|e| fail(&format!("reading {COMPONENT}: {e}")));

    let mut config = engine_config::engine_config();
    let host = env::var("HOST").expect("set by cargo");
    let target = env::var("TARGET").expect("set by cargo");
    let engine = if host == target {
        wasmtime::Engine::new(&config).unwrap_or_else(|e| fail(&format!("wasmtime engine: {e}")))
    } else {
        // Another OS on this architecture (x86_64 Windows or macOS from
        // x86_64 Linux) is within this Cranelift's reach; another
        // architecture is not, and wasmtime says so when the engine is made.
        let engine = config
            .target(&target)
            .and_then(|config| wasmtime::Engine::new(config));
        match engine {
            Ok(engine) => engine,
            Err(error) => {
                println!(
                    "cargo:warning=no precompiled component for {target} ({error}): \
                     port-host compiles it when a host starts"
                );
                println!("cargo:rustc-cfg=port_host_compiles_at_start");
                write(Vec::new());
                return;
            }
        }
    };
    let compiled = engine
        .precompile_component(&wasm)
        .unwrap_or_else(|e| fail(&format!("precompiling {COMPONENT}: {e}")));
    write(compiled);
}

fn write(compiled: Vec<u8>) {
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("hbutils_port.cwasm");
    fs::write(&out, compiled).unwrap_or_else(|e| fail(&format!("writing {}: {e}", out.display())));
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1);
}
