//! The epoch that lets a call's deadline reach a guest spinning in its own
//! code: one ticker thread per engine, however many hosts share it.

use std::sync::Mutex;
use std::thread;
use std::time::Duration;
use wasmtime::{Engine, EngineWeak};

/// How often [`start_epoch_ticker`] advances an engine's epoch: a guest
/// spinning in its own code yields to its caller's deadline this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Advances `engine`'s epoch every [`EPOCH_TICK`] on a thread of its own,
/// until the engine is dropped. An embedder that brings its own engine calls
/// this (or ticks the epoch itself). Calling it again for the same engine
/// starts nothing; it returns whether this call started the ticker.
pub fn start_epoch_ticker(engine: &Engine) -> bool {
    static TICKED: Mutex<Vec<EngineWeak>> = Mutex::new(Vec::new());
    let mut ticked = TICKED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Engines that are gone have stopped their tickers; forget them.
    let mut ticking = false;
    ticked.retain(|weak| match weak.upgrade() {
        Some(other) => {
            ticking |= Engine::same(&other, engine);
            true
        }
        None => false,
    });
    if ticking {
        return false;
    }
    ticked.push(engine.weak());
    let weak = engine.weak();
    thread::spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            thread::sleep(EPOCH_TICK);
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_ticker_for_one_engine_is_not_started() {
        let engine = Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
        assert!(start_epoch_ticker(&engine));
        assert!(!start_epoch_ticker(&engine));
        assert!(!start_epoch_ticker(&engine.clone()));
        let other = Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
        assert!(start_epoch_ticker(&other));
    }
}
