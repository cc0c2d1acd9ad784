//! Fetching now instead of at the next interval (webhooks, tests).

use tokio::sync::broadcast;

/// A handle that makes the controller fetch its source now. Cheap to
/// clone; every clone reaches the same controller.
#[derive(Debug, Clone)]
pub struct Trigger {
    sender: broadcast::Sender<Option<String>>,
}

/// The controller's end of a [`Trigger`].
#[derive(Debug)]
pub struct TriggerReceiver {
    receiver: broadcast::Receiver<Option<String>>,
}

impl Trigger {
    /// A trigger and the receiver the controller listens on.
    pub fn new() -> (Trigger, TriggerReceiver) {
        let (sender, receiver) = broadcast::channel(64);
        (Trigger { sender }, TriggerReceiver { receiver })
    }

    /// Fetches every environment's source now.
    pub fn fetch_all(&self) {
        // No receiver means the controller has stopped: nothing to do.
        let _ = self.sender.send(None);
    }

    /// Fetches one environment's source now.
    pub fn fetch(&self, environment: &str) {
        let _ = self.sender.send(Some(environment.to_string()));
    }

    /// Another receiver (one per environment loop).
    pub fn subscribe(&self) -> TriggerReceiver {
        TriggerReceiver {
            receiver: self.sender.subscribe(),
        }
    }
}

impl TriggerReceiver {
    /// The fetches asked for and not received yet, without waiting: an
    /// environment's name, or `None` for every environment.
    pub fn drain(&mut self) -> Vec<Option<String>> {
        let mut out = Vec::new();
        loop {
            match self.receiver.try_recv() {
                Ok(wanted) => out.push(wanted),
                Err(broadcast::error::TryRecvError::Lagged(_)) => out.push(None),
                Err(_) => return out,
            }
        }
    }

    /// Waits until a fetch of `environment` (or of every environment) is
    /// asked for. Never returns once every [`Trigger`] is dropped.
    pub async fn wanted(&mut self, environment: &str) {
        loop {
            match self.receiver.recv().await {
                Ok(None) => return,
                Ok(Some(e)) if e == environment => return,
                Ok(Some(_)) => {}
                // Missed some: fetching once covers all of them.
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_trigger_reaches_its_environment_and_not_others() {
        let (trigger, mut prod) = Trigger::new();
        let mut dev = trigger.subscribe();
        trigger.fetch("prod");
        tokio::time::timeout(Duration::from_secs(1), prod.wanted("prod"))
            .await
            .expect("prod was asked to fetch");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), dev.wanted("dev"))
                .await
                .is_err(),
            "dev was not asked"
        );
        trigger.fetch_all();
        tokio::time::timeout(Duration::from_secs(1), dev.wanted("dev"))
            .await
            .expect("fetch_all reaches dev");
    }
}
