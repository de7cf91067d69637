//! Process facts from libc, and giving freed memory back to the system.
#![allow(unsafe_code)]

/// The effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The real user id of this process.
pub fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The OS host name (empty if unavailable).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call; gethostname
    // writes at most `len` bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Gives the memory the allocator keeps free back to the system (after a big request: glibc
/// keeps freed small blocks in its heaps, so the RSS a parsed 16 MiB request raised would
/// otherwise stay for the life of the process). A no-op where the allocator is not glibc's.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; no pointer is passed.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The size of the file system holding `path` and the bytes free on it for unprivileged
/// users (`f_bavail`: what is left before the root reserve), from statvfs.
///
/// # Errors
/// statvfs failed (e.g. the path is gone) or the path holds a NUL byte.
// The statvfs fields are u64 here, narrower on 32-bit targets: the conversions are for those.
#[allow(clippy::useless_conversion)]
pub fn disk_space(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: an all-zero statvfs is a valid value of that plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated string and `st` a writable statvfs, both outliving the
    // call.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let unit = u64::from(st.f_frsize);
    Ok((
        u64::from(st.f_blocks).saturating_mul(unit),
        u64::from(st.f_bavail).saturating_mul(unit),
    ))
}
