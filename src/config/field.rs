//! One value of the tree with its dotted key, and the coercions from YAML (or an ini string) to
//! the Rust types of [`Config`](super::Config). Ini overrides arrive as strings, so numbers and
//! booleans are accepted in string form everywhere.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::error::ConfigError;
use super::tree::Origins;
use super::units::{self, parse_duration, parse_size};

/// How much of a bad value an error message quotes.
const SHOWN_VALUE_CHARS: usize = 80;

const ADDRESS_EXPECTED: &str = "host:port with an IP address or localhost, \
     e.g. 127.0.0.1:8080, 0.0.0.0:8080, [::1]:8080 or :8080 (all interfaces)";

pub(crate) struct Field<'a> {
    origins: &'a Origins,
    key: String,
    value: Value,
}

impl<'a> Field<'a> {
    pub(crate) fn new(origins: &'a Origins, key: String, value: Value) -> Self {
        Self {
            origins,
            key,
            value,
        }
    }

    /// The error for this value, naming its origin, key and the value itself.
    pub(crate) fn invalid(&self, expected: impl Into<String>) -> ConfigError {
        let mut value = self.value.to_string();
        if value.chars().count() > SHOWN_VALUE_CHARS {
            value = value.chars().take(SHOWN_VALUE_CHARS).collect::<String>() + "…";
        }
        ConfigError::InvalidValue {
            origin: self.origins.of(&self.key),
            key: self.key.clone(),
            value,
            expected: expected.into(),
        }
    }

    /// The error for a key rr knows but refuses.
    pub(crate) fn unsupported(&self, reason: &str) -> ConfigError {
        ConfigError::Unsupported {
            origin: self.origins.of(&self.key),
            key: self.key.clone(),
            reason: reason.to_owned(),
        }
    }

    /// A string; numbers are taken in their written form (`version: 3`).
    pub(crate) fn string(&self) -> Result<String, ConfigError> {
        match &self.value {
            Value::String(text) => Ok(text.clone()),
            Value::Number(number) => Ok(number.to_string()),
            _ => Err(self.invalid("a string")),
        }
    }

    /// The value as text for the unit parsers: strings as written, numbers in decimal form.
    fn scalar_text(&self, expected: &str) -> Result<String, ConfigError> {
        match &self.value {
            Value::String(text) => Ok(text.trim().to_owned()),
            Value::Number(number) => Ok(number.to_string()),
            _ => Err(self.invalid(expected)),
        }
    }

