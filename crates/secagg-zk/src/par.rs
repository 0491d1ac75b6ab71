//! Prover threads (VALIDATION.md §14.4 lever 1): the provers' large constant-time MSMs and
//! generator folds split their terms over a process-wide number of threads (std only; 1
//! without std, and 1 by default).
//!
//! Splitting changes no byte of any proof: an MSM's parts are summed in the group, a fold's
//! outputs are concatenated in order, and no randomness is drawn inside a split. Where the
//! split falls depends on the length and the thread count only, never on a secret.
//!
//! Why 1 by default: a process that proves for many clients at once (the simulator, a test)
//! already has a thread per client; a device proving its own update sets it to its cores
//! (`secagg client --prove-threads`).

use alloc::vec::Vec;
use core::ops::Range;

#[cfg(feature = "std")]
static THREADS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(1);

/// Most threads a split uses.
pub const MAX_THREADS: usize = 64;

/// Sets the provers' thread count for this process, clamped to 1..=[`MAX_THREADS`]; returns the
/// value in effect. Takes effect at the next MSM or fold; proofs are the same bytes whatever
/// the count. Without std there are no threads: it does nothing and returns 1.
pub fn set_prover_threads(n: usize) -> usize {
    #[cfg(feature = "std")]
    {
        let n = n.clamp(1, MAX_THREADS);
        THREADS.store(n, core::sync::atomic::Ordering::Relaxed);
        n
    }
    #[cfg(not(feature = "std"))]
    {
        let _ = n;
        1
    }
}

/// The provers' thread count (1 unless [`set_prover_threads`] changed it; always 1 without std).
pub fn prover_threads() -> usize {
    #[cfg(feature = "std")]
    {
        THREADS.load(core::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(not(feature = "std"))]
    {
        1
    }
}

/// `0..len` cut into `parts` contiguous ranges of near-equal length (the first ones longer).
fn split(len: usize, parts: usize) -> impl Iterator<Item = Range<usize>> {
    let (base, extra) = (len / parts, len % parts);
    (0..parts).scan(0, move |start, i| {
        let end = *start + base + usize::from(i < extra);
        let r = *start..end;
        *start = end;
        Some(r)
    })
}

/// How many parts a split of `len` items takes: at most [`prover_threads`], each of at least
/// `min_part` items, and at least one.
pub(crate) fn parts(len: usize, min_part: usize) -> usize {
    prover_threads().min(len / min_part.max(1)).max(1)
}

/// `f(range, slot)` for each of `slots.len()` contiguous parts of `0..len`, in order, each on
/// its own thread (the calling thread takes the first part; a part whose thread the OS refuses
/// runs on the calling thread). The results stay in the caller's slots, so a caller holding
/// secret partial results keeps them in memory it wipes (W3 of the threads review).
pub(crate) fn for_each_part<T: Send>(
    len: usize,
    slots: &mut [T],
    f: impl Fn(Range<usize>, &mut T) + Sync,
) {
    let n = slots.len().max(1);
    if n == 1 {
        if let Some(slot) = slots.first_mut() {
            f(0..len, slot);
        }
        return;
    }
    run(split(len, n).zip(slots.iter_mut()), &f);
}

/// `f` on contiguous parts of `0..len` (see [`parts`]), results in order.
pub(crate) fn map_parts<T: Send>(
    len: usize,
    min_part: usize,
    f: impl Fn(Range<usize>) -> T + Sync,
) -> Vec<T> {
    let mut slots: Vec<Option<T>> = (0..parts(len, min_part)).map(|_| None).collect();
    for_each_part(len, &mut slots, |r, slot| *slot = Some(f(r)));
    // Every slot was filled: for_each_part calls f once per slot before it returns.
    slots.into_iter().flatten().collect()
}

#[cfg(feature = "std")]
fn run<'a, T: Send + 'a>(
    jobs: impl Iterator<Item = (Range<usize>, &'a mut T)>,
    f: &(impl Fn(Range<usize>, &mut T) + Sync),
) {
    use std::sync::Mutex;
    type Cell<'a, T> = Mutex<Option<(Range<usize>, &'a mut T)>>;
    // Each job sits in a cell the thread takes it from, so that a part whose thread could not
    // be started is still there for the calling thread to run.
    let jobs: Vec<Cell<'a, T>> = jobs.map(|j| Mutex::new(Some(j))).collect();
    let take = |cell: &Cell<'a, T>| match cell.lock() {
        Ok(mut g) => g.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    };
    let run_cell = |cell| {
        if let Some((r, slot)) = take(cell) {
            f(r, slot);
        }
    };
    std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(jobs.len());
        for cell in jobs.iter().skip(1) {
            // A refused thread (a process or container thread limit) costs speed, not the proof.
            match std::thread::Builder::new().spawn_scoped(s, || run_cell(cell)) {
                Ok(h) => handles.push(h),
                Err(_) => run_cell(cell),
            }
        }
        if let Some(cell) = jobs.first() {
            run_cell(cell);
        }
        for h in handles {
            // A part panicked (a bug, never input-driven: the parts run the same code as one
            // thread would): carry the panic to the caller as one thread would.
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p);
            }
        }
    });
}

#[cfg(not(feature = "std"))]
fn run<'a, T: Send + 'a>(
    jobs: impl Iterator<Item = (Range<usize>, &'a mut T)>,
    f: &(impl Fn(Range<usize>, &mut T) + Sync),
) {
    for (r, slot) in jobs {
        f(r, slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_range_in_order_without_overlap() {
        for len in [0usize, 1, 5, 64, 1000, 1001] {
            for parts in 1..=7 {
                let rs: Vec<_> = split(len, parts).collect();
                assert_eq!(rs.len(), parts);
                assert_eq!(rs[0].start, 0);
                assert_eq!(rs[parts - 1].end, len);
                for w in rs.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                    assert!(w[0].len() >= w[1].len() && w[0].len() - w[1].len() <= 1);
                }
            }
        }
    }

    #[test]
    fn small_inputs_stay_on_one_part() {
        let got = map_parts(10, 8, |r| r);
        assert_eq!(got, alloc::vec![0..10]);
    }

    #[cfg(feature = "std")]
    #[test]
    fn parts_run_on_their_own_threads_and_come_back_in_order() {
        assert_eq!(set_prover_threads(0), 1);
        assert_eq!(set_prover_threads(1000), MAX_THREADS);
        set_prover_threads(3);
        let caller = std::thread::current().id();
        let got = map_parts(300, 8, |r| (r, std::thread::current().id()));
        set_prover_threads(1);
        let ranges: Vec<_> = got.iter().map(|(r, _)| r.clone()).collect();
        assert_eq!(ranges, alloc::vec![0..100, 100..200, 200..300]);
        assert_eq!(got[0].1, caller);
        assert!(got[1..].iter().all(|(_, id)| *id != caller));
        assert_ne!(got[1].1, got[2].1);
    }
}
