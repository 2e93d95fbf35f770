//! The SAPI hooks: while `handle()` runs a request, output, headers and `php://input` go
//! through rr instead of the CLI. Installed in MINIT, restored in MSHUTDOWN; outside a request
//! every hook hands over to the CLI's own callback, so plain CLI behaviour is unchanged.
//!
//! Output is taken at `ub_write`, below PHP's output buffers, so `ob_end_clean()` and friends
//! behave as under php-fpm. `header()` with `SG(request_info).no_headers` set is accepted at any
//! time until `flush()` sends the head, like php-fpm with a large `output_buffering`.
use super::ffi::{self, sg, SAPI_HEADER_ADD, SAPI_HEADER_SENT_SUCCESSFULLY};
use crate::dispatch::Reply;
use crate::php::worker::with_engine;
use crate::request::spool::BodyReader;
use crate::stream::sendfile::{X_ACCEL_REDIRECT, X_SENDFILE};
use bytes::Bytes;
use ext_php_rs::ffi::{
    sapi_header_line, sapi_header_op, sapi_header_op_enum, sapi_header_op_enum_SAPI_HEADER_REPLACE,
    sapi_header_struct, sapi_headers_struct, sapi_module,
};
use ext_php_rs::types::{ZendCallable, Zval};
use ext_php_rs::zend::{try_catch, CatchError};
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use std::cell::{Cell, RefCell};
use std::os::raw::{c_char, c_int, c_void};
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

type UbWrite = unsafe extern "C" fn(*const c_char, usize) -> usize;
type Flush = unsafe extern "C" fn(*mut c_void);
type HeaderHandler = unsafe extern "C" fn(
    *mut sapi_header_struct,
    sapi_header_op_enum,
    *mut sapi_headers_struct,
) -> c_int;
type SendHeaders = unsafe extern "C" fn(*mut sapi_headers_struct) -> c_int;
type ReadPost = unsafe extern "C" fn(*mut c_char, usize) -> usize;

/// The CLI's callbacks, kept to hand over to and to restore.
#[derive(Clone, Copy)]
struct Originals {
    ub_write: Option<UbWrite>,
    flush: Option<Flush>,
    header_handler: Option<HeaderHandler>,
    send_headers: Option<SendHeaders>,
    read_post: Option<ReadPost>,
}

static ORIGINALS: OnceLock<Originals> = OnceLock::new();

/// The largest piece of one PHP write taken at a time.
const PIECE: usize = 256 * 1024;

#[derive(Default)]
struct Capture {
    /// Output not sent yet.
    out: Vec<u8>,
    /// The request body, for `php://input`, read from where PHP left off.
    body: Option<BodyReader>,
    /// `flush()` sent the head: the rest goes out as chunks.
    streaming: bool,
    /// Output held before it goes out as if `flush()` was called (`http.output_buffer_size`).
    held: usize,
    /// The answer was refused (a status that is not one): the rest of the output is dropped.
    refused: bool,
}

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static CAPTURE: RefCell<Capture> = RefCell::default();
}

fn originals() -> Originals {
    ORIGINALS.get().copied().unwrap_or(Originals {
        ub_write: None,
        flush: None,
        header_handler: None,
        send_headers: None,
        read_post: None,
    })
}

/// MINIT: put rr's callbacks in place.
pub fn install() {
    // SAFETY: MINIT runs on the PHP thread before any script; sapi_module is the SAPI's
    // process-wide table, which extensions may change at this point (Xdebug does the same).
    unsafe {
        let m = &raw mut sapi_module;
        let _ = ORIGINALS.set(Originals {
            ub_write: (*m).ub_write,
            flush: (*m).flush,
            header_handler: (*m).header_handler,
            send_headers: (*m).send_headers,
            read_post: (*m).read_post,
        });
        (*m).ub_write = Some(ub_write);
        (*m).flush = Some(flush);
        (*m).header_handler = Some(header_handler);
        (*m).send_headers = Some(send_headers);
        (*m).read_post = Some(read_post);
    }
}

/// MSHUTDOWN: give the SAPI its callbacks back before the module is unloaded.
pub fn uninstall() {
    let Some(o) = ORIGINALS.get() else { return };
    // SAFETY: module shutdown, PHP thread, no script running.
    unsafe {
        let m = &raw mut sapi_module;
        (*m).ub_write = o.ub_write;
        (*m).flush = o.flush;
        (*m).header_handler = o.header_handler;
        (*m).send_headers = o.send_headers;
        (*m).read_post = o.read_post;
    }
}