    /// true/false, 1/0, or the strings "true", "on", "yes", "1" and "false", "off", "no", "0",
    /// "" (PHP's ini parser turns `Off` into the empty string).
    pub(crate) fn bool(&self) -> Result<bool, ConfigError> {
        const EXPECTED: &str = "true or false (also on/off, yes/no, 1/0)";
        match &self.value {
            Value::Bool(flag) => Ok(*flag),
            Value::Number(number) => match number.as_u64() {
                Some(0) => Ok(false),
                Some(1) => Ok(true),
                _ => Err(self.invalid(EXPECTED)),
            },
            Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "on" | "yes" => Ok(true),
                "0" | "false" | "off" | "no" | "" => Ok(false),
                _ => Err(self.invalid(EXPECTED)),
            },
            _ => Err(self.invalid(EXPECTED)),
        }
    }

    /// A whole number, at least `min`, that fits `T`.
    pub(crate) fn int<T: TryFrom<u64>>(&self, min: u64) -> Result<T, ConfigError> {
        let expected = if min == 0 {
            "a whole number that is not negative".to_owned()
        } else {
            format!("a whole number >= {min}")
        };
        let number: u64 = self
            .scalar_text(&expected)?
            .parse()
            .map_err(|_| self.invalid(expected.as_str()))?;
        if number < min {
            return Err(self.invalid(expected));
        }
        T::try_from(number).map_err(|_| self.invalid("a smaller whole number"))
    }

    /// A finite number, at least `min`.
    pub(crate) fn float(&self, min: f64) -> Result<f64, ConfigError> {
        let expected = format!("a number >= {min:?}");
        let number: f64 = self
            .scalar_text(&expected)?
            .parse()
            .map_err(|_| self.invalid(expected.as_str()))?;
        if !number.is_finite() || number < min {
            return Err(self.invalid(expected));
        }
        Ok(number)
    }

    /// A Go-style duration; a plain number is seconds.
    pub(crate) fn duration(&self) -> Result<Duration, ConfigError> {
        let text = self.scalar_text(units::DURATION_EXPECTED)?;
        parse_duration(&text).map_err(|expected| self.invalid(expected))
    }

    /// A duration greater than zero, for timeouts where zero would fail every request.
    pub(crate) fn positive_duration(&self) -> Result<Duration, ConfigError> {
        match self.duration()? {
            Duration::ZERO => Err(self.invalid("a duration greater than zero, like \"10s\"")),
            duration => Ok(duration),
        }
    }

    /// A size in bytes between `min` and `max`; a bare number counts `bare_unit` bytes.
    pub(crate) fn size(&self, bare_unit: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        let text = self.scalar_text(units::SIZE_EXPECTED)?;
        let bytes = parse_size(&text, bare_unit).map_err(|expected| self.invalid(expected))?;
        if bytes < min || bytes > max {
            let expected = match (min, max) {
                (_, u64::MAX) => format!("a size of at least {}", units::human_size(min)),
                _ => format!(
                    "a size from {} to {}",
                    units::human_size(min),
                    units::human_size(max)
                ),
            };
            return Err(self.invalid(expected));
        }
        Ok(bytes)
    }

    /// One of a fixed set of words (case-insensitive).
    pub(crate) fn choice<T: Copy>(&self, choices: &[(&str, T)]) -> Result<T, ConfigError> {
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        let expected = format!("one of {}", names.join(", "));
        let text = self.scalar_text(&expected)?.to_ascii_lowercase();
        choices
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, choice)| *choice)
            .ok_or_else(|| self.invalid(expected))
    }

    /// A socket address. Besides `ip:port`, accepts Go's `:port` (all interfaces) and
    /// `localhost:port`; other host names are refused rather than resolved at startup.
    pub(crate) fn address(&self) -> Result<SocketAddr, ConfigError> {
        let text = self.string()?;
        let text = text.trim();
        if let Ok(address) = text.parse::<SocketAddr>() {
            return Ok(address);
        }
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| self.invalid(ADDRESS_EXPECTED))?;
        let port: u16 = port.parse().map_err(|_| self.invalid(ADDRESS_EXPECTED))?;
        let ip = match host {
            "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            _ => return Err(self.invalid(ADDRESS_EXPECTED)),
        };
        Ok(SocketAddr::new(ip, port))
    }

    /// An absolute `http://` or `https://` URL with a host.
    pub(crate) fn http_url(&self) -> Result<String, ConfigError> {
        const EXPECTED: &str = "an http:// or https:// URL, like \"https://velox.example.com\"";
        let text = self.string()?.trim().to_owned();
        let lower = text.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"))
            .ok_or_else(|| self.invalid(EXPECTED))?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.is_empty() || host.starts_with(':') || text.contains(char::is_whitespace) {
            return Err(self.invalid(EXPECTED));
        }
        Ok(text)
    }

    /// A path, which must not be empty. Relative paths are kept as written: they are relative
    /// to the working directory of `php`, as in RoadRunner.
    pub(crate) fn path(&self) -> Result<PathBuf, ConfigError> {
        match &self.value {
            Value::String(text) if !text.trim().is_empty() => Ok(PathBuf::from(text.trim())),
            _ => Err(self.invalid("a path")),
        }
    }

    /// An existing directory, made absolute against the working directory.
    pub(crate) fn directory(&self) -> Result<PathBuf, ConfigError> {
        let path = self.path()?;
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => Ok(std::path::absolute(&path).unwrap_or(path)),
            Ok(_) => Err(self.invalid("an existing directory (this is not a directory)")),
            Err(err) => Err(self.invalid(format!("an existing directory ({err})"))),
        }
    }

    /// An existing directory rr can create files in (`access(W_OK | X_OK)`), made absolute:
    /// uploads and spooled bodies go there, and a missing one would fail every upload later.
    pub(crate) fn writable_directory(&self) -> Result<PathBuf, ConfigError> {
        let dir = self.directory()?;
        match writable(&dir) {
            Ok(()) => Ok(dir),
            Err(err) => Err(self.invalid(format!("a directory rr can write to ({err})"))),
        }
    }

    /// A directory rr can create files in, or one it can create (a missing one whose nearest
    /// existing ancestor is a directory it can write to), made absolute. Nothing is created
    /// here (`php --ri rr` reads the configuration too).
    pub(crate) fn creatable_directory(&self) -> Result<PathBuf, ConfigError> {
        let path = self.path()?;
        let path = std::path::absolute(&path).unwrap_or(path);
        let expected =
            |why: String| self.invalid(format!("a directory rr can write to, or create ({why})"));
        let mut existing = path.as_path();
        loop {
            match std::fs::metadata(existing) {
                Ok(meta) if meta.is_dir() => break,
                Ok(_) if existing == path => {
                    return Err(expected("this is not a directory".into()))
                }
                Ok(_) => {
                    return Err(expected(format!(
                        "{} is not a directory",
                        existing.display()
                    )))
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => match existing.parent() {
                    Some(parent) => existing = parent,
                    None => return Err(expected(err.to_string())),
                },
                Err(err) => return Err(expected(format!("{}: {err}", existing.display()))),
            }
        }
        match writable(existing) {
            Ok(()) => Ok(path),
            Err(err) if existing == path => Err(expected(err.to_string())),
            Err(err) => Err(expected(format!("{}: {err}", existing.display()))),
        }
    }

    /// A file rr can append log lines to: an existing file it may open for writing, or a new
    /// one in an existing directory it can write to, made absolute (it is opened again by name
    /// on SIGUSR1, maybe after the script's `chdir()`). Nothing is created here (`php --ri rr`
    /// reads the configuration too).
    pub(crate) fn log_file(&self) -> Result<PathBuf, ConfigError> {
        let path = self.path()?;
        let path = std::path::absolute(&path).unwrap_or(path);
        let expected = |why: String| self.invalid(format!("a file rr can append to ({why})"));
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => Err(expected("this is a directory".into())),
            Ok(_) => match std::fs::OpenOptions::new().append(true).open(&path) {
                Ok(_) => Ok(path),
                Err(err) => Err(expected(err.to_string())),
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let parent = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                match std::fs::metadata(&parent) {
                    Ok(meta) if meta.is_dir() => match writable(&parent) {
                        Ok(()) => Ok(path),
                        Err(err) => Err(expected(format!("{}: {err}", parent.display()))),
                    },
                    Ok(_) => Err(expected(format!("{} is not a directory", parent.display()))),
                    Err(err) => Err(expected(format!("{}: {err}", parent.display()))),
                }
            }
            Err(err) => Err(expected(err.to_string())),
        }
    }

    /// A list of existing directories (one string is split on commas), each made absolute.
    /// Links in them are not resolved here: whoever compares a path with them resolves both
    /// then, so a link a deploy swaps (`current -> releases/N`) is followed.
    pub(crate) fn directories(&self) -> Result<Vec<PathBuf>, ConfigError> {
        let mut dirs = Vec::new();
        for (i, text) in self.strings()?.into_iter().enumerate() {
            let item = Field::new(
                self.origins,
                format!("{}[{i}]", self.key),
                Value::String(text),
            );
            dirs.push(item.directory()?);
        }
        Ok(dirs)
    }

    /// A path to a file that exists and can be opened now, so a bad TLS setup fails at start.
    pub(crate) fn readable_file(&self, what: &str) -> Result<PathBuf, ConfigError> {
        let path = self.path()?;
        match File::open(&path).and_then(|file| file.metadata()) {
            Ok(meta) if meta.is_file() => Ok(path),
            Ok(_) => Err(self.invalid(format!("a readable {what} file (this is not a file)"))),
            Err(err) => Err(self.invalid(format!("a readable {what} file ({err})"))),
        }
    }

    /// One path or a non-empty list of paths, each an existing directory made absolute.
    pub(crate) fn existing_directories(&self) -> Result<Vec<PathBuf>, ConfigError> {
        if let Value::String(_) = self.value {
            return Ok(vec![self.directory()?]);
        }
        self.paths()?
            .iter()
            .enumerate()
            .map(|(i, path)| {
                let text = path.to_string_lossy().into_owned();
                Field::new(
                    self.origins,
                    format!("{}[{i}]", self.key),
                    Value::String(text),
                )
                .directory()
            })
            .collect()
    }

    /// One path or a non-empty list of paths.
    pub(crate) fn paths(&self) -> Result<Vec<PathBuf>, ConfigError> {
        const EXPECTED: &str = "a path or a non-empty list of paths";
        let items = match &self.value {
            Value::String(_) => return Ok(vec![self.path()?]),
            Value::Array(items) if !items.is_empty() => items,
            _ => return Err(self.invalid(EXPECTED)),
        };
        items
            .iter()
            .map(|item| match item {
                Value::String(text) if !text.trim().is_empty() => Ok(PathBuf::from(text.trim())),
                _ => Err(self.invalid(EXPECTED)),
            })
            .collect()
    }

    /// The entries of a mapping, each a field under its own dotted key (`http.static.response.X`).
    pub(crate) fn entries(&self) -> Result<Vec<(String, Field<'a>)>, ConfigError> {
        match &self.value {
            Value::Object(map) => Ok(map
                .iter()
                .map(|(name, value)| {
                    let key = format!("{}.{name}", self.key);
                    (name.clone(), Field::new(self.origins, key, value.clone()))
                })
                .collect()),
            _ => Err(self.invalid("a mapping of names to values")),
        }
    }

    /// A list of strings; a single string is split on commas (the form an ini value takes).
    pub(crate) fn strings(&self) -> Result<Vec<String>, ConfigError> {
        const EXPECTED: &str = "a list of strings (or one comma-separated string)";
        let items: Vec<String> = match &self.value {
            Value::String(text) => text.split(',').map(str::to_owned).collect(),
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text.clone()),
                    _ => Err(self.invalid(EXPECTED)),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(self.invalid(EXPECTED)),
        };
        Ok(items
            .iter()
            .map(|item| item.trim().to_owned())
            .filter(|item| !item.is_empty())
            .collect())
    }
}

