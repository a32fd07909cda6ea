//! A guest's stderr kept in memory for the embedder to read, and to drain.
//!
//! wasmtime-wasi's `MemoryOutputPipe` cannot be drained: once its buffer is
//! full, every later write is refused, so a long-lived session stops showing
//! its warnings. This one is drained by [`StderrCapture::take`], and a guest
//! writing while nobody reads loses the newest bytes, never its session.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// What a captured stderr keeps until it is read: the component writes one
/// 80-byte warning per strict call that falls back, so hundreds of them.
const CAPACITY: usize = 64 << 10;

/// Room offered to each write. Always some, so a guest that waits for room
/// never waits forever on a reader that may never come.
const PERMIT: usize = 4 << 10;

/// A guest's stderr in memory: up to 64 KiB waiting to be read, and a count
/// of the bytes that did not fit. A clone shares the buffer.
#[derive(Debug, Clone, Default)]
pub struct StderrCapture(Arc<Mutex<Buffer>>);

#[derive(Debug, Default)]
struct Buffer {
    kept: Vec<u8>,
    dropped: u64,
}

impl StderrCapture {
    /// A new, empty capture.
    pub fn new() -> Self {
        Self::default()
    }

    /// What was written and not yet taken, as text (invalid UTF-8 replaced).
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.lock().kept).into_owned()
    }

    /// What was written and not yet taken, leaving the capture empty.
    pub fn take(&self) -> String {
        let kept = std::mem::take(&mut self.lock().kept);
        String::from_utf8_lossy(&kept).into_owned()
    }

    /// Bytes the guest wrote while the capture was full, which are lost.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps what fits; counts the rest.
    fn keep(&self, bytes: &[u8]) {
        let mut buffer = self.lock();
        let room = CAPACITY.saturating_sub(buffer.kept.len());
        let kept = bytes.len().min(room);
        buffer.kept.extend_from_slice(&bytes[..kept]);
        buffer.dropped += (bytes.len() - kept) as u64;
    }
}

impl OutputStream for StderrCapture {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrCapture {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for StderrCapture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.keep(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for StderrCapture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrCapture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_capture_keeps_its_first_bytes_counts_the_rest_and_refills_once_taken() {
        let mut capture = StderrCapture::new();
        let line = [b'x'; 1000];
        for _ in 0..100 {
            assert_eq!(capture.check_write().unwrap(), PERMIT);
            capture.write(bytes::Bytes::copy_from_slice(&line)).unwrap();
        }
        assert_eq!(capture.contents().len(), CAPACITY);
        assert_eq!(capture.dropped(), (100_000 - CAPACITY) as u64);
        assert_eq!(capture.take().len(), CAPACITY);
        assert_eq!(capture.contents(), "");
        capture
            .write(bytes::Bytes::from_static(b"warning\n"))
            .unwrap();
        assert_eq!(capture.take(), "warning\n");
    }
}
