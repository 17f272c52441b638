//! The Bonsai REST routes, as risc0-zkvm 3.0.6's `BonsaiProver` (bonsai-sdk 1.4.3) calls them. Every route
//! but `/version`, `/metrics` and the dashboard needs a known `x-api-key`; every error is a status code with
//! a sentence in the body (the client shows the body as the error).

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::StreamExt;
// The response bodies are the Bonsai SDK's own types, so what this server writes is what the stock client
// parses by construction. Requests are read with the gateway's own, more lenient `ProofReq`.
use bonsai_sdk::responses::{
    CreateSessRes, ImgUploadRes, Quotas, ReceiptDownload, SessionStats, SessionStatusRes,
    UploadRes, VersionInfo,
};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::config::ApiKey;
use crate::store::{self, SessionRow, UploadKind, RUNNING, SUCCEEDED};
use crate::{session, Inner, RISC0_VERSION};

type AppState = State<Arc<Inner>>;

/// A refused request: its status and the sentence the client will show.
#[derive(Debug)]
pub(crate) struct ApiError(StatusCode, String);

impl ApiError {
    fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        Self(status, msg.into())
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        Self(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("gateway error: {e}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/user/quotas", get(quotas))
        .route("/images/upload/{image_id}", get(image_upload))
        .route("/blobs/images/{image_id}", put(put_image))
        .route("/inputs/upload", get(input_upload))
        .route("/blobs/inputs/{uuid}", put(put_input))
        .route("/receipts/upload", get(receipt_upload))
        .route("/blobs/assumptions/{uuid}", put(put_assumption))
        .route("/sessions/create", post(create_session))
        .route("/sessions/status/{uuid}", get(session_status))
        .route("/sessions/stop/{uuid}", get(stop_session))
        .route("/sessions/logs/{uuid}", get(session_logs))
        .route("/sessions/exec_only_journal/{uuid}", get(exec_only_journal))
        .route("/receipts/{uuid}", get(receipt_url))
        .route("/blobs/receipts/{uuid}", get(download_receipt))
        .route("/snark/create", post(snark))
        .route("/snark/status/{uuid}", get(snark))
        .route("/metrics", get(metrics))
        .merge(crate::dashboard::routes())
        .layer(axum::middleware::from_fn_with_state(
            inner.clone(),
            crate::guard::limit_key_guessing,
        ))
        .with_state(inner)
}

// ---- who is asking ----

/// The caller's key, after checking its risc0-zkvm version.
fn authorize(inner: &Inner, headers: &HeaderMap) -> ApiResult<ApiKey> {
    let presented = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "no x-api-key header: set BONSAI_API_KEY to a key this gateway was given",
            )
        })?;
    let key = inner.cfg.keys.find(presented).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unknown API key: check BONSAI_API_KEY against the gateway's key file",
        )
    })?;
    check_version(headers)?;
    Ok(key.clone())
}

/// Receipts are bincode `risc0_zkvm::Receipt`, whose layout changes between major versions.
fn check_version(headers: &HeaderMap) -> ApiResult<()> {
    let Some(v) = headers.get("x-risc0-version") else {
        return Ok(());
    };
    let v = v.to_str().unwrap_or("?");
    let major = |s: &str| s.split('.').next().map(str::to_string);
    if major(v) != major(RISC0_VERSION) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "this gateway proves for risc0-zkvm {RISC0_VERSION} and returns its receipts; your host uses \
                 risc0-zkvm {v}, whose receipt encoding differs: build your host with risc0-zkvm 3.x"
            ),
        ));
    }
    Ok(())
}

/// The absolute base URL clients reach us at: `--public-url`, or else the request's `Host` with `https` where
/// a TLS proxy in front says the client came over TLS (`X-Forwarded-Proto: https` or `Forwarded: proto=https`),
/// so the SDK, which sends its key with every upload, never gets an `http` URL for a gateway it reached over TLS
/// (issue 29, item 12). Headers can only turn `http` into `https` here, never the reverse, and what a client
/// puts in them changes only the URLs handed back to that client.
fn base_url(inner: &Inner, headers: &HeaderMap) -> String {
    if let Some(u) = &inner.cfg.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| inner.cfg.listen.to_string());
    let scheme = if came_over_tls(headers) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// Whether a proxy in front says the client's connection was TLS.
