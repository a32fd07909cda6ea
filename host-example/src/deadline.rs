//! A call's deadline, host calls included: the call's future is dropped when
//! its time is up, which stops wasmtime mid host call where epochs cannot.

use crate::error::DeadlineExceeded;
use std::time::Duration;

/// Runs `call` within `timeout`, a host call included; `call` is dropped
/// there, mid-call, when it runs past.
pub(crate) async fn within<T>(
    timeout: Duration,
    call: impl Future<Output = T>,
) -> Result<T, DeadlineExceeded> {
    // tokio turns a deadline past the clock's end into "never", not a wrap.
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| DeadlineExceeded { timeout })
}
