//! The heap: a fixed arena in .bss behind a first-fit allocator, wrapped to record its
//! high-water mark (what the RAM figure reports).

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

use embedded_alloc::LlffHeap;

/// Arena size: the client's working set must fit in it (the RAM goal is 64 KiB of heap plus
/// stack for k ≤ 32; the arena is larger so that a run over the goal is measured, not killed).
pub const ARENA_BYTES: usize = 96 * 1024;

#[cfg(target_os = "none")]
static mut ARENA: [core::mem::MaybeUninit<u8>; ARENA_BYTES] =
    [core::mem::MaybeUninit::uninit(); ARENA_BYTES];
static INNER: LlffHeap = LlffHeap::empty();
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Tracking;

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the allocator, which upholds GlobalAlloc.
        let p = unsafe { INNER.alloc(layout) };
        PEAK.fetch_max(INNER.used(), Ordering::Relaxed);
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { INNER.dealloc(ptr, layout) }
    }
}

// The firmware's allocator; host builds (unit tests) keep the system's.
#[cfg_attr(target_os = "none", global_allocator)]
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
static HEAP: Tracking = Tracking;

#[cfg(target_os = "none")]
pub(crate) fn init() {
    // SAFETY: called once, before the first allocation; the arena is used by nothing else.
    unsafe { INNER.init(core::ptr::addr_of_mut!(ARENA) as usize, ARENA_BYTES) }
}

/// Bytes in use now (allocations plus the allocator's rounding).
pub fn used() -> usize {
    INNER.used()
}

/// The most bytes ever in use at once.
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Restarts the high-water mark at what is in use now (to measure one stage).
pub fn reset_peak() {
    PEAK.store(INNER.used(), Ordering::Relaxed);
}
