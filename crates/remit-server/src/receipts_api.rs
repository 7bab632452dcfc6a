//! `/v1/receipts` (admin: the raw signed leaves) and
//! `/v1/checkpoints/latest` (public: the signed tree head, the receipt
//! key's JWKS and the note verifier key an auditor needs).

use axum::extract::{Query, State};
use axum::Json;
use remit_api::{LatestCheckpoint, ReceiptPage};
use remit_store::Store;
use serde::Deserialize;

use crate::problem::Problem;
use crate::receipts::MAX_PAGE;
use crate::state::AppState;

/// Query of `GET /v1/receipts`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// First index; 0 when absent.
    #[serde(default)]
    pub from: u64,
    /// Most leaves to return; 100 when absent, at most 1000.
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default)]
    pub limit: Option<u64>,
}

fn unavailable(error: &dyn std::fmt::Display) -> Problem {
    Problem::internal("reading the receipt log", error)
}

#[utoipa::path(get, path = "/v1/receipts", tag = "receipts", security(("admin_token" = [])),
    params(Page),
    responses((status = 200, description = "Signed leaves, as stored", body = remit_api::ReceiptPage)))]
/// `GET /v1/receipts?from=N&limit=M`: the leaves as stored (strings of
/// canonical JSON `{"receipt":..,"sig":..}`), so a client can audit them.
pub async fn leaves<S: Store>(
    State(state): State<AppState<S>>,
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ReceiptPage>, Problem> {
    let Query(page) = query.map_err(|e| Problem::invalid(format!("query: {}", e.body_text())))?;
    // Log indices are signed 64-bit in the stores; say so rather than
    // accept an index no log can reach (found by schemathesis).
    if i64::try_from(page.from).is_err() {
        return Err(Problem::invalid(format!(
            "from must be at most {}",
            i64::MAX
        )));
    }
    let limit = page.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Problem::invalid(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let log = std::sync::Arc::clone(state.receipts());
    let from = page.from;
    // The log may read a database or a file: off the async threads.
    let (raw, size) = blocking(move || Ok((log.leaves(from, limit)?, log.size()))).await?;
    // Leaves go out as strings, byte for byte, so signatures and hashes
    // can be checked on exactly what was stored.
    let leaves = raw
        .into_iter()
        .map(String::from_utf8)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unavailable(&e))?;
    Ok(Json(ReceiptPage {
        from: page.from,
        size,
        leaves,
    }))
}

#[utoipa::path(get, path = "/v1/checkpoints/latest", tag = "receipts",
    responses((status = 200, description = "The latest signed checkpoint and the keys to verify it", body = remit_api::LatestCheckpoint)))]
/// `GET /v1/checkpoints/latest`: the latest signed checkpoint.
pub async fn latest_checkpoint<S: Store>(
    State(state): State<AppState<S>>,
) -> Result<Json<LatestCheckpoint>, Problem> {
    let log = std::sync::Arc::clone(state.receipts());
    let reader = std::sync::Arc::clone(&log);
    let checkpoint = blocking(move || reader.latest_checkpoint()).await?;
    Ok(Json(LatestCheckpoint {
        checkpoint,
        note_verifier: log.note_verifier_key(),
        receipt_jwks: log.receipt_jwks(),
    }))
}

async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, crate::receipts::ReceiptLogError> + Send + 'static,
) -> Result<T, Problem> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| unavailable(&e))?
        .map_err(|e| unavailable(&e))
}
