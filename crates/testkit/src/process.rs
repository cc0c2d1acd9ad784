//! Spawning and stopping the control-plane processes.
//!
//! Each process leads a process group of its own (so a terminal's Ctrl-C or
//! the end of `tidegate-testkit up` does not reach it), writes stdout and
//! stderr to `<cluster>/logs/<component>.log`, and is recorded in
//! `<state>/pids` as soon as it is spawned, so that `down`, `Drop` and the
//! watchdog can stop it by PID.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One process of a fleet, as recorded in `fleet.json` and `pids`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessRecord {
    /// Process id; it is also the id of the process group it leads.
    pub pid: i32,
    /// `<cluster>/<component>`, or `etcd` for a shared etcd.
    pub name: String,
    /// Its log file.
    pub log: PathBuf,
}

/// A running child process of an owned fleet.
pub(crate) struct Proc {
    pub record: ProcessRecord,
    pub child: Child,
}

/// Spawns `program args` in its own process group, logging to `log`, and
/// appends it to `<state>/pids`.
pub(crate) fn spawn(
    state_dir: &Path,
    name: &str,
    program: &Path,
    args: &[String],
    log: &Path,
) -> Result<Proc> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    }
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(Error::io(format!("opening {}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(Error::io(format!("opening {}", log.display())))?;
    tracing::debug!(%name, program = %program.display(), ?args, "spawning");
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(Error::io(format!("starting {}", program.display())))?;
    let record = ProcessRecord {
        pid: i32::try_from(child.id()).map_err(|_| Error::Other("pid out of range".into()))?,
        name: name.to_string(),
        log: log.to_path_buf(),
    };
    let pids = state_dir.join("pids");
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&pids)
        .map_err(Error::io(format!("opening {}", pids.display())))?;
    writeln!(file, "{} {}", record.pid, record.name)
        .map_err(Error::io(format!("writing {}", pids.display())))?;
    Ok(Proc { record, child })
}

/// Reads `<state>/pids`.
pub(crate) fn read_pids(state_dir: &Path) -> Vec<(i32, String)> {
    let Ok(text) = std::fs::read_to_string(state_dir.join("pids")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let (pid, name) = line.split_once(' ')?;
            Some((pid.parse().ok()?, name.to_string()))
        })
        .collect()
}

/// Whether `pid` is alive and one of ours: its command line mentions the
/// state directory (every component gets paths under it), which guards
/// against a recycled PID.
pub(crate) fn is_ours(pid: i32, state_dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    // A zombie has an empty command line: it is gone for our purposes.
    let needle = state_dir.to_string_lossy();
    String::from_utf8_lossy(&cmdline).contains(needle.as_ref())
}

