//! `GET /v1/models` and `GET /v1/models/{id}`.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use crate::{ApiError, AppState, ServedModel};

fn entry(m: &ServedModel) -> Value {
    json!({"id": m.name, "object": "model", "created": m.created, "owned_by": "kiln"})
}

/// Lists the served models (generators, then embedding models).
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let mut data: Vec<Value> = state.models.iter().map(entry).collect();
    data.extend(state.embedders.iter().map(
        |e| json!({"id": e.name, "object": "model", "created": e.created, "owned_by": "kiln"}),
    ));
    Json(json!({"object": "list", "data": data}))
}

/// One served model.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if let Some(e) = state.embedders.iter().find(|e| e.name == id) {
        return Ok(Json(
            json!({"id": e.name, "object": "model", "created": e.created, "owned_by": "kiln"}),
        ));
    }
    Ok(Json(entry(state.model(&id)?)))
}
