//! The control API's connections: one thread per client, newline-delimited JSON requests, TLS
//! for every non-loopback client (detected from the first byte), and the per-connection login
//! state ([`Session`]).

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::log::Level;
use super::Server;
use crate::tls::{self, ApiStream};
use crate::users::SystemUser;
use jetstream_api::wire::{self, FrameError, Request, Response};
use jetstream_api::ErrorKind;

/// Who is logged in on one API connection. `Debug` shows only the token's first characters.
pub struct Session {
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether the client reached us through the relay.
    pub via_relay: bool,
    /// The public key (hex SPKI) of the client's certificate, when it presented one (a
    /// sending server does).
    pub peer_key: Option<String>,
    /// The authenticated system user.
    pub user: Option<SystemUser>,
    /// The API token used to log in, if any.
    pub token: Option<String>,
    /// The token login session id.
    pub token_session: Option<String>,
    /// With a shared token: the manifest it shares (the only thing the session may reach).
    pub shared_manifest: Option<String>,
    /// Whether `superuser` was called successfully.
    pub superuser: bool,
    /// Whether the session logged in with `authClient` (an authorized sending server's key):
    /// it may not raise itself to superuser nor make API tokens.
    pub by_client_key: bool,
    /// Transfers this connection started on the receiving side (id, attempt); interrupted if
    /// it drops.
    pub receiving: Vec<(String, u64)>,
    /// Downloads this connection asked for (`send.startDownload`); stopped if it drops.
    pub downloads: Vec<jetstream_core::Transfer>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("via_relay", &self.via_relay)
            .field("peer_key", &self.peer_key)
            .field("user", &self.user)
            .field("token", &super::secrets::ShownTokenOpt(&self.token))
            .field("token_session", &self.token_session)
            .field("shared_manifest", &self.shared_manifest)
            .field("superuser", &self.superuser)
            .field("by_client_key", &self.by_client_key)
            .field("receiving", &self.receiving)
            .field("downloads", &self.downloads)
            .finish()
    }
}

impl Session {
    pub(crate) fn new(peer: SocketAddr) -> Self {
        Self {
            peer,
            via_relay: false,
            peer_key: None,
            user: None,
            token: None,
            token_session: None,
            shared_manifest: None,
            superuser: false,
            by_client_key: false,
            receiving: Vec::new(),
            downloads: Vec::new(),
        }
    }
}

/// An error answer: its message goes back to the client; the connection stays usable.
///
/// There is no blanket conversion from other errors: each message a client sees is written
/// for clients (what was wrong with the request, or what it may do next). A failure inside the
/// server (a thread, the engine, the state directory) goes through [`ApiError::internal`],
/// which logs the detail and gives the client a reference to it instead.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// The message for the client.
    pub message: String,
    /// Its kind (the answer's `errorCode`).
    pub kind: ErrorKind,
}

impl ApiError {
    /// A refusal of kind [`ErrorKind::Failed`]: `message` says why.
    pub fn new(message: String) -> Self {
        Self::of(ErrorKind::Failed, message)
    }

    /// A refusal of kind `kind`.
    pub fn of(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            kind,
        }
    }

    /// `message` of kind [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::of(ErrorKind::NotFound, message)
    }

    /// An internal failure while doing `what`: the detail goes to the server log under a
    /// fresh reference; the client gets `what` failed and that reference.
    pub fn internal(what: &str, detail: impl std::fmt::Display) -> Self {
        let reference = &super::objects::new_id()[..12];
        crate::error!("api: internal error {reference}: {what}: {detail}");
        Self::of(
            ErrorKind::Internal,
            format!(
                "{what} failed: internal server error (reference {reference} in the server log)"
            ),
        )
    }
}

/// Sandbox errors are written for the client: a path that escapes, is malformed, meets a
/// symbolic link or a file in the way, or cannot be created (with the system's reason). A bad
/// sandbox template is the administrator's mistake: the client is told only that.
impl From<crate::sandbox::SandboxError> for ApiError {
    fn from(e: crate::sandbox::SandboxError) -> Self {
        match e {
            crate::sandbox::SandboxError::BadTemplate(_) => {
                Self::internal("preparing the sandbox", e)
            }
            e => Self::new(e.to_string()),
        }
    }
}

