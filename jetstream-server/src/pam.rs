//! A minimal binding to Linux-PAM: check a user name and password against a PAM service
//! (`/etc/pam.d/jetstream`, see `packaging/pam.d/jetstream`).
//!
//! Only the few calls a password login needs are declared here: `pam_start`,
//! `pam_authenticate`, `pam_acct_mgmt`, `pam_strerror`, `pam_set_item` and `pam_end`. They
//! are looked up in `libpam.so.0` at run time (`dlopen`, on the first login), not linked:
//! building needs no PAM development files, and where the library is missing the server
//! still runs and only password logins fail, saying so.
//!
//! The conversation function answers every password prompt with the password it was given and
//! nothing else, so modules that need a second factor or a password change fail with
//! [`PamError`].
//!
//! PAM handles are not thread safe, but each [`authenticate`] call uses its own handle, so
//! calls from several threads at once are fine.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::OnceLock;

// Return codes and flags from <security/_pam_types.h> (Linux-PAM).
const PAM_SUCCESS: c_int = 0;
const PAM_SERVICE_ERR: c_int = 3;
const PAM_SYSTEM_ERR: c_int = 4;
const PAM_BUF_ERR: c_int = 5;
const PAM_PERM_DENIED: c_int = 6;
const PAM_AUTH_ERR: c_int = 7;
const PAM_CRED_INSUFFICIENT: c_int = 8;
const PAM_USER_UNKNOWN: c_int = 10;
const PAM_MAXTRIES: c_int = 11;
const PAM_NEW_AUTHTOK_REQD: c_int = 12;
const PAM_ACCT_EXPIRED: c_int = 13;
const PAM_CONV_ERR: c_int = 19;
const PAM_AUTHTOK_EXPIRED: c_int = 27;

const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x0001;

/// `pam_set_item` item type for the failure-delay callback (Linux-PAM).
const PAM_FAIL_DELAY: c_int = 10;

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;

/// Most messages PAM may pass in one conversation call (`PAM_MAX_NUM_MSG`).
const PAM_MAX_NUM_MSG: c_int = 32;

/// `pam_handle_t`: opaque, only ever used behind a pointer.
#[repr(C)]
struct PamHandle {
    _opaque: [u8; 0],
}

/// `struct pam_message`.
#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

/// `struct pam_response`. PAM frees `resp` and the array itself with `free(3)`.
#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

/// The conversation callback's C signature.
type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

/// `struct pam_conv`.
#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

/// The file `dlopen` looks for: the soname of Linux-PAM's runtime library, which Debian's
/// `libpam0g` package installs (it is part of every Debian system). Loading it at run time
/// instead of linking `-lpam` means building needs no `libpam0g-dev`, and a machine without
/// the library still runs the server: only password logins fail, with [`library_error`].
pub const LIBRARY: &str = "libpam.so.0";

