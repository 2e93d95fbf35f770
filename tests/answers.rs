//! Answers from PHP that the wire cannot carry as asked: the client gets a clear 500 JSON, the
//! log says why, and the server goes on.
mod common;
use common::{client, Php};
use serde_json::Value;

fn json(resp: reqwest::blocking::Response) -> Value {
    resp.json().expect("a JSON body")
}

#[test]
fn more_header_lines_than_an_answer_holds_are_a_500_and_the_server_goes_on() {
    let php = Php::start("answers.php");
    let resp = client().get(php.url("/headers?n=30000")).send().unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(json(resp)["code"], "worker_error");
    assert!(
        php.stderr().contains("the script set 30000 header lines"),
        "{}",
        php.stderr()
    );
    assert!(!php.stderr().contains("panicked"), "{}", php.stderr());
    let resp = client().get(php.url("/")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "ok");
}
