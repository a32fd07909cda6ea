//! Builds the adversarial guest (`tests/escape-guest`) for `wasm32-wasip2`,
//! in the manner of wasmtime's test-programs-artifacts: only the tests
//! depend on this crate, so the product's build never compiles a fixture.

use std::env;
use std::path::PathBuf;

#[path = "../../host-example/build/guests.rs"]
mod guests;

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
        "host-example/build",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }
    let built = guests::build(root, &["escape-guest"]);
    println!(
        "cargo:rustc-env=ESCAPE_GUEST_WASM={}",
        built.join("escape_guest.wasm").display()
    );
}
