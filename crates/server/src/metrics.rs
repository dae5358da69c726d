//! `GET /metrics`: the incident KPIs for Prometheus (OpenMetrics text, `prometheus-client`).
//!
//! Computed from the store on scrape (the stored timelines are the truth, so the numbers
//! survive restarts and agree with `neo-ir report`), and cached for [`METRICS_TTL`] so that
//! several scrapers cost one computation. Exported (definitions in docs/KPIS.md):
//!
//! - `neo_ir_incidents_open{severity,kind}`: open now (every severity and kind, 0 included).
//! - `neo_ir_incidents_total{severity,kind}`: opened in the last 30 days.
//! - `neo_ir_mttd_seconds{severity}`, `neo_ir_mtta_seconds{severity}`,
//!   `neo_ir_mttr_seconds{severity}`: the 30-day means (absent while there is no sample).
//! - `neo_ir_response_target_breaches_total{severity}`: in the last 30 days.
//!
//! The `_total` series are gauges over a sliding window (they go down when old incidents
//! leave it), not counters. Drill incidents are left out.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Extension;
use jiff::{SignedDuration, Timestamp};
use neo_ir_core::incident::{Incident, IncidentKind, Severity};
use neo_ir_core::kpis::{self, Stat};
use neo_ir_store::Store;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::cache::TtlCache;
use crate::ApiError;

/// How long one computation is served.
pub const METRICS_TTL: Duration = Duration::from_secs(5);

/// The window of the `_total` and mean series.
pub const METRICS_WINDOW: SignedDuration = SignedDuration::from_hours(30 * 24);

const CONTENT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// The text of the latest scrape, computed at most once per [`METRICS_TTL`].
type MetricsCache = TtlCache<String>;

/// `GET /metrics` with its own cache (readable like the other reads: open unless reads are
/// protected).
pub(crate) fn route() -> MethodRouter<crate::AppState> {
    get(scrape).layer(Extension(Arc::new(MetricsCache::new(METRICS_TTL))))
}

/// The handler (the cache comes as an extension of its route).
pub async fn scrape(
    State(store): State<Store>,
    Extension(cache): Extension<Arc<MetricsCache>>,
) -> Result<Response, ApiError> {
    let text = cache.get(|| compute(&store, Timestamp::now())).await?;
    Ok(([(CONTENT_TYPE, CONTENT)], text.as_str().to_owned()).into_response())
}

/// Read the store and render the metrics as of `now`.
pub async fn compute(store: &Store, now: Timestamp) -> Result<String, ApiError> {
    let since = now
        .checked_sub(METRICS_WINDOW)
        .map_err(|e| internal(format!("the metrics window: {e}")))?;
    let open: Vec<Incident> = store
        .open_incidents()
        .await?
        .into_iter()
        .filter(|i| !kpis::is_drill(i))
        .collect();
    let recent = store.incidents_since(since).await?;
    render(&open, &recent, since, now).map_err(|e| internal(format!("encoding the metrics: {e}")))
}

fn internal(message: String) -> ApiError {
    tracing::error!(%message, "computing /metrics");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
}

fn sev_kind(s: Severity, k: IncidentKind) -> Labels {
    vec![("severity", s.as_str().into()), ("kind", k.as_str().into())]
}

fn sev(s: Severity) -> Labels {
    vec![("severity", s.as_str().into())]
}

/// The OpenMetrics text for the open incidents and those opened in `[since, now]`.
pub fn render(
    open: &[Incident],
    recent: &[(Incident, Vec<neo_ir_core::incident::TimelineEvent>)],
    since: Timestamp,
    now: Timestamp,
) -> Result<String, std::fmt::Error> {
    const SEVERITIES: [Severity; 4] = [Severity::P1, Severity::P2, Severity::P3, Severity::P4];
    let (facts, _drills) = kpis::collect(recent, since, now);

    let open_g = Family::<Labels, Gauge>::default();
    let total_g = Family::<Labels, Gauge>::default();
    let breach_g = Family::<Labels, Gauge>::default();
    let mean_g: [Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>; 3] = Default::default();
    // every series exists, at 0 when nothing happened: alerts and graphs need no `or vector(0)`
    for s in SEVERITIES {
        for k in IncidentKind::ALL {
            open_g.get_or_create(&sev_kind(s, k)).set(0);
            total_g.get_or_create(&sev_kind(s, k)).set(0);
        }
        breach_g.get_or_create(&sev(s)).set(0);
    }
    for i in open {
        open_g.get_or_create(&sev_kind(i.severity, i.kind)).inc();
    }
    for ((s, k), sum) in kpis::group_by(&facts, |f| (f.severity, f.kind)) {
        total_g.get_or_create(&sev_kind(s, k)).set(sum.count as i64);
    }
    for (s, sum) in kpis::group_by(&facts, |f| f.severity) {
        breach_g
            .get_or_create(&sev(s))
            .set(sum.response_target_breaches as i64);
        let stats: [&Stat; 3] = [&sum.mttd, &sum.mtta, &sum.mttr];
        for (family, stat) in mean_g.iter().zip(stats) {
            if let Some(ms) = stat.mean_ms {
                family.get_or_create(&sev(s)).set(ms as f64 / 1000.0);
            }
        }
    }

    let mut r = Registry::default();
    r.register("neo_ir_incidents_open", "Incidents open now", open_g);
    r.register(
        "neo_ir_incidents_total",
        "Incidents opened in the last 30 days (a gauge over a sliding window)",
        total_g,
    );
    let [mttd, mtta, mttr] = mean_g;
    r.register(
        "neo_ir_mttd_seconds",
        "Mean time to detect over the last 30 days: fault start to incident opened",
        mttd,
    );
    r.register(
        "neo_ir_mtta_seconds",
        "Mean time to acknowledge over the last 30 days: opened to first acknowledgement",
        mtta,
    );
    r.register(
        "neo_ir_mttr_seconds",
        "Mean time to resolve over the last 30 days: opened to resolved",
        mttr,
    );
    r.register(
        "neo_ir_response_target_breaches_total",
        "Incidents of the last 30 days not acknowledged within their response target",
        breach_g,
    );
    let mut out = String::new();
    encode(&mut out, &r)?;
    Ok(out)
}
