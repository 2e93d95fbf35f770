//! The plain-Rust request handed from tokio to the PHP thread.
pub mod cgi;
pub mod cookie;
pub mod fields;
pub mod form;
pub mod forwarded;
pub mod id;
pub mod multipart;
pub mod spool;
pub mod target;

use bytes::Bytes;
use std::net::SocketAddr;

/// Everything PHP may ask about one request. Built in tokio, read on the PHP thread.
#[derive(Debug)]
pub struct RequestData {
    pub remote_addr: SocketAddr,
    /// "HTTP/1.0", "HTTP/1.1" or "HTTP/2.0".
    pub protocol: &'static str,
    pub method: http::Method,
    /// The request target in parts (scheme, authority, path, query), checked once.
    pub target: target::Target,
    pub headers: http::HeaderMap,
    /// Raw body, in memory or spooled to a temp file (`spool`); empty when the body was
    /// multipart (its parts are in `form` and `uploads`).
    pub body: spool::RequestBody,
    /// Fields of an urlencoded or multipart body, PHP-style nested keys.
    pub form: Option<form::Tree<Bytes>>,
    /// The multipart fields that came after `http.body_buffer_size` bytes of them, waiting on
    /// disk until PHP takes the request (`load_deferred_fields` adds them to `form`).
    pub spooled_fields: Option<fields::SpooledFields>,
    /// Files of a multipart body, PHP-style nested keys; the files are deleted on drop.
    pub uploads: form::Tree<multipart::Upload>,
}

impl RequestData {
    /// Reads the fields that wait on disk into `form`, as those that fit in memory were read
    /// when they arrived: an urlencoded body spooled to a file (larger than
    /// `http.body_buffer_size`) is parsed, and a multipart body's spooled fields are added after
    /// the others. Called when PHP takes the request, so that queued forms wait on disk, not in
    /// memory. Does nothing for any other request.
    pub fn load_deferred_fields(&mut self) -> std::io::Result<()> {
        if let Some(spooled) = self.spooled_fields.take() {
            let form = self.form.get_or_insert_with(form::Tree::new);
            return spooled.load_into(form, form::FormLimits::default().max_depth);
        }
        // Most requests stop at the first test (a body in memory), before any header look-up.
        if self.body.file().is_none() || self.form.is_some() {
            return Ok(());
        }
        let urlencoded = self
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(form::is_urlencoded);
        if !urlencoded {
            return Ok(());
        }
        let bytes = self.body.load()?;
        self.form = Some(form::parse_urlencoded(&bytes, &form::FormLimits::default()).0);
        Ok(())
    }

    /// A request with no headers or body, for tests: `target` is a path with an optional query.
    #[cfg(test)]
    pub fn for_test(method: http::Method, target: &str) -> RequestData {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (target, None),
        };
        RequestData {
            remote_addr: "127.0.0.1:1".parse().unwrap(),
            protocol: "HTTP/1.1",
            method,
            target: target::Target::from_parts(false, Some("h".into()), path.into(), query)
                .unwrap(),
            headers: http::HeaderMap::new(),
            body: spool::RequestBody::default(),
            form: None,
            spooled_fields: None,
            uploads: form::Tree::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spooled(content_type: &str, body: &[u8]) -> (RequestData, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rr-body-test");
        std::fs::write(&path, body).unwrap();
        let mut data = RequestData::for_test(http::Method::POST, "/");
        data.headers
            .insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
        data.body = spool::RequestBody::unowned_file(path, body.len() as u64).unwrap();
        (data, dir)
    }

    #[test]
    fn a_spooled_urlencoded_body_is_parsed_as_a_small_one() {
        let body = b"a=1&b[c][]=x+y&b[c][]=%41";
        let (mut data, _dir) = spooled("application/x-www-form-urlencoded; charset=UTF-8", body);
        data.load_deferred_fields().unwrap();
        let small = form::parse_urlencoded(body, &form::FormLimits::default()).0;
        assert_eq!(
            form::php_json(data.form.as_ref().unwrap()),
            form::php_json(&small)
        );
        assert_eq!(form::php_json(&small), r#"{"a":"1","b":{"c":["x y","A"]}}"#);
    }

    #[test]
    fn other_bodies_and_parsed_forms_are_left_alone() {
        let (mut json, _dir) = spooled("application/json", b"a=1");
        json.load_deferred_fields().unwrap();
        assert!(json.form.is_none());
        let (mut parsed, _dir2) = spooled("application/x-www-form-urlencoded", b"a=1");
        parsed.form = Some(form::Tree::new());
        parsed.load_deferred_fields().unwrap();
        assert_eq!(form::php_json(parsed.form.as_ref().unwrap()), "[]");
        // In memory: parsed on arrival, nothing to do here.
        let mut memory = RequestData::for_test(http::Method::POST, "/");
        memory.headers.insert(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        memory.body = spool::RequestBody::Memory(Bytes::from_static(b"a=1"));
        memory.load_deferred_fields().unwrap();
        assert!(memory.form.is_none());
    }
}