fn came_over_tls(headers: &HeaderMap) -> bool {
    let values = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>()
    };
    values("x-forwarded-proto")
        .iter()
        .any(|p| p.eq_ignore_ascii_case("https"))
        || values("forwarded").iter().any(|element| {
            element.split(';').any(|pair| {
                pair.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("proto")
                        && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
                })
            })
        })
}

/// Runs blocking store work off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::GatewayError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

fn check_image_id(id: &str) -> ApiResult<String> {
    let id = id.to_ascii_lowercase();
    if id.len() != 64 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not an image id: 64 hex digits expected"),
        ));
    }
    Ok(id)
}

fn check_uuid(s: &str, what: &str) -> ApiResult<()> {
    if store::is_uuid(s) {
        Ok(())
    } else {
        Err(not_found(what, s))
    }
}

fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no {what} {id} here"))
}

// ---- small routes ----

async fn version() -> Json<VersionInfo> {
    Json(VersionInfo {
        risc0_zkvm: vec![RISC0_VERSION.to_string()],
    })
}

async fn quotas(State(inner): AppState, headers: HeaderMap) -> ApiResult<Json<Quotas>> {
    let key = authorize(&inner, &headers)?;
    Ok(Json(Quotas {
        exec_cycle_limit: i64::MAX,
        concurrent_proofs: i64::from(key.max_sessions),
        cycle_budget: i64::MAX,
        cycle_usage: 0,
        dedicated_executor: 0,
        dedicated_gpu: 0,
    }))
}

async fn snark(State(inner): AppState, headers: HeaderMap) -> ApiResult<Response> {
    authorize(&inner, &headers)?;
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "this Cairn gateway does not wrap receipts in Groth16 yet: prove with the default ProverOpts \
         (a composite or succinct receipt, which receipt.verify accepts)",
    ))
}

async fn metrics(State(inner): AppState) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        inner.metrics.render(),
    )
}

// ---- uploads ----

async fn image_upload(
    State(inner): AppState,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let key = authorize(&inner, &headers)?;
    let id = check_image_id(&id)?;
    let (store, i) = (inner.store.clone(), id.clone());
    if blocking(move || store.has_image(&i, &key.name)).await? {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let url = format!("{}/blobs/images/{id}", base_url(&inner, &headers));
    Ok(Json(ImgUploadRes { url }).into_response())
}

/// An upload's temporary file, removed when this is dropped: on an error, and also when the client goes away
/// mid-upload and the server drops the request's future, which no error path sees (issue 29, item 8). Once
/// the file has been moved into place the removal finds nothing and does nothing.
pub(crate) struct TempFile(PathBuf);

impl TempFile {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // One unlink: too small to be worth a blocking thread.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Uploads one key may have in progress at once, or its `max_sessions` where that is more (one host per
/// session uploads one thing at a time), so a tenant cannot hold every connection in uploads that never end
/// nor keep other tenants' uploads out (issue 29, item 6).
pub(crate) const UPLOADS_PER_KEY: u32 = 4;
/// Uploads in progress at once, all keys together.
pub(crate) const UPLOADS_IN_ALL: u32 = 64;
/// Programs read into memory and checked (image id) at once: each is held whole while RISC Zero reads it.
pub(crate) const IMAGE_CHECKS: usize = 2;

/// An upload in progress, counted against its key and the gateway until dropped (however the request ends).
pub(crate) struct UploadSlot {
    inner: Arc<Inner>,
    key: String,
}

impl UploadSlot {
    fn take(inner: &Arc<Inner>, key: &ApiKey) -> ApiResult<Self> {
        let mut uploads = inner.uploads();
        let total: u32 = uploads.values().sum();
        let mine = uploads.get(&key.name).copied().unwrap_or(0);
        if mine >= UPLOADS_PER_KEY.max(key.max_sessions) {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{mine} uploads of this key are in progress, the most at once: finish or close one first"
                ),
            ));
        }
        if total >= UPLOADS_IN_ALL {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the gateway has {total} uploads in progress, the most it takes at once: try again shortly"),
            ));
        }
        *uploads.entry(key.name.clone()).or_insert(0) += 1;
        Ok(Self {
            inner: inner.clone(),
            key: key.name.clone(),
        })
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut uploads = self.inner.uploads();
        if let Some(n) = uploads.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                uploads.remove(&self.key);
            }
        }
    }
}

