//! Development reload (`http.watch`): a file watcher in the master that asks for a reload (the
//! same rolling replacement as SIGHUP) once a burst of changes to watched files is over.
//!
//! The watching is the `notify` crate's (inotify on Linux); the open and close events that every
//! worker boot causes on the files it loads are dropped here, never taken for a change. The
//! debouncing is here too, on its own thread: a reload waits until no relevant change came for `debounce`, so an
//! editor's save (a temporary file, a rename, an attribute change) or a `git checkout` makes one
//! reload, and at most [`MAX_HOLD`] of changes that never pause make one each.
use crate::config::WatchConfig;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The longest a burst of changes holds its reload back.
const MAX_HOLD: Duration = Duration::from_secs(2);

/// What ended a quiet period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The first relevant path that changed; `None` when the kernel dropped events (queue
    /// overflow), so any file may have changed.
    pub first: Option<PathBuf>,
    /// Relevant events in the burst.
    pub events: usize,
}

/// Why the watcher could not start.
#[derive(Debug)]
pub enum WatchError {
    /// The kernel's watch facility (inotify) refused.
    Start(notify::Error),
    /// One of `http.watch.paths` cannot be watched.
    Path(std::path::PathBuf, notify::Error),
    /// The debounce thread could not be started.
    Thread(std::io::Error),
}

impl std::fmt::Display for WatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WatchError::Start(e) => write!(f, "cannot start the file watcher: {e}"),
            WatchError::Path(path, e) => write!(f, "cannot watch {}: {e}", path.display()),
            WatchError::Thread(e) => write!(f, "cannot start the watch thread: {e}"),
        }
    }
}

impl std::error::Error for WatchError {}

/// The running watcher; dropping it stops watching and ends the debounce thread.
pub struct Watch {
    _watcher: RecommendedWatcher,
}

/// Starts watching `config.paths`; `on_change` runs on the watcher's own thread after each
/// burst of relevant changes.
pub fn start(
    config: &WatchConfig,
    on_change: impl Fn(Change) + Send + 'static,
) -> Result<Watch, WatchError> {
    let rules = Rules::new(config);
    let (tx, rx) = mpsc::channel();
    let mut watcher =
        RecommendedWatcher::new(tx, notify::Config::default()).map_err(WatchError::Start)?;
    for (path, mode) in rules.watches() {
        watcher
            .watch(&path, mode)
            .map_err(|e| WatchError::Path(path.clone(), e))?;
    }
    let debounce = config.debounce;
    std::thread::Builder::new()
        .name("rr-watch".into())
        .spawn(move || debounce_loop(&rx, &rules, debounce, on_change))
        .map_err(WatchError::Thread)?;
    Ok(Watch { _watcher: watcher })
}

