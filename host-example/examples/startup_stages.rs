//! Where `port-host get-free-port 8000..8100` spends its time in-process,
//! one line per stage, for breakdowns like the README's start-up table:
//!
//! ```sh
//! startup_stages cli embedded            # the CLI's stages, PortHost::embedded
//! startup_stages cli embedded_load_only  # the same on the compiler-less engine
//! startup_stages parts                   # engine, deserialize, link, instantiate
//! ```
//!
//! Run each many times in fresh processes: one-time costs (CPU feature
//! detection, first allocations) land on whichever stage comes first.

use port_host::{Candidates, Limits, NetworkPolicy, PortHost, PortRange, State, Stderr};
use std::time::Instant;

struct Laps(Instant, Vec<(&'static str, f64)>);

impl Laps {
    fn lap(&mut self, stage: &'static str) {
        let now = Instant::now();
        self.1.push((stage, (now - self.0).as_secs_f64() * 1e6));
        self.0 = now;
    }
}

impl Drop for Laps {
    fn drop(&mut self) {
        let line: Vec<String> = self
            .1
            .iter()
            .map(|(s, us)| format!("{s}={us:.0}"))
            .collect();
        println!("{}", line.join(" "));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["cli", host] => cli(host),
        ["parts"] => parts(),
        _ => {
            eprintln!("error: usage: startup_stages cli embedded|embedded_load_only | parts");
            std::process::exit(2)
        }
    }
}

fn cli(which: &str) {
    let mut laps = Laps(Instant::now(), Vec::new());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    laps.lap("runtime");
    let host = match which {
        "embedded" => PortHost::embedded(Limits::default()),
        _ => PortHost::embedded_load_only(Limits::default()),
    }
    .unwrap();
    laps.lap("host");
    let mut session = runtime
        .block_on(host.async_session(NetworkPolicy::loopback(), Stderr::Inherit))
        .unwrap();
    laps.lap("async_session");
    let range = Candidates::Range(PortRange {
        start: 8000,
        end: 8100,
        step: 1,
    });
    let answer = runtime.block_on(session.get_free_port(Some(&range), true));
    assert!(answer.unwrap().is_ok());
    laps.lap("call");
    drop(session);
    drop(host);
    drop(runtime);
    laps.lap("drops");
}

/// The host's making taken apart with wasmtime's own calls, in the CLI's
/// order; `engine_config(None)` is epoch interruption on wasmtime's defaults.
fn parts() {
    let cwasm = {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = wasmtime::Engine::new(&config).unwrap();
        engine.precompile_component(port_host::COMPONENT).unwrap()
    };
    let mut laps = Laps(Instant::now(), Vec::new());
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    let full = wasmtime::Engine::new(&config).unwrap();
    laps.lap("engine");
    config.enable_compiler(false);
    let engine = wasmtime::Engine::new(&config).unwrap();
    laps.lap("engine_without_compiler");
    port_host::start_epoch_ticker(&engine);
    laps.lap("ticker");
    let component = unsafe { wasmtime::component::Component::deserialize(&engine, &cwasm) };
    let component = component.unwrap();
    laps.lap("deserialize");
    let async_pre = port_host::async_linker::<State>(&engine)
        .unwrap()
        .instantiate_pre(&component)
        .unwrap();
    laps.lap("async_link");
    let (mut store, _) = port_host::sandboxed_store(
        &engine,
        NetworkPolicy::loopback(),
        Stderr::Inherit,
        &Limits::default().store,
    );
    laps.lap("store");
    let instance =
        wasmtime_wasi::runtime::in_tokio(async_pre.instantiate_async(&mut store)).unwrap();
    laps.lap("instantiate");
    drop((instance, store, async_pre, component, engine, full));
    laps.lap("drops");
}
