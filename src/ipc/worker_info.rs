//! One row of the workers list: what `RR\workers()` and the status address show, and what the
//! master sends a worker that asks (`Frame::Workers`, as JSON).

/// One row of the workers list.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WorkerInfo {
    pub id: u64,
    pub pid: u32,
    pub state: String,
    pub jobs: u64,
    /// Memory in bytes (0 when unknown): resident, or private in template mode.
    pub memory: u64,
    pub age_seconds: f64,
    /// A one-shot worker for an isolated path (`http.pool.isolate`).
    #[serde(default)]
    pub isolated: bool,
}