/// What a command handler gets.
pub struct Ctx<'a> {
    /// The server.
    pub server: &'a Arc<Server>,
    /// The connection's login state.
    pub session: &'a mut Session,
    /// The connection (for TLS key export).
    pub stream: &'a ApiStream,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("session", &self.session)
            .finish()
    }
}

/// Serves one client until it leaves, holding `slot` (taken in accept order, so that the
/// connections beyond the cap are the newest).
pub fn serve(server: &Arc<Server>, tcp: TcpStream, peer: SocketAddr, slot: super::ApiSlot) {
    serve_with(server, tcp, peer, false, slot);
}

/// Serves a client whose address is `peer` (for a client reaching us through the relay: its
/// public address, so that TLS and the remote-control rules apply as if it were direct).
pub fn serve_as(server: &Arc<Server>, tcp: TcpStream, peer: SocketAddr, via_relay: bool) {
    // A client through the relay is remote even when its address is the relay host's own
    // loopback: it must never pass for a local one here.
    if via_relay && !server.live().api_allow_remote_control {
        crate::warn!("api: refused {peer} (through the relay): remote control is off");
        return;
    }
    let Some(slot) = server.api_slot(peer.ip()) else {
        crate::warn!("api: refused {peer}: too many API connections");
        return;
    };
    serve_with(server, tcp, peer, via_relay, slot);
}