/// Whether this process may create files in `dir` (write and search permission).
fn writable(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: access() only reads the NUL-terminated path, which outlives the call.
    match unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(origins: &Origins, value: Value) -> Field<'_> {
        Field::new(origins, "a.b".to_owned(), value)
    }

    fn message(result: Result<impl std::fmt::Debug, ConfigError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn bools_from_yaml_and_ini_strings() {
        let o = Origins::default();
        for yes in [
            json!(true),
            json!(1),
            json!("1"),
            json!("true"),
            json!("On"),
            json!("yes"),
        ] {
            assert!(field(&o, yes).bool().unwrap());
        }
        for no in [
            json!(false),
            json!(0),
            json!("0"),
            json!("FALSE"),
            json!("off"),
            json!("no"),
            json!(""),
        ] {
            assert!(!field(&o, no).bool().unwrap());
        }
        assert_eq!(
            message(field(&o, json!("maybe")).bool()),
            "rr config defaults: key 'a.b': invalid value \"maybe\": \
             expected true or false (also on/off, yes/no, 1/0)"
        );
        assert!(field(&o, json!(2)).bool().is_err());
    }

    #[test]
    fn integers_from_numbers_and_strings() {
        let o = Origins::default();
        assert_eq!(field(&o, json!(8)).int::<usize>(0).unwrap(), 8);
        assert_eq!(field(&o, json!(" 8 ")).int::<u32>(1).unwrap(), 8);
        assert!(
            message(field(&o, json!(0)).int::<u32>(1)).ends_with("expected a whole number >= 1")
        );
        assert!(message(field(&o, json!(-1)).int::<u64>(0)).contains("not negative"));
        assert!(field(&o, json!(1.5)).int::<u64>(0).is_err());
        assert!(field(&o, json!(true)).int::<u64>(0).is_err());
        assert!(message(field(&o, json!(5_000_000_000u64)).int::<u32>(0)).contains("smaller"));
    }

    #[test]
    fn floats() {
        let o = Origins::default();
        assert_eq!(field(&o, json!(2)).float(1.0).unwrap(), 2.0);
        assert_eq!(field(&o, json!("1.5")).float(1.0).unwrap(), 1.5);
        assert!(message(field(&o, json!(0.5)).float(1.0)).ends_with("expected a number >= 1.0"));
        assert!(field(&o, json!("inf")).float(1.0).is_err());
        assert!(field(&o, json!("NaN")).float(1.0).is_err());
    }

    #[test]
    fn durations_from_numbers_and_strings() {
        let o = Origins::default();
        assert_eq!(
            field(&o, json!(5)).duration().unwrap(),
            Duration::from_secs(5)
        );
        assert_eq!(
            field(&o, json!(0.5)).duration().unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            field(&o, json!("5s")).duration().unwrap(),
            Duration::from_secs(5)
        );
        assert!(message(field(&o, json!(-3)).duration()).contains("not negative"));
        assert!(message(field(&o, json!("0")).positive_duration()).contains("greater than zero"));
        assert!(field(&o, json!([1])).duration().is_err());
    }

    #[test]
    fn sizes_with_bounds() {
        let o = Origins::default();
        assert_eq!(
            field(&o, json!(2)).size(units::MB, 1, u64::MAX).unwrap(),
            2 * units::MB
        );
        assert_eq!(
            field(&o, json!("2KB"))
                .size(units::MB, 1, u64::MAX)
                .unwrap(),
            2048
        );
        assert_eq!(
            message(field(&o, json!("1KB")).size(1, 8 * units::KB, 4 * units::GB)),
            "rr config defaults: key 'a.b': invalid value \"1KB\": expected a size from 8KB to 4GB"
        );
        assert!(message(field(&o, json!(0)).size(1, 1, u64::MAX)).ends_with("at least 1B"));
    }

    #[test]
    fn addresses() {
        let o = Origins::default();
        let parse = |v: Value| field(&o, v).address().map(|a| a.to_string());
        assert_eq!(parse(json!("127.0.0.1:8080")).unwrap(), "127.0.0.1:8080");
        assert_eq!(parse(json!("[::1]:0")).unwrap(), "[::1]:0");
        assert_eq!(parse(json!(":9000")).unwrap(), "0.0.0.0:9000");
        assert_eq!(parse(json!("localhost:80")).unwrap(), "127.0.0.1:80");
        for bad in [
            "abc:99999",
            "example.com:80",
            "8080",
            "1.2.3.4",
            "1.2.3.4:x",
        ] {
            let err = message(parse(json!(bad)));
            assert!(
                err.contains(&format!("invalid value \"{bad}\": expected host:port")),
                "{err}"
            );
        }
    }

    #[test]
    fn urls() {
        let o = Origins::default();
        assert_eq!(
            field(&o, json!("https://v.example/api"))
                .http_url()
                .unwrap(),
            "https://v.example/api"
        );
        assert_eq!(
            field(&o, json!("HTTP://v:9000")).http_url().unwrap(),
            "HTTP://v:9000"
        );
        for bad in [
            "ftp://x",
            "https://",
            "http:///path",
            "velox:9000",
            "http://a b",
            "http://:80",
        ] {
            assert!(field(&o, json!(bad)).http_url().is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_and_lists() {
        let o = Origins::default();
        assert_eq!(
            field(&o, json!("/a")).paths().unwrap(),
            vec![PathBuf::from("/a")]
        );
        assert_eq!(field(&o, json!(["/a", "b"])).paths().unwrap().len(), 2);
        assert!(field(&o, json!([])).paths().is_err());
        assert!(field(&o, json!([""])).paths().is_err());
        assert!(field(&o, json!("")).path().is_err());
        assert_eq!(
            field(&o, json!(".php, .exe,")).strings().unwrap(),
            vec![".php", ".exe"]
        );
        assert_eq!(field(&o, json!([".php"])).strings().unwrap(), vec![".php"]);
        assert!(field(&o, json!([1])).strings().is_err());
    }

    #[test]
    fn readable_files() {
        let o = Origins::default();
        let dir = std::env::temp_dir();
        let err = message(field(&o, json!(dir.to_str().unwrap())).readable_file("certificate"));
        assert!(err.contains("not a file"), "{err}");
        let err =
            message(field(&o, json!("/nonexistent/rr/cert.pem")).readable_file("certificate"));
        assert!(
            err.contains("expected a readable certificate file ("),
            "{err}"
        );
    }

    #[test]
    fn long_values_are_shortened() {
        let o = Origins::default();
        let err = message(field(&o, json!("x".repeat(500))).bool());
        assert!(err.len() < 250 && err.contains('…'), "{err}");
    }
}
