//! What the status and metrics addresses (`crate::observe`) ask of the pool master: health and
//! readiness from the workers' states, the pool's metric families, and the pool's own routes:
//! `GET /workers` and `POST /reload`.
use super::message::{Control, State};
use super::metrics::{self, PoolStats};
use crate::observe::{self, Answer, Mode, Text};
use http::{Method, StatusCode};
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub struct PoolMode {
    pub pool: Arc<PoolStats>,
    pub control: mpsc::UnboundedSender<Control>,
}

impl Mode for PoolMode {
    fn name(&self) -> &'static str {
        "pool"
    }

    fn healthy(&self) -> bool {
        self.pool.healthy()
    }

    fn ready(&self) -> bool {
        self.pool.ready()
    }

    fn details(&self) -> Map<String, Value> {
        let pool = &self.pool;
        let mut fields = Map::new();
        fields.insert("idle".into(), pool.count(State::Idle).into());
        fields.insert("busy".into(), pool.count(State::Busy).into());
        fields.insert("booting".into(), pool.count(State::Booting).into());
        fields.insert("boot".into(), pool.boot_report());
        fields
    }

    fn metrics(&self, out: &mut Text) {
        metrics::render(&self.pool, out);
    }

    fn route(&self, method: &Method, path: &str) -> Option<Answer> {
        match (method, path) {
            (&Method::GET, "/workers") => {
                let (tx, rx) = oneshot::channel();
                let _ = self.control.send(Control::List(tx));
                Some(Box::pin(async move {
                    match rx.await {
                        Ok(list) => {
                            observe::json(StatusCode::OK, serde_json::json!({ "workers": list }))
                        }
                        Err(_) => observe::json(
                            StatusCode::SERVICE_UNAVAILABLE,
                            serde_json::json!({ "workers": [] }),
                        ),
                    }
                }))
            }
            (&Method::POST, "/reload") => {
                let _ = self.control.send(Control::Reload);
                let answer = observe::json(
                    StatusCode::ACCEPTED,
                    serde_json::json!({ "reload": "started" }),
                );
                Some(Box::pin(std::future::ready(answer)))
            }
            _ => None,
        }
    }

    fn paths(&self) -> &'static [(&'static str, &'static str)] {
        &[("/workers", "GET, HEAD"), ("/reload", "POST")]
    }
}
