//! The notifier: follows the audit trail, turns its records into events,
//! routes them to the operator's sinks and delivers them, one worker per
//! sink, with retries.
//!
//! It runs beside the controller and never inside a rollout: the rollout
//! writes its audit entries as always, and the notifier reads them after
//! the fact. A slow, failing or unreachable sink delays nothing but its
//! own queue.

use crate::{
    config::{Config, DeliveryOptions, SinkConfig},
    event::Notice,
    payload,
    queue::{Pushed, SinkQueue},
    transport::Transport,
};
use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};
use tidegate_audit::{AuditError, AuditStore, Filter, Record, Seq};
use tidegate_controller::{Backoff, Event, Observer, Observers};
use tracing::{debug, error, info, warn};

/// Routes events to sinks and delivers them.
pub struct Notifier {
    config: Config,
    queues: BTreeMap<String, Arc<SinkQueue>>,
    /// Where outcomes are reported (the server's metrics).
    observers: Observers,
    /// Deliver only while this replica leads (standbys read along and skip).
    leading: AtomicBool,
}

impl Notifier {
    /// A notifier for `config`, reporting to `observers`. Nothing is sent
    /// until [`Notifier::start`].
    pub fn new(config: Config, observers: Observers) -> Arc<Notifier> {
        let queues = config
            .sinks
            .keys()
            .map(|name| {
                (
                    name.clone(),
                    Arc::new(SinkQueue::new(config.delivery.queue)),
                )
            })
            .collect();
        Arc::new(Notifier {
            config,
            queues,
            observers,
            leading: AtomicBool::new(true),
        })
    }

    /// Starts one delivery worker per sink, sending through `transport`.
    pub fn start(self: &Arc<Self>, transport: Arc<dyn Transport>) {
        for (name, sink) in &self.config.sinks {
            let Some(queue) = self.queues.get(name).cloned() else {
                continue;
            };
            let worker = Worker {
                sink: sink.clone(),
                queue,
                transport: transport.clone(),
                options: self.config.delivery.clone(),
                observers: self.observers.clone(),
            };
            tokio::spawn(worker.run());
        }
    }

    /// Routes one audit record: queued for every sink its environment's
    /// routes select for its event. Never waits.
    pub fn dispatch(&self, record: Record) {
        if !self.leading.load(Ordering::Relaxed) {
            return;
        }
        let Some(notice) = Notice::of(record) else {
            return;
        };
        for sink in self.config.sinks_for(notice.environment(), notice.kind) {
            let Some(queue) = self.queues.get(sink) else {
                continue;
            };
            match queue.push(notice.clone()) {
                Pushed::Queued => {}
                Pushed::Duplicate => {
                    debug!(
                        sink,
                        seq = notice.record.seq,
                        "notification already queued or sent"
                    );
                }
                Pushed::DroppedOldest(old) => {
                    warn!(
                        sink,
                        event = %old.kind,
                        seq = old.record.seq,
                        "notification queue full: the oldest waiting event was dropped"
                    );
                    self.observers.emit(Event::Notification {
                        sink: sink.to_string(),
                        event: old.kind.as_str().to_string(),
                        outcome: "dropped",
                    });
                }
            }
            self.observers.emit(Event::NotificationQueue {
                sink: sink.to_string(),
                depth: queue.depth() as u64,
            });
        }
    }

    /// An observer for the controller that passes every event on to
    /// `downstream` and keeps track of leadership: a standby replica
    /// delivers nothing (the leader does).
    pub fn observer(self: &Arc<Self>, downstream: Observers) -> Observers {
        Observers::new(Arc::new(Leadership {
            notifier: self.clone(),
            downstream,
        }))
    }

