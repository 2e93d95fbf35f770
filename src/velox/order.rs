//! The build request PHP handed over: gunzip, validate like Velox does, fill in `request_id`,
//! and derive the normalized spec whose hash keys the single-flight map and the cache.
use super::VeloxError;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::io::Read;

/// What PHP gave for one build: the request and the response headers to forward.
#[derive(Debug, Clone, Default)]
pub struct BuildOrder {
    /// JSON text, gzip-compressed when `gzip` is set.
    pub body: Bytes,
    /// PHP set `Content-Encoding: gzip`.
    pub gzip: bool,
    /// PHP's response headers; the framing ones are dropped before forwarding.
    pub headers: HeaderMap,
}

/// A gunzipped request larger than this is refused: real ones are a few KiB, and a gzip bomb
/// must not blow up memory.
const MAX_JSON: u64 = 4 << 20;

/// A validated build request.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub request_id: String,
    /// The object sent to Velox: PHP's, unknown fields kept, `request_id` filled in.
    pub json: Map<String, Value>,
    pub os: Option<String>,
    pub arch: Option<String>,
    pub force_rebuild: bool,
    /// `rr_version|os|arch|module@tag...` (plugins sorted), then any other build field.
    pub normalized: String,
    /// Hex SHA-256 of `normalized`: the cache key.
    pub hash: String,
}

/// The error and the request id to answer with (PHP's when it could be read, else a new one).
pub type Rejection = (VeloxError, String);

impl Spec {
    pub fn parse(body: &[u8], gzip: bool) -> Result<Spec, Rejection> {
        let fresh_id = || uuid::Uuid::new_v4().to_string();
        let text = match gzip {
            true => gunzip(body).map_err(|e| (e, fresh_id()))?,
            false => body.to_vec(),
        };
        let mut json = match serde_json::from_slice(&text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err((invalid("the body is not a JSON object"), fresh_id())),
            Err(e) => return Err((invalid(&format!("malformed JSON: {e}")), fresh_id())),
        };
        let request_id = match field(&json, "request_id") {
            None | Some(Value::Null) => {
                let id = fresh_id();
                json.insert("request_id".into(), Value::String(id.clone()));
                id
            }
            Some(Value::String(id)) if is_uuid(id) => id.clone(),
            Some(_) => return Err((invalid("request_id: must be a UUID"), fresh_id())),
        };
        check(&json, request_id)
    }
}

fn check(json: &Map<String, Value>, request_id: String) -> Result<Spec, Rejection> {
    let reject = |why: &str| (invalid(why), request_id.clone());
    let rr_version = match field(json, "rr_version") {
        Some(Value::String(v)) if is_rr_version(v) => v.clone(),
        Some(_) => {
            return Err(reject(
                "rr_version: must be vX.Y.Z..., master or a commit hash",
            ))
        }
        None => return Err(reject("rr_version: required")),
    };
    let force_rebuild = match field(json, "force_rebuild") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(reject("force_rebuild: must be a boolean")),
    };
    let (os, arch) = match field(json, "target_platform") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(p)) => (
            text(p, "os").map_err(|w| reject(&format!("target_platform.{w}")))?,
            text(p, "arch").map_err(|w| reject(&format!("target_platform.{w}")))?,
        ),
        Some(_) => return Err(reject("target_platform: must be an object")),
    };
    let list = match field(json, "plugins") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => return Err(reject("plugins: a non-empty list is required")),
    };
    let mut plugins = Vec::with_capacity(list.len());
    for (i, plugin) in list.iter().enumerate() {
        let Value::Object(p) = plugin else {
            return Err(reject(&format!("plugins[{i}]: must be an object")));
        };
        match (text(p, "module_name"), text(p, "tag")) {
            (Ok(Some(module)), Ok(Some(tag))) => plugins.push(format!("{module}@{tag}")),
            _ => {
                return Err(reject(&format!(
                    "plugins[{i}]: module_name and tag required"
                )))
            }
        }
    }
    plugins.sort();
    let mut normalized = [
        rr_version.as_str(),
        os.as_deref().unwrap_or(""),
        arch.as_deref().unwrap_or(""),
    ]
    .join("|");
    for plugin in &plugins {
        normalized.push('|');
        normalized.push_str(plugin);
    }
    // Fields that change the binary (replaces, excludes, race, debug, future ones) belong in
    // the key too; the ones that do not are skipped. serde_json's map is sorted, so this is
    // deterministic.
    let mut extra: Vec<(String, &Value)> = json
        .iter()
        .map(|(k, v)| (snake(k), v))
        .filter(|(k, v)| !KEYED.contains(&k.as_str()) && !v.is_null())
        .collect();
    extra.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in extra {
        normalized.push_str(&format!("|{name}={value}"));
    }
    let hash = hex(&Sha256::digest(normalized.as_bytes()));
    Ok(Spec {
        request_id,
        json: json.clone(),
        os,
        arch,
        force_rebuild,
        normalized,
        hash,
    })
}

/// Fields already in the normalized prefix, or that do not change the build.
const KEYED: [&str; 5] = [
    "request_id",
    "rr_version",
    "force_rebuild",
    "target_platform",
    "plugins",
];

fn invalid(why: &str) -> VeloxError {
    VeloxError::InvalidRequest(why.to_string())
}

/// Looks a field up by its snake_case name or its lowerCamelCase one, as Velox accepts both.
fn field<'a>(map: &'a Map<String, Value>, snake_name: &str) -> Option<&'a Value> {
    map.get(snake_name).or_else(|| map.get(&camel(snake_name)))
}

/// A non-empty string field, absent (or null) allowed; the error names the field.
fn text(map: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match field(map, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(format!("{name}: must be a non-empty string")),
    }
}

fn camel(snake_name: &str) -> String {
    let mut out = String::with_capacity(snake_name.len());
    let mut upper = false;
    for c in snake_name.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `^(v\d+\.\d+\.\d+.*|master|[a-f0-9]{7,40})$`, Velox's rule.
pub fn is_rr_version(v: &str) -> bool {
    let semver = v.strip_prefix('v').is_some_and(|rest| {
        let mut parts = rest.splitn(3, '.');
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let (major, minor) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let patch = parts.next().unwrap_or("");
        let patch_digits = patch.bytes().take_while(u8::is_ascii_digit).count();
        digits(major) && digits(minor) && patch_digits > 0
    });
    let commit = (7..=40).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    semver || v == "master" || commit
}

/// The hyphenated 8-4-4-4-12 form, as Velox's `string.uuid` rule wants.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn gunzip(body: &[u8]) -> Result<Vec<u8>, VeloxError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(MAX_JSON + 1)
        .read_to_end(&mut out)
        .map_err(|e| invalid(&format!("gzip body: {e}")))?;
    if out.len() as u64 > MAX_JSON {
        return Err(invalid("gzip body: too large once decompressed"));
    }
    Ok(out)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
