//! `jscp`: scp-like client. Arrives with the jscp issue.

fn main() {
    eprintln!("jscp: not implemented yet (see the jscp issue)");
    std::process::exit(2);
}
