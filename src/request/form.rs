//! PHP-style request variables: the ordered, nested arrays PHP builds for `$_GET`, `$_POST`,
//! `$_COOKIE` and `$_FILES`, and the urlencoded parser that fills them.
//!
//! Names are registered exactly like php-src `php_register_variable_ex` (PHP 8.2), so the
//! PHP side sees the same keys it would under php-fpm.
use bytes::Bytes;
use std::collections::HashMap;
use std::fmt;

/// An array key after PHP's symbol-table rule: canonical decimal integers are integer keys.
/// Names are bytes, as PHP keeps them: a form sent in Latin-1 keeps its `é` (0xE9).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Index(i64),
    Name(Vec<u8>),
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Index(i) => write!(f, "Index({i})"),
            Key::Name(name) => write!(f, "Name(\"{}\")", name.escape_ascii()),
        }
    }
}

impl Key {
    fn from_php(name: &[u8]) -> Key {
        php_index(name).map_or_else(|| Key::Name(name.to_owned()), Key::Index)
    }
}

/// PHP's `ZEND_HANDLE_NUMERIC_STR`: "0", "12", "-3" are integers; "012", "-0", "+1", "1.0"
/// and anything outside i64 stay strings.
fn php_index(name: &[u8]) -> Option<i64> {
    let digits = name.strip_prefix(b"-").unwrap_or(name);
    let canonical = !digits.is_empty()
        && digits.iter().all(|b| b.is_ascii_digit())
        && (!digits.starts_with(b"0") || name == b"0");
    if canonical {
        // All ASCII digits (and a '-'), so UTF-8.
        std::str::from_utf8(name).ok()?.parse().ok()
    } else {
        None
    }
}

#[derive(Debug)]
pub enum Node<T> {
    Leaf(T),
    Map(Tree<T>),
}

impl<T> Node<T> {
    /// The nested array at this node, replacing a scalar like PHP does for `a=1&a[b]=2`.
    fn make_map(&mut self) -> &mut Tree<T> {
        if let Node::Leaf(_) = self {
            *self = Node::Map(Tree::new());
        }
        match self {
            Node::Map(tree) => tree,
            Node::Leaf(_) => unreachable!("replaced by a map above"),
        }
    }
}

/// A PHP array: entries in insertion order, integer and string keys, and PHP's next free index
/// for `[]`.
pub struct Tree<T> {
    entries: Vec<(Key, Node<T>)>,
    /// Position of each key in `entries`; keys are client-chosen, so no linear scans.
    slots: HashMap<Key, usize>,
    /// PHP's `nNextFreeElement`: i64::MIN until the first integer key, then max key + 1.
    next_index: i64,
}

impl<T> Default for Tree<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for Tree<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