/// `pam_start`.
type StartFn = unsafe extern "C" fn(
    service_name: *const c_char,
    user: *const c_char,
    pam_conversation: *const PamConv,
    pamh: *mut *mut PamHandle,
) -> c_int;
/// `pam_end`.
type EndFn = unsafe extern "C" fn(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
/// `pam_authenticate` and `pam_acct_mgmt`.
type FlagsFn = unsafe extern "C" fn(pamh: *mut PamHandle, flags: c_int) -> c_int;
/// `pam_strerror`.
type StrerrorFn = unsafe extern "C" fn(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
/// `pam_set_item`.
type SetItemFn =
    unsafe extern "C" fn(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;

/// The PAM calls this module makes, resolved from [`LIBRARY`] by `dlsym`.
///
/// The library is never closed: the pointers stay valid for the life of the process.
#[derive(Debug)]
struct Api {
    start: StartFn,
    end: EndFn,
    authenticate: FlagsFn,
    acct_mgmt: FlagsFn,
    strerror: StrerrorFn,
    set_item: SetItemFn,
}

/// The loaded library, once it loaded. A failure is not kept: the next login tries again, so
/// installing `libpam0g` fixes a running server without a restart.
static API: OnceLock<Api> = OnceLock::new();

impl Api {
    /// The loaded library, loading it on first use.
    fn get() -> Result<&'static Self, PamError> {
        if let Some(api) = API.get() {
            return Ok(api);
        }
        let api = Self::load(LIBRARY).map_err(|message| PamError {
            code: PAM_SYSTEM_ERR,
            message,
        })?;
        // Two threads may both have loaded it; dlopen counts references, and the copy that
        // loses the race holds the same addresses.
        Ok(API.get_or_init(|| api))
    }

    /// `dlopen(name)` and `dlsym` of each function, or the reason why not, for people.
    fn load(name: &str) -> Result<Self, String> {
        let c_name = CString::new(name).map_err(|_| format!("{name:?} contains a NUL byte"))?;
        // SAFETY: a valid NUL-terminated file name. Loading Linux-PAM runs no constructor
        // with preconditions. RTLD_NOW: a broken library fails here, not at a later call.
        let lib = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if lib.is_null() {
            return Err(format!(
                "PAM library {name} not found: install libpam0g ({})",
                dl_error()
            ));
        }
        let sym = |symbol: &CStr| -> Result<*mut c_void, String> {
            // SAFETY: `lib` is a live handle from dlopen (never closed); `symbol` is
            // NUL-terminated.
            let p = unsafe { libc::dlsym(lib, symbol.as_ptr()) };
            if p.is_null() {
                Err(format!(
                    "PAM library {name} has no {}: install Linux-PAM's libpam0g ({})",
                    symbol.to_string_lossy(),
                    dl_error()
                ))
            } else {
                Ok(p)
            }
        };
        // SAFETY (each transmute): the symbol is Linux-PAM's function of that name, whose C
        // prototype in <security/pam_appl.h> / <security/_pam_types.h> is the one the
        // target type spells out; a non-null data pointer from dlsym is its code address.
        unsafe {
            Ok(Self {
                start: std::mem::transmute::<*mut c_void, StartFn>(sym(c"pam_start")?),
                end: std::mem::transmute::<*mut c_void, EndFn>(sym(c"pam_end")?),
                authenticate: std::mem::transmute::<*mut c_void, FlagsFn>(sym(
                    c"pam_authenticate",
                )?),
                acct_mgmt: std::mem::transmute::<*mut c_void, FlagsFn>(sym(c"pam_acct_mgmt")?),
                strerror: std::mem::transmute::<*mut c_void, StrerrorFn>(sym(c"pam_strerror")?),
                set_item: std::mem::transmute::<*mut c_void, SetItemFn>(sym(c"pam_set_item")?),
            })
        }
    }
}

/// `dlerror()`'s text for the last failure on this thread.
fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the next dl* call
    // on this thread; it is copied at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "no detail".into()
    } else {
        // SAFETY: non-null, NUL-terminated (see above).
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

/// Why PAM cannot be used, if it cannot: [`LIBRARY`] is missing or unusable. Loads it if
/// that was not done yet. The server reports this at start; password logins then fail with
/// this text (token logins do not need PAM).
pub fn library_error() -> Option<String> {
    Api::get().err().map(|e| e.message)
}

/// The `PAM_FAIL_DELAY` callback: does nothing, so that modules' own failure delays (pam_unix
/// asks for about 2 s) do not add to the caller's, which is configurable
/// (`Authenticator::set_failure_delay`).
extern "C" fn no_fail_delay(
    _retval: c_int,
    _usec_delay: std::os::raw::c_uint,
    _appdata: *mut c_void,
) {
}

/// A PAM call failed: the PAM return code and its `pam_strerror` text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PamError {
    /// The PAM return code (`PAM_AUTH_ERR`, `PAM_USER_UNKNOWN`, ...).
    pub code: i32,
    /// Human-readable text for `code`.
    pub message: String,
}

impl PamError {
    /// Whether the login was refused because of the credentials or the account (wrong
    /// password, unknown user, expired or locked account), as opposed to a broken PAM setup or
    /// an unreachable authentication service.
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self.code,
            PAM_PERM_DENIED
                | PAM_AUTH_ERR
                | PAM_CRED_INSUFFICIENT
                | PAM_USER_UNKNOWN
                | PAM_MAXTRIES
                | PAM_NEW_AUTHTOK_REQD
                | PAM_ACCT_EXPIRED
                | PAM_AUTHTOK_EXPIRED
        )
    }

    /// An error for `code` with PAM's own text for it.
    fn from_code(api: &Api, handle: *mut PamHandle, code: c_int) -> Self {
        // SAFETY: Linux-PAM's pam_strerror ignores `handle` (null is allowed) and returns a
        // pointer to a static NUL-terminated string (or null, which we check).
        let text = unsafe { (api.strerror)(handle, code) };
        let message = if text.is_null() {
            format!("PAM error {code}")
        } else {
            // SAFETY: non-null, NUL-terminated, static (see above).
            unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned()
        };
        Self { code, message }
    }
}

