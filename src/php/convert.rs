//! Conversions between Zend values and the plain Rust values the rest of rr uses.
use crate::request::form::{Key, Node, Tree};
use bytes::Bytes;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::convert::IntoZval;
use ext_php_rs::flags::DataType;
use ext_php_rs::types::{ArrayKey, ZendHashTable, ZendStr, Zval};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// A Zval known to hold an array, so signatures and stubs say `array`.
pub struct PhpArray(pub Zval);

impl IntoZval for PhpArray {
    const TYPE: DataType = DataType::Array;
    const NULLABLE: bool = false;

    fn set_zval(self, zv: &mut Zval, _persistent: bool) -> ext_php_rs::error::Result<()> {
        *zv = self.0;
        Ok(())
    }
}

pub fn bytes_zval(bytes: &[u8]) -> Zval {
    let mut zv = Zval::new();
    zv.set_zend_string(ZendStr::new(bytes, false));
    zv
}

pub fn array_zval(ht: ZBox<ZendHashTable>) -> Zval {
    let mut zv = Zval::new();
    zv.set_hashtable(ht);
    zv
}

/// A PHP-style variable tree (`a[b][]`) as nested arrays, leaves converted by `leaf`.
pub fn tree<T>(tree: &Tree<T>, leaf: &dyn Fn(&T) -> Zval) -> ZBox<ZendHashTable> {
    let mut ht = ZendHashTable::with_capacity(tree.len() as u32);
    for (key, node) in tree.entries() {
        let value = match node {
            Node::Leaf(v) => leaf(v),
            Node::Map(sub) => array_zval(self::tree(sub, leaf)),
        };
        with_array_key(key, |key| {
            let _ = ht.insert(key, value);
        });
    }
    ht
}

/// A form key as PHP's array key, for the call of `f`: a name that is not UTF-8 (a Latin-1
/// form) goes in as a zend_string holding its bytes, as PHP keeps it.
pub fn with_array_key<R>(key: &Key, f: impl FnOnce(ArrayKey<'_>) -> R) -> R {
    match key {
        Key::Index(i) => f(ArrayKey::Long(*i)),
        Key::Name(name) => match std::str::from_utf8(name) {
            Ok(name) => f(ArrayKey::Str(name)),
            Err(_) => f(ArrayKey::ZendString(&ZendStr::new(name, false))),
        },
    }
}

pub fn bytes_tree(t: &Tree<Bytes>) -> ZBox<ZendHashTable> {
    tree(t, &|b| bytes_zval(b))
}

/// Header name in the canonical form Go (and so RoadRunner) gives it: `Content-Type`.
pub fn canonical_header_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
    out
}

/// `array<string, string[]>` with every value of repeated headers kept, in order.
pub fn headers(map: &HeaderMap) -> ZBox<ZendHashTable> {
    let mut ht = ZendHashTable::with_capacity(map.keys_len() as u32);
    for name in map.keys() {
        let mut values = ZendHashTable::with_capacity(1);
        for value in map.get_all(name) {
            let _ = values.push(bytes_zval(value.as_bytes()));
        }
        let _ = ht.insert(canonical_header_name(name.as_str()), array_zval(values));
    }
    ht
}

