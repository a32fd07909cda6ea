//! The engine settings, shared by the build script (which precompiles the
//! embedded component) and the library (which loads it): wasmtime refuses a
//! precompiled component whose engine settings differ from the loader's.

pub fn engine_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    // Lets a call's deadline interrupt a guest stuck in a loop.
    config.epoch_interruption(true);
    config
}
