//! A worker's reusable buffers for the normalized host and path template, with the last raw host
//! and path remembered.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::normalize::Templater;
use crate::base::host::normalize_host_into;

thread_local! {
    pub(super) static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::new()) };
}

/// A worker's buffers for the normalized host and path template, which also remember the last
/// raw host and path: a keep-alive connection mostly repeats them, and normalizing (an IP literal
/// is parsed and printed, an IDN converted) costs more than comparing a few bytes.
pub(super) struct Scratch {
    pub(super) host: String,
    pub(super) path: String,
    /// Raw host whose normalized form `host` holds (`None`: nothing cached).
    last_host: Option<Vec<u8>>,
    last_ip_literal: bool,
    /// Raw path whose template `path` holds, and which ledger's templater made it.
    last_path: Option<(u64, String)>,
}

impl Scratch {
    const fn new() -> Self {
        Self { host: String::new(), path: String::new(), last_host: None, last_ip_literal: false, last_path: None }
    }

    /// Longest raw host or path remembered (longer ones are normalized every time).
    const MAX_CACHED: usize = 256;

    pub(super) fn host(&mut self, raw: Option<&[u8]>) -> bool {
        if let (Some(raw), Some(last)) = (raw, &self.last_host) {
            if raw == last.as_slice() {
                return self.last_ip_literal;
            }
        }
        let ip_literal = normalize_host_into(raw, &mut self.host);
        match raw {
            Some(raw) if raw.len() <= Self::MAX_CACHED => {
                let last = self.last_host.get_or_insert_with(Vec::new);
                last.clear();
                last.extend_from_slice(raw);
                self.last_ip_literal = ip_literal;
            }
            _ => self.last_host = None,
        }
        ip_literal
    }

    pub(super) fn path(&mut self, ledger: u64, templater: &Templater, raw: &str) {
        if let Some((id, last)) = &self.last_path {
            if *id == ledger && last == raw {
                return;
            }
        }
        templater.template_into(raw, &mut self.path);
        if raw.len() <= Self::MAX_CACHED {
            let (id, last) = self.last_path.get_or_insert_with(|| (ledger, String::new()));
            *id = ledger;
            last.clear();
            last.push_str(raw);
        } else {
            self.last_path = None;
        }
    }
}

/// A process-unique id per ledger, so a thread's cached template never comes from another
/// ledger's templater.
pub(super) fn next_ledger_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
