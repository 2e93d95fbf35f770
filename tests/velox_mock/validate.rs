//! Velox's reading of a BuildRequest, per generation: protojson first (types, duplicate
//! names, unknown fields ignored, `null` as unset), then protovalidate's rules, with the
//! messages and `details` the real servers send (shared/velox-protocol.md, "Measured").
//! Written independently of rr's own check, so a bug there is not mirrored here.
use super::Generation;
use serde_json::{Map, Value};

/// A request Velox accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub request_id: String,
    /// The build's identity without the request id: what master hashes.
    pub spec: String,
    pub force_rebuild: bool,
    /// Empty for the server's own platform.
    pub os: String,
}

/// A refusal: the Connect message and, for rule violations, `(field, message, rule)`.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub message: String,
    pub violations: Vec<(String, String, String)>,
}

pub fn check(generation: Generation, body: &[u8]) -> Result<Accepted, Refusal> {
    if body.is_empty() {
        return Err(unmarshal(
            "zero-length payload is not a valid JSON object".into(),
        ));
    }
    let json: Value =
        serde_json::from_slice(body).map_err(|e| unmarshal(format!("proto: syntax error: {e}")))?;
    if let Some(key) = duplicate_key(body) {
        return Err(unmarshal(format!("proto: duplicate field \"{key}\"")));
    }
    let Value::Object(top) = &json else {
        return Err(unmarshal("proto: syntax error: unexpected token".into()));
    };
    let master = generation == Generation::Master;
    let message = Message { map: top };
    let request_id = message.string("request_id")?;
    let rr_version = message.string("rr_version")?;
    let force_rebuild = message.boolean("force_rebuild")?;
    let (mut os, mut arch) = (String::new(), String::new());
    if let Some(platform) = message.message("target_platform")? {
        os = platform.string("os")?;
        arch = platform.string("arch")?;
    }
    let plugins = message.messages("plugins")?;
    let mut named = Vec::new();
    for plugin in &plugins {
        named.push((plugin.string("module_name")?, plugin.string("tag")?));
    }
    // Fields the tag does not know are unknown fields there: ignored, whatever they hold.
    let (mut replaces, mut excludes, mut race, mut debug) = (Vec::new(), Vec::new(), false, false);
    if master {
        for entry in message.messages("replaces")? {
            replaces.push((entry.string("old")?, entry.string("new")?));
        }
        for entry in message.messages("excludes")? {
            excludes.push((entry.string("module")?, entry.string("version")?));
        }
        race = message.boolean("race")?;
        debug = message.boolean("debug")?;
    }

    let mut violations = Vec::new();
    let mut violate = |field: String, message: &str, rule: &str| {
        violations.push((field, message.to_string(), rule.to_string()));
    };
    if request_id.is_empty() {
        violate(
            "request_id".into(),
            "value is empty, which is not a valid UUID",
            "string.uuid_empty",
        );
    } else if !uuid_form(&request_id) {
        violate(
            "request_id".into(),
            "value must be a valid UUID",
            "string.uuid",
        );
    }
    if rr_version.is_empty() {
        violate("rr_version".into(), "value is required", "required");
    } else if !version_form(&rr_version) {
        violate(
            "rr_version".into(),
            "rr_version must be a semantic version starting with 'v' (e.g., v2025.1.0), \
             'master', or a git commit SHA (7-40 hex characters)",
            "rr_version.format",
        );
    }
    if named.is_empty() {
        violate("plugins".into(), "value is required", "required");
    }
    for (i, (module, tag)) in named.iter().enumerate() {
        if module.is_empty() {
            violate(
                format!("plugins[{i}].module_name"),
                "value is required",
                "required",
            );
        }
        if tag.is_empty() {
            violate(format!("plugins[{i}].tag"), "value is required", "required");
        }
    }
    for (i, (old, new)) in replaces.iter().enumerate() {
        if old.is_empty() {
            violate(
                format!("replaces[{i}].old"),
                "value is required",
                "required",
            );
        }
        if new.is_empty() {
            violate(
                format!("replaces[{i}].new"),
                "value is required",
                "required",
            );
        }
    }
    if !violations.is_empty() {
        return Err(Refusal {
            message: violation_message(generation, &violations),
            violations,
        });
    }

    let mut plugins: Vec<String> = named.iter().map(|(m, t)| format!("{m}@{t}")).collect();
    plugins.sort();
    let mut spec = format!("{rr_version}|{os}|{arch}|{}", plugins.join(","));
    if master {
        replaces.sort();
        excludes.sort();
        spec.push_str(&format!("|{replaces:?}|{excludes:?}|{race}|{debug}"));
    }
    Ok(Accepted {
        request_id,
        spec,
        force_rebuild,
        os,
    })
}

/// protovalidate's error text: the tag lists every violation with its rule, master says
/// "validation error" for one and "validation errors" for several.
fn violation_message(generation: Generation, violations: &[(String, String, String)]) -> String {
    match generation {
        Generation::Tag => {
            let mut text = "validation error:".to_string();
            for (field, message, rule) in violations {
                text.push_str(&format!("\n - {field}: {message} [{rule}]"));
            }
            text
        }
        Generation::Master if violations.len() == 1 => {
            let (field, message, _) = &violations[0];
            format!("validation error: {field}: {message}")
        }
        Generation::Master => {
            let mut text = "validation errors:".to_string();
            for (field, message, _) in violations {
                text.push_str(&format!("\n - {field}: {message}"));
            }
            text
        }
    }
}

