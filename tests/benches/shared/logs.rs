//! Reading a `tidegate --log-format json controller` log in the benchmarks
//! that run the controller process (`controller`, `server`).

use std::{
    path::Path,
    time::{Duration, Instant},
};

/// The JSON log lines whose message is `message`.
pub fn lines(log: &Path, message: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .collect()
}

/// Waits (up to `wait`) until `count` lines say `message`; returns them all.
pub fn wait_for(log: &Path, message: &str, count: usize, wait: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + wait;
    loop {
        let found = lines(log, message);
        if found.len() >= count {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no {message:?} in the controller's log"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A log line's timestamp, in milliseconds since the epoch.
pub fn time_ms(line: &serde_json::Value) -> f64 {
    let text = line["timestamp"].as_str().unwrap_or_default();
    let t: jiff::Timestamp = text.parse().expect("timestamp");
    t.as_millisecond() as f64
}

/// The median (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
