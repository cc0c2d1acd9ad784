//! Where a command's output goes: the terminal, or (server mode) back to
//! the client that asked the controller to run it.
//!
//! Commands write through [`outln!`]/[`errln!`] (and [`out!`]/[`err!`])
//! instead of `println!`/`eprintln!`. Standalone, they print. When the
//! controller runs a command for an API client, the command runs on a
//! thread of its own with a single-threaded runtime, and [`capture`]
//! installs for that thread a [`Capture`]: the output is sent to the client
//! as it is written, and [`actor`] is the caller's authenticated identity
//! instead of the local Unix user. One rendering path for both modes: the
//! same command code produces the same text.

use std::cell::RefCell;
use tidegate_audit::{Actor, Trigger};
use tidegate_auth::Identity;
use tidegate_controller::{Event, Observers};

/// Which of the two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

/// Output sent elsewhere, and who is acting, for the current thread.
pub struct Capture {
    /// Receives every piece of output.
    pub send: Box<dyn Fn(Stream, String)>,
    /// The authenticated caller: the audit actor of every change.
    pub who: Identity,
    /// The controller's observers, told of what the command does that the
    /// controller's own loops never do (a blue-green switch).
    pub observers: Observers,
}

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

/// Installs `capture` for the current thread (until the thread ends).
pub fn capture(capture: Capture) {
    CAPTURE.with(|c| *c.borrow_mut() = Some(capture));
}

/// True when output is captured (server mode): no progress bars, no
/// terminal checks.
pub fn captured() -> bool {
    CAPTURE.with(|c| c.borrow().is_some())
}

/// Writes `text` to `stream`: printed standalone, sent when captured.
pub fn write(stream: Stream, text: String) {
    let sent = CAPTURE.with(|c| match &*c.borrow() {
        Some(capture) => {
            (capture.send)(stream, text.clone());
            true
        }
        None => false,
    });
    if !sent {
        match stream {
            Stream::Out => print!("{text}"),
            Stream::Err => eprint!("{text}"),
        }
    }
}

/// Writes `text` to standard output (or sends it), reporting write errors
/// (a closed pipe) instead of panicking.
pub fn write_stdout(text: &str) -> std::io::Result<()> {
    if captured() {
        write(Stream::Out, text.to_string());
        return Ok(());
    }
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Who acts, for the audit trail: the API caller when captured, else the
/// local Unix user.
pub fn actor(trigger: Trigger) -> Actor {
    CAPTURE.with(|c| match &*c.borrow() {
        Some(capture) => capture.who.actor(Trigger::Api),
        None => Actor::local_user(trigger),
    })
}

/// Tells the controller's observers of `event` when the command runs in
/// the controller for an API caller; standalone, there is nobody to tell.
pub fn observe(event: Event) {
    CAPTURE.with(|c| {
        if let Some(capture) = &*c.borrow() {
            capture.observers.emit(event);
        }
    });
}

/// `println!` through the sink.
macro_rules! outln {
    () => {
        $crate::sink::write($crate::sink::Stream::Out, "\n".to_string())
    };
    ($($arg:tt)*) => {
        $crate::sink::write($crate::sink::Stream::Out, format!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through the sink.
#[allow(unused_macros)]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::sink::write($crate::sink::Stream::Out, format!($($arg)*))
    };
}

/// `eprintln!` through the sink.
macro_rules! errln {
    () => {
        $crate::sink::write($crate::sink::Stream::Err, "\n".to_string())
    };
    ($($arg:tt)*) => {
        $crate::sink::write($crate::sink::Stream::Err, format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` through the sink.
#[allow(unused_macros)]
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::sink::write($crate::sink::Stream::Err, format!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn captured_output_and_actor_belong_to_the_capturing_thread_only() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            capture(Capture {
                send: Box::new(move |s, t| sink.lock().expect("lock").push((s, t))),
                who: Identity::token("alice"),
                observers: Observers::default(),
            });
            outln!("a {}", 1);
            err!("b");
            errln!();
            let actor = actor(Trigger::Cli);
            assert_eq!(actor.identity, "alice");
            assert_eq!(actor.trigger, Trigger::Api);
            assert!(actor.authenticated.is_some());
        })
        .join()
        .expect("thread");
        assert_eq!(
            *seen.lock().expect("lock"),
            [
                (Stream::Out, "a 1\n".to_string()),
                (Stream::Err, "b".to_string()),
                (Stream::Err, "\n".to_string())
            ]
        );
        assert!(!captured());
        assert!(actor(Trigger::Cli).authenticated.is_none());
    }
}
