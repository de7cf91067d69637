//! `jscp`: copy files to and from a JetStream server, like scp, over the engine's UDP protocol.
//!
//! ```text
//! jscp [OPTIONS] SOURCE... [USER@]HOST[:PORT]:TARGET        (push)
//! jscp [OPTIONS] [USER@]HOST[:PORT]:SOURCE... LOCAL_TARGET  (pull)
//! ```

mod args;
mod copy;
mod progress;

use std::io::IsTerminal;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use jetstream_client::login::exit;
use progress::{Mode, Progress};

const HELP: &str = "\
Usage: jscp [OPTIONS] SOURCE... [USER@]HOST[:PORT]:TARGET
       jscp [OPTIONS] [USER@]HOST[:PORT]:SOURCE... LOCAL_TARGET

Copies files to or from a JetStream server over its UDP data protocol (encrypted, verified,
resumable), talking to the server's control API itself: no local server is needed.

Options:
  -r, --recursive        copy directories
  -d DESTPATH            the transfer's destination path on the server: files land at
                         <sandbox>/<DESTPATH>/<TARGET>
  -P PORT                the server's API port (default 8886; or HOST:PORT:PATH)
  -l KBITS               limit the rate, in kbit/s (like scp -l)
      --policy POLICY    rate policy: fair (default: share a congested link with other
                         traffic), fixed (hold the -l rate whatever the path does) or
                         background (yield to other traffic)
  -q, --quiet            no progress and no summary
  -v, --verbose          say what happens, on stderr
      --json             machine-readable events on stdout, one JSON object per line
      --resume           continue an interrupted copy (always done: what arrived and was
                         verified is kept, only the rest is sent)
      --token TOKEN      log in with an API token instead of a password
      --accept-new-host  trust and remember a server not yet known (else a prompt on a
                         terminal, or a refusal)
  -h, --help             this text
      --version          the version

The password comes from $JETSTREAM_API_PASSWORD or a prompt; the user is USER@ or your login
name. One file to a TARGET not ending in '/' is copied as TARGET; otherwise sources keep their
names below TARGET ('dir/' copies the contents of dir, like rsync).

Exit status: 0 done, 1 transfer failed or partial, 2 usage, 3 authentication failed,
4 cannot connect (or the server's key is unknown or changed), 5 refused by the server (path
outside the sandbox, permission), 6 local file problem, 130 interrupted (run it again to
resume).

Examples:
  jscp /source/my_file jetstream02.lan:/target/my_file
  jscp -d /project /source/my_file jetstream02.lan:/target/my_file
  jscp -r footage/ alice@jetstream02.lan:/incoming/day1/
  jscp jetstream02.lan:/target/my_file ./copy_of_my_file
  jscp --token SHAREDTOKEN jetstream02.lan: ./downloads    (what a shared token shares)
";

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let o = match args::parse(&argv) {
        Ok(args::Parsed::Help) => {
            progress::out(format_args!("{HELP}"));
            std::process::exit(exit::OK);
        }
        Ok(args::Parsed::Version) => {
            progress::out(format_args!("jscp {}\n", env!("CARGO_PKG_VERSION")));
            std::process::exit(exit::OK);
        }
        Ok(args::Parsed::Copy(o)) => o,
        Err(e) => {
            progress::err(format_args!(
                "jscp: {e}\nRun `jscp --help` for the usage.\n"
            ));
            std::process::exit(exit::USAGE);
        }
    };
    let mode = if o.json {
        Mode::Json
    } else if o.quiet {
        Mode::Quiet
    } else if std::io::stdout().is_terminal() {
        Mode::Live
    } else {
        Mode::Summary
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            progress::err(format_args!("jscp: cannot handle signals: {e}\n"));
        }
    }
    let mut progress = Progress::new(mode);
    let code = match copy::run(&o, &mut progress, &stop) {
        Ok(()) => exit::OK,
        Err(f) => {
            if progress.mode() == Mode::Json {
                progress.event(serde_json::json!({
                    "event": "error", "exitCode": f.code, "message": f.message,
                }));
            }
            progress::err(format_args!("jscp: {}\n", f.message));
            f.code
        }
    };
    std::process::exit(code);
}
