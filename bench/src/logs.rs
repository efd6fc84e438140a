//! Log bytes per event, measured in-process: a JSON layer configured like the functions' own
//! (`campbridge_lambda::init_tracing`: JSON, no time, no target, no current span) that counts the bytes
//! it would write instead of writing them. Receiver lines (`shared::ingest`) and the mapper's (the rest
//! of `shared`) are counted apart. The bench prints through stdout directly, never through this layer.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, fmt};

/// The byte counters, shared with the global subscriber.
#[derive(Debug, Clone, Default)]
pub struct LogBytes {
    pub receivers: Arc<AtomicU64>,
    pub mapper: Arc<AtomicU64>,
}

impl LogBytes {
    /// (receiver bytes, mapper bytes) so far.
    pub fn get(&self) -> (u64, u64) {
        (self.receivers.load(Ordering::Relaxed), self.mapper.load(Ordering::Relaxed))
    }
}

struct Counter(Arc<AtomicU64>);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A JSON layer like the functions' that counts into `counter`, for the events `filter` lets through.
fn layer<S>(counter: Arc<AtomicU64>, filter: &str) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fmt::layer()
        .json()
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_writer(move || Counter(counter.clone()))
        .with_filter(EnvFilter::new(filter))
}

/// Installs the counting subscriber as the process's global one.
pub fn install() -> anyhow::Result<LogBytes> {
    let bytes = LogBytes::default();
    let subscriber = tracing_subscriber::registry()
        .with(layer(bytes.receivers.clone(), "shared::ingest=info"))
        .with(layer(bytes.mapper.clone(), "shared=info,shared::ingest=off"));
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(bytes)
}
