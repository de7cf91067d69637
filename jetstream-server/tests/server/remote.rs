//! Remote API clients (a non-loopback address inside a namespace the test creates): TLS is
//! required, the server is pinned on first use like ssh's known_hosts or verified through a
//! CA, and `--api-allow-remote-control false` refuses them.

use std::path::Path;
use std::process::{Output, Stdio};

use super::util::*;

fn api(
    ns: &Netns,
    known_hosts: &Path,
    port: u16,
    host: &str,
    extra_env: &[(&str, &Path)],
    args: &[&str],
) -> Output {
    let mut c = ns.command(bin());
    c.args([
        "api",
        "--host",
        host,
        "--api-control-port",
        &port.to_string(),
    ])
    .args(args)
    .env("JETSTREAM_KNOWN_HOSTS", known_hosts)
    .stdin(Stdio::null());
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.output().expect("run jetstream api")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
#[ignore = "needs root: system users (PAM), network namespaces"]
fn remote_clients_need_tls_and_a_known_or_ca_verified_server() {
    if !can_run() {
        return;
    }
    let ns = Netns::new();
    let dir = scratch();
    let root = dir.path();
    let kh = root.join("known_hosts");
    let mut s = Srv::start_in(Some(&ns), root, "s", &[]);
    let host = Netns::ADDR;

    // Plain JSON from a non-loopback address is refused with an answer saying why.
    let out = ns
        .command("bash")
        .args([
            "-c",
            &format!(
                "exec 3<>/dev/tcp/{host}/{}; echo '{{\"request\": \"echo\"}}' >&3; head -n 1 <&3",
                s.api
            ),
        ])
        .output()
        .unwrap();
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        reply.contains("accepted only from loopback"),
        "{reply} {}",
        text(&out)
    );

    // Unknown server: refused unless accepted explicitly; then pinned.
    let o = api(&ns, &kh, s.api, host, &[], &["getServerInfo"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("--accept-new-host"), "{}", text(&o));
    assert!(!kh.exists());
    let o = api(
        &ns,
        &kh,
        s.api,
        host,
        &[],
        &["--accept-new-host", "getServerInfo"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let pinned = std::fs::read_to_string(&kh).unwrap();
    assert!(
        pinned.contains(info["publicKey"].as_str().unwrap()),
        "{pinned}"
    );
    let o = api(&ns, &kh, s.api, host, &[], &["getServerInfo"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // A new key on the same address is refused with a clear message.
    s.signal(15);
    std::fs::remove_dir_all(s.state.join("tls")).unwrap();
    s.restart();
    let o = api(&ns, &kh, s.api, host, &[], &["getServerInfo"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(text(&o).contains("HAS CHANGED"), "{}", text(&o));

    // Remote control off: remote clients are turned away, loopback ones still served.
    s.signal(15);
    let mut off = Srv::start_in(
        Some(&ns),
        root,
        "off",
        &["--api-allow-remote-control", "false"],
    );
    let o = api(
        &ns,
        &kh,
        off.api,
        host,
        &[],
        &["--accept-new-host", "getServerInfo"],
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let o = api(&ns, &kh, off.api, "127.0.0.1", &[], &["getServerInfo"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    off.signal(15);

    // A CA-issued certificate is verified normally: no prompt, nothing pinned.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "jetstream test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![host.to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let (ca_pem, cert_pem, key_pem) = (
        root.join("ca.pem"),
        root.join("cert.pem"),
        root.join("key.pem"),
    );
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    let ca_srv = Srv::start_in(
        Some(&ns),
        root,
        "ca",
        &[
            "--tls-cert",
            cert_pem.to_str().unwrap(),
            "--tls-key",
            key_pem.to_str().unwrap(),
        ],
    );
    let fresh = root.join("fresh_known_hosts");
    let o = api(
        &ns,
        &fresh,
        ca_srv.api,
        host,
        &[("SSL_CERT_FILE", &ca_pem)],
        &["getServerInfo"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!fresh.exists(), "a CA-verified server is not pinned");
    // Without the CA it is just an unknown server.
    let o = api(&ns, &fresh, ca_srv.api, host, &[], &["getServerInfo"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
}