impl fmt::Display for PamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (PAM code {})", self.message, self.code)
    }
}

impl std::error::Error for PamError {}

/// The password, NUL-free, zeroed when dropped. The conversation function reads it through
/// `appdata_ptr`.
struct Secret(Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference to a byte. The volatile
            // write keeps the compiler from eliding the wipe of a buffer about to be freed.
            unsafe { ptr::write_volatile(b, 0) };
        }
    }
}

/// Closes the PAM handle with the last status when dropped.
struct Handle {
    api: &'static Api,
    ptr: *mut PamHandle,
    status: c_int,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from a successful pam_start and is ended exactly once, here.
        unsafe { (self.api.end)(self.ptr, self.status) };
    }
}

/// Checks `user` / `password` with the PAM `service` (e.g. `"jetstream"`): `pam_start`,
/// `pam_authenticate` and `pam_acct_mgmt` (both with `PAM_DISALLOW_NULL_AUTHTOK`), then
/// `pam_end`.
///
/// Blocks for as long as the PAM modules take (pam_unix hashes the password; network
/// modules may wait on a server). Modules' failure delays are disabled: the caller applies
/// its own.
///
/// # Errors
///
/// [`LIBRARY`] cannot be loaded: `PAM_SYSTEM_ERR` with [`library_error`]'s text. Otherwise
/// the first failing PAM call's code and text. A user name that is empty or contains a NUL
/// byte gives `PAM_USER_UNKNOWN`, a password with a NUL byte `PAM_AUTH_ERR` (neither reaches
/// PAM). Use [`PamError::is_auth_failure`] to tell refused credentials from a broken setup.
pub fn authenticate(service: &str, user: &str, password: &str) -> Result<(), PamError> {
    let c_service = CString::new(service).map_err(|_| PamError {
        code: PAM_SERVICE_ERR,
        message: "PAM service name contains a NUL byte".into(),
    })?;
    let unknown_user = |why: &str| PamError {
        code: PAM_USER_UNKNOWN,
        message: format!("user name {why}"),
    };
    if user.is_empty() {
        // An empty name would make modules prompt for one, and we would answer with the
        // password.
        return Err(unknown_user("is empty"));
    }
    let c_user = CString::new(user).map_err(|_| unknown_user("contains a NUL byte"))?;
    if password.as_bytes().contains(&0) {
        return Err(PamError {
            code: PAM_AUTH_ERR,
            message: "password contains a NUL byte".into(),
        });
    }
    let api = Api::get()?;
    // Declared before `handle` so that it outlives it: `appdata_ptr` points here until
    // pam_end has run.
    let secret = Secret(password.as_bytes().to_vec());
    let conv = PamConv {
        conv: Some(converse),
        appdata_ptr: &secret as *const Secret as *mut c_void,
    };
    let mut raw: *mut PamHandle = ptr::null_mut();
    // SAFETY: all pointers are valid NUL-terminated strings / structs that live until the
    // handle is ended (`conv` and `secret` are dropped after `handle`; Linux-PAM copies the
    // pam_conv struct anyway). `raw` is a valid out-pointer.
    let rc = unsafe { (api.start)(c_service.as_ptr(), c_user.as_ptr(), &conv, &mut raw) };
    if rc != PAM_SUCCESS {
        let err = PamError::from_code(api, raw, rc);
        if !raw.is_null() {
            // SAFETY: pam_start handed out a handle despite failing; end it once.
            unsafe { (api.end)(raw, rc) };
        }
        return Err(err);
    }
    if raw.is_null() {
        return Err(PamError {
            code: PAM_BUF_ERR,
            message: "pam_start returned no handle".into(),
        });
    }
    let mut handle = Handle {
        api,
        ptr: raw,
        status: PAM_SUCCESS,
    };
    let delay_fn: extern "C" fn(c_int, std::os::raw::c_uint, *mut c_void) = no_fail_delay;
    // SAFETY: live handle; for PAM_FAIL_DELAY Linux-PAM stores the item as a function pointer
    // of exactly this signature. Failure only means the modules' delay stays in effect.
    unsafe { (api.set_item)(handle.ptr, PAM_FAIL_DELAY, delay_fn as *const c_void) };
    // SAFETY: `handle.ptr` is a live handle used from this thread only.
    let rc = unsafe { (api.authenticate)(handle.ptr, PAM_DISALLOW_NULL_AUTHTOK) };
    if rc != PAM_SUCCESS {
        handle.status = rc;
        return Err(PamError::from_code(api, handle.ptr, rc));
    }
    // SAFETY: as above.
    let rc = unsafe { (api.acct_mgmt)(handle.ptr, PAM_DISALLOW_NULL_AUTHTOK) };
    if rc != PAM_SUCCESS {
        handle.status = rc;
        return Err(PamError::from_code(api, handle.ptr, rc));
    }
    Ok(())
}

