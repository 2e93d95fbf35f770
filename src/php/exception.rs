//! The exceptions rr throws, and where Rust errors become them.
use crate::config::ConfigError;
use crate::engine::RespondError;
use crate::server::StartError;
use ext_php_rs::exception::PhpException;
use ext_php_rs::prelude::*;
use ext_php_rs::zend::ce;

/// Base class of every rr exception: misuse of the API (no request pending, a second worker).
#[php_class]
#[php(name = "RR\\Exception")]
#[php(extends(ce = ce::exception, stub = "\\Exception"))]
#[derive(Default)]
pub struct Exception;

/// Bad configuration (.rr.yaml, ini or constructor options) or a server that cannot start.
#[php_class]
#[php(name = "RR\\ConfigException")]
#[php(extends(Exception))]
#[derive(Default)]
pub struct ConfigException;

pub fn misuse(message: impl Into<String>) -> PhpException {
    PhpException::from_class::<Exception>(message.into())
}

/// A bad argument value: PHP's own `ValueError`, naming the method and the value.
pub fn bad_value(message: impl Into<String>) -> PhpException {
    PhpException::new(message.into(), 0, ce::value_error())
}

/// An argument of the wrong type where the signature cannot say it (`mixed` in reflection).
pub fn bad_type(message: impl Into<String>) -> PhpException {
    PhpException::new(message.into(), 0, ce::type_error())
}

impl From<ConfigErrorWrap> for PhpException {
    fn from(e: ConfigErrorWrap) -> Self {
        // A message holding a NUL (a path given as "a\0b") cannot become an exception: PHP
        // would get a bare Error saying so instead of the ConfigException.
        PhpException::from_class::<ConfigException>(e.0.replace('\0', "\\0"))
    }
}

/// A message for `RR\ConfigException`.
pub struct ConfigErrorWrap(pub String);

impl From<ConfigError> for ConfigErrorWrap {
    fn from(e: ConfigError) -> Self {
        ConfigErrorWrap(e.to_string())
    }
}

impl From<StartError> for ConfigErrorWrap {
    fn from(e: StartError) -> Self {
        ConfigErrorWrap(format!("rr cannot start: {e}"))
    }
}

/// `callable` is the PHP name, e.g. `RR\\Worker::respond`.
pub fn respond_error(callable: &str, e: RespondError) -> PhpException {
    misuse(format!("{callable}(): {e}"))
}