fn serve_with(
    server: &Arc<Server>,
    tcp: TcpStream,
    peer: SocketAddr,
    via_relay: bool,
    _slot: super::ApiSlot,
) {
    let _ = tcp.set_nodelay(true);
    let login_timeout = server.live().api_login_timeout();
    // The TLS handshake and the login share one deadline: a client that sends nothing, or one
    // byte now and then, is closed when it passes (issue 15, item 6).
    let mut login_by = Instant::now() + login_timeout;
    let stream = match tls::accept(tcp, &server.tls_config, login_by) {
        Ok(s) => s,
        Err(e) if is_timeout(&e) => {
            crate::warn!(
                "api: {peer}: closed: not logged in within {} s of connecting \
                 (--api-login-timeout): no request, or the TLS handshake did not end",
                login_timeout.as_secs()
            );
            return;
        }
        Err(e) => {
            crate::warn!("api: {peer}: TLS handshake failed: {e}");
            return;
        }
    };
    // A client that stops reading its answers holds its thread for at most this long.
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    if !stream.is_tls() && (via_relay || !peer.ip().is_loopback()) {
        // Credentials must never cross a network in the clear.
        let mut s = stream;
        let _ = wire::write_line(
            &mut s,
            &Response::error("plain connections are accepted only from loopback: connect with TLS"),
        );
        return;
    }
    crate::debug!(
        "api: {peer}: connected ({})",
        if stream.is_tls() { "TLS" } else { "plain" }
    );
    let mut session = Session::new(peer);
    session.via_relay = via_relay;
    session.peer_key = stream.peer_public_key();
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let mut was_logged_in = false;
    loop {
        let logged_in = session.user.is_some();
        if was_logged_in && !logged_in {
            // The session's token lapsed: it is a client that has not logged in again.
            login_by = Instant::now() + login_timeout;
        }
        was_logged_in = logged_in;
        let (deadline, max) = if logged_in {
            let idle = server.live().api_idle_timeout();
            (idle.map(|d| Instant::now() + d), wire::MAX_LINE)
        } else {
            (Some(login_by), wire::MAX_LINE_BEFORE_LOGIN)
        };
        reader.get_ref().set_read_deadline(deadline);
        match wire::read_request_line(&mut reader, &mut line, max) {
            Ok(()) => {}
            Err(FrameError::TooLong) => {
                // The line was dropped as it arrived; the connection stays in step and usable.
                let response = Response::error(too_long(logged_in));
                let until = write_deadline(logged_in, login_by);
                let mut out = Deadline::until(reader.get_mut(), until);
                if wire::write_line(&mut out, &response).is_err() {
                    break;
                }
                continue;
            }
            Err(FrameError::Io(e)) if is_timeout(&e) => {
                // A connection carrying a receive or a download is not idle: its transfer has
                // its own liveness checks. Only a client between two lines is kept waiting.
                if logged_in && line.is_empty() && carries_transfer(server, &session) {
                    continue;
                }
                let why = if logged_in {
                    format!(
                        "closed: no request for {} s (--api-idle-timeout)",
                        server.live().api_idle_timeout
                    )
                } else {
                    format!(
                        "closed: not logged in within {} s of connecting (--api-login-timeout)",
                        login_timeout.as_secs()
                    )
                };
                // An idle client that was logged in is ordinary; one that never logged in is not.
                let level = if logged_in { Level::Info } else { Level::Warn };
                crate::log_at!(level, "api: {peer}: {why}");
                let mut out = Deadline::new(reader.get_mut(), FAREWELL_TIMEOUT);
                let _ = wire::write_line(&mut out, &Response::error(why));
                break;
            }
            Err(_) => break,
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (mut response, panicked) = guarded(peer, || {
            handle_line(server, &mut session, reader.get_ref(), &line)
        });
        if panicked {
            // The client matches answers to requests by `id`: the refusal carries it too.
            response.id = request_id(&line);
        }
        if line.capacity() > KEPT_LINE_CAPACITY {
            // A big request's buffer, and what parsing it took, go back now, not when the
            // connection ends.
            line = Vec::new();
            super::sys::release_free_memory();
        }
        let until = write_deadline(session.user.is_some(), login_by);
        let mut out = Deadline::until(reader.get_mut(), until);
        if wire::write_line(&mut out, &response).is_err() {
            break;
        }
        // After a panic the session may be half-updated: the client has its answer, and the
        // connection ends (it may connect and log in again).
        if panicked || server.is_stopping() {
            break;
        }
    }
    let _ = reader.get_mut().flush();
    super::receive::connection_closed(server, &session);
    for d in &session.downloads {
        if !d.status().state.is_final() {
            d.cancel();
        }
    }
}

/// Runs `handle` (one request's handling), catching a panic: then the client gets an internal
/// error with a reference, the log gets the panic's message under that reference, and the
/// second value is `true` (the caller closes the connection). Other connections and the
/// transfers go on. (The release profile must unwind for this: with `panic = "abort"` a panic
/// still ends the process.)
pub(crate) fn guarded(peer: SocketAddr, handle: impl FnOnce() -> Response) -> (Response, bool) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(handle)) {
        Ok(response) => (response, false),
        Err(panic) => {
            let e = ApiError::internal(
                &format!("the request of {peer}"),
                format_args!("panic: {}", panic_message(&*panic)),
            );
            (Response::refused(e.kind, e.message), true)
        }
    }
}

/// The `id` of the request on `line`, if it is a JSON object that has one.
fn request_id(line: &[u8]) -> Option<Value> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<Value>,
    }
    serde_json::from_slice::<IdOnly>(line)
        .ok()
        .and_then(|r| r.id)
}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)")
}

/// When writing an answer must end: [`WRITE_TIMEOUT`] from now, and before login no later
/// than the login deadline (a client that has not logged in cannot stretch its time by not
/// reading its answers either).
fn write_deadline(logged_in: bool, login_by: Instant) -> Instant {
    let normal = Instant::now() + WRITE_TIMEOUT;
    if logged_in {
        normal
    } else {
        normal.min(login_by)
    }
}

/// The answer to a request line over the limit.
fn too_long(logged_in: bool) -> String {
    if logged_in {
        format!(
            "request too long: a request line may hold at most {} bytes",
            wire::MAX_LINE
        )
    } else {
        format!(
            "request too long: before logging in (auth or authToken) a request line may hold at \
             most {} bytes",
            wire::MAX_LINE_BEFORE_LOGIN
        )
    }
}

