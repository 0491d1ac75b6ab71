//! Instruction counter. QEMU runs with `-icount shift=0`, so its virtual clock advances 1 ns
//! per guest instruction, and QEMU's STM32 TIM2 model counts that clock at 1 GHz with the
//! prescaler at 0: one count per instruction. A boot-time check on a loop of known length
//! ([`calibration`]) confirms it. On real silicon TIM2 counts its APB clock instead, so the
//! figures there would be timer ticks, not instructions.

use core::sync::atomic::{AtomicU32, Ordering};

const TIM2: usize = 0x4000_0000;
const CR1: *mut u32 = TIM2 as *mut u32;
const CNT: *const u32 = (TIM2 + 0x24) as *const u32;
const PSC: *mut u32 = (TIM2 + 0x28) as *mut u32;
const ARR: *mut u32 = (TIM2 + 0x2C) as *mut u32;

/// The 32-bit counter extended to 64 bits by the readers (a read at least every 2^32
/// instructions, about 4 s of emulated time, keeps it exact).
static HIGH: AtomicU32 = AtomicU32::new(0);
static LAST: AtomicU32 = AtomicU32::new(0);
/// Counts per instruction × 1000, measured at boot.
static CALIBRATION: AtomicU32 = AtomicU32::new(0);

/// Exactly `2 * n + 1` instructions (`subs` and a taken `bne` per turn, a final untaken one).
#[inline(never)]
fn known_loop(n: u32) {
    // SAFETY: touches only the scratch register it declares.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {0}, {0}, #1",
            "bne 2b",
            inout(reg) n => _,
            options(nomem, nostack),
        );
    }
}

pub(crate) fn start() {
    // SAFETY: TIM2's registers, owned by this module alone; free-running up-counter.
    unsafe {
        PSC.write_volatile(0);
        ARR.write_volatile(u32::MAX);
        CR1.write_volatile(1);
    }
    let n = 1_000_000u32;
    let t0 = instructions();
    known_loop(n);
    let dt = instructions() - t0;
    CALIBRATION.store(
        (dt * 1000 / (2 * u64::from(n) + 1)) as u32,
        Ordering::Relaxed,
    );
}

/// Instructions since boot.
pub fn instructions() -> u64 {
    // SAFETY: as in start.
    let now = unsafe { CNT.read_volatile() };
    let last = LAST.swap(now, Ordering::Relaxed);
    if now < last {
        HIGH.fetch_add(1, Ordering::Relaxed);
    }
    (u64::from(HIGH.load(Ordering::Relaxed)) << 32) | u64::from(now)
}

/// Counter counts per instruction × 1000 on the known loop (1000 when the counter counts
/// instructions exactly; a few more for the two reads around the loop).
pub fn calibration() -> u32 {
    CALIBRATION.load(Ordering::Relaxed)
}
