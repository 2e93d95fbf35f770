//! The build request PHP handed over: gunzip, validate by Velox's rules (both server
//! generations; the table is in docs/velox.md, "Validation"), derive the normalized spec whose
//! hash keys the single flight, the artifact record and the cache, and the request id Velox
//! gets.
use super::VeloxError;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Map, Value};
use sha1::Sha1;
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

/// The namespace of the name-based request ids rr derives from a spec (UUID v5).
const SPEC_NAMESPACE: uuid::Uuid = uuid::uuid!("1637f646-868d-4ea1-99e3-99bb77a11af9");

/// A validated build request.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// PHP's, or the name-based UUID of `normalized` when PHP gave none.
    pub request_id: String,
    /// The object sent to Velox: PHP's, unknown fields kept, `request_id` filled in.
    pub json: Map<String, Value>,
    /// `None` when absent or empty (Velox then builds for its own platform).
    pub os: Option<String>,
    pub arch: Option<String>,
    pub force_rebuild: bool,
    /// `rr_version|os|arch|module@tag...` (plugins sorted), then the other build fields.
    pub normalized: String,
    /// Hex SHA-256 of `normalized`: the key of the flight, the record and the cache.
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
        if text.iter().all(u8::is_ascii_whitespace) {
            return Err((invalid("the body is empty"), fresh_id()));
        }
        let json = match serde_json::from_slice(&text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err((invalid("the body is not a JSON object"), fresh_id())),
            Err(e) => return Err((invalid(&format!("malformed JSON: {e}")), fresh_id())),
        };
        // serde_json keeps the last of a repeated key; Velox refuses a repeated field.
        let names = KNOWN.iter().chain(&NESTED);
        if let Some(key) = repeated_keys(&text).find(|k| names.clone().any(|n| *n == snake(k))) {
            return Err((invalid(&format!("{key}: given twice")), fresh_id()));
        }
        let top = Object::top(&json);
        let given = top.string("request_id").map_err(|e| (e, fresh_id()))?;
        let given = match given {
            Some(id) if is_uuid(id) => Some(id.to_string()),
            Some("") => {
                let why = "request_id: value is empty, which is not a valid UUID";
                return Err((invalid(why), fresh_id()));
            }
            Some(_) => return Err((invalid("request_id: must be a UUID"), fresh_id())),
            None => None,
        };
        let checked = check(&top).map_err(|e| (e, given.clone().unwrap_or_else(fresh_id)))?;
        let request_id = given.unwrap_or_else(|| spec_uuid(&checked.normalized));
        let mut json = json.clone();
        if top.get("request_id").ok().flatten().is_none() {
            // Absent or null: ours, in Velox's own spelling, replacing a null in either.
            json.remove("requestId");
            json.insert("request_id".into(), Value::String(request_id.clone()));
        }
        let hash = hex(&Sha256::digest(checked.normalized.as_bytes()));
        Ok(Spec {
            request_id,
            json,
            os: checked.os,
            arch: checked.arch,
            force_rebuild: checked.force_rebuild,
            normalized: checked.normalized,
            hash,
        })
    }
}

/// The name-based UUID (v5) of a normalized spec: the same spec always gets the same id, so a
/// Velox that keys its cache and its in-progress check by request id sees one build.
pub fn spec_uuid(normalized: &str) -> String {
    // sha1 0.10 speaks digest 0.10, sha2 0.11 digest 0.11: each through its own trait.
    let mut sha = <Sha1 as sha1::Digest>::new();
    sha1::Digest::update(&mut sha, SPEC_NAMESPACE.as_bytes());
    sha1::Digest::update(&mut sha, normalized.as_bytes());
    let digest = sha1::Digest::finalize(sha);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes)
        .into_uuid()
        .to_string()
}

struct Checked {
    os: Option<String>,
    arch: Option<String>,
    force_rebuild: bool,
    normalized: String,
}