/// Whether a read failed because its deadline passed (a socket timeout reads as
/// `WouldBlock` on Linux).
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

/// Whether the connection carries a transfer that is still moving: a receive it started
/// (`recv.startTransfer`, by a sending server or `jscp`) or a download it asked for.
fn carries_transfer(server: &Server, session: &Session) -> bool {
    if session
        .downloads
        .iter()
        .any(|d| !d.status().state.is_final())
    {
        return true;
    }
    if session.receiving.is_empty() {
        return false;
    }
    let mut objs = server.objects.lock();
    session.receiving.iter().any(|(id, attempt)| {
        objs.receives
            .get_mut(id)
            .filter(|r| r.attempt == *attempt)
            .is_some_and(super::receive::is_receiving)
    })
}

/// A request buffer above this is released after its request (most requests are a few
/// hundred bytes; one big `createManifest` must not pin megabytes for the connection's life).
const KEPT_LINE_CAPACITY: usize = 64 << 10;

/// How long the server tries to tell a client why it closes its connection.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest time one answer may take to write: a client that stops reading its answers holds
/// its thread (and connection slot) for at most this long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A writer with a deadline for everything written through it. The socket's write timeout
/// alone bounds each `write` call, and a client that reads a few bytes now and then (or a
/// kernel that frees a little receive space) would let a stream of short writes go on for
/// ever; here each call gets only the time left.
struct Deadline<'a> {
    stream: &'a mut ApiStream,
    until: Instant,
}

impl<'a> Deadline<'a> {
    fn new(stream: &'a mut ApiStream, limit: Duration) -> Self {
        Self::until(stream, Instant::now() + limit)
    }

    fn until(stream: &'a mut ApiStream, until: Instant) -> Self {
        Self { stream, until }
    }

    fn arm(&self) -> std::io::Result<()> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_write_timeout(Some(left))
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.arm()?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.arm()?;
        self.stream.flush()
    }
}

fn handle_line(
    server: &Arc<Server>,
    session: &mut Session,
    stream: &ApiStream,
    line: &[u8],
) -> Response {
    let (mut req, params) = match parse_request(line) {
        Ok(r) => r,
        Err(response) => return response,
    };
    // The trigger `on.<command>` gets the parameters as they came: a copy only when it runs.
    let wanted = server.wants_event(&format!("on.{}", req.request));
    let given = (wanted && !req.parameters.is_null()).then(|| params.clone());
    let mut response = if params.is_object() {
        let mut ctx = Ctx {
            server,
            session,
            stream,
        };
        match super::commands::dispatch(&mut ctx, &req.request, params) {
            Ok((message, mut result)) => {
                super::secrets::mask_owner_tokens(&mut result);
                Response::success(message, result)
            }
            Err(e) => Response::refused(e.kind, e.message),
        }
    } else {
        Response::error("bad request: \"parameters\" must be an object")
    };
    debug_request(session, &req.request, &response);
    if wanted {
        if let Some(given) = given {
            req.parameters = given;
        }
        api_trigger(server, &req, &response);
    }
    response.id = req.id;
    response
}

/// The debug line of a request: who, which command, and whether it succeeded (never its
/// parameters or the answer's message, which may quote a password or a token).
fn debug_request(session: &Session, command: &str, response: &Response) {
    if !super::log::enabled(Level::Debug) {
        return;
    }
    // The command name is the client's: a long one is cut.
    let end = command
        .char_indices()
        .nth(64)
        .map_or(command.len(), |(i, _)| i);
    let user = session.user.as_ref().map_or("-", |u| u.name.as_str());
    let token = session
        .token
        .as_deref()
        .map(|t| format!(" token {}", super::secrets::shown_token(t)))
        .unwrap_or_default();
    crate::debug!(
        "api: {} ({user}{token}): {}: {}",
        session.peer,
        &command[..end],
        response.status
    );
}