/// Streams a request body into a temporary file, refusing it past `limit` bytes.
async fn receive(
    inner: &Inner,
    headers: &HeaderMap,
    body: Body,
    limit: u64,
) -> ApiResult<(TempFile, u64)> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("upload larger than this key's limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let tmp = TempFile(inner.store.temp_path());
    let mut file = tokio::fs::File::create(tmp.path())
        .await
        .map_err(ApiError::internal)?;
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    let result = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, format!("upload interrupted: {e}"))
            })?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(too_large());
            }
            file.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        file.sync_all().await.map_err(ApiError::internal)
    }
    .await;
    result.map(|()| (tmp, size))
}

async fn put_image(
    State(inner): AppState,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<StatusCode> {
    let key = authorize(&inner, &headers)?;
    let id = check_image_id(&id)?;
    let _slot = UploadSlot::take(&inner, &key)?;
    let (tmp, _) = receive(&inner, &headers, body, key.max_upload_bytes).await?;
    // Read whole to compute its image id: at most IMAGE_CHECKS programs in memory at once.
    let _check = inner
        .image_checks
        .acquire()
        .await
        .map_err(ApiError::internal)?;
    let (backend, store, t) = (
        inner.backend.clone(),
        inner.store.clone(),
        tmp.path().to_path_buf(),
    );
    let checked = tokio::task::spawn_blocking(move || -> Result<(), ApiError> {
        let bytes = std::fs::read(&t).map_err(ApiError::internal)?;
        let actual = backend.image_id(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("not a RISC Zero program: {e}"),
            )
        })?;
        if actual.to_string() != id {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("this program's image id is {actual}, not {id} as the upload URL says"),
            ));
        }
        store
            .commit_file(&t, &store.image_path(&id))
            .and_then(|()| store.add_image_owner(&id, &key.name))
            .map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)?;
    drop(tmp);
    checked.map(|()| StatusCode::OK)
}

async fn new_upload(
    inner: &Arc<Inner>,
    headers: &HeaderMap,
    kind: UploadKind,
) -> ApiResult<Json<UploadRes>> {
    let key = authorize(inner, headers)?;
    let store = inner.store.clone();
    let uuid = blocking(move || store.new_upload(&key.name, kind)).await?;
    let route = match kind {
        UploadKind::Input => "inputs",
        UploadKind::Receipt => "assumptions",
    };
    let url = format!("{}/blobs/{route}/{uuid}", base_url(inner, headers));
    Ok(Json(UploadRes { url, uuid }))
}

async fn input_upload(State(inner): AppState, headers: HeaderMap) -> ApiResult<Json<UploadRes>> {
    new_upload(&inner, &headers, UploadKind::Input).await
}

async fn receipt_upload(State(inner): AppState, headers: HeaderMap) -> ApiResult<Json<UploadRes>> {
    new_upload(&inner, &headers, UploadKind::Receipt).await
}

