//! TLS with HTTP/2 through ALPN, from a certificate and key in the configuration.
mod common;
use common::{Options, Php};

#[test]
fn https_serves_http2_by_alpn_and_http1_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_TLS", "1".into()));
    opts.env.push((
        "RR_TEST_OPTIONS",
        serde_json::json!({
            "http.ssl.address": "127.0.0.1:0",
            "http.ssl.cert": cert_path,
            "http.ssl.key": key_path,
        })
        .to_string(),
    ));
    let php = Php::start_with("echo.php", opts);
    let tls = php.tls_addr.expect("an https listener");
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let url = format!("https://localhost:{}/secure?x=1", tls.port());
    let resolve = |b: reqwest::blocking::ClientBuilder| {
        b.resolve("localhost", tls)
            .add_root_certificate(root.clone())
    };

    let h2 = resolve(reqwest::blocking::Client::builder())
        .build()
        .unwrap();
    let resp = h2.get(&url).send().unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let v: serde_json::Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
    assert_eq!(v["https"], true);
    assert_eq!(v["protocol"], "HTTP/2.0");
    assert!(v["uri"].as_str().unwrap().starts_with("https://localhost:"));

    let h1 = resolve(reqwest::blocking::Client::builder().http1_only())
        .build()
        .unwrap();
    let resp = h1.get(&url).send().unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    let v: serde_json::Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
    assert_eq!(v["protocol"], "HTTP/1.1");

    // The plain listener keeps working beside it.
    let plain = reqwest::blocking::get(php.url("/raw")).unwrap();
    assert_eq!(plain.status(), 200);
}
