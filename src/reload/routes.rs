//! Green's route table from its sources: route files (read again on SIGHUP or a change) and
//! `--green-routes-cmd` commands (run again every `--green-routes-refresh`). Each source keeps
//! its last good output: a broken file, or a failing, slow or empty command, keeps it, with an
//! event naming the source and why, and a counter in `/metrics`. The table is built again from
//! every source's last good output and swapped into the ledger; nothing here waits on traffic.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::command::{self, CommandFailure};
use super::{fingerprint_async, Hangups, POLL};
use crate::base::time::unix_ms;
use crate::log::AccessLog;
use crate::record::Ledger;
use crate::routes::{CommandStatus, GreenCluster, RouteCounters, RouteError, RouteSource, RouteTable};

/// Where green's routes come from, and how green's cluster serves them.
#[derive(Debug, Clone, Default)]
pub struct RouteSettings {
    pub files: Vec<PathBuf>,
    pub commands: Vec<String>,
    pub refresh: Duration,
    pub command_timeout: Duration,
    pub cluster: GreenCluster,
}

impl RouteSettings {
    /// Whether any source is configured.
    pub fn any(&self) -> bool {
        !self.files.is_empty() || !self.commands.is_empty()
    }
}

/// An event to write: its name and fields.
pub type Event = (&'static str, Value);

/// Every source's last good output.
pub struct RouteSources {
    settings: RouteSettings,
    files: Option<RouteSource>,
    commands: Vec<(Option<RouteSource>, CommandStatus)>,
    pub counters: Arc<RouteCounters>,
}

impl RouteSources {
    /// Reads the files (a broken one refuses to start: nothing is in front of production yet) and
    /// runs each command once (a failing one does not: the proxy starts with what it has, and
    /// the command is tried again every refresh). Returns the events to log once logging runs.
    pub fn load(settings: RouteSettings) -> Result<(RouteSources, Vec<Event>), RouteError> {
        let files = if settings.files.is_empty() { None } else { Some(RouteSource::read(&settings.files)?) };
        let mut events = files.iter().flat_map(skipped_events).collect::<Vec<_>>();
        let counters = Arc::new(RouteCounters::new(&settings.commands));
        let commands = settings
            .commands
            .iter()
            .map(|c| (None, CommandStatus { command: c.clone(), ..Default::default() }))
            .collect();
        let mut sources = RouteSources { settings, files, commands, counters };
        for i in 0..sources.commands.len() {
            let command = sources.settings.commands[i].clone();
            let outcome = command::run(&command, sources.settings.command_timeout);
            events.extend(sources.took(i, outcome));
        }
        Ok((sources, events))
    }

    /// The table of every source's last good output.
    pub fn table(&self) -> RouteTable {
        let all: Vec<&RouteSource> =
            self.files.iter().chain(self.commands.iter().filter_map(|(s, _)| s.as_ref())).collect();
        let mut table =
            if all.is_empty() { RouteTable::empty() } else { RouteTable::build(&all, &self.settings.cluster) };
        table.set_commands(self.commands.iter().map(|(_, status)| status.clone()).collect());
        table
    }

    /// Takes command `i`'s outcome: a good output replaces its last one; a failure keeps it.
    /// Returns the events to log.
    fn took(&mut self, i: usize, outcome: Result<String, CommandFailure>) -> Vec<Event> {
        let command = self.settings.commands[i].clone();
        let parsed = outcome.and_then(|text| {
            let name = PathBuf::from(format!("--green-routes-cmd `{command}`"));
            let source = RouteSource::from_text(&name, &text).map_err(|e| CommandFailure {
                why: e.to_string(),
                exit_status: Some(0),
                stderr: String::new(),
            })?;
            if source.kubernetes_objects == 0 {
                return Err(CommandFailure {
                    why: "printed no Kubernetes objects".into(),
                    exit_status: Some(0),
                    stderr: String::new(),
                });
            }
            Ok(source)
        });
        let (last, status) = &mut self.commands[i];
        match parsed {
            Ok(source) => {
                let mut events = skipped_events(&source);
                events.push((
                    "routes_cmd_loaded",
                    json!({"command": command, "objects": source.route_objects(), "kubernetes_objects": source.kubernetes_objects}),
                ));
                *status = CommandStatus {
                    command,
                    objects: source.route_objects(),
                    loaded_at_ms: Some(unix_ms()),
                    error: None,
                };
                *last = Some(source);
                events
            }
            Err(f) => {
                if let Some((_, n)) = self.counters.command_failures.get(i) {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                let kept = if last.is_some() {
                    "last good table"
                } else {
                    "nothing yet (green's table lacks this command's routes)"
                };
                status.error = Some(f.why.clone());
                vec![(
                    "routes_cmd_failed",
                    json!({"command": command, "error": f.why, "exit_status": f.exit_status, "stderr": f.stderr, "kept": kept}),
                )]
            }
        }
    }
}

/// One `routes_skipped` event per chart, Kustomize overlay or template.
fn skipped_events(source: &RouteSource) -> Vec<Event> {
    source
        .skipped
        .iter()
        .map(|s| {
            let render = s.render.first().map(|r| format!(": render it with `{r}` (--green-routes-cmd)")).unwrap_or_default();
            (
                "routes_skipped",
                json!({"path": s.path.display().to_string(), "kind": s.kind.as_str(), "name": s.name, "render": s.render,
                       "message": format!("{} {} is not manifests yet{render}", s.kind, s.path.display())}),
            )
        })
        .collect()
}

/// Writes events to the log.
pub fn log_events(log: &AccessLog, events: Vec<Event>) {
    for (name, fields) in events {
        log.event(name, fields);
    }
}

/// What woke the watcher.
enum Wake {
    Hup,
    Poll,
    Command(usize, Result<String, CommandFailure>),
}

/// Keeps the ledger's table current forever: files on SIGHUP or a change, commands every
/// refresh (and on SIGHUP), each on a blocking thread.
pub async fn watch(mut sources: RouteSources, ledger: Arc<Ledger>, log: AccessLog) {
    let mut hup = Hangups::listen("green's route files");
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let rerun = Arc::new(tokio::sync::Notify::new());
    for (i, command) in sources.settings.commands.iter().enumerate() {
        tokio::spawn(run_every(
            i,
            command.clone(),
            sources.settings.refresh,
            sources.settings.command_timeout,
            tx.clone(),
            rerun.clone(),
        ));
    }
    let files = sources.settings.files.clone();
    let mut last = fingerprint_async(&files).await;
    loop {
        let wake = tokio::select! {
            _ = hup.next() => Wake::Hup,
            Some((i, outcome)) = rx.recv() => Wake::Command(i, outcome),
            _ = tokio::time::sleep(POLL), if !files.is_empty() => Wake::Poll,
        };
        let (changed, events) = match wake {
            Wake::Command(i, outcome) => {
                let before = sources.commands[i].1.clone();
                let events = sources.took(i, outcome);
                // A repeated failure changes nothing: only a new output or a new state rebuilds.
                let after = &sources.commands[i].1;
                (after.loaded_at_ms != before.loaded_at_ms || after.error.is_some() != before.error.is_some(), events)
            }
            Wake::Hup | Wake::Poll => {
                let trigger = if matches!(wake, Wake::Hup) { "SIGHUP" } else { "file changed" };
                if matches!(wake, Wake::Hup) {
                    rerun.notify_waiters();
                } else {
                    let now = fingerprint_async(&files).await;
                    if now == last {
                        continue;
                    }
                    last = now;
                }
                if files.is_empty() {
                    continue;
                }
                match reread(&mut sources).await {
                    Ok(mut events) => {
                        events.push(("routes_reloaded", json!({"trigger": trigger, "objects": sources.files.as_ref().map_or(0, RouteSource::route_objects)})));
                        (true, events)
                    }
                    Err(e) => {
                        sources.counters.reload_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "route reload refused; keeping the last good table");
                        let fields = json!({"trigger": trigger, "error": e.to_string(), "kept": "last good table"});
                        (false, vec![("routes_reload_failed", fields)])
                    }
                }
            }
        };
        log_events(&log, events);
        if changed {
            ledger.set_routes(Arc::new(sources.table()));
        }
    }
}

/// Reads the files on a blocking thread.
async fn reread(sources: &mut RouteSources) -> Result<Vec<Event>, RouteError> {
    let paths = sources.settings.files.clone();
    let read = tokio::task::spawn_blocking(move || RouteSource::read(&paths)).await;
    match read {
        Ok(Ok(source)) => {
            let events = skipped_events(&source);
            sources.files = Some(source);
            Ok(events)
        }
        Ok(Err(e)) => Err(e),
        // The blocking pool is gone: shutting down.
        Err(_) => Ok(Vec::new()),
    }
}

/// Runs command `i` every `refresh` (the first after one interval: it ran at start), or at once
/// when `rerun` is notified, and sends each outcome.
async fn run_every(
    i: usize,
    command: String,
    refresh: Duration,
    timeout: Duration,
    tx: tokio::sync::mpsc::Sender<(usize, Result<String, CommandFailure>)>,
    rerun: Arc<tokio::sync::Notify>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(refresh) => {}
            _ = rerun.notified() => {}
        }
        let c = command.clone();
        let outcome = match tokio::task::spawn_blocking(move || command::run(&c, timeout)).await {
            Ok(outcome) => outcome,
            Err(_) => return,
        };
        if tx.send((i, outcome)).await.is_err() {
            return;
        }
    }
}
