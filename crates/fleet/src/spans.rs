//! The tracing spans of one rollout: a `wave` span per wave under the
//! rollout's span (which names the environment and the revision), and a
//! `cluster` span per command or health read under its wave's span, so every
//! log line of a cluster's apply, rollback or health read says which
//! environment, revision, wave and cluster it belongs to.

use std::collections::BTreeMap;
use tidegate_rollout::machine::FleetRollout;
use tracing::{Span, info_span};

/// The wave spans of one rollout, opened when a wave's first cluster is
/// worked on and kept until the rollout ends.
pub(crate) struct Spans {
    rollout: Span,
    waves: BTreeMap<u32, Span>,
}

impl Spans {
    /// Spans under `rollout` (the span the driver runs in).
    pub(crate) fn new(rollout: Span) -> Spans {
        Spans {
            rollout,
            waves: BTreeMap::new(),
        }
    }

    /// The span of `wave`, opened on first use.
    pub(crate) fn wave(&mut self, wave: u32) -> Span {
        self.waves
            .entry(wave)
            .or_insert_with(|| info_span!(parent: &self.rollout, "wave", wave))
            .clone()
    }

    /// A span for work on `cluster`, under its wave's span (under the
    /// rollout's when the machine does not know the cluster).
    pub(crate) fn cluster(&mut self, machine: &FleetRollout, cluster: &str) -> Span {
        match machine
            .clusters()
            .find(|v| v.name == cluster)
            .map(|v| v.wave)
        {
            Some(wave) => {
                let parent = self.wave(wave);
                info_span!(parent: &parent, "cluster", cluster = %cluster, wave)
            }
            None => info_span!(parent: &self.rollout, "cluster", cluster = %cluster),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tidegate_core::environment::Rollout;
    use tidegate_rollout::{
        machine::{ClusterStart, RolloutConfig},
        plan_fleet,
    };
    use tracing::{
        Subscriber,
        span::{Attributes, Id},
    };
    use tracing_subscriber::{Layer, layer::Context, prelude::*, registry::LookupSpan};

    /// Records every new span as "name{fields} < parent names".
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<String>>>);

    struct Fields(String);
    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!("{}={value:?} ", field.name()));
        }
    }

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorded {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            let mut fields = Fields(String::new());
            attrs.record(&mut fields);
            let parents: Vec<String> = ctx
                .span_scope(id)
                .map(|scope| scope.skip(1).map(|s| s.name().to_string()).collect())
                .unwrap_or_default();
            self.0.lock().expect("lock").push(format!(
                "{}{{{}}} < {}",
                attrs.metadata().name(),
                fields.0.trim_end(),
                parents.join(" < ")
            ));
        }
    }

    #[test]
    fn cluster_spans_sit_in_their_wave_span_inside_the_rollout_span() {
        let recorded = Recorded::default();
        let subscriber = tracing_subscriber::registry().with(recorded.clone());
        tracing::subscriber::with_default(subscriber, || {
            let plan =
                plan_fleet([("a", Some(1)), ("b", Some(2))], &Rollout::default()).expect("plan");
            let starts: Vec<(String, ClusterStart)> = ["a", "b"]
                .iter()
                .map(|c| {
                    (
                        c.to_string(),
                        ClusterStart {
                            current_revision: None,
                            last_good_revision: None,
                            health: tidegate_health::HealthStatus::Healthy,
                            drifted: true,
                            unknown_state: false,
                        },
                    )
                })
                .collect();
            let machine =
                FleetRollout::new(&plan, RolloutConfig::from_plan(&plan, "abc123"), starts)
                    .expect("machine");
            let rollout = info_span!("rollout", environment = "prod", revision = "abc123");
            let mut spans = Spans::new(rollout);
            let _a = spans.cluster(&machine, "a");
            let _a_again = spans.cluster(&machine, "a");
            let _b = spans.cluster(&machine, "b");
            let _gone = spans.cluster(&machine, "not-in-the-plan");
        });
        let spans = recorded.0.lock().expect("lock").clone();
        assert_eq!(
            spans,
            vec![
                "rollout{environment=\"prod\" revision=\"abc123\"} < ",
                "wave{wave=1} < rollout",
                "cluster{cluster=a wave=1} < wave < rollout",
                "cluster{cluster=a wave=1} < wave < rollout",
                "wave{wave=2} < rollout",
                "cluster{cluster=b wave=2} < wave < rollout",
                "cluster{cluster=not-in-the-plan} < rollout",
            ]
        );
    }
}
