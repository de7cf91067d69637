//! `jetstream`: the JetStream server process (`jetstream server`), the console API client
//! (`jetstream api`) and the relay (`jetstream relay_server`).

use argh::FromArgs;
use jetstream_server::relay::server::RelayArgs;
use jetstream_server::server::config::{split_equals, ServerArgs};

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
            let rest = split_equals(&argv[2..]);
            let refs: Vec<&str> = rest.iter().map(String::as_str).collect();
            match ServerArgs::from_args(&["jetstream server"], &refs) {
                Ok(args) => jetstream_server::server::run(args),
                Err(early) => {
                    if early.status.is_ok() {
                        println!("{}", early.output);
                        0
                    } else {
                        eprintln!("jetstream server: {}", early.output.trim_end());
                        eprintln!("Run `jetstream server --help` for the options.");
                        2
                    }
                }
            }
        }
        Some("api") => jetstream_server::cli_api::main(&argv[2..]),
        Some("relay_server") => {
            let rest = split_equals(&argv[2..]);
            let refs: Vec<&str> = rest.iter().map(String::as_str).collect();
            match RelayArgs::from_args(&["jetstream relay_server"], &refs) {
                Ok(args) => jetstream_server::relay::server::run(&args),
                Err(early) => {
                    if early.status.is_ok() {
                        println!("{}", early.output);
                        0
                    } else {
                        eprintln!("jetstream relay_server: {}", early.output.trim_end());
                        2
                    }
                }
            }
        }
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
