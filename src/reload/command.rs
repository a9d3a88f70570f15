//! Running one `--green-routes-cmd`: `sh -c CMD` in its own process group with no stdin, its
//! stdout read (bounded) as green's routes, the tail of its stderr kept for the event that says
//! why it failed. Past the timeout the whole group is killed (a `kubectl` the shell started
//! included), so a hung command never piles up.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The most a command may print; past it the output is refused (a route table is megabytes).
pub const MAX_OUTPUT: usize = 64 << 20;
/// How much of the end of stderr an event carries.
const STDERR_TAIL: usize = 2048;
/// Lines of stderr an event carries.
const STDERR_LINES: usize = 5;

/// Why a command gave no table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandFailure {
    /// One sentence.
    pub why: String,
    /// Its exit code (`None`: killed by a signal, timed out, or never started).
    pub exit_status: Option<i32>,
    /// The last lines of its stderr.
    pub stderr: String,
}

/// Runs `command` with `sh -c`, waiting at most `timeout`; its stdout when it exits 0.
pub fn run(command: &str, timeout: Duration) -> Result<String, CommandFailure> {
    let fail = |why: String| CommandFailure { why, exit_status: None, stderr: String::new() };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| fail(format!("cannot start `sh -c`: {e}")))?;
    let group = rustix::process::Pid::from_child(&child);
    let stdout = child.stdout.take().map(|out| std::thread::spawn(move || read_bounded(out, MAX_OUTPUT)));
    let stderr = child.stderr.take().map(|err| std::thread::spawn(move || read_tail(err, STDERR_TAIL)));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(fail(format!("cannot wait for it: {e}"))),
        }
    };
    let out = stdout.and_then(|t| t.join().ok()).unwrap_or_default();
    let err = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    let stderr = last_lines(&String::from_utf8_lossy(&err), STDERR_LINES);
    let Some(status) = status else {
        return Err(CommandFailure { why: format!("timed out after {timeout:?} (killed)"), exit_status: None, stderr });
    };
    if !status.success() {
        let why = match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed by a signal".to_owned(),
        };
        return Err(CommandFailure { why, exit_status: status.code(), stderr });
    }
    let (bytes, cut) = out;
    if cut {
        return Err(CommandFailure {
            why: format!("printed more than {} MiB", MAX_OUTPUT >> 20),
            exit_status: Some(0),
            stderr,
        });
    }
    String::from_utf8(bytes).map_err(|_| CommandFailure {
        why: "printed text that is not UTF-8".into(),
        exit_status: Some(0),
        stderr,
    })
}

/// Up to `max` bytes, and whether there was more (read to the end so the command is not blocked).
fn read_bounded(mut r: impl Read, max: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 << 10];
    let mut cut = false;
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) if out.len() + n > max => cut = true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    (out, cut)
}

/// The last `keep` bytes of everything read.
fn read_tail(mut r: impl Read, keep: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > 2 * keep {
            out.drain(..out.len() - keep);
        }
    }
    let start = out.len().saturating_sub(keep);
    out.split_off(start)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_status_stderr_and_timeout() {
        assert_eq!(run("printf 'kind: List\\n'", Duration::from_secs(5)).unwrap(), "kind: List\n");
        let e = run("echo one >&2; echo two >&2; exit 3", Duration::from_secs(5)).unwrap_err();
        assert_eq!((e.exit_status, e.why.as_str(), e.stderr.as_str()), (Some(3), "exited with status 3", "one\ntwo"));
        let started = Instant::now();
        let e = run("sleep 5 & sleep 5; echo late", Duration::from_millis(200)).unwrap_err();
        assert!(e.why.starts_with("timed out"), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "the group is killed, the background sleep too");
    }
}
