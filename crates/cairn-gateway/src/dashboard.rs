//! The live page at `/`: sessions, and for the chosen one its job's proof tree (every segment and join with
//! its state, prover, attempts and times), the provers (speed, reputation, rewards, penalties) and progress
//! over time. Plain HTML and JavaScript served from the binary (no build step), fed by `GET /api/overview`,
//! which it polls every second. Read-only, and it shows key names, never keys.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};

use crate::Inner;

const PAGE: &str = include_str!("dashboard.html");

pub(crate) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/overview", get(overview))
}

async fn overview(State(inner): State<Arc<Inner>>) -> Json<serde_json::Value> {
    let store = inner.store.clone();
    let rows = tokio::task::spawn_blocking(move || store.sessions(50))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let now = crate::store::Store::now_ms();
    let sessions: Vec<serde_json::Value> = {
        let live = inner.live();
        rows.iter()
            .map(|r| {
                let l = live.get(&r.uuid);
                serde_json::json!({
                    "uuid": r.uuid,
                    "owner": r.owner,
                    "image_id": r.image_id,
                    "status": r.status,
                    "state": l.map(|l| l.state.clone()),
                    "job": l.and_then(|l| l.job.map(|j| j.0)).or(r.job),
                    "execute_only": r.execute_only,
                    "error_msg": r.error_msg,
                    "stats": r.stats,
                    "resumed": r.resumed,
                    "elapsed_secs": r.finished_ms.unwrap_or(now).saturating_sub(r.created_ms) as f64 / 1000.0,
                })
            })
            .collect()
    };
    let service = inner.service.status();
    Json(serde_json::json!({
        "sessions": sessions,
        "jobs": service["jobs"],
        "provers": service["provers"],
    }))
}