/// The conversation callback: answers password prompts (echo off or on) with the password,
/// ignores informational and error texts, and refuses anything else with `PAM_CONV_ERR`.
///
/// Never unwinds into C: the body runs under `catch_unwind` (and contains no panicking code).
unsafe extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: PAM passes the arguments of a pam_conv callback; converse_inner checks
        // them for null and bounds before use.
        unsafe { converse_inner(num_msg, msg, resp, appdata_ptr) }
    }))
    .unwrap_or(PAM_CONV_ERR)
}

/// The body of [`converse`].
///
/// # Safety
///
/// The arguments must be those of a PAM conversation call whose `appdata_ptr` is the
/// `Secret` set up by [`authenticate`]. `msg` is read the Linux-PAM way: an array of
/// `num_msg` pointers to messages.
unsafe fn converse_inner(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    if num_msg <= 0
        || num_msg > PAM_MAX_NUM_MSG
        || msg.is_null()
        || resp.is_null()
        || appdata_ptr.is_null()
    {
        return PAM_CONV_ERR;
    }
    // SAFETY: `appdata_ptr` is the `&Secret` authenticate() registered; it outlives the handle.
    let secret = unsafe { &*(appdata_ptr as *const Secret) };
    // Lossless: 0 < num_msg <= 32.
    let n = num_msg as usize;
    // SAFETY: calloc with a small count; the result is checked for null. calloc zeroes, so
    // every `resp` starts null and `resp_retcode` 0.
    let replies =
        unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) } as *mut PamResponse;
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // SAFETY: `msg` holds `n` message pointers (Linux-PAM convention), i < n.
        let m = unsafe { *msg.add(i) };
        if m.is_null() {
            // SAFETY: `replies` is ours, holds `n` entries, filled by us so far.
            unsafe { free_replies(replies, n) };
            return PAM_CONV_ERR;
        }
        // SAFETY: non-null pointer to a pam_message supplied by PAM.
        let style = unsafe { (*m).msg_style };
        match style {
            PAM_PROMPT_ECHO_OFF | PAM_PROMPT_ECHO_ON => {
                let len = secret.0.len();
                // SAFETY: allocation of len + 1 zeroed bytes, checked for null below; the
                // trailing zero is the NUL terminator.
                let copy = unsafe { libc::calloc(len + 1, 1) } as *mut c_char;
                if copy.is_null() {
                    // SAFETY: as above.
                    unsafe { free_replies(replies, n) };
                    return PAM_BUF_ERR;
                }
                // SAFETY: `copy` has len + 1 bytes, `secret` len bytes; no overlap.
                unsafe { ptr::copy_nonoverlapping(secret.0.as_ptr(), copy.cast::<u8>(), len) };
                // SAFETY: i < n entries in `replies`.
                unsafe { (*replies.add(i)).resp = copy };
            }
            PAM_ERROR_MSG | PAM_TEXT_INFO => {}
            _ => {
                // SAFETY: as above.
                unsafe { free_replies(replies, n) };
                return PAM_CONV_ERR;
            }
        }
    }
    // SAFETY: `resp` is PAM's non-null out-pointer; PAM now owns (and frees) `replies`.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

