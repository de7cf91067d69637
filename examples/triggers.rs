//! In-process triggers: a program that embeds the engine gets the events the server gives to
//! trigger scripts (`recv.transferComplete` with the list of files written, ...) as callbacks.
//!
//! ```sh
//! cargo run --example triggers -- SOURCE... DESTINATION_DIR
//! ```
//!
//! It copies the sources through two engines on 127.0.0.1 and prints each event as the seed's
//! example scripts would log it.

use std::time::Duration;

use jetstream_core::{
    Destination, Engine, EngineConfig, Manifest, TransferKeys, Trigger, TriggerEvent,
};

/// Prints events; a real program would queue work for each received file instead.
struct Printer;

impl Trigger for Printer {
    fn on_event(&mut self, event: &TriggerEvent) {
        match event {
            TriggerEvent::TransferComplete {
                transfer_id, files, ..
            } => {
                println!("{}: transfer {transfer_id} is complete", event.name());
                // What the recv.transferComplete script reads on stdin.
                for (manifest_file, file_path) in files {
                    println!(
                        "  manifest file: {manifest_file}, file path: {}",
                        file_path.display()
                    );
                }
            }
            TriggerEvent::FileReceived { path, written, .. } => {
                println!("{}: {path} -> {}", event.name(), written.display());
            }
            TriggerEvent::TransferFailed { message, .. } => {
                println!("{}: {message}", event.name());
            }
            other => println!("{}", other.name()),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((dst, sources)) = args.split_last().filter(|(_, s)| !s.is_empty()) else {
        eprintln!("usage: triggers SOURCE... DESTINATION_DIR");
        std::process::exit(2);
    };
    let mut config = EngineConfig::default();
    config.bind("127.0.0.1:0".parse()?);
    let receiver = Engine::spawn_with_trigger(config.clone(), Printer)?;
    let sender = Engine::spawn(config)?;
    let keys = TransferKeys::random()?;
    let incoming = receiver.handle().receive(keys.clone(), dst)?;
    let manifest = Manifest::from_sources(sources)?;
    sender
        .handle()
        .send(Destination::new(receiver.local_addr()), keys, manifest)?
        .wait(Duration::from_secs(3600))?;
    incoming.wait(Duration::from_secs(60))?;
    // Triggers run on their own thread, after the fact: let it finish before exiting.
    receiver.shutdown();
    Ok(())
}