fn check(top: &Object<'_>) -> Result<Checked, VeloxError> {
    let rr_version = match top.string("rr_version")? {
        Some(v) if is_rr_version(v) => v,
        None | Some("") => return Err(invalid("rr_version: value is required")),
        Some(_) => {
            return Err(invalid(
                "rr_version: must be vX.Y.Z..., master or a 7-40 digit hex commit (one line)",
            ))
        }
    };
    let force_rebuild = top.boolean("force_rebuild")?;
    let (os, arch) = match top.object("target_platform")? {
        Some(platform) => (platform.string("os")?, platform.string("arch")?),
        None => (None, None),
    };
    // Empty means "Velox's own platform", as absent does.
    let os = os.filter(|s| !s.is_empty()).map(str::to_string);
    let arch = arch.filter(|s| !s.is_empty()).map(str::to_string);
    let list = top.list("plugins")?;
    if list.is_empty() {
        return Err(invalid("plugins: value is required (a non-empty list)"));
    }
    let mut plugins = Vec::with_capacity(list.len());
    for (i, plugin) in list.iter().enumerate() {
        let plugin = top.element("plugins", i, plugin)?;
        let module = plugin.required("module_name")?;
        let tag = plugin.required("tag")?;
        plugins.push(format!("{module}@{tag}"));
    }
    plugins.sort();
    let mut replaces = Vec::new();
    for (i, entry) in top.list("replaces")?.iter().enumerate() {
        let entry = top.element("replaces", i, entry)?;
        let old = entry.required("old")?;
        replaces.push(format!("{old}=>{}", entry.required("new")?));
    }
    replaces.sort();
    let mut excludes = Vec::new();
    for (i, entry) in top.list("excludes")?.iter().enumerate() {
        let entry = top.element("excludes", i, entry)?;
        let module = entry.string("module")?.unwrap_or("");
        excludes.push(format!(
            "{module}@{}",
            entry.string("version")?.unwrap_or("")
        ));
    }
    excludes.sort();
    let race = top.boolean("race")?;
    let debug = top.boolean("debug")?;

    let mut normalized = [
        rr_version,
        os.as_deref().unwrap_or(""),
        arch.as_deref().unwrap_or(""),
    ]
    .join("|");
    for plugin in &plugins {
        normalized.push('|');
        normalized.push_str(plugin);
    }
    // An empty list or `false` builds what their absence builds: same key.
    if !replaces.is_empty() {
        normalized.push_str(&format!("|replaces={}", replaces.join(",")));
    }
    if !excludes.is_empty() {
        normalized.push_str(&format!("|excludes={}", excludes.join(",")));
    }
    for (flag, on) in [("race", race), ("debug", debug)] {
        if on {
            normalized.push_str(&format!("|{flag}"));
        }
    }
    // Fields rr does not know may change the binary on a newer Velox: they are part of the
    // key. serde_json's map is sorted, the snake_case names are sorted again: deterministic.
    let mut extra: Vec<(String, &Value)> = top
        .map
        .iter()
        .map(|(k, v)| (snake(k), v))
        .filter(|(k, v)| !KNOWN.contains(&k.as_str()) && !v.is_null())
        .collect();
    extra.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in extra {
        normalized.push_str(&format!("|{name}={value}"));
    }
    Ok(Checked {
        os,
        arch,
        force_rebuild,
        normalized,
    })
}

/// The BuildRequest fields of either Velox generation.
const KNOWN: [&str; 9] = [
    "request_id",
    "rr_version",
    "force_rebuild",
    "target_platform",
    "plugins",
    "replaces",
    "excludes",
    "race",
    "debug",
];

/// The fields of the nested messages (target_platform, plugins, replaces, excludes).
const NESTED: [&str; 8] = [
    "os",
    "arch",
    "module_name",
    "tag",
    "old",
    "new",
    "module",
    "version",
];

