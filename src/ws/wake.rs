//! Which of a session's sources woke it, so that a wake-up polls only those.
//!
//! A session waits on many sources at once, and `select!` polls every one of them on every
//! wake-up. Most wake-ups are a bus event; polling the others each time costs real work per
//! (socket, event): the socket's read path in tungstenite and tokio, and the locks of the
//! user-notice channel and of the shutdown token. A [`WakeFlag`] hands its source a waker
//! of its own that records the wake and then wakes the task, so the session polls that
//! source again only after it has signalled.

use futures_util::task::AtomicWaker;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// One source's "woken since last polled" flag, with the waker the source is polled with.
pub struct WakeFlag {
    inner: Arc<Inner>,
    /// The waker the source is polled with (made once: polling clones nothing).
    waker: Waker,
}

struct Inner {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Inner {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl WakeFlag {
    /// A flag that starts raised: the first poll always reaches the source.
    pub fn new() -> Self {
        let inner = Arc::new(Inner {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(Arc::clone(&inner));
        Self { inner, waker }
    }

    /// Polls the source with `poll` if it signalled since it was last found pending; else
    /// `Pending` without touching it. Either way the task is woken when the source signals.
    pub fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        // Register before reading the flag, so a wake between the two is never lost.
        self.inner.task.register(cx.waker());
        if !self.inner.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let result = poll(&mut Context::from_waker(&self.waker));
        if result.is_ready() {
            // A source that produced something may have more: poll it next time too.
            self.inner.woken.store(true, Ordering::Release);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    #[test]
    fn polls_a_source_only_after_it_signalled() {
        let flag = WakeFlag::new();
        let mut cx = Context::from_waker(Waker::noop());
        let polls = Cell::new(0);
        let kept = RefCell::new(None);
        let pending_source = |cx: &mut Context<'_>| {
            polls.set(polls.get() + 1);
            *kept.borrow_mut() = Some(cx.waker().clone());
            Poll::<()>::Pending
        };
        assert!(flag.poll(&mut cx, pending_source).is_pending());
        assert!(flag.poll(&mut cx, pending_source).is_pending());
        assert_eq!(polls.get(), 1, "not polled again before it signalled");
        kept.take().expect("the source kept our waker").wake();
        assert!(flag.poll(&mut cx, pending_source).is_pending());
        assert_eq!(polls.get(), 2, "polled again once it signalled");
    }

    #[test]
    fn a_source_that_was_ready_is_polled_again() {
        let flag = WakeFlag::new();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(flag.poll(&mut cx, |_| Poll::Ready(1)).is_ready());
        assert_eq!(flag.poll(&mut cx, |_| Poll::Ready(2)), Poll::Ready(2));
    }
}
