//! What the console clients (`jetstream api`, `jscp`) share: connecting with the known-hosts
//! check (asking on a terminal), logging in (password from `JETSTREAM_API_PASSWORD` or a
//! prompt without echo, or a token), and their exit statuses.
//!
//! It is what a console program needs around [`ApiClient`]; a program embedding the client
//! with its own credentials needs none of it.
#![allow(unsafe_code)] // getuid/getpwuid_r and termios; see the SAFETY comments.

use std::io::{self, BufRead, IsTerminal, Read};

use jetstream_api::params::{Auth, AuthToken, Secret};
use jetstream_api::Api as _;

use crate::client::{default_known_hosts, ApiClient, ClientError, ConnectOptions, Trust};

/// Exit statuses of `jetstream api` and `jscp`, for scripts.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// The command failed (`jetstream api`), or the transfer failed or is partial (`jscp`).
    pub const COMMAND_FAILED: i32 = 1;
    /// Bad command line.
    pub const USAGE: i32 = 2;
    /// Wrong user name, password or token; no password available.
    pub const AUTH: i32 = 3;
    /// Cannot connect: name, route, port closed, TLS, unknown or changed server key.
    pub const CONNECT: i32 = 4;
    /// The server refused the request (path outside the sandbox, permission, bad path).
    pub const REFUSED: i32 = 5;
    /// A local file problem (a source missing or unreadable, a target not writable).
    pub const LOCAL: i32 = 6;
    /// Interrupted with Ctrl-C (128 + SIGINT, as a shell reports it); `jscp` can resume.
    pub const INTERRUPTED: i32 = 130;
}

/// Why `run` failed: the message for stderr and the exit status.
#[derive(Debug)]
pub struct Failure {
    /// One line for stderr.
    pub message: String,
    /// The exit status.
    pub code: i32,
}

impl Failure {
    /// A failure with its exit status.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code,
        }
    }

    /// A failed command: API errors are the command's failure, anything else is the
    /// connection's.
    pub fn of_command(e: ClientError) -> Self {
        match e {
            ClientError::Api(m) => Self::new(exit::COMMAND_FAILED, m.message),
            other => Self::new(exit::CONNECT, other.to_string()),
        }
    }

    /// A failed login step.
    pub fn of_auth(e: ClientError) -> Self {
        match e {
            ClientError::Api(m) => Self::new(exit::AUTH, format!("authentication failed: {m}")),
            other => Self::new(exit::CONNECT, other.to_string()),
        }
    }
}

/// Connects, asking on the terminal whether to trust a server not yet known.
///
/// # Errors
/// A [`Failure`] with [`exit::CONNECT`].
pub fn connect(
    host: &str,
    port: u16,
    accept_new_host: bool,
    force_tls: bool,
) -> Result<ApiClient, Failure> {
    let file = default_known_hosts();
    let mut opts = ConnectOptions::new(Trust::KnownHostsOrLocal {
        file: file.clone(),
        accept_new: accept_new_host,
    });
    opts.force_tls = force_tls;
    match ApiClient::connect(host, port, &opts) {
        Ok(c) => Ok(c),
        Err(ClientError::UnknownHost {
            host: shown,
            fingerprint,
            local_listener,
        }) if !accept_new_host && io::stdin().is_terminal() => {
            if let Some(why) = local_listener {
                eprintln!("Note: {why}.");
            }
            eprintln!("The identity of {shown} is not known yet.");
            eprintln!("Its key fingerprint is {fingerprint}.");
            eprint!("Trust this server? [y/N] ");
            let mut answer = String::new();
            let _ = io::stdin().lock().read_line(&mut answer);
            if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                return Err(Failure::new(
                    exit::CONNECT,
                    format!("{shown} not trusted (fingerprint {fingerprint})"),
                ));
            }
            opts.trust = Trust::KnownHostsOrLocal {
                file,
                accept_new: true,
            };
            ApiClient::connect(host, port, &opts)
                .map_err(|e| Failure::new(exit::CONNECT, e.to_string()))
        }
        Err(e) => Err(Failure::new(exit::CONNECT, e.to_string())),
    }
}

