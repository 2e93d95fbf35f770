//! The superglobals of one request: `$_SERVER`, `$_GET`, `$_POST`, `$_COOKIE`, `$_FILES`,
//! `$_REQUEST`, written into the symbol table the way php-fpm's startup would fill them.
use super::super::convert;
use super::ffi::{self, eg};
use crate::request::cgi::{self, Script, Value};
use crate::request::form::{self, FormLimits, Node, Tree};
use crate::request::multipart::Upload;
use crate::request::{cookie, RequestData};
use bytes::Bytes;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::types::{ZendHashTable, Zval};
use std::time::SystemTime;

/// The names `handle()` replaces for every request (and empties after it).
pub const NAMES: [&str; 6] = ["_SERVER", "_GET", "_POST", "_COOKIE", "_FILES", "_REQUEST"];

/// Makes sure PHP's just-in-time globals (`$_SERVER`, `$_REQUEST`, `$_ENV`) are created now,
/// so compiling a later file that mentions them cannot overwrite ours with the CLI's.
pub fn arm() {
    for name in ["_SERVER", "_REQUEST", "_ENV"] {
        // SAFETY: PHP thread; the name is a valid buffer of that length.
        unsafe { ffi::zend_is_auto_global_str(name.as_ptr().cast(), name.len()) };
    }
}

pub fn set(name: &str, value: Zval) {
    // SAFETY: PHP thread; EG(symbol_table) is the global scope, alive during the request.
    let table = unsafe { &mut (*eg()).symbol_table };
    let _ = table.insert(name, value);
}

/// Takes a global out of the symbol table (None when unset).
pub fn take(name: &str) -> Option<Zval> {
    // SAFETY: as in `set`.
    let table = unsafe { &mut (*eg()).symbol_table };
    let value = table.get(name).map(Zval::shallow_clone);
    let _ = table.remove(name);
    value
}

/// `PG(http_globals)[TRACK_VARS_SERVER]`: what C code reads as `$_SERVER` (zlib's
/// `ob_gzhandler` and `zlib.output_compression` look for `HTTP_ACCEPT_ENCODING` there).
fn set_core_server(server: Zval) {
    const TRACK_VARS_SERVER: usize = 3;
    // SAFETY: PHP thread, no PHP code running; assigning drops (releases) the previous array.
    unsafe { (*super::ffi::pg()).http_globals[TRACK_VARS_SERVER] = server };
}

fn long(i: i64) -> Zval {
    let mut zv = Zval::new();
    zv.set_long(i);
    zv
}

fn server(req: &RequestData, script: &Script) -> Zval {
    let vars = cgi::server_vars(req, script, SystemTime::now());
    let mut ht = ZendHashTable::with_capacity(vars.len() as u32);
    for (name, value) in vars {
        let zv = match value {
            Value::Str(b) => convert::bytes_zval(&b),
            Value::Int(i) => long(i),
            Value::Float(f) => Zval::from(f),
        };
        let _ = ht.insert(name.as_str(), zv);
    }
    convert::array_zval(ht)
}

/// `$_FILES` in PHP's shape: `a[b][]` gives `$_FILES['a']['name']['b'][0]` and so on.
pub fn files(uploads: &Tree<Upload>) -> Zval {
    type Field = fn(&Upload) -> Zval;
    let fields: [(&str, Field); 6] = [
        ("name", |u| convert::bytes_zval(&u.name)),
        ("full_path", |u| convert::bytes_zval(&u.full_path)),
        ("type", |u| convert::bytes_zval(&u.mime)),
        ("tmp_name", |u| {
            let path = u
                .tmp_name
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned());
            convert::bytes_zval(path.unwrap_or_default().as_bytes())
        }),
        ("error", |u| long(i64::from(u.error))),
        ("size", |u| long(u.size as i64)),
    ];
    let mut ht = ZendHashTable::with_capacity(uploads.len() as u32);
    for (key, node) in uploads.entries() {
        let mut entry = ZendHashTable::with_capacity(6);
        for (field, leaf) in fields {
            let value = match node {
                Node::Leaf(upload) => leaf(upload),
                Node::Map(sub) => convert::array_zval(convert::tree(sub, &leaf)),
            };
            let _ = entry.insert(field, value);
        }
        convert::with_array_key(key, |key| {
            let _ = ht.insert(key, convert::array_zval(entry));
        });
    }
    convert::array_zval(ht)
}

/// `php_autoglobal_merge`: later sources win; arrays present in both are merged.
fn merge(dest: &mut ZendHashTable, tree: &Tree<Bytes>) {
    for (key, node) in tree.entries() {
        convert::with_array_key(key, |key| match node {
            Node::Map(sub) => {
                // Every array in `dest` was built here with one owner, so changing it in place
                // cannot reach `$_GET` or `$_POST`.
                if let Some(existing) = dest.get_mut(key.clone()).and_then(Zval::array_mut) {
                    merge(existing, sub);
                    return;
                }
                let _ = dest.insert(key, convert::array_zval(convert::bytes_tree(sub)));
            }
            Node::Leaf(value) => {
                let _ = dest.insert(key, convert::bytes_zval(value));
            }
        });
    }
}

/// Whether PHP reads `req`'s form body into `$_POST` and `$_FILES`: for a POST only, as
/// `sapi_activate` decides under php-fpm; any other method's body is `php://input`'s alone.
pub fn posted(req: &RequestData) -> bool {
    req.method == http::Method::POST
}

/// Fills every superglobal for `req`. `order` is `request_order` (or `variables_order`).
pub fn install(req: &RequestData, files: Zval, script: &Script, order: &str) {
    let limits = FormLimits::default();
    let (get, _) = form::parse_urlencoded(req.target.query().as_bytes(), &limits);
    let cookies = cookie::parse_cookies(&req.headers, &limits);
    let empty = Tree::new();
    let post = req.form.as_ref().filter(|_| posted(req)).unwrap_or(&empty);
    let mut request: ZBox<ZendHashTable> = ZendHashTable::new();
    for source in order.chars() {
        match source.to_ascii_uppercase() {
            'G' => merge(&mut request, &get),
            'P' => merge(&mut request, post),
            'C' => merge(&mut request, &cookies),
            _ => {}
        }
    }
    let server = server(req, script);
    set_core_server(server.shallow_clone());
    set("_SERVER", server);
    set("_GET", convert::array_zval(convert::bytes_tree(&get)));
    set("_POST", convert::array_zval(convert::bytes_tree(post)));
    set(
        "_COOKIE",
        convert::array_zval(convert::bytes_tree(&cookies)),
    );
    set("_FILES", files);
    set("_REQUEST", convert::array_zval(request));
}

/// After the request: the worker's own `$_SERVER` back, the rest empty, `$_SESSION` gone, so
/// nothing of the request stays reachable from the worker's scope.
pub fn clear(boot_server: Option<&Zval>) {
    set_core_server(match boot_server {
        Some(server) => server.shallow_clone(),
        None => convert::array_zval(ZendHashTable::new()),
    });
    for name in NAMES {
        match (name, boot_server) {
            ("_SERVER", Some(server)) => set(name, server.shallow_clone()),
            _ => set(name, convert::array_zval(ZendHashTable::new())),
        }
    }
    // SAFETY: PHP thread; removing a key of the global symbol table.
    unsafe {
        ext_php_rs::ffi::zend_hash_str_del(&raw mut (*eg()).symbol_table, c"_SESSION".as_ptr(), 8);
    }
}