/// PHP's `['Name' => 'value' | ['v1', 'v2']]` as a header map; the error names the bad entry.
/// Names and values are read in place from PHP's strings: `respond()` runs this per request.
pub fn header_map(ht: &ZendHashTable) -> Result<HeaderMap, String> {
    // A header map holds at most ~24k names (`http`'s limit): more is refused, not a panic.
    let too_many = |_| format!("{} headers are more than an answer can hold", ht.len());
    let mut map = HeaderMap::try_with_capacity(ht.len()).map_err(too_many)?;
    let mut entries = ht.iter();
    while let Some((key, value)) = entries.next_zval() {
        let number;
        let name_bytes = match (key.zend_str(), key.long()) {
            (Some(s), _) => s.as_bytes(),
            (None, Some(i)) => {
                number = i.to_string();
                number.as_bytes()
            }
            (None, None) => b"",
        };
        let name_text = || String::from_utf8_lossy(name_bytes);
        let name = HeaderName::from_bytes(name_bytes)
            .map_err(|_| format!("invalid header name {:?}", name_text()))?;
        let mut push = |zv: &Zval| -> Result<(), String> {
            let number;
            let bytes: &[u8] = match (zv.zend_str(), zv.long(), zv.double()) {
                (Some(s), _, _) => s.as_bytes(),
                (None, Some(i), _) => {
                    number = i.to_string();
                    number.as_bytes()
                }
                (None, None, Some(f)) => {
                    number = f.to_string();
                    number.as_bytes()
                }
                _ => {
                    return Err(format!(
                        "header {:?} has a {} value; expected a string or a list of strings",
                        name_text(),
                        zv.get_type()
                    ))
                }
            };
            // Whitespace around a value is not part of it (RFC 9110 5.5): header() drops it, and
            // an HTTP/2 client (nghttp2) resets a stream whose value has it.
            let value = HeaderValue::from_bytes(bytes.trim_ascii()).map_err(|_| {
                format!(
                    "invalid value {:?} for header {:?}",
                    String::from_utf8_lossy(bytes),
                    name_text()
                )
            })?;
            map.try_append(name.clone(), value).map_err(too_many)?;
            Ok(())
        };
        match value.array() {
            Some(list) => list.values().try_for_each(&mut push)?,
            None => push(value)?,
        }
    }
    Ok(map)
}

/// A PHP value as JSON, for configuration options.
/// The type name PHP's own messages use (`get_debug_type()` style, without class names).
pub fn type_name(zv: &Zval) -> &'static str {
    if zv.is_null() {
        "null"
    } else if zv.is_bool() {
        "bool"
    } else if zv.is_long() {
        "int"
    } else if zv.is_double() {
        "float"
    } else if zv.is_string() {
        "string"
    } else if zv.is_array() {
        "array"
    } else if zv.is_object() {
        "object"
    } else {
        "resource"
    }
}

pub fn json(zv: &Zval) -> serde_json::Value {
    use serde_json::Value;
    if let Some(b) = zv.bool() {
        Value::Bool(b)
    } else if let Some(i) = zv.long() {
        Value::from(i)
    } else if let Some(f) = zv.double() {
        Value::from(f)
    } else if let Some(s) = zv.str() {
        Value::String(s.to_string())
    } else if let Some(ht) = zv.array() {
        if ht.has_sequential_keys() {
            Value::Array(ht.values().map(json).collect())
        } else {
            Value::Object(ht.iter().map(|(k, v)| (k.to_string(), json(v))).collect())
        }
    } else {
        Value::Null
    }
}

/// A `new RR\Worker()` option as a configuration value. `Err` says what the value is when it
/// is none (an object, a closure, a resource, INF, NAN, a string that is not UTF-8): those
/// became `null`, which means "the default", so the option was dropped without a word.
pub fn config_value(zv: &Zval) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    let zv = zv.dereference();
    if zv.is_null() {
        Ok(Value::Null)
    } else if let Some(b) = zv.bool() {
        Ok(Value::Bool(b))
    } else if let Some(i) = zv.long() {
        Ok(Value::from(i))
    } else if let Some(f) = zv.double() {
        match f.is_finite() {
            true => Ok(Value::from(f)),
            false => Err(format!("the float {}", f.to_string().to_uppercase())),
        }
    } else if let Some(s) = zv.str() {
        Ok(Value::String(s.to_string()))
    } else if zv.is_string() {
        Err("a string that is not UTF-8".to_owned())
    } else if let Some(ht) = zv.array() {
        let mut items = Vec::new();
        for (k, v) in ht.iter() {
            items.push((k.to_string(), config_value(v)?));
        }
        Ok(match ht.has_sequential_keys() {
            true => Value::Array(items.into_iter().map(|(_, v)| v).collect()),
            false => Value::Object(items.into_iter().collect()),
        })
    } else if let Some(object) = zv.object() {
        let class = object.get_class_name().unwrap_or_default();
        Err(format!("an object of class {class}"))
    } else if zv.is_resource() {
        Err("a resource".to_owned())
    } else {
        Err(format!("a value of type {:?}", zv.get_type()))
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_header_name;

    #[test]
    fn header_names_are_canonical_like_go() {
        assert_eq!(canonical_header_name("content-type"), "Content-Type");
        assert_eq!(canonical_header_name("x-velox-build"), "X-Velox-Build");
        assert_eq!(canonical_header_name("etag"), "Etag");
    }
}
