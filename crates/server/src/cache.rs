//! A value computed at most once per TTL, one computation at a time: public reads (the
//! status page, Prometheus scrapes) that many clients poll cost one computation from the
//! store every few seconds, not one per request.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct TtlCache<T> {
    ttl: Duration,
    slot: tokio::sync::Mutex<Option<(Instant, Arc<T>)>>,
}

impl<T> TtlCache<T> {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slot: tokio::sync::Mutex::new(None),
        }
    }

    /// The cached value while it is fresh, else `compute`'s (callers meanwhile wait for it).
    pub(crate) async fn get<E, Fut>(&self, compute: impl FnOnce() -> Fut) -> Result<Arc<T>, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((at, v)) = &*slot {
            if at.elapsed() < self.ttl {
                return Ok(v.clone());
            }
        }
        let v = Arc::new(compute().await?);
        *slot = Some((Instant::now(), v.clone()));
        Ok(v)
    }
}