/// Starts capturing for one request whose body `php://input` will return.
pub fn start(body: BodyReader, held: usize) {
    let body = Some(body);
    CAPTURE.with_borrow_mut(|c| {
        *c = Capture {
            body,
            held,
            ..Capture::default()
        }
    });
    ACTIVE.set(true);
}

/// Stops capturing; what was not sent is dropped.
pub fn stop() {
    ACTIVE.set(false);
    CAPTURE.with_borrow_mut(|c| *c = Capture::default());
}

/// Sends what the request produced: the whole answer, or the last chunk of a streamed one.
pub fn finish() {
    let (out, streaming, refused) =
        CAPTURE.with_borrow_mut(|c| (std::mem::take(&mut c.out), c.streaming, c.refused));
    if refused {
        return;
    }
    let Some((status, headers)) = head_once(streaming) else {
        return;
    };
    let sent = with_engine("RR\\Worker::handle", |engine| {
        engine
            .respond(status, headers, Bytes::from(out), true)
            .map_err(|e| e.to_string().into())
    });
    if let Err(e) = sent {
        tracing::warn!("RR\\Worker::handle(): the answer could not be sent: {e:?}");
    }
}

/// `flush()`: the head (first time) and what was echoed so far go to the client now.
fn stream_now() {
    let (out, streaming, refused) = CAPTURE.with_borrow_mut(|c| {
        let was = c.streaming;
        c.streaming = true;
        (std::mem::take(&mut c.out), was, c.refused)
    });
    if refused {
        return;
    }
    let Some((status, headers)) = head_once(streaming) else {
        return;
    };
    if !streaming {
        // SAFETY: PHP thread, inside the request; from now on header() warns as under php-fpm.
        unsafe {
            (*sg()).headers_sent = 1;
            (*sg()).request_info.no_headers = false;
        }
    }
    let sent = with_engine("flush", |engine| {
        engine
            .respond(status, headers, Bytes::from(out), false)
            .map_err(|e| e.to_string().into())
    });
    if let Err(e) = sent {
        tracing::debug!("flush() during RR\\Worker::handle(): {e:?}");
    }
}

/// The head to send with the first piece of the answer (none once streaming). A head PHP
/// holds that cannot be sent (`http_response_code(1000)`, more header lines than an answer can
/// hold) answers the request with a worker error naming it, as `respond()` throws for one, and
/// drops the rest of the output.
fn head_once(streaming: bool) -> Option<(StatusCode, HeaderMap)> {
    if streaming {
        return Some((StatusCode::OK, HeaderMap::new()));
    }
    match header_callback().and_then(|()| head()) {
        Ok(head) => Some(head),
        Err(e) => {
            refuse(&e);
            None
        }
    }
}

/// The answer cannot be sent: the client gets a worker error naming `e`, the output is dropped.
fn refuse(e: &HeadError) {
    CAPTURE.with_borrow_mut(|c| {
        c.refused = true;
        c.out = Vec::new();
    });
    let what = format!("RR\\Worker::handle(): {e}");
    let _ = with_engine("RR\\Worker::handle", |e| {
        Ok(e.reply(Reply::WorkerError(what)))
    });
}

/// The script's part is over (shutdown functions run, output buffers flushed): a
/// `header_register_callback()` callback not run yet runs now, as php-fpm runs it when that
/// flush first reaches the SAPI, before the session is written.
pub fn before_head() {
    if CAPTURE.with_borrow(|c| c.streaming || c.refused) {
        return;
    }
    if let Err(e) = header_callback() {
        refuse(&e);
    }
}

