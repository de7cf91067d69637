//! `jetstream`: the JetStream server process (`jetstream server`), the console API client
//! (`jetstream api`) and the relay (`jetstream relay_server`).

use jetstream_server::config_file;
use jetstream_server::relay::server::RelayArgs;
use jetstream_server::server::config::ServerArgs;

const USAGE: &str = "usage: jetstream <command> [options]

commands:
  server         run the JetStream server (API on TCP 8886, data on UDP 8886)
  api            send one command to a server's control API and print the JSON result
  relay_server   run the DMZ relay (TLS 8887 for authorized private servers, public UDP and API 8886)

`jetstream <command> --help` describes each.";

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let code = match argv.get(1).map(String::as_str) {
        Some("server") => {
            config_file::main::<ServerArgs>(&argv[2..], jetstream_server::server::run)
        }
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
