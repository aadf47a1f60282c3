//! The order transfers start in: push's and publish's uploads, and the layers pull
//! fetches again to name a damaged one. A package read in one pass is read in the
//! order of its blobs, one at a time. A package read at offsets starts the largest
//! blobs first, so that no large upload is left to run alone at the end, and a slot
//! freed by a finished upload is taken at once rather than held until every blob
//! started before it has finished too. Either way the outcomes come back in the items'
//! own order, so a report (and the error chosen from several) does not depend on which
//! upload finished first.

use std::cmp::Reverse;
use std::future::Future;

use futures_util::stream::{self, StreamExt};

/// Runs `upload` on every item of `items` (in the package's order), at most
/// `concurrency` at once when `random_access`, else one at a time; returns each
/// outcome in the order of `items`.
pub(crate) async fn largest_first<'a, T, R, Fut>(
    items: &'a [T],
    random_access: bool,
    concurrency: usize,
    size: impl Fn(&T) -> u64,
    upload: impl Fn(&'a T) -> Fut,
) -> Vec<R>
where
    Fut: Future<Output = R>,
{
    let mut starts: Vec<usize> = (0..items.len()).collect();
    let at_once = if random_access {
        starts.sort_by_key(|&i| Reverse(size(&items[i])));
        concurrency.max(1)
    } else {
        1
    };
    let mut outcomes: Vec<(usize, R)> = stream::iter(starts)
        .map(|i| {
            let outcome = upload(&items[i]);
            async move { (i, outcome.await) }
        })
        .buffer_unordered(at_once)
        .collect()
        .await;
    outcomes.sort_by_key(|(i, _)| *i);
    outcomes.into_iter().map(|(_, outcome)| outcome).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// Items are sizes; each upload takes as many milliseconds as its size and notes
    /// when it started.
    async fn run(random_access: bool, concurrency: usize) -> (Vec<u64>, Vec<u64>) {
        let sizes = [1, 30, 2, 20];
        let started = Mutex::new(Vec::new());
        let outcomes = largest_first(
            &sizes,
            random_access,
            concurrency,
            |s| *s,
            |&s| {
                started.lock().unwrap().push(s);
                async move {
                    tokio::time::sleep(Duration::from_millis(s)).await;
                    s
                }
            },
        )
        .await;
        (started.into_inner().unwrap(), outcomes)
    }

    #[tokio::test(start_paused = true)]
    async fn at_offsets_the_largest_start_first_and_outcomes_keep_the_items_order() {
        let (started, outcomes) = run(true, 2).await;
        assert_eq!(started, [30, 20, 2, 1]);
        assert_eq!(outcomes, [1, 30, 2, 20]);
    }

    #[tokio::test(start_paused = true)]
    async fn in_one_pass_each_starts_in_turn() {
        let (started, outcomes) = run(false, 8).await;
        assert_eq!(started, [1, 30, 2, 20]);
        assert_eq!(outcomes, [1, 30, 2, 20]);
    }
}