async fn put_upload(
    inner: &Arc<Inner>,
    headers: &HeaderMap,
    uuid: String,
    kind: UploadKind,
    body: Body,
) -> ApiResult<StatusCode> {
    let key = authorize(inner, headers)?;
    check_uuid(&uuid, "upload")?;
    let store = inner.store.clone();
    let u = uuid.clone();
    match blocking(move || store.upload(&u, kind)).await? {
        Some((owner, None)) if owner == key.name => {}
        Some((owner, Some(_))) if owner == key.name => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("upload {uuid} already has its data: ask for a new upload URL"),
            ))
        }
        _ => return Err(not_found("upload", &uuid)),
    }
    let _slot = UploadSlot::take(inner, &key)?;
    let (tmp, size) = receive(inner, headers, body, key.max_upload_bytes).await?;
    let store = inner.store.clone();
    blocking(move || {
        store.commit_file(tmp.path(), &store.upload_path(&uuid))?;
        store.finish_upload(&uuid, size)
    })
    .await?;
    Ok(StatusCode::OK)
}

async fn put_input(
    State(inner): AppState,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    body: Body,
) -> ApiResult<StatusCode> {
    put_upload(&inner, &headers, uuid, UploadKind::Input, body).await
}

async fn put_assumption(
    State(inner): AppState,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    body: Body,
) -> ApiResult<StatusCode> {
    put_upload(&inner, &headers, uuid, UploadKind::Receipt, body).await
}

// ---- sessions ----

#[derive(Deserialize)]
pub(crate) struct ProofReq {
    pub(crate) img: String,
    pub(crate) input: String,
    #[serde(default)]
    pub(crate) assumptions: Vec<String>,
    #[serde(default)]
    pub(crate) execute_only: bool,
    #[serde(default)]
    pub(crate) exec_cycle_limit: Option<u64>,
}

/// A session request's body: the JSON, then the image id it names (returned lower-cased).
pub(crate) fn parse_session_request(body: &[u8]) -> ApiResult<(ProofReq, String)> {
    let req: ProofReq = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("not a session request: {e} (expected {{img, input, assumptions, execute_only, exec_cycle_limit}})"),
        )
    })?;
    let img = check_image_id(&req.img)?;
    Ok((req, img))
}

async fn create_session(
    State(inner): AppState,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<CreateSessRes>> {
    let key = authorize(&inner, &headers)?;
    let (req, img) = parse_session_request(&body)?;
    let (store, i, owner) = (inner.store.clone(), img.clone(), key.name.clone());
    if !blocking(move || store.has_image(&i, &owner)).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("program {img} was never uploaded: GET /images/upload/{img} and PUT it first"),
        ));
    }
    let _guard = inner.create.lock().await;
    let store = inner.store.clone();
    let (owner, input, assumptions) =
        (key.name.clone(), req.input.clone(), req.assumptions.clone());
    let running = blocking(move || {
        let ready = |uuid: &str, kind| -> Result<bool, crate::GatewayError> {
            Ok(store::is_uuid(uuid)
                && matches!(store.upload(uuid, kind)?, Some((o, Some(_))) if o == owner))
        };
        if !ready(&input, UploadKind::Input)? {
            return Ok(Err(format!(
                "input {input} was never uploaded with this key"
            )));
        }
        if let Some(a) = assumptions
            .iter()
            .find(|a| !ready(a, UploadKind::Receipt).unwrap_or(false))
        {
            return Ok(Err(format!(
                "assumption receipt {a} was never uploaded with this key"
            )));
        }
        Ok(Ok(store.running_count(&owner)?))
    })
    .await?
    .map_err(|m| ApiError::new(StatusCode::NOT_FOUND, m))?;
    if running >= key.max_sessions {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "this key already has {running} sessions running, its limit: wait for one to end"
            ),
        ));
    }
    let row = SessionRow {
        uuid: store::new_uuid(),
        owner: key.name.clone(),
        image_id: img,
        input: req.input,
        assumptions: req.assumptions,
        execute_only: req.execute_only,
        cycle_limit: req.exec_cycle_limit,
        status: RUNNING.into(),
        error_msg: None,
        job: None,
        stats: None,
        created_ms: store::Store::now_ms(),
        finished_ms: None,
        resumed: 0,
    };
    let (store, r) = (inner.store.clone(), row.clone());
    blocking(move || store.insert_session(&r)).await?;
    inner.metrics.created.inc();
    let uuid = row.uuid.clone();
    session::spawn(inner.clone(), row);
    Ok(Json(CreateSessRes { uuid }))
}