fn unmarshal(why: String) -> Refusal {
    Refusal {
        message: format!("unmarshal message: {why}"),
        violations: Vec::new(),
    }
}

/// One protojson message: fields by proto name or JSON (lowerCamelCase) name.
struct Message<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Message<'a> {
    fn field(&self, proto_name: &str) -> Result<Option<&'a Value>, Refusal> {
        let json_name = json_name(proto_name);
        let mut names = vec![proto_name];
        if json_name != proto_name {
            names.push(&json_name);
        }
        let found: Vec<&Value> = names.iter().filter_map(|n| self.map.get(*n)).collect();
        if found.len() > 1 {
            return Err(unmarshal(format!("proto: duplicate field \"{json_name}\"")));
        }
        // protojson: null leaves a field unset.
        Ok(found.first().copied().filter(|v| !v.is_null()))
    }

    fn string(&self, name: &str) -> Result<String, Refusal> {
        match self.field(name)? {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(unmarshal(format!(
                "proto: invalid value for string field {}: {other}",
                json_name(name)
            ))),
        }
    }

    fn boolean(&self, name: &str) -> Result<bool, Refusal> {
        match self.field(name)? {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(unmarshal(format!(
                "proto: invalid value for bool field {}: {other}",
                json_name(name)
            ))),
        }
    }

    fn message(&self, name: &str) -> Result<Option<Message<'a>>, Refusal> {
        match self.field(name)? {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Message { map })),
            Some(other) => Err(unmarshal(format!(
                "proto: syntax error: unexpected token {other}"
            ))),
        }
    }

    fn messages(&self, name: &str) -> Result<Vec<Message<'a>>, Refusal> {
        let list = match self.field(name)? {
            None => return Ok(Vec::new()),
            Some(Value::Array(list)) => list,
            Some(other) => {
                return Err(unmarshal(format!(
                    "proto: syntax error: unexpected token {other}"
                )))
            }
        };
        list.iter()
            .map(|item| match item {
                Value::Object(map) => Ok(Message { map }),
                other => Err(unmarshal(format!(
                    "proto: syntax error: unexpected token {other}"
                ))),
            })
            .collect()
    }
}

/// A BuildRequest field name (of any of its messages) given twice in one object.
fn duplicate_key(body: &[u8]) -> Option<String> {
    const FIELDS: &[&str] = &[
        "request_id",
        "rr_version",
        "force_rebuild",
        "target_platform",
        "plugins",
        "replaces",
        "excludes",
        "race",
        "debug",
        "os",
        "arch",
        "module_name",
        "tag",
        "old",
        "new",
        "module",
        "version",
    ];
    // A hand-rolled scan: keys are the strings followed by a colon, and objects nest.
    let text = std::str::from_utf8(body).ok()?;
    let mut stack: Vec<Vec<String>> = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '{' => stack.push(Vec::new()),
            '}' => drop(stack.pop()),
            '"' => {
                let mut s = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => s.extend(chars.next().map(|(_, c)| c)),
                        '"' => break,
                        c => s.push(c),
                    }
                }
                while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                    chars.next();
                }
                if chars.peek().is_some_and(|(_, c)| *c == ':') {
                    let proto = FIELDS.iter().find(|f| **f == s || json_name(f) == s);
                    if let (Some(proto), Some(keys)) = (proto, stack.last_mut()) {
                        if keys.contains(&proto.to_string()) {
                            return Some(s);
                        }
                        keys.push(proto.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    None
}

fn json_name(proto_name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in proto_name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// protovalidate's `string.uuid`: 8-4-4-4-12 hex digits, any case.
fn uuid_form(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `^(v\d+\.\d+\.\d+.*|master|[a-f0-9]{7,40})$` in Go's regexp: `.` never matches `\n`.
fn version_form(v: &str) -> bool {
    if v == "master" {
        return true;
    }
    if (7..=40).contains(&v.len()) && v.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        return true;
    }
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let mut numbers = 0;
    let mut chars = rest.chars().peekable();
    while numbers < 3 {
        let mut digits = 0;
        while chars.peek().is_some_and(char::is_ascii_digit) {
            chars.next();
            digits += 1;
        }
        if digits == 0 {
            return false;
        }
        numbers += 1;
        if numbers < 3 && chars.next() != Some('.') {
            return false;
        }
    }
    chars.all(|c| c != '\n')
}

/// `details` as connect-go renders a `buf.validate.Violations`: the binary message in base64
/// (here a stand-in: rr must not read it) and the protojson form in `debug`.
pub fn details(violations: &[(String, String, String)]) -> Value {
    let rendered: Vec<Value> = violations
        .iter()
        .map(|(field, message, rule)| {
            let elements: Vec<Value> = field
                .split('.')
                .map(|part| match part.split_once('[') {
                    Some((name, index)) => serde_json::json!({
                        "fieldName": name,
                        "index": index.trim_end_matches(']'),
                    }),
                    None => serde_json::json!({ "fieldName": part }),
                })
                .collect();
            serde_json::json!({
                "field": {"elements": elements},
                "ruleId": rule,
                "message": message,
            })
        })
        .collect();
    let debug = serde_json::json!({ "violations": rendered });
    serde_json::json!([{
        "type": "buf.validate.Violations",
        "value": base64(debug.to_string().as_bytes()),
        "debug": debug,
    }])
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            match i <= chunk.len() {
                true => out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char),
                false => out.push('='),
            }
        }
    }
    out
}
