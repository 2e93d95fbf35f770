//! The configuration as a value tree: YAML parsed into it, overrides written into it, then read
//! one mapping at a time. A [`Table`] removes keys as they are read, so whatever is left at the
//! end is a key rr does not know.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::ConfigError;
use super::field::Field;

/// Where each part of the tree came from, so errors can name the file or the override.
#[derive(Debug, Default)]
pub(crate) struct Origins {
    file: Option<PathBuf>,
    /// (dotted key, origin) for each override, in the order applied.
    overrides: Vec<(String, String)>,
}

impl Origins {
    pub(crate) fn new(file: Option<&Path>) -> Self {
        Self {
            file: file.map(Path::to_path_buf),
            overrides: Vec::new(),
        }
    }

    pub(crate) fn add_override(&mut self, key: &str, origin: &str) {
        self.overrides.push((key.to_owned(), origin.to_owned()));
    }

    /// The origin of the value at `key`: the last override that set it or one of its parents;
    /// otherwise the file; without a file, the override that wrote nearest to `key`.
    pub(crate) fn of(&self, key: &str) -> String {
        let covers = |set: &str| key == set || key.starts_with(&format!("{set}."));
        if let Some((_, origin)) = self.overrides.iter().rev().find(|(set, _)| covers(set)) {
            return origin.clone();
        }
        if let Some(file) = &self.file {
            return file.display().to_string();
        }
        let mut scope = key;
        loop {
            let below = |set: &str| scope.is_empty() || set.starts_with(&format!("{scope}."));
            if let Some((_, origin)) = self.overrides.iter().rev().find(|(set, _)| below(set)) {
                return origin.clone();
            }
            if scope.is_empty() {
                return "defaults".to_owned();
            }
            scope = scope.rsplit_once('.').map_or("", |(parent, _)| parent);
        }
    }
}

/// Parses YAML text (already env-substituted) into a tree, applying `<<` merge keys.
pub(crate) fn parse_yaml(text: &str, origin: &Path) -> Result<Value, ConfigError> {
    let syntax = |err: serde_norway::Error| {
        let location = err.location();
        ConfigError::Syntax {
            origin: origin.display().to_string(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            message: err.to_string(),
        }
    };
    let mut yaml: serde_norway::Value = serde_norway::from_str(text).map_err(syntax)?;
    yaml.apply_merge().map_err(syntax)?;
    serde_json::to_value(yaml).map_err(|err| ConfigError::Syntax {
        origin: origin.display().to_string(),
        line: None,
        column: None,
        message: err.to_string(),
    })
}

/// Why an override could not be written into the tree.
#[derive(Debug, PartialEq)]
pub(crate) enum SetError {
    /// The key has an empty part (`http.`, `a..b`, ``).
    BadKey,
    /// The file has something other than a mapping where the key needs one (`http: hello`,
    /// a file that is a list): the dotted key of that value ("" for the whole file) and it.
    NotAMapping(String, Value),
}

/// Writes `value` at the dotted `key`, creating mappings on the way (where the file has none,
/// or `null`). A value that is not a mapping in the way is an error, not replaced: the file
/// would be dropped without a word (a file that is a list, `http: hello`).
pub(crate) fn set_dotted(tree: &mut Value, key: &str, value: Value) -> Result<(), SetError> {
    if key.split('.').any(str::is_empty) {
        return Err(SetError::BadKey);
    }
    let mut node = tree;
    let mut path = String::new();
    for part in key.split('.') {
        if node.is_null() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else {
            return Err(SetError::NotAMapping(path, node.clone()));
        };
        node = map.entry(part.to_owned()).or_insert(Value::Null);
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(part);
    }
    *node = value;
    Ok(())
}

/// One mapping of the tree being read.
pub(crate) struct Table<'a> {
    origins: &'a Origins,
    /// Dotted path of this mapping; empty at the top level.
    path: String,
    /// Whether the mapping was in the tree at all (absent and `null` both count as absent).
    present: bool,
    entries: Map<String, Value>,
    /// Keys asked for so far: the candidates for "did you mean".
    known: Vec<&'static str>,
}

impl<'a> Table<'a> {
    pub(crate) fn root(origins: &'a Origins, tree: Value) -> Result<Self, ConfigError> {
        Self::from_value(origins, String::new(), tree)
    }

