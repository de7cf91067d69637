//! `docs/api-commands.md` is made from [`jetstream_api::COMMANDS`]: this test fails when the
//! committed file differs from what the list says now, and rewrites it with `UPDATE_DOCS=1`:
//!
//! ```sh
//! UPDATE_DOCS=1 cargo test -p jetstream-api --test command_table
//! ```

use std::fmt::Write as _;
use std::path::PathBuf;

use jetstream_api::{Access, Meta, Mode, COMMANDS};

/// The table, with its heading and the legend.
fn command_table() -> String {
    let mut out = String::from(
        "# API commands\n\
         \n\
         <!-- Generated from `jetstream_api::COMMANDS` (jetstream-api/src/commands.rs) and the\n\
         parameter structs (jetstream-api/src/params.rs); do not edit. After changing either:\n\
         UPDATE_DOCS=1 cargo test -p jetstream-api --test command_table -->\n\
         \n\
         Every command of the control API, from the one list the server dispatches with.\n\
         **Who** may call it: *anyone* (before login too), *logged in* (any session; it reads\n\
         its own objects), a *permission* (a password login has all four; an API token only\n\
         those it was made with), *password login* (not through a token) or *superuser* (a\n\
         session that called `superuser`). **Link**: whether a session that logged in with a\n\
         download link (a shared token) may call it, on the manifest it shares. **Async**:\n\
         *also* means it may be called as `<name>Async` too (answered at once with a request\n\
         id; its outcome through `getRequestStatus` / `getRequestResult`), *only* that it must\n\
         be. **Parameters** in bold are required; an unknown parameter, or one of the wrong\n\
         type, is an error naming it. What each parameter means, its other forms (an id as a\n\
         number, a number as a string of digits) and its second names (`auth`'s `username`,\n\
         `sleep`'s `ms`) are in the parameter structs' documentation\n\
         (`jetstream-api/src/params.rs`).\n\
         \n\
         | Command | Who | Link | Async | Parameters | Summary |\n\
         |---|---|---|---|---|---|\n",
    );
    for m in COMMANDS {
        row(&mut out, m);
    }
    out
}

fn row(out: &mut String, m: &Meta) {
    let who = match m.access {
        Access::Open => "anyone".to_owned(),
        Access::Login => "logged in".to_owned(),
        Access::Permission(p) => format!("`{}` permission", p.as_str()),
        Access::AnyOf(ps) => {
            let names: Vec<String> = ps.iter().map(|p| format!("`{}`", p.as_str())).collect();
            format!("{} permission", names.join(" or "))
        }
        Access::Password => "password login".to_owned(),
        Access::Superuser => "superuser".to_owned(),
    };
    let link = if m.link { "yes" } else { "no" };
    let mode = match m.mode {
        Mode::Either => "also",
        Mode::AsyncOnly => "only",
    };
    let params: Vec<String> = m
        .parameters()
        .iter()
        .map(|p| {
            if p.required {
                format!("**`{}`**", p.name)
            } else {
                format!("`{}`", p.name)
            }
        })
        .collect();
    let params = if params.is_empty() {
        "none".to_owned()
    } else {
        params.join(", ")
    };
    let summary = m.summary.trim().replace('|', "\\|");
    let _ = writeln!(
        out,
        "| `{}` | {who} | {link} | {mode} | {params} | {summary} |",
        m.name
    );
}

#[test]
fn the_docs_command_table_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/api-commands.md");
    let want = command_table();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).expect("write docs/api-commands.md");
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/api-commands.md is out of date: run \
         UPDATE_DOCS=1 cargo test -p jetstream-api --test command_table"
    );
}