/// Why the head PHP holds cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// `http_response_code()` outside 100-599.
    Status(i64),
    /// More `header()` lines than a header map holds (`http`'s limit, ~24k names).
    TooManyHeaders(usize),
    /// The `header_register_callback()` callback threw (described).
    Callback(String),
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Status(code) => write!(
                f,
                "the script set the status {code}, which is not an HTTP status (100-599)"
            ),
            HeadError::TooManyHeaders(n) => write!(
                f,
                "the script set {n} header lines, more than an answer can hold"
            ),
            HeadError::Callback(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for HeadError {}

/// Status and headers as PHP holds them in `SG(sapi_headers)`, plus the default Content-Type
/// (except for an answer that names a file to send); an error for a status outside 100-599 (`0`
/// is PHP's "not set": 200) or too many header lines.
pub fn head() -> Result<(StatusCode, HeaderMap), HeadError> {
    let mut map = HeaderMap::new();
    let mut lines = 0;
    let mut too_many = false;
    // SAFETY: PHP thread; the list holds sapi_header_struct values PHP built (header, len).
    let (code, default_type) = unsafe {
        let headers = &raw mut (*sg()).sapi_headers;
        let mut element = (*headers).headers.head;
        while !element.is_null() {
            let h = (*element).data.as_ptr().cast::<sapi_header_struct>();
            let line = std::slice::from_raw_parts((*h).header.cast::<u8>(), (*h).header_len);
            lines += 1;
            too_many |= add_line(&mut map, line).is_err();
            element = (*element).next;
        }
        let code = (*headers).http_response_code;
        (code, (*headers).send_default_content_type != 0)
    };
    if too_many {
        return Err(HeadError::TooManyHeaders(lines));
    }
    // An answer that names a file (X-Sendfile, X-Accel-Redirect) gets the file's type, unless
    // PHP set one itself.
    let names_a_file = || {
        map.contains_key(crate::stream::sendfile::X_SENDFILE)
            || map.contains_key(crate::stream::sendfile::X_ACCEL_REDIRECT)
    };
    if default_type && !map.contains_key(CONTENT_TYPE) && !names_a_file() {
        // SAFETY: returns an emalloc'd C string that we copy and free.
        unsafe {
            let ct = ffi::sapi_get_default_content_type();
            if let Ok(value) = HeaderValue::from_bytes(ffi::c_bytes(ct)) {
                map.insert(CONTENT_TYPE, value);
            }
            ext_php_rs::alloc::efree(ct.cast());
        }
    }
    let status = match code {
        0 => StatusCode::OK,
        100..=599 => u16::try_from(code)
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or(HeadError::Status(i64::from(code)))?,
        _ => return Err(HeadError::Status(i64::from(code))),
    };
    Ok((status, map))
}

/// `header_register_callback()`: called once, right before the head is taken, as PHP's
/// `sapi_send_headers()` does: after the default Content-Type joined the header list (so the
/// callback sees it and may remove it), with `header()` and `header_remove()` in it counting.
/// A fatal error in it ends the worker as any other: the client gets a 500 first.
fn header_callback() -> Result<(), HeadError> {
    // SAFETY: PHP thread, inside the request; the callback zval is moved out and the slot left
    // undefined, as PHP does, so it runs once and a callback registering another is kept.
    let callback = unsafe {
        let sg = sg();
        if (*sg).callback_func.u1.type_info == 0 {
            return Ok(());
        }
        let callback: Zval = std::ptr::read(&raw const (*sg).callback_func);
        (*sg).callback_func.u1.type_info = 0;
        (*sg).fci_cache = std::mem::zeroed();
        callback
    };
    add_default_content_type();
    let called = try_catch(AssertUnwindSafe(|| {
        ZendCallable::new(&callback).map(|c| c.try_call(vec![]))
    }));
    drop(callback);
    match called {
        Err(CatchError::Bailout) => {
            let what = "fatal error in the header_register_callback() callback; the worker stops";
            let _ = with_engine("RR\\Worker::handle", |e| {
                Ok(e.reply(Reply::WorkerError(what.into())))
            });
            CAPTURE.with_borrow_mut(|c| c.refused = true);
            // SAFETY: the fatal error was on its way out of PHP code; it goes on to the
            // script's own zend_try (or `$app`'s), as without the callback.
            unsafe { ext_php_rs::zend::bailout() }
        }
        _ => match super::settle_exception("the header_register_callback() callback") {
            Some(what) => Err(HeadError::Callback(what)),
            None => Ok(()),
        },
    }
}

/// The default Content-Type into PHP's header list, unless the script set one or the answer
/// names a file to send (which gets the file's type), as [`head`] would add it.
fn add_default_content_type() {
    // SAFETY: PHP thread; the list holds sapi_header_struct values PHP built; the default type
    // is an emalloc'd C string we free; sapi_header_op copies the line.
    unsafe {
        let sg = sg();
        if (*sg).sapi_headers.send_default_content_type == 0 {
            return;
        }
        let mut element = (*sg).sapi_headers.headers.head;
        while !element.is_null() {
            let h = (*element).data.as_ptr().cast::<sapi_header_struct>();
            let line = std::slice::from_raw_parts((*h).header.cast::<u8>(), (*h).header_len);
            let name = line
                .split(|&b| b == b':')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            if [CONTENT_TYPE, X_SENDFILE, X_ACCEL_REDIRECT]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n.as_str().as_bytes()))
            {
                return;
            }
            element = (*element).next;
        }
        let ct = ffi::sapi_get_default_content_type();
        let mut line = b"Content-Type: ".to_vec();
        line.extend_from_slice(ffi::c_bytes(ct));
        ext_php_rs::alloc::efree(ct.cast());
        let mut op = sapi_header_line {
            line: line.as_ptr().cast(),
            line_len: line.len(),
            response_code: 0,
        };
        sapi_header_op(
            sapi_header_op_enum_SAPI_HEADER_REPLACE,
            (&raw mut op).cast(),
        );
        (*sg).sapi_headers.send_default_content_type = 0;
    }
}