impl<T> Tree<T> {
    pub fn new() -> Self {
        Tree {
            entries: Vec::new(),
            slots: HashMap::new(),
            next_index: i64::MIN,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries in PHP order.
    pub fn entries(&self) -> impl Iterator<Item = &(Key, Node<T>)> {
        self.entries.iter()
    }

    /// Appends an entry as it was in another tree (the pool's wire format); a repeated key
    /// replaces the earlier value, as in PHP.
    pub fn put(&mut self, key: Key, node: Node<T>) {
        match self.slots.get(&key) {
            Some(&i) => self.entries[i].1 = node,
            None => {
                self.push(key, node);
            }
        }
    }

    pub fn get(&self, key: &Key) -> Option<&Node<T>> {
        self.slots.get(key).map(|&i| &self.entries[i].1)
    }

    /// Registers `value` under a PHP variable name such as `a`, `a[b][]` or `a[0][c]`, exactly
    /// like `php_register_variable_ex`: leading spaces are stripped, ' ' and '.' in the base name
    /// become '_', an unclosed '[' becomes '_', `[]` appends, names nested deeper than
    /// `max_depth` are dropped and take the whole base variable with them. Returns false when
    /// the value was dropped.
    pub fn insert(&mut self, name: &[u8], value: T, max_depth: usize) -> bool {
        self.register(name, value, max_depth, false)
    }

    /// `insert` for `$_COOKIE`: PHP keeps the first top-level cookie of a name, because the
    /// more specific path comes first (RFC 2965).
    pub(super) fn insert_first_wins(&mut self, name: &[u8], value: T, max_depth: usize) -> bool {
        self.register(name, value, max_depth, true)
    }

    fn register(&mut self, name: &[u8], value: T, max_depth: usize, keep_first: bool) -> bool {
        // PHP reads the name as a C string.
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        let spaces = name.iter().take_while(|&&b| b == b' ').count();
        let name = &name[spaces..];
        let Some(path) = VarPath::parse(name, max_depth) else {
            return false;
        };

        let mut table = &mut *self;
        let mut current = Some(path.base.as_slice());
        for &next in &path.keys {
            table = match current {
                None => match table.append(Node::Map(Tree::new())) {
                    Some(slot) => table.entries[slot].1.make_map(),
                    None => return false,
                },
                Some(key) if is_forbidden(key, name) => return false,
                Some(key) => table.map_at(Key::from_php(key)),
            };
            current = next;
        }
        if path.too_deep {
            self.remove(&Key::from_php(&path.base));
            return false;
        }
        match current {
            None => table.append(Node::Leaf(value)).is_some(),
            Some(key) if is_forbidden(key, name) => false,
            Some(key) => {
                let key = Key::from_php(key);
                if keep_first && path.keys.is_empty() && table.slots.contains_key(&key) {
                    return false;
                }
                table.set(key, Node::Leaf(value));
                true
            }
        }
    }

    fn push(&mut self, key: Key, node: Node<T>) -> usize {
        if let Key::Index(i) = key {
            if i >= self.next_index {
                self.next_index = i.saturating_add(1);
            }
        }
        let slot = self.entries.len();
        self.slots.insert(key.clone(), slot);
        self.entries.push((key, node));
        slot
    }

    /// PHP's `$a[] = ...`; None when the next index is taken (only after i64::MAX).
    fn append(&mut self, node: Node<T>) -> Option<usize> {
        let key = Key::Index(match self.next_index {
            i64::MIN => 0,
            next => next,
        });
        (!self.slots.contains_key(&key)).then(|| self.push(key, node))
    }

    /// Overwrites in place (PHP keeps the original position) or adds at the end.
    fn set(&mut self, key: Key, node: Node<T>) {
        match self.slots.get(&key) {
            Some(&slot) => self.entries[slot].1 = node,
            None => {
                self.push(key, node);
            }
        }
    }

    fn map_at(&mut self, key: Key) -> &mut Tree<T> {
        let slot = match self.slots.get(&key) {
            Some(&slot) => slot,
            None => self.push(key, Node::Map(Tree::new())),
        };
        self.entries[slot].1.make_map()
    }

    fn remove(&mut self, key: &Key) {
        if let Some(slot) = self.slots.remove(key) {
            self.entries.remove(slot);
            for (k, _) in &self.entries[slot..] {
                if let Some(s) = self.slots.get_mut(k) {
                    *s -= 1;
                }
            }
        }
    }
}

/// A variable name split the way `php_register_variable_ex` walks it.
struct VarPath<'a> {
    /// The top-level name, mangled.
    base: Vec<u8>,
    /// One entry per bracket pair; None is `[]`.
    keys: Vec<Option<&'a [u8]>>,
    /// More bracket pairs than `max_depth`: PHP drops the value and deletes `base`.
    too_deep: bool,
}

impl<'a> VarPath<'a> {
    fn parse(name: &'a [u8], max_depth: usize) -> Option<Self> {
        let bytes = name;
        let first_open = bytes.iter().position(|&b| b == b'[');
        let mut base = mangle(&name[..first_open.unwrap_or(name.len())], b" .");
        if base.is_empty() {
            return None;
        }
        let mut keys = Vec::new();
        let mut too_deep = false;
        let mut next_open = first_open;
        while let Some(open) = next_open {
            if keys.len() >= max_depth {
                too_deep = true;
                break;
            }
            let start = open + 1;
            // PHP skips one whitespace byte to recognise "[ ]" as "[]".
            let mut at = start;
            if bytes.get(at).is_some_and(|&b| is_c_space(b)) {
                at += 1;
            }
            let close = if bytes.get(at) == Some(&b']') {
                keys.push(None);
                at
            } else if let Some(offset) = bytes[at..].iter().position(|&b| b == b']') {
                keys.push(Some(&name[start..at + offset]));
                at + offset
            } else {
                // Unclosed '[': a first one is part of the base name; a later one is ignored.
                if keys.is_empty() {
                    base.push(b'_');
                    base.extend(mangle(&name[start..], b" .["));
                }
                break;
            };
            // Anything after "]" other than "[" ends the name.
            next_open = (bytes.get(close + 1) == Some(&b'[')).then_some(close + 1);
        }
        Some(VarPath {
            base,
            keys,
            too_deep,
        })
    }
}

fn mangle(name: &[u8], bad: &[u8]) -> Vec<u8> {
    name.iter()
        .map(|&b| if bad.contains(&b) { b'_' } else { b })
        .collect()
}

/// PHP drops a key that mangling made look like a `__Host-`/`__Secure-` cookie
/// (CVE-2024-8926); it compares every key against the raw variable name.
fn is_forbidden(key: &[u8], raw_name: &[u8]) -> bool {
    [&b"__Host-"[..], &b"__Secure-"[..]]
        .iter()
        .any(|prefix| key.starts_with(prefix) && !raw_name.starts_with(prefix))
}

/// C's `isspace` in the "C" locale.
pub(super) fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// PHP's `php_url_decode` (`plus_as_space`) and `php_raw_url_decode`: "%XX" with two hex
/// digits is decoded, any other '%' is kept as it is.
pub(crate) fn url_decode(input: &[u8], plus_as_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        let hex = |at: usize| input.get(at).and_then(|&h| (h as char).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
            (b'+', _, _) if plus_as_space => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

/// PHP's `max_input_vars` and `max_input_nesting_level`.
#[derive(Debug, Clone)]
pub struct FormLimits {
    pub max_vars: usize,
    pub max_depth: usize,
}

impl Default for FormLimits {
    fn default() -> Self {
        FormLimits {
            max_vars: 1000,
            max_depth: 64,
        }
    }
}

/// Whether a `Content-Type` names an urlencoded form (parameters and case ignored).
pub fn is_urlencoded(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|t| {
        t.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// Parses a query string or an application/x-www-form-urlencoded body like PHP's `parse_str`:
/// pairs split on '&' only (`arg_separator.input`), empty pairs skipped, '+' is a space.
/// The flag is true when input was cut at `max_vars` (PHP warns and ignores the rest).
pub fn parse_urlencoded(input: &[u8], limits: &FormLimits) -> (Tree<Bytes>, bool) {
    let mut tree = Tree::new();
    let pairs = input.split(|&b| b == b'&').filter(|pair| !pair.is_empty());
    for (count, pair) in pairs.enumerate() {
        if count == limits.max_vars {
            return (tree, true);
        }
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &[][..]),
        };
        let name = url_decode(name, true);
        let value = Bytes::from(url_decode(value, true));
        tree.insert(&name, value, limits.max_depth);
    }
    (tree, false)
}

/// Renders a tree like PHP's `json_encode($array, JSON_UNESCAPED_SLASHES |
/// JSON_UNESCAPED_UNICODE)`, so tests can state PHP's own output as the expectation.
#[cfg(test)]
pub(super) fn php_json(tree: &Tree<Bytes>) -> String {
    fn string(out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    fn array(out: &mut String, tree: &Tree<Bytes>) {
        let is_list = tree
            .entries()
            .enumerate()
            .all(|(i, (k, _))| *k == Key::Index(i as i64));
        out.push(if is_list { '[' } else { '{' });
        for (i, (key, node)) in tree.entries().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if !is_list {
                match key {
                    Key::Index(n) => string(out, &n.to_string()),
                    Key::Name(s) => string(out, &String::from_utf8_lossy(s)),
                }
                out.push(':');
            }
            match node {
                Node::Leaf(v) => string(out, &String::from_utf8_lossy(v)),
                Node::Map(t) => array(out, t),
            }
        }
        out.push(if is_list { ']' } else { '}' });
    }
    let mut out = String::new();
    array(&mut out, tree);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_detection_ignores_parameters_and_case() {
        assert!(is_urlencoded(
            "application/x-www-form-urlencoded; charset=UTF-8"
        ));
        assert!(is_urlencoded("Application/X-WWW-Form-Urlencoded"));
        assert!(!is_urlencoded("application/json"));
        assert!(!is_urlencoded("multipart/form-data; boundary=x"));
    }

    fn parse(input: &str) -> String {
        php_json(&parse_urlencoded(input.as_bytes(), &FormLimits::default()).0)
    }

    /// Expectations are PHP 8.2's `parse_str` output, captured with `json_encode`.
    #[test]
    fn matches_php_parse_str() {
        let cases = [
            ("a=1&b=2", r#"{"a":"1","b":"2"}"#),
            ("a[b][]=1&a.b=2", r#"{"a":{"b":["1"]},"a_b":"2"}"#),
            ("a[]=1&a[]=2&a[5]=x&a[]=y", r#"{"a":{"0":"1","1":"2","5":"x","6":"y"}}"#),
            ("a[-5]=1&a[]=2", r#"{"a":{"-5":"1","-4":"2"}}"#),
            (
                "a[012]=1&a[12]=2&a[1.0]=3&a[-0]=4&a[-3]=5",
                r#"{"a":{"012":"1","12":"2","1.0":"3","-0":"4","-3":"5"}}"#,
            ),
            ("a[b=1", r#"{"a_b":"1"}"#),
            ("a[b][c=1", r#"{"a":{"b":"1"}}"#),
            ("a[b]c=1", r#"{"a":{"b":"1"}}"#),
            ("a[b]c[d]=1", r#"{"a":{"b":"1"}}"#),
            ("a.b c[d.e f]=1", r#"{"a_b_c":{"d.e f":"1"}}"#),
            (" a=1", r#"{"a":"1"}"#),
            ("  a b=1", r#"{"a_b":"1"}"#),
            ("=1", "[]"),
            ("[a]=1", "[]"),
            ("a[ ]=1", r#"{"a":["1"]}"#),
            ("a[ b]=1", r#"{"a":{" b":"1"}}"#),
            ("a[\tb]=1", r#"{"a":{"\tb":"1"}}"#),
            ("a[]]=1", r#"{"a":["1"]}"#),
            ("a[[]=1", r#"{"a":{"[":"1"}}"#),
            ("a=1&a[b]=2", r#"{"a":{"b":"2"}}"#),
            ("a[b]=2&a=1", r#"{"a":"1"}"#),
            ("a[]=1&a[x][]=2&a[x][]=3", r#"{"a":{"0":"1","x":["2","3"]}}"#),
            ("a%5Bb%5D=1", r#"{"a":{"b":"1"}}"#),
            ("a+b=1+2%20x", r#"{"a_b":"1 2 x"}"#),
            ("a=%zz%4&b=%41%4", r#"{"a":"%zz%4","b":"A%4"}"#),
            ("a=%", r#"{"a":"%"}"#),
            ("a&b=&=c&&d", r#"{"a":"","b":"","d":""}"#),
            ("a=1;b=2", r#"{"a":"1;b=2"}"#),
            ("a%00b=1", r#"{"a":"1"}"#),
            ("a=x%00y", r#"{"a":"x\u0000y"}"#),
            ("a[b%00c]=1", r#"{"a_b":"1"}"#),
            ("0=a&1=b&01=c&-1=d", r#"{"0":"a","1":"b","01":"c","-1":"d"}"#),
            (
                "9223372036854775807=a&9223372036854775808=b&-9223372036854775808=c&-9223372036854775809=d",
                r#"{"9223372036854775807":"a","9223372036854775808":"b","-9223372036854775808":"c","-9223372036854775809":"d"}"#,
            ),
            ("a[9223372036854775807]=1&a[]=2", r#"{"a":{"9223372036854775807":"1"}}"#),
            ("a[__Host-x]=1", r#"{"a":[]}"#),
            ("__Host.x=1&__Host-y=2&_.Host-z=3", r#"{"__Host_x":"1","__Host-y":"2"}"#),
            ("__Host-x[__Host-y]=1", r#"{"__Host-x":{"__Host-y":"1"}}"#),
            ("a[b][]=1&a[b]=2&a[b][]=3", r#"{"a":{"b":["3"]}}"#),
            ("a[b][c]=1&a[b]=x&a[b][d]=2", r#"{"a":{"b":{"d":"2"}}}"#),
            ("a[b][][c]=1&a[b][][c]=2", r#"{"a":{"b":[{"c":"1"},{"c":"2"}]}}"#),
            ("a[x]y[z]=1", r#"{"a":{"x":"1"}}"#),
            ("a]b=1", r#"{"a]b":"1"}"#),
            ("a b[c d]=1", r#"{"a_b":{"c d":"1"}}"#),
            ("x[1][2][3]=1", r#"{"x":{"1":{"2":{"3":"1"}}}}"#),
            ("a=1&a=2", r#"{"a":"2"}"#),
            ("%20a=1", r#"{"a":"1"}"#),
            ("a%2Eb=1", r#"{"a_b":"1"}"#),
            ("%5Ba=1", "[]"),
            ("a%20%5B=1", r#"{"a__":"1"}"#),
            ("[=1", "[]"),
            ("a[=1&a[b]=2", r#"{"a_":"1","a":{"b":"2"}}"#),
        ];
        for (input, php) in cases {
            assert_eq!(parse(input), php, "parse_str({input:?})");
        }
    }

    /// PHP 8.2 with max_input_nesting_level=2 and max_input_vars=3.
    #[test]
    fn matches_php_limits() {
        let limits = FormLimits {
            max_vars: 3,
            max_depth: 2,
        };
        let cases = [
            ("a[b][c]=1", r#"{"a":{"b":{"c":"1"}}}"#, false),
            ("a[b]=1&a[b][c]=2", r#"{"a":{"b":{"c":"2"}}}"#, false),
            ("a[b]=1&a[b][c][d]=2&x=1", r#"{"x":"1"}"#, false),
            ("a=1&b[c][d][e]=2&b=3", r#"{"a":"1","b":"3"}"#, false),
            (
                "a[b][c]=1&a[x]=2",
                r#"{"a":{"b":{"c":"1"},"x":"2"}}"#,
                false,
            ),
            ("1[a][b][c]=1", "[]", false),
            ("a=1&1[a][b][c]=1", r#"{"a":"1"}"#, false),
            ("a[]=1&a[][x][y]=2", "[]", false),
            ("a=1&b=2&c=3&d=4", r#"{"a":"1","b":"2","c":"3"}"#, true),
            ("a=1&&&b=2&c=3&d", r#"{"a":"1","b":"2","c":"3"}"#, true),
            ("a=1&a=2&a=3&b=4", r#"{"a":"3"}"#, true),
            ("a=1&b=2&c=3", r#"{"a":"1","b":"2","c":"3"}"#, false),
        ];
        for (input, php, truncated) in cases {
            let (tree, cut) = parse_urlencoded(input.as_bytes(), &limits);
            assert_eq!(
                (php_json(&tree).as_str(), cut),
                (php, truncated),
                "{input:?}"
            );
        }
    }

    #[test]
    fn values_are_binary_safe() {
        let (tree, _) = parse_urlencoded(b"v=%00%FF%80x+&n=\xff", &FormLimits::default());
        let Some(Node::Leaf(v)) = tree.get(&Key::Name("v".into())) else {
            panic!("no v in {tree:?}");
        };
        assert_eq!(&v[..], b"\x00\xff\x80x ");
        let Some(Node::Leaf(n)) = tree.get(&Key::Name("n".into())) else {
            panic!("no n in {tree:?}");
        };
        assert_eq!(&n[..], b"\xff");
    }

    #[test]
    fn names_are_binary_safe() {
        let (tree, _) = parse_urlencoded(b"a%E9=1&b\xe9[k\xff]=2", &FormLimits::default());
        let keys: Vec<_> = tree.entries().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys,
            [Key::Name(b"a\xe9".to_vec()), Key::Name(b"b\xe9".to_vec())]
        );
        let Some(Node::Map(inner)) = tree.get(&Key::Name(b"b\xe9".to_vec())) else {
            panic!("no b\\xe9 in {tree:?}");
        };
        assert!(
            inner.get(&Key::Name(b"k\xff".to_vec())).is_some(),
            "{inner:?}"
        );
    }

    #[test]
    fn keys_keep_php_order_and_types() {
        let (tree, _) = parse_urlencoded(b"b=1&a=2&b=3&7=x", &FormLimits::default());
        let keys: Vec<_> = tree.entries().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys,
            [Key::Name("b".into()), Key::Name("a".into()), Key::Index(7)]
        );
        assert_eq!(tree.len(), 3);
        assert!(!tree.is_empty());
    }

    #[test]
    fn insert_reports_dropped_values() {
        let mut tree = Tree::new();
        assert!(tree.insert(b"a[b]", 1, 64));
        assert!(!tree.insert(b"", 2, 64));
        assert!(!tree.insert(b"[x]", 3, 64));
        assert!(!tree.insert(b"a[b][c]", 4, 1));
        assert!(tree.get(&Key::Name("a".into())).is_none());
        assert!(tree.insert(b"n[9223372036854775807]", 5, 64));
        assert!(!tree.insert(b"n[]", 6, 64));
    }

    #[test]
    fn deep_nesting_is_cheap_to_reject() {
        let name = format!("a{}", "[x]".repeat(100_000));
        let mut tree = Tree::new();
        assert!(!tree.insert(name.as_bytes(), 1, 64));
        assert!(tree.is_empty());
    }
}
