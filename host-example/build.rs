//! Compiles the shipped component (`component/hbutils_port.wasm`) to native
//! code for the target, so that a host process starts without running
//! Cranelift. It reads only this package's files and writes only under
//! `OUT_DIR`; the component itself is built by `cargo xtask component`.

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
    let wasm = fs::read(COMPONENT).unwrap_or_else(|e| fail(&format!("reading {COMPONENT}: {e}")));

    let mut config = engine_config::engine_config();
    if let (Ok(host), Ok(target)) = (env::var("HOST"), env::var("TARGET"))
        && host != target
    {
        config
            .target(&target)
            .unwrap_or_else(|e| fail(&format!("wasmtime cannot compile for {target}: {e}")));
    }
    let engine =
        wasmtime::Engine::new(&config).unwrap_or_else(|e| fail(&format!("wasmtime engine: {e}")));
    let compiled = engine
        .precompile_component(&wasm)
        .unwrap_or_else(|e| fail(&format!("precompiling {COMPONENT}: {e}")));
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("hbutils_port.cwasm");
    fs::write(&out, compiled).unwrap_or_else(|e| fail(&format!("writing {}: {e}", out.display())));
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1);
}