fn signal_group(pid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        // ESRCH (already gone) is fine.
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Shutdown order: clients of the API servers first, then the API servers
/// (which shut down in seconds while etcd is still there, but hang without
/// it), then what they call: etcd and the token webhooks.
fn tier(name: &str) -> u8 {
    if name == "etcd" || name.ends_with("/etcd") || name.ends_with("/token-webhook") {
        2
    } else if name.ends_with("/kube-apiserver") {
        1
    } else {
        0
    }
}

/// Stops the processes recorded in `<state>/pids` that are still ours, tier
/// by tier (clients of the API servers, then the API servers, then etcd and
/// the token webhooks): SIGTERM to each process group, then SIGKILL to
/// those still alive after `grace`. Returns the names of the processes that
/// were signalled.
pub fn stop_recorded(state_dir: &Path, grace: Duration) -> Vec<String> {
    let live: Vec<(i32, String)> = read_pids(state_dir)
        .into_iter()
        .filter(|(pid, _)| is_ours(*pid, state_dir))
        .collect();
    for t in 0..=2 {
        let group: Vec<&(i32, String)> = live.iter().filter(|(_, n)| tier(n) == t).collect();
        for (pid, _) in &group {
            signal_group(*pid, Signal::TERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && group.iter().any(|(pid, _)| is_ours(*pid, state_dir)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        for (pid, name) in &group {
            if is_ours(*pid, state_dir) {
                tracing::warn!(%name, pid, "still running after SIGTERM, sending SIGKILL");
                signal_group(*pid, Signal::KILL);
            }
        }
    }
    let _ = std::fs::remove_file(state_dir.join("pids"));
    live.into_iter().map(|(_, name)| name).collect()
}

/// Stops owned children tier by tier (see [`tier`]): SIGTERM to every group
/// of the tier, wait up to `grace`, SIGKILL the rest, and reap them all.
pub(crate) fn stop_children(children: &mut Vec<Proc>, grace: Duration) {
    for t in 0..=2 {
        let (mut group, rest): (Vec<Proc>, Vec<Proc>) =
            children.drain(..).partition(|p| tier(&p.record.name) == t);
        *children = rest;
        for p in &group {
            signal_group(p.record.pid, Signal::TERM);
        }
        let deadline = Instant::now() + grace;
        loop {
            group.retain_mut(|p| !matches!(p.child.try_wait(), Ok(Some(_))));
            if group.is_empty() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in &mut group {
            tracing::warn!(name = %p.record.name, "still running after SIGTERM, sending SIGKILL");
            signal_group(p.record.pid, Signal::KILL);
            let _ = p.child.wait();
        }
    }
    children.clear();
}

/// The watchdog script: waits for the owner process to exit, then kills every
/// process group recorded in the pids file and optionally removes the state
/// directory. `Fleet::stop` removes the pids file and kills the watchdog first.
const WATCHDOG: &str = r#"
owner="$1"; state="$2"; cleanup="$3"
while kill -0 "$owner" 2>/dev/null; do sleep 1; done
if [ -f "$state/pids" ]; then
  for tier in other apiserver etcd; do
    while read -r pid name; do
      case "$name" in
        etcd|*/etcd|*/token-webhook) t=etcd ;;
        */kube-apiserver) t=apiserver ;;
        *) t=other ;;
      esac
      [ "$t" = "$tier" ] && kill -s TERM -- "-$pid" 2>/dev/null
    done < "$state/pids"
    sleep 3
  done
  while read -r pid name; do kill -s KILL -- "-$pid" 2>/dev/null; done < "$state/pids"
  rm -f "$state/pids"
fi
if [ "$cleanup" = 1 ]; then rm -rf "$state"; fi
"#;

/// Starts the watchdog of an owned fleet, watching process `owner` (in its
/// own process group, so that it outlives a killed owner).
pub(crate) fn spawn_watchdog(owner: u32, state_dir: &Path, cleanup: bool) -> Result<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("tidegate-testkit-watchdog")
        .arg(owner.to_string())
        .arg(state_dir)
        .arg(if cleanup { "1" } else { "0" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(Error::io("starting the watchdog (sh)"))
}

/// The last `lines` lines of a log file.
pub(crate) fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: i32) -> bool {
        // Not reaped by us (the watchdog's victims are not our children
        // once reparented), so check /proc for a non-zombie.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
    }

    /// Right after a spawn, the parent may resume before the kernel has set
    /// the child's new command line (vfork-style spawn), so poll briefly.
    fn wait_ours(pid: i32, state_dir: &Path) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if is_ours(pid, state_dir) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn tiers_stop_api_servers_before_etcd() {
        assert_eq!(tier("eks-us-east-1/kwok"), 0);
        assert_eq!(tier("eks-us-east-1/kube-scheduler"), 0);
        assert_eq!(tier("eks-us-east-1/kube-apiserver"), 1);
        assert_eq!(tier("eks-us-east-1/etcd"), 2);
        assert_eq!(tier("etcd"), 2);
        assert_eq!(tier("eks-us-east-1/token-webhook"), 2);
    }

    /// The watchdog stops recorded processes once their owner is gone.
    #[test]
    fn watchdog_stops_processes_when_the_owner_dies() {
        let state = tempfile::tempdir().expect("test step");
        let script = "sleep 60; exit 0";
        let args = vec![
            "-c".to_string(),
            script.to_string(),
            state.path().display().to_string(),
        ];
        let mut victim = spawn(
            state.path(),
            "c/kwok",
            Path::new("/bin/sh"),
            &args,
            &state.path().join("logs/kwok.log"),
        )
        .expect("test step");
        assert!(wait_ours(victim.record.pid, state.path()));
        let mut owner = Command::new("sleep").arg("60").spawn().expect("test step");
        let mut watchdog = spawn_watchdog(owner.id(), state.path(), false).expect("test step");
        owner.kill().expect("test step");
        owner.wait().expect("test step");
        let deadline = Instant::now() + Duration::from_secs(30);
        while alive(victim.record.pid) && Instant::now() < deadline {
            if let Ok(Some(_)) = victim.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            victim.child.try_wait().expect("test step").is_some(),
            "victim still running"
        );
        let _ = watchdog.kill();
        let _ = watchdog.wait();
    }

    #[test]
    fn stop_recorded_only_signals_our_processes() {
        let state = tempfile::tempdir().expect("test step");
        let args = vec![
            "-c".to_string(),
            "sleep 60; exit 0".to_string(),
            state.path().display().to_string(),
        ];
        let mut p = spawn(
            state.path(),
            "c/kube-apiserver",
            Path::new("/bin/sh"),
            &args,
            &state.path().join("logs/x.log"),
        )
        .expect("test step");
        assert!(wait_ours(p.record.pid, state.path()));
        // A recorded PID that is not ours (this test process) is left alone.
        let mut pids = std::fs::OpenOptions::new()
            .append(true)
            .open(state.path().join("pids"))
            .expect("test step");
        writeln!(pids, "{} c/kwok", std::process::id()).expect("test step");
        let stopped = stop_recorded(state.path(), Duration::from_secs(10));
        assert_eq!(stopped, vec!["c/kube-apiserver".to_string()]);
        assert!(p.child.wait().is_ok());
        assert!(!state.path().join("pids").exists());
    }
}