/// Waits for a relevant change, then for `debounce` without one (at most `MAX_HOLD` in all),
/// then calls `on_change`; until the watcher is dropped.
fn debounce_loop(
    rx: &mpsc::Receiver<notify::Result<notify::Event>>,
    rules: &Rules,
    debounce: Duration,
    on_change: impl Fn(Change),
) {
    let relevant = |event: notify::Result<notify::Event>| match event {
        Ok(event) => rules.relevant(&event),
        Err(e) => {
            tracing::warn!("rr watch: {e}");
            None
        }
    };
    loop {
        let first = loop {
            match rx.recv() {
                Ok(event) => {
                    if let Some(first) = relevant(event) {
                        break first;
                    }
                }
                Err(_) => return,
            }
        };
        let began = Instant::now();
        let mut quiet_at = began + debounce;
        let mut events = 1;
        loop {
            let now = Instant::now();
            let until = quiet_at.min(began + MAX_HOLD);
            if now >= until {
                break;
            }
            match rx.recv_timeout(until - now) {
                Ok(event) => {
                    if relevant(event).is_some() {
                        events += 1;
                        quiet_at = Instant::now() + debounce;
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        on_change(Change { first, events });
    }
}

/// Which changes count.
struct Rules {
    /// Watched directories, with everything below them.
    dirs: Vec<PathBuf>,
    /// Watched files (their directory is watched, since an editor's save often replaces the
    /// file: a watch on the file itself would end with the file it watched).
    files: Vec<PathBuf>,
    extensions: Vec<String>,
    ignore: Vec<PathBuf>,
}

impl Rules {
    fn new(config: &WatchConfig) -> Rules {
        let (dirs, files) = config.paths.iter().cloned().partition(|p| p.is_dir());
        Rules {
            dirs,
            files,
            extensions: config.extensions.clone(),
            ignore: config.ignore.clone(),
        }
    }

    /// What to ask the kernel for: each directory recursively, and the directory of each file
    /// not already below one, on its own.
    fn watches(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let mut watches: Vec<(PathBuf, RecursiveMode)> = Vec::new();
        for dir in &self.dirs {
            let covered = self.dirs.iter().any(|d| d != dir && dir.starts_with(d));
            if !covered && !watches.iter().any(|(p, _)| p == dir) {
                watches.push((dir.clone(), RecursiveMode::Recursive));
            }
        }
        for file in &self.files {
            let Some(parent) = file.parent() else {
                continue;
            };
            let covered = self.dirs.iter().any(|d| parent.starts_with(d));
            if !covered && !watches.iter().any(|(p, _)| p == parent) {
                watches.push((parent.to_path_buf(), RecursiveMode::NonRecursive));
            }
        }
        watches
    }

    /// The first path of `event` that counts: `Some(None)` when events were lost.
    fn relevant(&self, event: &notify::Event) -> Option<Option<PathBuf>> {
        if event.need_rescan() {
            return Some(None);
        }
        match event.kind {
            EventKind::Access(_) => return None,
            EventKind::Modify(notify::event::ModifyKind::Metadata(
                notify::event::MetadataKind::AccessTime,
            )) => return None,
            _ => {}
        }
        event
            .paths
            .iter()
            .find(|p| self.counts(p))
            .map(|p| Some(p.clone()))
    }

    /// Whether a change to `path` counts: a watched file, or a file with one of the extensions
    /// below a watched directory; and not ignored.
    fn counts(&self, path: &Path) -> bool {
        let named = self.files.iter().any(|f| f == path);
        let below = match self.dirs.iter().find_map(|d| path.strip_prefix(d).ok()) {
            Some(rest) => rest,
            None if named => Path::new(""),
            None => return false,
        };
        let ignored = self.ignore.iter().any(|rule| match rule.is_absolute() {
            true => path.starts_with(rule),
            // A bare name: a directory or file of that name below the watched directory.
            false => below
                .components()
                .any(|c| c.as_os_str() == rule.as_os_str()),
        });
        if ignored {
            return false;
        }
        named || self.extensions.is_empty() || self.has_extension(path)
    }

    fn has_extension(&self, path: &Path) -> bool {
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
            return false;
        };
        let ext = format!(".{}", ext.to_ascii_lowercase());
        self.extensions.contains(&ext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, CreateKind, DataChange, ModifyKind, RenameMode};
    use notify::Event;

    fn config(paths: &[&Path], ignore: &[&str]) -> WatchConfig {
        WatchConfig {
            paths: paths.iter().map(|p| p.to_path_buf()).collect(),
            extensions: vec![".php".into(), ".inc".into()],
            ignore: ignore.iter().map(PathBuf::from).collect(),
            debounce: Duration::from_millis(50),
        }
    }

    #[test]
    fn extensions_ignore_and_named_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        std::fs::create_dir_all(&root).unwrap();
        let env = dir.path().join(".env");
        std::fs::write(&env, "").unwrap();
        let cache = root.join("var/cache");
        let rules = Rules::new(&config(
            &[&root, &env],
            &["vendor", cache.to_str().unwrap()],
        ));
        let counts = |p: &str| rules.counts(&dir.path().join(p));
        assert!(counts("app/src/Controller.php"));
        assert!(counts("app/index.PHP"), "extensions are case-insensitive");
        assert!(counts("app/lib/a.inc"));
        assert!(!counts("app/README.md"));
        assert!(!counts("app/src/Controller.php~"), "an editor's backup");
        assert!(!counts("app/vendor/x/y.php"), "a bare name, at any depth");
        assert!(!counts("app/src/vendor/y.php"));
        assert!(counts("app/src/vendors.php"));
        assert!(!counts("app/var/cache/container.php"), "a path");
        assert!(counts("app/var/log.php"));
        assert!(counts(".env"), "a named file, whatever its extension");
        assert!(!counts("other.php"), "beside a named file, not watched");
        // A bare name matches below the watched directory only.
        let rules = Rules::new(&config(&[&root], &["app"]));
        assert!(rules.counts(&root.join("x.php")));
        assert!(!rules.counts(&root.join("app/x.php")));
    }

    #[test]
    fn watches_cover_each_directory_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("a/b"));
        std::fs::create_dir_all(&b).unwrap();
        let (inner, outer) = (b.join("w.php"), dir.path().join("w.php"));
        std::fs::write(&inner, "").unwrap();
        std::fs::write(&outer, "").unwrap();
        let rules = Rules::new(&config(&[&b, &a, &inner, &outer], &[]));
        assert_eq!(
            rules.watches(),
            [
                (a, RecursiveMode::Recursive),
                (dir.path().to_path_buf(), RecursiveMode::NonRecursive)
            ]
        );
    }

    #[test]
    fn reads_and_lost_events() {
        let dir = tempfile::tempdir().unwrap();
        let rules = Rules::new(&config(&[dir.path()], &[]));
        let file = dir.path().join("a.php");
        let event = |kind| Event::new(kind).add_path(file.clone());
        assert_eq!(
            rules.relevant(&event(EventKind::Modify(ModifyKind::Data(DataChange::Any)))),
            Some(Some(file.clone()))
        );
        assert_eq!(
            rules.relevant(&event(EventKind::Access(AccessKind::Any))),
            None
        );
        let rename = Event::new(EventKind::Modify(ModifyKind::Name(RenameMode::Both)))
            .add_path(dir.path().join("a.php.swp"))
            .add_path(file.clone());
        assert_eq!(rules.relevant(&rename), Some(Some(file.clone())));
        let lost = Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        assert_eq!(rules.relevant(&lost), Some(None));
        let other =
            Event::new(EventKind::Create(CreateKind::File)).add_path("/elsewhere.php".into());
        assert_eq!(rules.relevant(&other), None);
    }

    /// A burst of writes is one change; reads none; a later save another.
    #[test]
    fn a_burst_is_one_change() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.php");
        std::fs::write(&file, "<?php // 0").unwrap();
        let (tx, rx) = mpsc::channel();
        let config = WatchConfig {
            debounce: Duration::from_millis(200),
            ..config(&[dir.path()], &[])
        };
        let watch = start(&config, move |c| {
            let _ = tx.send(c);
        })
        .unwrap();
        for i in 0..5 {
            std::fs::write(&file, format!("<?php // {i}")).unwrap();
            std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        }
        let change = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(change.first, Some(file.clone()));
        // (A machine slow enough to pause the writes for the debounce splits the burst.)
        while rx.recv_timeout(Duration::from_secs(1)).is_ok() {}
        // Quiet now; reading the file (as a booting worker does) is no change.
        let _ = std::fs::read(&file).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());
        // An editor's save: a temporary file renamed over the original.
        let tmp = dir.path().join(".a.php.tmp");
        std::fs::write(&tmp, "<?php // saved").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        let change = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(change.first, Some(file));
        drop(watch);
    }
}
