//! `jetstream`: the JetStream server process (`jetstream server`), the console API client
//! (`jetstream api`) and the relay (`jetstream relay_server`).

use jetstream_server::config_file::{self, Loaded};
use jetstream_server::relay::server::RelayArgs;
use jetstream_server::server::config::ServerArgs;
use jetstream_server::server::log;
use jetstream_server::{ServerConfig, ServerHandle};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

const USAGE: &str = "usage: jetstream <command> [options]

commands:
  server         run the JetStream server (API on TCP 8886, data on UDP 8886)
  api            send one command to a server's control API and print the JSON result
  relay_server   run the DMZ relay (TLS 8887 for authorized private servers, public UDP and API 8886)

`jetstream <command> --help` describes each.";

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let code = match argv.get(1).map(String::as_str) {
        Some("server") => config_file::main::<ServerArgs>(&argv[2..], server),
        Some("api") => jetstream_server::cli_api::main(&argv[2..]),
        Some("relay_server") => config_file::main::<RelayArgs>(&argv[2..], |loaded| {
            jetstream_server::relay::server::run(&loaded.args)
        }),
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            0
        }
        Some(other) => {
            eprintln!("jetstream: unknown command {other:?}\n\n{USAGE}");
            2
        }
        None => {
            eprintln!("{USAGE}");
            2
        }
    };
    std::process::exit(code);
}

/// `jetstream server`: the process around the library's server. It owns what a library must
/// not: the log file (`--log`), the log level, systemd's readiness notice, the signals
/// (SIGTERM and SIGINT stop, SIGHUP reopens the log file and reloads the configuration) and
/// the exit code (0 after a clean stop, 1 when the server cannot start).
fn server(loaded: Loaded<ServerArgs>) -> i32 {
    log::set_level(loaded.args.log_level);
    if let Some(path) = &loaded.args.log {
        if let Err(e) = log::to_file(path) {
            jetstream_server::error!("jetstream server: --log {}: {e}", path.display());
            return 1;
        }
    }
    let handle = match jetstream_server::spawn(ServerConfig::from(loaded)) {
        Ok(h) => h,
        Err(e) => {
            jetstream_server::error!("jetstream server: {e}");
            return 1;
        }
    };
    // Ports bound and state loaded: systemd may start what comes after us (Type=notify).
    jetstream_server::notify::ready(&format!("API tcp {}", handle.api_addr()));
    if let Err(e) = handle_signals(&handle) {
        jetstream_server::error!("jetstream server: signals: {e}");
        let _ = handle.stop();
        return 1;
    }
    match handle.wait() {
        Ok(()) => 0,
        Err(e) => {
            jetstream_server::error!("jetstream server: {e}");
            1
        }
    }
}

/// Starts the thread that turns signals into calls on `handle`.
fn handle_signals(handle: &ServerHandle) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let handle = handle.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    log::reload();
                    // A refused configuration is logged; the running one stays.
                    let _ = handle.reload();
                    continue;
                }
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                jetstream_server::log!("server: {name} received");
                // The main thread, waiting on the handle, reports how it ended.
                let _ = handle.stop();
                break;
            }
        })?;
    Ok(())
}