    fn from_value(origins: &'a Origins, path: String, value: Value) -> Result<Self, ConfigError> {
        let (present, entries) = match value {
            Value::Null => (false, Map::new()),
            Value::Object(entries) => (true, entries),
            other => {
                let field = Field::new(origins, path, other);
                return Err(field.invalid("a mapping of keys to values"));
            }
        };
        Ok(Self {
            origins,
            path,
            present,
            entries,
            known: Vec::new(),
        })
    }

    pub(crate) fn is_present(&self) -> bool {
        self.present
    }

    pub(crate) fn dotted(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Takes `key` out of the mapping; `None` when it is absent or `null` (which means "default").
    pub(crate) fn field(&mut self, key: &'static str) -> Option<Field<'a>> {
        self.known.push(key);
        match self.entries.remove(key) {
            None | Some(Value::Null) => None,
            Some(value) => Some(Field::new(self.origins, self.dotted(key), value)),
        }
    }

    /// Reads `key` with `parse`, or gives `default` when it is not set.
    pub(crate) fn get<T>(
        &mut self,
        key: &'static str,
        default: T,
        parse: impl FnOnce(&Field<'a>) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        match self.field(key) {
            Some(field) => parse(&field),
            None => Ok(default),
        }
    }

    /// Reads `key` with `parse`; it must be set.
    pub(crate) fn require<T>(
        &mut self,
        key: &'static str,
        expected: &str,
        parse: impl FnOnce(&Field<'a>) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        match self.field(key) {
            Some(field) => parse(&field),
            None => {
                // A misspelt required key is better reported as the typo than as missing.
                if let Some(typo) = self.entries.keys().find(|k| closest(k, &[key]).is_some()) {
                    let typo = self.dotted(typo);
                    return Err(ConfigError::UnknownKey {
                        origin: self.origins.of(&typo),
                        key: typo,
                        suggestion: Some(self.dotted(key)),
                    });
                }
                Err(ConfigError::MissingKey {
                    origin: self.origins.of(&self.dotted(key)),
                    key: self.dotted(key),
                    expected: expected.to_owned(),
                })
            }
        }
    }

    /// Takes the nested mapping at `key`, empty (and not present) when it is absent or `null`.
    pub(crate) fn table(&mut self, key: &'static str) -> Result<Table<'a>, ConfigError> {
        self.known.push(key);
        let value = self.entries.remove(key).unwrap_or(Value::Null);
        Self::from_value(self.origins, self.dotted(key), value)
    }

    /// An error about `key` of this mapping when the check spans several keys.
    pub(crate) fn invalid(&self, key: &str, value: String, expected: String) -> ConfigError {
        let key = self.dotted(key);
        ConfigError::InvalidValue {
            origin: self.origins.of(&key),
            key,
            value,
            expected,
        }
    }

    /// Ends reading: keys in `roadrunner` are RoadRunner's and are only noted (all of them are
    /// named in one warning, see [`Notes`]); anything else left over is an unknown key.
    pub(crate) fn finish(self, roadrunner: &[&str], notes: &mut Notes) -> Result<(), ConfigError> {
        let mut ignored = Vec::new();
        for key in self.entries.keys() {
            if !roadrunner.contains(&key.as_str()) {
                let dotted = self.dotted(key);
                return Err(ConfigError::UnknownKey {
                    origin: self.origins.of(&dotted),
                    suggestion: closest(key, &self.known).map(|known| self.dotted(known)),
                    key: dotted,
                });
            }
            ignored.push(self.dotted(key));
        }
        notes.ignored.extend(ignored);
        Ok(())
    }
}

/// What reading found worth saying at start: warnings, and the RoadRunner keys rr accepts but
/// does not act on, which become one warning line naming them all.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    warnings: Vec<String>,
    ignored: Vec<String>,
}

impl Notes {
    pub(crate) fn warn(&mut self, warning: String) {
        self.warnings.push(warning);
    }

    /// The warnings (the line naming the ignored keys first) and the ignored keys, sorted.
    pub(crate) fn into_warnings(self) -> (Vec<String>, Vec<String>) {
        let Notes {
            mut warnings,
            mut ignored,
        } = self;
        ignored.sort();
        if !ignored.is_empty() {
            warnings.insert(0, ignored_line(&ignored));
        }
        (warnings, ignored)
    }
}

/// The one warning that names every RoadRunner key (or section) rr accepts and ignores.
pub(crate) fn ignored_line(keys: &[String]) -> String {
    let (what, them) = match keys.len() {
        1 => ("key", "it"),
        _ => ("keys", "them"),
    };
    format!(
        "RoadRunner {what} accepted but ignored by rr (nothing reads {them}; docs/config.md, \
         RoadRunner compatibility): {}",
        keys.join(", ")
    )
}

/// The known key nearest to a misspelt one, if it is near enough to be a typo.
pub(crate) fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let limit = (key.chars().count() / 3).max(1);
    known
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn origin_prefers_the_override_that_covers_the_key() {
        let mut origins = Origins::new(Some(Path::new("/etc/rr.yaml")));
        origins.add_override("http.address", "ini rr.address");
        origins.add_override("http.ssl", "option");
        assert_eq!(origins.of("http.address"), "ini rr.address");
        assert_eq!(origins.of("http.ssl.cert"), "option");
        assert_eq!(origins.of("http.addressx"), "/etc/rr.yaml");
        assert_eq!(origins.of("http"), "/etc/rr.yaml");
    }

    #[test]
    fn origin_without_a_file() {
        let mut origins = Origins::new(None);
        assert_eq!(origins.of("http.address"), "defaults");
        origins.add_override("http.ssl.address", "ini rr.ssl_address");
        assert_eq!(origins.of("http.ssl.cert"), "ini rr.ssl_address");
        assert_eq!(origins.of("http.ssl"), "ini rr.ssl_address");
        assert_eq!(origins.of(""), "ini rr.ssl_address");
    }

    #[test]
    fn set_dotted_creates_and_replaces() {
        let mut tree = json!({"http": {"address": "a", "ssl": null, "pool": {"debug": true}}});
        set_dotted(&mut tree, "http.address", json!("b")).unwrap();
        set_dotted(&mut tree, "http.ssl.cert", json!("c")).unwrap();
        set_dotted(&mut tree, "http.pool", json!(null)).unwrap();
        set_dotted(&mut tree, "logs.level", json!("debug")).unwrap();
        assert_eq!(
            tree,
            json!({"http": {"address": "b", "ssl": {"cert": "c"}, "pool": null},
                   "logs": {"level": "debug"}})
        );
        let mut null = Value::Null;
        set_dotted(&mut null, "a.b", json!(1)).unwrap();
        assert_eq!(null, json!({"a": {"b": 1}}));
        assert_eq!(
            set_dotted(&mut null, "a..b", json!(1)),
            Err(SetError::BadKey)
        );
        assert_eq!(set_dotted(&mut null, "", json!(1)), Err(SetError::BadKey));
    }

    #[test]
    fn set_dotted_refuses_to_drop_what_is_not_a_mapping() {
        let mut tree = json!({"http": {"ssl": "oops"}});
        assert_eq!(
            set_dotted(&mut tree, "http.ssl.cert", json!("c")),
            Err(SetError::NotAMapping("http.ssl".into(), json!("oops")))
        );
        let mut list = json!(["a"]);
        assert_eq!(
            set_dotted(&mut list, "http.address", json!("b")),
            Err(SetError::NotAMapping(String::new(), json!(["a"])))
        );
    }

    #[test]
    fn yaml_merge_keys_are_applied() {
        let tree = parse_yaml(
            "base: &b {a: 1, b: 2}\nhttp:\n  <<: *b\n  b: 3\n",
            Path::new("x.yaml"),
        )
        .unwrap();
        assert_eq!(tree["http"], json!({"a": 1, "b": 3}));
    }

    #[test]
    fn empty_yaml_is_null() {
        assert_eq!(parse_yaml("", Path::new("x")).unwrap(), Value::Null);
        assert_eq!(
            parse_yaml("# nothing\n", Path::new("x")).unwrap(),
            Value::Null
        );
    }

    #[test]
    fn suggestions() {
        let known = ["address", "max_request_size", "uploads"];
        assert_eq!(closest("adress", &known), Some("address"));
        assert_eq!(
            closest("max_request_sise", &known),
            Some("max_request_size")
        );
        assert_eq!(closest("upload", &known), Some("uploads"));
        assert_eq!(closest("banana", &known), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
