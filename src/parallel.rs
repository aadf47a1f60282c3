//! The one way pkgr runs blocking work on all cores: [`try_map`] and [`try_map_init`]
//! hand a slice's items to one scoped thread per core and give back each item's
//! result in the slice's order.
//!
//! Error policy, the same for every caller: the first failure stops the run. Once an
//! item has failed (or its worker panicked) no other item starts; items already
//! running finish, since a read in flight stops at its own pace (through
//! [`crate::cancel::Cancellable`]). The error returned is that of the earliest item,
//! in the slice's order, that failed. A panic is never raised again here: it comes
//! back as [`Stopped::Panicked`], a bug that each caller reports as an internal error.
//!
//! Why not rayon: it would be a new dependency for four loops; its global pool would
//! sit beside zstd's own threads; its `try_` methods do not promise which error comes
//! back; and its scopes raise a worker's panic again on the calling thread, where pkgr
//! wants an error. The work here is whole files hashed or compressed, so a shared
//! counter over the slice is all the scheduling it needs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Workers when the number of cores cannot be learnt: one can hash while the other
/// waits on the disk.
const DEFAULT_WORKERS: usize = 2;

/// How many items run at once: one per core.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(DEFAULT_WORKERS, usize::from)
}

/// Why a run stopped before every item was done.
#[derive(Debug)]
pub enum Stopped<E> {
    /// The error of the earliest failed item.
    Failed(E),
    /// A worker panicked: a bug in pkgr.
    Panicked(Panicked),
}

impl<E> Stopped<E> {
    /// The item's error, or the panic raised again, for a caller that runs on a
    /// blocking task whose join already reports a panic as an internal error.
    pub fn or_resume_panic(self) -> E {
        match self {
            Self::Failed(e) => e,
            Self::Panicked(Panicked { message }) => std::panic::resume_unwind(Box::new(message)),
        }
    }
}

/// A worker thread panicked while it ran an item.
#[derive(Debug, thiserror::Error)]
#[error("a worker thread panicked: {message}")]
pub struct Panicked {
    pub message: String,
}

/// Runs `work` on every item, one per core at a time; returns each result in the
/// order of `items`, or stops as the module doc says.
pub fn try_map<T, R, E>(
    items: &[T],
    work: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, Stopped<E>>
where
    T: Sync,
    R: Send,
    E: Send,
{
    try_map_init(items, || (), |(), item| work(item))
}

/// [`try_map`] with a value each worker makes once with `init` and lends to every
/// item it runs, such as a read buffer.
pub fn try_map_init<T, S, R, E>(
    items: &[T],
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, &T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, Stopped<E>>
where
    T: Sync,
    R: Send,
    E: Send,
{
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<R, E>>>> =
        Mutex::new(items.iter().map(|_| None).collect());
    let run_items = || {
        // Set when this worker unwinds, so that no other item starts after a panic.
        let _stop_on_panic = StopOnPanic(&next, items.len());
        let mut state = init();
        while let Some((i, item)) = claim(&next, items) {
            let result = work(&mut state, item);
            let failed = result.is_err();
            lock(&results)[i] = Some(result);
            if failed {
                next.store(items.len(), Ordering::Relaxed);
            }
        }
    };
    let panics: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers().min(items.len()))
            .map(|_| scope.spawn(run_items))
            .collect();
        // Joined here, not by the scope, so that a panic comes back as a value.
        handles
            .into_iter()
            .filter_map(|handle| handle.join().err().map(panic_message))
            .collect()
    });
    if let Some(message) = panics.into_iter().next() {
        return Err(Stopped::Panicked(Panicked { message }));
    }
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut out = Vec::with_capacity(items.len());
    for result in results {
        match result {
            Some(Ok(value)) => out.push(value),
            Some(Err(e)) => return Err(Stopped::Failed(e)),
            // Only items after a failure are skipped, and that failure came first.
            None => unreachable!("an item was skipped although none failed"),
        }
    }
    Ok(out)
}

/// The next item no worker has taken yet, with its place in the slice.
fn claim<'a, T>(next: &AtomicUsize, items: &'a [T]) -> Option<(usize, &'a T)> {
    let i = next.fetch_add(1, Ordering::Relaxed);
    items.get(i).map(|item| (i, item))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

struct StopOnPanic<'a>(&'a AtomicUsize, usize);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(self.1, Ordering::Relaxed);
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => (*message).to_owned(),
            Err(_) => "(no message)".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_the_items_order() {
        let items: Vec<u64> = (0..1000).collect();
        let doubled = try_map(&items, |n| Ok::<_, ()>(n * 2)).unwrap();
        assert_eq!(doubled, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        assert!(try_map(&[] as &[u8], |_| Ok::<u8, ()>(0))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn the_earliest_failed_item_is_the_error() {
        let items: Vec<u64> = (0..200).collect();
        // Which failures are reached depends on timing; the earliest one reached is
        // the one returned, and nothing before 7 fails.
        match try_map(&items, |&n| if n % 50 == 7 { Err(n) } else { Ok(n) }) {
            Err(Stopped::Failed(n)) => assert_eq!(n % 50, 7),
            other => panic!("expected a failure, got {other:?}"),
        }
        let err = try_map(&[1, 2, 3], |&n| if n == 2 { Err(n) } else { Ok(n) }).unwrap_err();
        assert!(matches!(err, Stopped::Failed(2)));
    }

    #[test]
    fn no_item_starts_after_a_failure() {
        let started = AtomicUsize::new(0);
        let items: Vec<u64> = (0..10_000).collect();
        let _ = try_map(&items, |&n| {
            started.fetch_add(1, Ordering::Relaxed);
            if n == 0 {
                return Err(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            Ok(())
        });
        // Item 0 fails at once; the others take a millisecond each, so only the few
        // that other workers had taken by then also run.
        assert!(started.load(Ordering::Relaxed) < 1000);
    }

    #[test]
    fn a_panic_comes_back_as_a_value() {
        let result = try_map(&[1, 2, 3], |&n| {
            if n == 2 {
                panic!("item {n}");
            }
            Ok::<_, ()>(n)
        });
        match result {
            Err(Stopped::Panicked(panicked)) => assert_eq!(panicked.message, "item 2"),
            other => panic!("expected a panic, got {other:?}"),
        }
    }

    #[test]
    fn each_worker_makes_its_state_once() {
        let made = AtomicUsize::new(0);
        let items: Vec<u64> = (0..100).collect();
        let sums = try_map_init(
            &items,
            || {
                made.fetch_add(1, Ordering::Relaxed);
                vec![0u8; 16]
            },
            |buf, &n| Ok::<_, ()>(buf.len() as u64 + n),
        )
        .unwrap();
        assert_eq!(sums[99], 115);
        assert!(made.load(Ordering::Relaxed) <= workers().min(items.len()));
    }
}