/// The session with this id, if the caller's key owns it.
async fn owned_session(inner: &Arc<Inner>, key: &ApiKey, uuid: &str) -> ApiResult<SessionRow> {
    check_uuid(uuid, "session")?;
    let (store, u) = (inner.store.clone(), uuid.to_string());
    match blocking(move || store.session(&u)).await? {
        Some(row) if row.owner == key.name => Ok(row),
        _ => Err(not_found("session", uuid)),
    }
}

async fn session_status(
    State(inner): AppState,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult<Json<SessionStatusRes>> {
    let key = authorize(&inner, &headers)?;
    let row = owned_session(&inner, &key, &uuid).await?;
    let state = inner.live().get(&uuid).map(|l| l.state.clone());
    let end = row.finished_ms.unwrap_or_else(store::Store::now_ms);
    let receipt_url = (row.status == SUCCEEDED && !row.execute_only)
        .then(|| format!("{}/blobs/receipts/{uuid}", base_url(&inner, &headers)));
    Ok(Json(SessionStatusRes {
        status: row.status,
        receipt_url,
        error_msg: row.error_msg,
        state,
        elapsed_time: Some(end.saturating_sub(row.created_ms) as f64 / 1000.0),
        stats: row.stats.map(|st| SessionStats {
            segments: st.segments,
            total_cycles: st.total_cycles,
            cycles: st.cycles,
        }),
    }))
}

async fn stop_session(
    State(inner): AppState,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let key = authorize(&inner, &headers)?;
    let row = owned_session(&inner, &key, &uuid).await?;
    if row.status != RUNNING {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("session {uuid} already ended: {}", row.status),
        ));
    }
    let job = {
        let mut live = inner.live();
        live.get_mut(&uuid).and_then(|l| {
            l.stop = true;
            l.job
        })
    };
    if let Some(job) = job {
        inner
            .service
            .cancel(job)
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(Json(serde_json::json!({ "status": "stopping" })))
}

async fn session_logs(
    State(inner): AppState,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult<String> {
    let key = authorize(&inner, &headers)?;
    let row = owned_session(&inner, &key, &uuid).await?;
    let state = inner.live().get(&uuid).map(|l| l.state.clone());
    Ok(format!(
        "status: {}\nstate: {}\nerror: {}\n",
        row.status,
        state.unwrap_or_default(),
        row.error_msg.unwrap_or_default()
    ))
}

async fn exec_only_journal(
    State(inner): AppState,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult<Vec<u8>> {
    let key = authorize(&inner, &headers)?;
    let row = owned_session(&inner, &key, &uuid).await?;
    if !row.execute_only || row.status != SUCCEEDED {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "session {uuid} has no execute-only journal (status {})",
                row.status
            ),
        ));
    }
    tokio::fs::read(inner.store.journal_path(&uuid))
        .await
        .map_err(ApiError::internal)
}

async fn receipt_url(
    State(inner): AppState,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult<Json<ReceiptDownload>> {
    let key = authorize(&inner, &headers)?;
    let row = owned_session(&inner, &key, &uuid).await?;
    if row.status != SUCCEEDED || row.execute_only {
        return Err(not_found("receipt for session", &uuid));
    }
    Ok(Json(ReceiptDownload {
        url: format!("{}/blobs/receipts/{uuid}", base_url(&inner, &headers)),
    }))
}

async fn download_receipt(
    State(inner): AppState,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult<Response> {
    let key = authorize(&inner, &headers)?;
    let row = owned_session(&inner, &key, &uuid).await?;
    if row.status != SUCCEEDED || row.execute_only {
        return Err(not_found("receipt for session", &uuid));
    }
    let bytes = tokio::fs::read(inner.store.receipt_path(&uuid))
        .await
        .map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}