/// One `header()` line into the map: dropped with a warning if it is not a valid header; `Err`
/// when the map is full.
fn add_line(map: &mut HeaderMap, line: &[u8]) -> Result<(), http::header::MaxSizeReached> {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Ok(());
    };
    let name = HeaderName::from_bytes(line[..colon].trim_ascii());
    let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
    match (name, value) {
        (Ok(name), Ok(value)) => {
            map.try_append(name, value)?;
        }
        _ => tracing::warn!(
            "header() line {:?} is not a valid HTTP header: dropped",
            String::from_utf8_lossy(line)
        ),
    }
    Ok(())
}

unsafe extern "C" fn ub_write(s: *const c_char, len: usize) -> usize {
    if ACTIVE.get() {
        // SAFETY: PHP passes `len` readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(s.cast::<u8>(), len) };
        // One write may be huge (readfile() hands over a whole mapped file): taken in pieces.
        for piece in bytes.chunks(PIECE) {
            // try_borrow: a panic must not cross into PHP (never expected: no hook re-enters).
            let full = CAPTURE.with(|c| match c.try_borrow_mut() {
                Ok(mut c) => {
                    c.out.extend_from_slice(piece);
                    c.out.len() > c.held
                }
                Err(_) => false,
            });
            // Past the limit the answer streams, as php-fpm's output would reach its client: a
            // large readfile() holds at most `held` bytes (plus the chunks the client has yet
            // to read, bounded by http.send_timeout).
            if full && std::panic::catch_unwind(stream_now).is_err() {
                crate::logging::to_stderr(format_args!("rr: internal error in ub_write()"));
            }
        }
        return len;
    }
    match originals().ub_write {
        // SAFETY: the SAPI's own callback with the arguments PHP gave us.
        Some(f) => unsafe { f(s, len) },
        None => len,
    }
}

unsafe extern "C" fn flush(ctx: *mut c_void) {
    if ACTIVE.get() {
        if held_in_buffers() {
            return;
        }
        // A panic must not cross into PHP here: nothing catches it.
        if std::panic::catch_unwind(stream_now).is_err() {
            crate::logging::to_stderr(format_args!("rr: internal error in flush()"));
        }
        return;
    }
    if let Some(f) = originals().flush {
        // SAFETY: the SAPI's own callback with the arguments PHP gave us.
        unsafe { f(ctx) }
    }
}

/// Nothing reached rr yet and PHP's output buffers hold the output (`zlib.output_compression`,
/// `ob_start()`): as under php-fpm, `flush()` then sends nothing, so the head is not fixed before
/// those buffers have had their say (zlib adds `Content-Encoding` when it first emits).
fn held_in_buffers() -> bool {
    // SAFETY: PHP thread, inside the request; a plain read of the output layer's stack depth.
    CAPTURE.with_borrow(|c| !c.streaming && c.out.is_empty())
        && unsafe { ffi::php_output_get_level() } > 0
}

unsafe extern "C" fn header_handler(
    header: *mut sapi_header_struct,
    op: sapi_header_op_enum,
    headers: *mut sapi_headers_struct,
) -> c_int {
    if ACTIVE.get() {
        return SAPI_HEADER_ADD;
    }
    match originals().header_handler {
        // SAFETY: the SAPI's own callback with the arguments PHP gave us.
        Some(f) => unsafe { f(header, op, headers) },
        None => SAPI_HEADER_ADD,
    }
}

unsafe extern "C" fn send_headers(headers: *mut sapi_headers_struct) -> c_int {
    if ACTIVE.get() {
        return SAPI_HEADER_SENT_SUCCESSFULLY;
    }
    match originals().send_headers {
        // SAFETY: the SAPI's own callback with the arguments PHP gave us.
        Some(f) => unsafe { f(headers) },
        None => SAPI_HEADER_SENT_SUCCESSFULLY,
    }
}

unsafe extern "C" fn read_post(buf: *mut c_char, len: usize) -> usize {
    if ACTIVE.get() {
        return CAPTURE.with(|c| {
            let Ok(mut c) = c.try_borrow_mut() else {
                return 0;
            };
            let Some(body) = c.body.as_mut() else {
                return 0;
            };
            // SAFETY: PHP gives a writable buffer of `len` bytes.
            let buf = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
            match std::io::Read::read(body, buf) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("reading the request body file for php://input: {e}");
                    0
                }
            }
        });
    }
    match originals().read_post {
        // SAFETY: the SAPI's own callback with the arguments PHP gave us.
        Some(f) => unsafe { f(buf, len) },
        None => 0,
    }
}
