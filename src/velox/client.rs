//! One Connect JSON call to Velox and the reading of its reply. A call lasts as long as the
//! build: Velox answers only when the binary is built, and master cancels a build whose caller
//! hangs up, so nothing here cuts a call short (`build_timeout` bounds the whole, in `mod.rs`).
use bytes::Bytes;
use serde_json::Value;

/// The RPC path under `server_url`.
pub const BUILD_PATH: &str = "/api.service.v1.BuildService/Build";

/// A reply larger than this is not a Velox reply (logs of a big build are well below it).
const MAX_REPLY: usize = 16 << 20;

/// What a successful build reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// Empty when the build produced nothing.
    pub path: String,
    /// Go's output; the newest tag sends it, master does not.
    pub logs: Option<String>,
}

/// Why one call did not bring a build.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// No reply: refused, reset, closed before the answer.
    Transport(String),
    /// An error reply: Connect's `{code, message, details}`, or the older
    /// `{success: false, error, code}` (status 200).
    Error {
        status: u16,
        /// Lowercased.
        code: String,
        message: String,
        /// Connect's `details`, `Null` when absent.
        details: Value,
    },
    /// A reply that is neither.
    Malformed { status: u16, why: String },
}

/// Reads Velox's answer: status first, then the JSON, never the bytes as such.
pub fn parse_reply(status: u16, body: &[u8]) -> Result<Built, Fault> {
    let malformed = |why: String| Fault::Malformed { status, why };
    let json: Value = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(_) => return Err(malformed("not a JSON object".into())),
        Err(_) => return Err(malformed(format!("not JSON: {}", snippet(body)))),
    };
    let string = |name: &str| json.get(name).and_then(Value::as_str).map(str::to_string);
    if status == 200 {
        return match json.get("success") {
            Some(Value::Bool(false)) => Err(Fault::Error {
                status,
                code: string("code").map_or("build_error".into(), |c| c.to_lowercase()),
                message: string("error").unwrap_or_default(),
                details: Value::Null,
            }),
            _ => Ok(Built {
                path: string("path").unwrap_or_default(),
                logs: string("logs"),
            }),
        };
    }
    match string("code") {
        Some(code) => Err(Fault::Error {
            status,
            code: code.to_lowercase(),
            message: string("message")
                .or_else(|| string("error"))
                .unwrap_or_default(),
            details: json.get("details").cloned().unwrap_or(Value::Null),
        }),
        None => Err(malformed("no error code".into())),
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]);
    text.chars().filter(|c| !c.is_control()).collect()
}

/// One HTTP call, as long as Velox takes to answer.
pub async fn attempt(http: &reqwest::Client, url: &str, body: Bytes) -> Result<Built, Fault> {
    let reply = http
        .post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("Connect-Protocol-Version", "1")
        .body(body)
        .send()
        .await
        .map_err(transport)?;
    let status = reply.status().as_u16();
    let bytes = read_limited(reply).await?;
    parse_reply(status, &bytes)
}

async fn read_limited(mut reply: reqwest::Response) -> Result<Vec<u8>, Fault> {
    let status = reply.status().as_u16();
    let mut out = Vec::new();
    while let Some(chunk) = reply.chunk().await.map_err(transport)? {
        if out.len() + chunk.len() > MAX_REPLY {
            return Err(Fault::Malformed {
                status,
                why: "reply too large".into(),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn transport(e: reqwest::Error) -> Fault {
    // The full chain says why (refused, reset, closed); reqwest's own Display does not.
    let mut why = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        why = format!("{why}: {inner}");
        source = inner.source();
    }
    Fault::Transport(why)
}