    /// Follows the audit trail `store` from just after `after` (the last
    /// sequence number already there at start: history is not sent again),
    /// reading new records every `delivery.poll`, until the process ends.
    pub async fn follow(self: Arc<Self>, store: Arc<AuditStore>, mut after: Seq) {
        let mut backoff = Backoff::new(self.config.delivery.poll, self.config.delivery.max_backoff);
        loop {
            let read = {
                let store = store.clone();
                tokio::task::spawn_blocking(move || {
                    store.records(&Filter {
                        after_seq: Some(after),
                        ..Filter::default()
                    })
                })
                .await
                .unwrap_or_else(|e| Err(AuditError::Refused(format!("the reader panicked: {e}"))))
            };
            let wait = match read {
                Ok(records) => {
                    backoff.succeeded();
                    for r in records {
                        after = after.max(r.seq);
                        self.dispatch(r);
                    }
                    self.config.delivery.poll
                }
                Err(e) => {
                    let wait = backoff.failed();
                    warn!(error = %e, retry_in = ?wait, "notifications: the audit trail could not be read");
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Passes events on and tracks leadership.
struct Leadership {
    notifier: Arc<Notifier>,
    downstream: Observers,
}

impl Observer for Leadership {
    fn observe(&self, event: Event) {
        if let Event::Leading(leading) = &event {
            self.notifier.leading.store(*leading, Ordering::Relaxed);
        }
        self.downstream.emit(event);
    }
}

/// Delivers one sink's queue, in order.
struct Worker {
    sink: SinkConfig,
    queue: Arc<SinkQueue>,
    transport: Arc<dyn Transport>,
    options: DeliveryOptions,
    observers: Observers,
}

impl Worker {
    async fn run(self) {
        loop {
            let notice = self.queue.pop().await;
            self.observers.emit(Event::NotificationQueue {
                sink: self.sink.name.clone(),
                depth: self.queue.depth() as u64,
            });
            self.deliver(&notice).await;
        }
    }

    /// Tries until delivered, refused for good, or out of attempts; the
    /// next event waits (order per sink).
    async fn deliver(&self, notice: &Notice) {
        let sink = self.sink.name.as_str();
        let event = notice.kind.as_str();
        let seq = notice.record.seq;
        let Some(request) = payload::request(&self.sink, notice) else {
            debug!(
                sink,
                event, seq, "nothing to send to this sink for this event"
            );
            return;
        };
        let mut backoff = Backoff::new(self.options.backoff, self.options.max_backoff);
        let outcome = |outcome| Event::Notification {
            sink: sink.to_string(),
            event: event.to_string(),
            outcome,
        };
        for attempt in 1..=self.options.attempts {
            match self.transport.send(&request).await {
                Ok(()) => {
                    info!(sink, event, seq, attempt, "notification delivered");
                    self.observers.emit(outcome("delivered"));
                    return;
                }
                Err(e) if e.retry && attempt < self.options.attempts => {
                    let wait = backoff.failed();
                    warn!(sink, event, seq, attempt, retry_in = ?wait, error = %e.reason, "notification not delivered; retrying");
                    self.observers.emit(outcome("retried"));
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    error!(sink, event, seq, attempt, error = %e.reason, "notification failed: given up");
                    self.observers.emit(outcome("failed"));
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::SinkKind,
        event::tests::{entry, record},
        payload::Request,
        secret::Secret,
        transport::SendError,
    };
    use futures::future::BoxFuture;
    use std::{collections::VecDeque, sync::Mutex, time::Duration};
    use tidegate_audit::{Action, Outcome, Phase};

    /// Answers with a scripted list of results, recording each request.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<VecDeque<Result<(), SendError>>>,
        sent: Mutex<Vec<(String, u64)>>,
    }

    impl Transport for Scripted {
        fn send<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<(), SendError>> {
            Box::pin(async move {
                let body = request.json();
                self.sent.lock().expect("lock").push((
                    body["event"].as_str().unwrap_or_default().to_string(),
                    body["audit"]["seq"].as_u64().unwrap_or_default(),
                ));
                self.answers
                    .lock()
                    .expect("lock")
                    .pop_front()
                    .unwrap_or(Ok(()))
            })
        }
    }

    #[derive(Default)]
    struct Collect(Mutex<Vec<Event>>);

    impl Observer for Collect {
        fn observe(&self, event: Event) {
            self.0.lock().expect("lock").push(event);
        }
    }

    fn config(attempts: u32) -> Config {
        let mut routes = BTreeMap::new();
        routes.insert(
            "prod".to_string(),
            vec![crate::config::Route {
                sink: "hook".into(),
                events: crate::event::EventKind::ALL.into_iter().collect(),
            }],
        );
        Config {
            sinks: BTreeMap::from([(
                "hook".to_string(),
                SinkConfig {
                    name: "hook".into(),
                    kind: SinkKind::Webhook {
                        url: Secret::new("http://127.0.0.1:9/"),
                        secret: Secret::new("k"),
                    },
                },
            )]),
            routes,
            delivery: DeliveryOptions {
                attempts,
                backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(4),
                ..DeliveryOptions::default()
            },
        }
    }

    fn outcomes(events: &Collect) -> Vec<(String, &'static str)> {
        events
            .0
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|e| match e {
                Event::Notification { event, outcome, .. } => Some((event.clone(), *outcome)),
                _ => None,
            })
            .collect()
    }

    async fn settle(transport: &Scripted, n: usize) {
        for _ in 0..2000 {
            if transport.sent.lock().expect("lock").len() >= n {
                tokio::time::sleep(Duration::from_millis(5)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_in_order_and_refusals_are_given_up() {
        let transport = Arc::new(Scripted::default());
        transport.answers.lock().expect("lock").extend([
            Err(SendError {
                retry: true,
                reason: "503".into(),
            }),
            Err(SendError {
                retry: true,
                reason: "503".into(),
            }),
            Ok(()),
            Err(SendError {
                retry: false,
                reason: "answered 404".into(),
            }),
            Ok(()),
        ]);
        let seen = Arc::new(Collect::default());
        let n = Notifier::new(config(5), Observers::new(seen.clone()));
        n.start(transport.clone());
        n.dispatch(record(1, Phase::Intent, entry(Action::RolloutStart)));
        n.dispatch(record(2, Phase::Event, entry(Action::Quarantine)));
        n.dispatch(record(3, Phase::Event, entry(Action::WaveStart)));
        n.dispatch(record(
            4,
            Phase::Outcome,
            entry(Action::RolloutEnd).outcome(Outcome::Failure),
        ));
        // Another environment has no route.
        n.dispatch(record(
            5,
            Phase::Event,
            entry(Action::Quarantine).env("dev"),
        ));
        settle(&transport, 5).await;
        assert_eq!(
            *transport.sent.lock().expect("lock"),
            [
                ("rollout-started".to_string(), 1),
                ("rollout-started".to_string(), 1),
                ("rollout-started".to_string(), 1),
                ("quarantine".to_string(), 2),
                ("rollout-failed".to_string(), 4),
            ]
        );
        assert_eq!(
            outcomes(&seen),
            [
                ("rollout-started".to_string(), "retried"),
                ("rollout-started".to_string(), "retried"),
                ("rollout-started".to_string(), "delivered"),
                ("quarantine".to_string(), "failed"),
                ("rollout-failed".to_string(), "delivered"),
            ]
        );
    }

    #[tokio::test]
    async fn a_standby_delivers_nothing_and_attempts_are_bounded() {
        let transport = Arc::new(Scripted::default());
        transport
            .answers
            .lock()
            .expect("lock")
            .extend((0..3).map(|_| {
                Err(SendError {
                    retry: true,
                    reason: "down".into(),
                })
            }));
        let seen = Arc::new(Collect::default());
        let n = Notifier::new(config(3), Observers::new(seen.clone()));
        let observers = n.observer(Observers::default());
        n.start(transport.clone());
        observers.emit(Event::Leading(false));
        n.dispatch(record(1, Phase::Intent, entry(Action::RolloutStart)));
        observers.emit(Event::Leading(true));
        n.dispatch(record(2, Phase::Intent, entry(Action::RolloutStart)));
        settle(&transport, 3).await;
        let sent = transport.sent.lock().expect("lock").clone();
        assert!(sent.iter().all(|(_, seq)| *seq == 2), "{sent:?}");
        assert_eq!(sent.len(), 3, "three attempts, then given up");
        assert_eq!(outcomes(&seen).last().map(|o| o.1), Some("failed"));
    }

    #[test]
    fn a_full_queue_drops_its_oldest_event_and_counts_it() {
        let seen = Arc::new(Collect::default());
        let mut cfg = config(1);
        cfg.delivery.queue = 1;
        // No worker: nothing is taken from the queue.
        let n = Notifier::new(cfg, Observers::new(seen.clone()));
        for seq in 1..=3 {
            n.dispatch(record(seq, Phase::Intent, entry(Action::RolloutStart)));
        }
        assert_eq!(
            outcomes(&seen),
            [
                ("rollout-started".to_string(), "dropped"),
                ("rollout-started".to_string(), "dropped"),
            ]
        );
        let depths: Vec<u64> = seen
            .0
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|e| match e {
                Event::NotificationQueue { depth, .. } => Some(*depth),
                _ => None,
            })
            .collect();
        assert_eq!(depths, [1, 1, 1], "the queue never grows past its bound");
    }

    #[tokio::test]
    async fn following_the_trail_sends_new_records_only_once() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("audit.db");
        let writer = AuditStore::open(&path).expect("store");
        use tidegate_audit::AuditSink;
        writer
            .append(entry(Action::Quarantine))
            .expect("old record");
        let reader = Arc::new(AuditStore::open_read_only(&path).expect("reader"));
        let start = reader.len().expect("len");
        let transport = Arc::new(Scripted::default());
        let mut cfg = config(1);
        cfg.delivery.poll = Duration::from_millis(5);
        let n = Notifier::new(cfg, Observers::default());
        n.start(transport.clone());
        tokio::spawn(n.clone().follow(reader, start));
        let op = writer
            .begin_operation(entry(Action::RolloutStart))
            .expect("intent");
        writer
            .finish_operation(op, entry(Action::RolloutEnd).outcome(Outcome::Success))
            .expect("outcome");
        settle(&transport, 2).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            *transport.sent.lock().expect("lock"),
            [
                ("rollout-started".to_string(), 2),
                ("rollout-succeeded".to_string(), 3),
            ]
        );
    }
}
