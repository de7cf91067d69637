//! (placeholder, being written) Discovery packets: `sendDiscoverPacketAsync`,
//! `recvDiscoverPacketAsync`.

use std::sync::Arc;

use serde_json::Value;

use super::api::ApiError;
use super::Server;

/// Sends discovery probes and waits for the echo.
///
/// # Errors
/// Bad parameters.
pub fn send(_server: &Arc<Server>, _p: &Value) -> Result<(String, Value), ApiError> {
    Err(ApiError("not implemented yet".into()))
}

/// Waits for a discovery probe.
///
/// # Errors
/// Bad parameters.
pub fn recv(_server: &Arc<Server>, _p: &Value) -> Result<(String, Value), ApiError> {
    Err(ApiError("not implemented yet".into()))
}