/// Keys repeated within one object, anywhere in a (well-formed) JSON document.
fn repeated_keys(text: &[u8]) -> impl Iterator<Item = String> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;
    struct Walk<'r>(&'r RefCell<Vec<String>>);
    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Walk(self.0))?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value_seed(Walk(self.0))?;
                if let Some(key) = seen.replace(key) {
                    self.0.borrow_mut().push(key);
                }
            }
            Ok(())
        }
    }
    let found = RefCell::new(Vec::new());
    let _ = Walk(&found).deserialize(&mut serde_json::Deserializer::from_slice(text));
    found.into_inner().into_iter()
}

/// A JSON object read the way Velox's protojson reads a message: a field by its snake_case or
/// lowerCamelCase name (not both), `null` as absent, every known field of its own type.
struct Object<'a> {
    map: &'a Map<String, Value>,
    /// `plugins[0].` for an element; empty at the top.
    path: String,
}

impl<'a> Object<'a> {
    fn top(map: &'a Map<String, Value>) -> Object<'a> {
        Object {
            map,
            path: String::new(),
        }
    }

    fn name(&self, field: &str) -> String {
        format!("{}{field}", self.path)
    }

    fn get(&self, field: &str) -> Result<Option<&'a Value>, VeloxError> {
        let camel = camel(field);
        let value = match (self.map.get(field), self.map.get(&camel)) {
            (Some(_), Some(_)) if camel != field => {
                let name = self.name(field);
                return Err(invalid(&format!("{name}: given twice (as {camel} too)")));
            }
            (Some(value), _) | (None, Some(value)) => value,
            (None, None) => return Ok(None),
        };
        Ok(Some(value).filter(|v| !v.is_null()))
    }

    fn wrong_type(&self, field: &str, expected: &str) -> VeloxError {
        invalid(&format!("{}: must be {expected}", self.name(field)))
    }

    fn string(&self, field: &str) -> Result<Option<&'a str>, VeloxError> {
        match self.get(field)? {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong_type(field, "a string")),
        }
    }

    /// A non-empty string that must be there.
    fn required(&self, field: &str) -> Result<&'a str, VeloxError> {
        match self.string(field)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(invalid(&format!("{}: value is required", self.name(field)))),
        }
    }

    /// Absent is false; `"true"` is not a boolean.
    fn boolean(&self, field: &str) -> Result<bool, VeloxError> {
        match self.get(field)? {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.wrong_type(field, "a boolean (true or false, not a string)")),
        }
    }

    fn object(&self, field: &str) -> Result<Option<Object<'a>>, VeloxError> {
        match self.get(field)? {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Object {
                map,
                path: format!("{}.", self.name(field)),
            })),
            Some(_) => Err(self.wrong_type(field, "an object")),
        }
    }

    /// Absent is empty.
    fn list(&self, field: &str) -> Result<&'a [Value], VeloxError> {
        match self.get(field)? {
            None => Ok(&[]),
            Some(Value::Array(list)) => Ok(list),
            Some(_) => Err(self.wrong_type(field, "a list")),
        }
    }

    fn element(&self, field: &str, i: usize, value: &'a Value) -> Result<Object<'a>, VeloxError> {
        match value {
            Value::Object(map) => Ok(Object {
                map,
                path: format!("{}[{i}].", self.name(field)),
            }),
            _ => Err(invalid(&format!(
                "{}[{i}]: must be an object",
                self.name(field)
            ))),
        }
    }
}

fn invalid(why: &str) -> VeloxError {
    VeloxError::InvalidRequest(why.to_string())
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

/// `^(v\d+\.\d+\.\d+.*|master|[a-f0-9]{7,40})$` as Go's regexp reads it: `.` stops at a
/// newline and `$` is the end of the text, so a trailing newline fails.
pub fn is_rr_version(v: &str) -> bool {
    if v.contains('\n') {
        return false;
    }
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

/// The hyphenated 8-4-4-4-12 form in either case, as Velox's `string.uuid` rule wants (the
/// nil UUID included).
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