/// Logs in with `token` (its password, if any, from `JETSTREAM_API_PASSWORD`), or as `user`
/// (default: the invoking login name) with the password from `JETSTREAM_API_PASSWORD` or a
/// prompt on the terminal.
///
/// # Errors
/// [`exit::AUTH`] for refused credentials or no password, [`exit::CONNECT`] for a broken
/// connection, [`exit::USAGE`] when the user cannot be determined.
pub fn authenticate(
    client: &mut ApiClient,
    host: &str,
    user: Option<&str>,
    token: Option<&str>,
) -> Result<(), Failure> {
    let password = std::env::var("JETSTREAM_API_PASSWORD").ok();
    if let Some(token) = token {
        let params = AuthToken {
            token: token.into(),
            password: password.map(Secret::from),
        };
        client.auth_token(&params).map_err(Failure::of_auth)?;
        return Ok(());
    }
    let user = match user {
        Some(u) => u.to_owned(),
        None => login_name().ok_or_else(|| {
            Failure::new(exit::USAGE, "cannot tell who you are: give a user name")
        })?,
    };
    let password = match password {
        Some(p) => p,
        None => {
            let typed = ask_password(&user, host)?;
            // The server gives a connection a short time to log in (`--api-login-timeout`,
            // 20 s by default); typing may take longer, so log in on a fresh connection.
            client
                .reconnect()
                .map_err(|e| Failure::new(exit::CONNECT, e.to_string()))?;
            typed
        }
    };
    let params = Auth {
        user_name: user,
        password: password.into(),
    };
    client.auth(&params).map_err(Failure::of_auth)?;
    Ok(())
}

fn ask_password(user: &str, host: &str) -> Result<String, Failure> {
    if !io::stdin().is_terminal() {
        return Err(Failure::new(
            exit::AUTH,
            "no password: set JETSTREAM_API_PASSWORD",
        ));
    }
    match read_password(&format!("Password for {user}@{host}: ")) {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(Failure::new(exit::INTERRUPTED, "cancelled")),
        Err(e) => Err(Failure::new(
            exit::AUTH,
            format!("cannot read the password: {e}"),
        )),
    }
}

/// Restores the terminal settings it saved, however the prompt ends.
struct EchoGuard {
    saved: libc::termios,
}

impl Drop for EchoGuard {
    fn drop(&mut self) {
        // SAFETY: `saved` is a termios filled by tcgetattr on the same fd; tcsetattr only
        // reads it.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved);
        }
    }
}

/// Reads a line from the terminal on stdin without echo. Returns `None` on Ctrl-C / Ctrl-D.
///
/// The terminal is put in non-canonical mode without signals, so Ctrl-C is read here (and the
/// settings restored) instead of killing the process with echo left off.
fn read_password(prompt: &str) -> io::Result<Option<String>> {
    // SAFETY: termios is a plain C struct for which all-zero bytes are a valid value; it is
    // fully overwritten by tcgetattr before use.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: STDIN_FILENO is open (it is a terminal, checked by the caller) and `saved` is a
    // valid, writable termios.
    if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut raw = saved;
    raw.c_lflag &= !(libc::ECHO | libc::ICANON | libc::ISIG);
    raw.c_cc[libc::VMIN] = 1;
    raw.c_cc[libc::VTIME] = 0;
    eprint!("{prompt}");
    // SAFETY: as above; `raw` is a valid termios derived from the current settings.
    if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSAFLUSH, &raw) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let guard = EchoGuard { saved };
    let mut bytes = Vec::new();
    let mut stdin = io::stdin().lock();
    let mut byte = [0u8; 1];
    let outcome = loop {
        if stdin.read(&mut byte)? == 0 {
            break Some(());
        }
        match byte[0] {
            b'\r' | b'\n' => break Some(()),
            0x03 => break None,                     // Ctrl-C
            0x04 if bytes.is_empty() => break None, // Ctrl-D
            0x7f | 0x08 => {
                // Backspace: drop one UTF-8 character.
                while bytes.pop().is_some_and(|b| b & 0xc0 == 0x80) {}
            }
            0x15 => bytes.clear(), // Ctrl-U
            b => bytes.push(b),
        }
    };
    drop(guard);
    eprintln!();
    Ok(outcome.map(|()| String::from_utf8_lossy(&bytes).into_owned()))
}

/// The invoking user's login name (passwd entry of the real uid), else `$USER`.
pub fn login_name() -> Option<String> {
    passwd_name().or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
}

/// The login name of the real uid in the user database (`getpwuid_r`).
fn passwd_name() -> Option<String> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: `passwd` is a plain C struct; all-zero is a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and `buf.len()` is the buffer's size;
        // on success `pwd`'s strings point into `buf`, which outlives their use below.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: getpwuid_r succeeded, so `pw_name` is a NUL-terminated string in `buf`.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty());
    }
}