/// Parses one request line into the request and its parameters (`{}` when absent or `null`;
/// the caller checks that they are an object). The parameters are moved out of the request,
/// not copied (a big request is held once): the returned request's `parameters` is `{}` when
/// it had any, `null` when it had none. Pure: the fuzz target `api_request` drives it.
///
/// # Errors
/// The error response for more than [`wire::MAX_VALUES`] values, malformed JSON or a line
/// that is not a request (with the line's `id` when it had one).
// The error is the answer itself, written to the client at once: boxing it would only move
// the same bytes to the heap on the error path.
#[allow(clippy::result_large_err)]
pub fn parse_request(line: &[u8]) -> Result<(Request, Value), Response> {
    if wire::count_values(line) > wire::MAX_VALUES {
        return Err(Response::error(format!(
            "request too large: at most {} JSON values (array or object elements) in one request",
            wire::MAX_VALUES
        )));
    }
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| Response::error(format!("malformed JSON request: {e}")))?;
    let id = value.get("id").cloned();
    let mut req: Request = serde_json::from_value(value).map_err(|e| {
        let mut r = Response::error(format!(
            "bad request: {e}; expected {{\"request\": \"command\", \"parameters\": {{...}}}}"
        ));
        r.id = id;
        r
    })?;
    let params = if req.parameters.is_null() {
        json!({})
    } else {
        std::mem::replace(&mut req.parameters, json!({}))
    };
    Ok((req, params))
}

/// `on.<command>` (with `--trigger-on-api`): the command as JSON, the status, the message and
/// the result as JSON, with every secret taken out (issue 15, item 9): a script's argv can be
/// read by any local user (`ps`, `/proc/<pid>/cmdline`). Under any key naming a password or
/// passphrase the value becomes `********`; under a key naming a token (`token`,
/// `ownerToken`, ...) only its first 6 characters and `…` remain, as in the event log; and
/// those secrets are also cut out of the message wherever it quotes them.
fn api_trigger(server: &Server, req: &Request, response: &Response) {
    let mut command = json!({ "request": req.request, "parameters": req.parameters });
    let mut secrets = super::secrets::redact_json(&mut command);
    let mut result = response.result.clone();
    secrets.extend(super::secrets::redact_json(&mut result));
    let message = super::secrets::scrub_text(&response.message, &secrets);
    server.emit(super::ServerEvent::CommandProcessed {
        command: req.request.clone(),
        request: command,
        status: response.status.clone(),
        message,
        result,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 17, item 6: a panic in one request's handling must not take the server (or the
    /// other connections) with it: the client gets an internal error naming a reference, and
    /// the connection is closed.
    #[test]
    fn a_panicking_request_answers_an_internal_error_with_a_reference() {
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let (response, panicked) = guarded(peer, || panic!("index out of bounds"));
        assert!(panicked);
        assert!(!response.is_success());
        assert!(
            response
                .message
                .contains("internal server error (reference "),
            "{}",
            response.message
        );
        assert!(
            !response.message.contains("index out of bounds"),
            "no detail to the client"
        );
        let (response, panicked) = guarded(peer, || panic!("{}", String::from("formatted")));
        assert!(panicked && !response.is_success());

        let (response, panicked) = guarded(peer, || Response::success("Echo.", json!({})));
        assert!(!panicked);
        assert!(response.is_success());
    }

    #[test]
    fn the_answer_to_a_panicked_request_can_carry_its_id() {
        assert_eq!(
            request_id(br#"{"request": "echo", "id": "req-7"}"#),
            Some(json!("req-7"))
        );
        assert_eq!(
            request_id(br#"{"request": "echo", "id": 12}"#),
            Some(json!(12))
        );
        assert_eq!(request_id(br#"{"request": "echo"}"#), None);
        assert_eq!(request_id(b"not json"), None);
        assert_eq!(request_id(b"[1, 2]"), None);
    }

    #[test]
    fn panic_messages_are_read_from_either_payload() {
        let p = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(&*p), "plain");
        let p = std::panic::catch_unwind(|| panic!("{}", 42)).unwrap_err();
        assert_eq!(panic_message(&*p), "42");
    }
}
