//! What operators see: `php -m`, `php --ri rr`, structured and access logs.
mod common;
use common::{client, extension, Options, Php};
use std::process::Command;

fn php(args: &[&str]) -> String {
    let out = Command::new("php")
        .arg("-n")
        .arg("-d")
        .arg(format!("extension={}", extension().display()))
        .args(args)
        .env_remove("RR_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn php_lists_the_module_and_ri_shows_version_and_effective_settings() {
    assert!(php(&["-m"]).lines().any(|l| l == "rr"));
    let info = php(&[
        "-d",
        "rr.address=127.0.0.1:9999",
        "-d",
        "rr.io_driver=thread",
        "--ri",
        "rr",
    ]);
    assert!(
        info.contains(&format!("version => {}", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );
    assert!(info.contains("http.address => 127.0.0.1:9999"), "{info}");
    assert!(info.contains("http.io_driver => thread"), "{info}");
    assert!(info.contains("http.request_timeout => "), "{info}");
}

#[test]
fn ri_reports_a_configuration_error_instead_of_failing() {
    let info = php(&["-d", "rr.io_driver=fast", "--ri", "rr"]);
    assert!(
        info.contains("configuration error") && info.contains("fast"),
        "{info}"
    );
}

#[test]
fn access_logs_and_json_logs() {
    let mut opts = Options::default();
    opts.ini.push(("rr.access_logs", "1".into()));
    opts.env.push((
        "RR_TEST_OPTIONS",
        serde_json::json!({"logs.encoding": "json"}).to_string(),
    ));
    let php = Php::start_with("echo.php", opts);
    assert_eq!(
        client()
            .get(php.url("/logged?x=1"))
            .send()
            .unwrap()
            .status(),
        201
    );
    assert!(
        php.wait_for_log("/logged?x=1", std::time::Duration::from_secs(5)),
        "{}",
        php.stderr()
    );
    let line = php
        .stderr()
        .lines()
        .find(|l| l.contains("/logged?x=1"))
        .unwrap()
        .to_string();
    let entry: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(entry["target"], "rr::access");
    assert_eq!(entry["fields"]["status"], 201);
    assert_eq!(entry["fields"]["method"], "GET");
    assert_eq!(
        entry["fields"]["remote"]
            .as_str()
            .unwrap()
            .split(':')
            .next(),
        Some("127.0.0.1")
    );
}
