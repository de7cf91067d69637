//! Copies a file or a directory tree through two JetStream engines over real UDP on
//! 127.0.0.1, encrypted (AES-256-GCM or ChaCha20-Poly1305) and verified (BLAKE3), and prints
//! bytes, seconds and MB/s on its last line.
//!
//! ```text
//! cargo run --release --example loopback_copy -- SRC... DST_DIR
//! ```
//!
//! Binds to loopback only. Uses `unwrap`-free error handling but no retries: it is a
//! demonstration of linking the engine into another program.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use jetstream_core::{Destination, Engine, EngineConfig, Manifest, TransferKeys};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loopback_copy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if args.len() < 2 {
        return Err("usage: loopback_copy SRC... DST_DIR".into());
    }
    let dst = args.pop().ok_or("missing DST_DIR")?;
    let manifest = Manifest::from_sources(&args)?;
    let bytes = manifest.total_bytes();
    let files = manifest.len();

    // Two engines on ephemeral loopback ports: one receives, one sends.
    let mut config = EngineConfig::default();
    config.bind("127.0.0.1:0".parse()?);
    // Tuning knobs for experiments (defaults otherwise).
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = env("JETSTREAM_ACK_EVERY") {
        config.transport_mut().ack_every(n as u32);
    }
    if let Some(us) = env("JETSTREAM_ACK_DELAY_US") {
        config
            .transport_mut()
            .max_ack_delay(Duration::from_micros(us));
    }
    if let Some(mib) = env("JETSTREAM_WINDOW_MIB") {
        config.transport_mut().recv_window(mib << 20);
    }
    let receiver = Engine::spawn(config.clone())?;
    let sender = Engine::spawn(config)?;
    let info = receiver.handle().info()?;
    eprintln!(
        "receiver on {} (socket buffers: recv {} KiB, send {} KiB; GSO {}, GRO {})",
        info.local_addr,
        info.recv_buffer / 1024,
        info.send_buffer / 1024,
        info.gso,
        info.gro
    );

    // In the server the keys come from the TLS control channel; here both ends share them.
    let keys = TransferKeys::random()?;
    eprintln!("cipher {}", keys.cipher().name());
    let start = Instant::now();
    let incoming = receiver.handle().receive(keys.clone(), &dst)?;
    let outgoing = sender
        .handle()
        .send(Destination::new(receiver.local_addr()), keys, manifest)?;
    // With JETSTREAM_VERBOSE set, print the sender's view every 100 ms.
    if std::env::var_os("JETSTREAM_VERBOSE").is_some() {
        let watch = outgoing.clone();
        std::thread::spawn(move || loop {
            let s = watch.status();
            if s.state.is_final() {
                break;
            }
            eprintln!(
                "{:>7.3}s acked {:>6.1} MB  pacing {:>7.1} MB/s  btlbw {:>7.1} MB/s  rtt {:>6} us (min {:>5})  cwnd {:>6} KB  inflight {:>6} KB  retx {}",
                s.elapsed().as_secs_f64(),
                s.bytes_acked as f64 / 1e6,
                s.pacing_rate as f64 / 1e6,
                s.bottleneck_bandwidth as f64 / 1e6,
                s.rtt.as_micros(),
                s.min_rtt.as_micros(),
                s.cwnd / 1024,
                s.bytes_in_flight / 1024,
                s.blocks_retransmitted
            );
            std::thread::sleep(Duration::from_millis(100));
        });
    }
    let sent = outgoing.wait(Duration::from_secs(24 * 3600))?;
    let received = incoming.wait(Duration::from_secs(60))?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{} files verified; {} datagrams sent, {} blocks retransmitted ({:.3}%)",
        received.files_done,
        sent.packets_sent,
        sent.blocks_retransmitted,
        100.0 * sent.blocks_retransmitted as f64 / sent.blocks_sent.max(1) as f64
    );
    println!(
        "{bytes} bytes in {files} entries, {secs:.3} s, {:.1} MB/s",
        bytes as f64 / secs / 1e6
    );
    Ok(())
}