/// Wipes and frees a reply array that we allocated but will not hand to PAM.
///
/// # Safety
///
/// `replies` must come from `calloc(n, size_of::<PamResponse>())` with every `resp` either
/// null or a NUL-terminated string from `calloc`.
unsafe fn free_replies(replies: *mut PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: i < n entries, per the contract.
        let r = unsafe { (*replies.add(i)).resp };
        if !r.is_null() {
            // SAFETY: `r` is a NUL-terminated calloc'ed string we own.
            unsafe {
                let len = libc::strlen(r);
                ptr::write_bytes(r, 0, len);
                libc::free(r.cast::<c_void>());
            }
        }
    }
    // SAFETY: `replies` is our calloc'ed array, freed once.
    unsafe { libc::free(replies.cast::<c_void>()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the conversation function the way PAM would and returns the answers.
    fn run_conv(password: &str, styles: &[c_int]) -> Result<Vec<Option<String>>, c_int> {
        let secret = Secret(password.as_bytes().to_vec());
        let text = CString::new("Password: ").expect("no NUL in literal");
        let msgs: Vec<PamMessage> = styles
            .iter()
            .map(|&msg_style| PamMessage {
                msg_style,
                msg: text.as_ptr(),
            })
            .collect();
        let mut ptrs: Vec<*const PamMessage> = msgs.iter().map(|m| m as *const _).collect();
        let mut out: *mut PamResponse = ptr::null_mut();
        // SAFETY: arguments shaped exactly as Linux-PAM passes them.
        let rc = unsafe {
            converse(
                styles.len() as c_int,
                ptrs.as_mut_ptr(),
                &mut out,
                &secret as *const Secret as *mut c_void,
            )
        };
        if rc != PAM_SUCCESS {
            assert!(out.is_null(), "no replies handed out on error");
            return Err(rc);
        }
        let mut answers = Vec::new();
        for i in 0..styles.len() {
            // SAFETY: converse returned an array of styles.len() replies.
            let r = unsafe { (*out.add(i)).resp };
            answers.push(if r.is_null() {
                None
            } else {
                // SAFETY: NUL-terminated string allocated by converse.
                Some(unsafe { CStr::from_ptr(r) }.to_str().unwrap().to_owned())
            });
        }
        // SAFETY: what PAM would do: free the array and its strings.
        unsafe { free_replies(out, styles.len()) };
        Ok(answers)
    }

    #[test]
    fn conversation_answers_password_prompts_only() {
        let answers = run_conv(
            "s3cret",
            &[
                PAM_TEXT_INFO,
                PAM_PROMPT_ECHO_OFF,
                PAM_ERROR_MSG,
                PAM_PROMPT_ECHO_ON,
            ],
        )
        .unwrap();
        assert_eq!(
            answers,
            vec![None, Some("s3cret".into()), None, Some("s3cret".into())]
        );
    }

    #[test]
    fn conversation_refuses_unknown_styles_and_bad_counts() {
        assert_eq!(run_conv("x", &[PAM_PROMPT_ECHO_OFF, 5]), Err(PAM_CONV_ERR));
        assert_eq!(run_conv("x", &[7]), Err(PAM_CONV_ERR));
        assert_eq!(run_conv("x", &[]), Err(PAM_CONV_ERR));
        let many = vec![PAM_TEXT_INFO; 33];
        assert_eq!(run_conv("x", &many), Err(PAM_CONV_ERR));
    }

    #[test]
    fn refuses_nul_and_empty_user_without_calling_pam() {
        let e = authenticate("jetstream", "ro\0ot", "pw").unwrap_err();
        assert_eq!(e.code, PAM_USER_UNKNOWN);
        assert!(e.is_auth_failure());
        let e = authenticate("jetstream", "", "pw").unwrap_err();
        assert_eq!(e.code, PAM_USER_UNKNOWN);
        let e = authenticate("jetstream", "root", "p\0w").unwrap_err();
        assert_eq!(e.code, PAM_AUTH_ERR);
        assert!(e.is_auth_failure());
    }

    #[test]
    fn error_text_comes_from_pam_strerror() {
        let e = PamError::from_code(Api::get().unwrap(), ptr::null_mut(), PAM_AUTH_ERR);
        assert_eq!(e.code, PAM_AUTH_ERR);
        assert!(
            e.message.to_lowercase().contains("authentication failure"),
            "{e}"
        );
        assert!(
            !PamError::from_code(Api::get().unwrap(), ptr::null_mut(), PAM_CONV_ERR)
                .is_auth_failure()
        );
    }

    #[test]
    fn a_missing_or_foreign_library_is_a_clear_error() {
        let e = Api::load("libjetstream-test-absent.so.0").unwrap_err();
        assert!(
            e.starts_with(
                "PAM library libjetstream-test-absent.so.0 not found: install libpam0g ("
            ),
            "{e}"
        );
        assert!(e.contains("No such file"), "{e}");
        // A library that loads but is not Linux-PAM.
        let e = Api::load("libc.so.6").unwrap_err();
        assert!(e.contains("has no pam_start"), "{e}");
        // The real one (libpam0g is on every Debian system, and so on every test machine).
        assert_eq!(library_error(), None);
    }

    /// Real PAM through /etc/pam.d/jetstream with throwaway system users (root only).
    mod real {
        use std::net::{IpAddr, Ipv4Addr};
        use std::time::Duration;

        use super::super::authenticate;
        use crate::users::test_support::{ensure_pam_service, require_root, TestUser};
        use crate::users::{AuthError, Authenticator, PAM_SERVICE};

        /// For tests marked `#[ignore = "needs root: ..."]` (panics when not root).
        fn setup() -> Authenticator {
            require_root("system users, PAM");
            ensure_pam_service().unwrap();
            let mut a = Authenticator::new(PAM_SERVICE).unwrap();
            a.set_failure_delay(Duration::ZERO);
            a
        }

        const SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

        #[test]
        #[ignore = "needs root: system users (PAM)"]
        fn right_password_logs_in_wrong_or_unknown_fail_alike() {
            let a = setup();
            let pw = "c0rrect horse:battery";
            let tu = TestUser::create(Some(pw)).unwrap();
            let u = a.login(tu.name(), pw, SOURCE).unwrap();
            assert_eq!(
                (u.name.as_str(), u.uid, u.gid),
                (tu.name(), tu.uid(), tu.gid())
            );
            let wrong = a.login(tu.name(), "c0rrect horse", SOURCE).unwrap_err();
            assert_eq!(wrong, AuthError::Failed);
            let unknown = a.login("jstest_nobody_here", pw, SOURCE).unwrap_err();
            assert_eq!(unknown, AuthError::Failed);
            assert_eq!(
                unknown.to_string(),
                "authentication failed: wrong user name or password"
            );
            // PAM itself classifies both as credential failures.
            let e = authenticate(PAM_SERVICE, tu.name(), "nope").unwrap_err();
            assert!(e.is_auth_failure(), "{e}");
            let e = authenticate(PAM_SERVICE, "jstest_nobody_here", "nope").unwrap_err();
            assert!(e.is_auth_failure(), "{e}");
            assert_eq!(authenticate(PAM_SERVICE, tu.name(), pw), Ok(()));
        }

        #[test]
        #[ignore = "needs root: system users (PAM)"]
        fn account_without_password_cannot_log_in() {
            let a = setup();
            let tu = TestUser::create(None).unwrap();
            assert_eq!(a.login(tu.name(), "", SOURCE), Err(AuthError::Failed));
            assert_eq!(
                a.login(tu.name(), "anything", SOURCE),
                Err(AuthError::Failed)
            );
            // Directly through PAM too, bypassing the authenticator's own empty check.
            let e = authenticate(PAM_SERVICE, tu.name(), "").unwrap_err();
            assert!(e.is_auth_failure(), "{e}");
        }

        #[test]
        #[ignore = "needs root: system users (PAM)"]
        fn parallel_logins_use_separate_handles() {
            let a = setup();
            let tu = TestUser::create(Some("par-pw")).unwrap();
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..4u8)
                    .map(|i| {
                        let (a, name) = (&a, tu.name());
                        s.spawn(move || {
                            let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + i));
                            a.login(name, "par-pw", src).map(|u| u.uid)
                        })
                    })
                    .collect();
                for h in handles {
                    assert_eq!(h.join().unwrap(), Ok(tu.uid()));
                }
            });
        }
    }
}
