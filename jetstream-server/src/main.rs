//! `jetstream`: the JetStream server process. The control API and server arrive with the server
//! issue; for now the binary only reports that.

fn main() {
    eprintln!(
        "jetstream server: not implemented yet (see the server issue); use the engine example"
    );
    std::process::exit(2);
}
