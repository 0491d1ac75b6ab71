//! Board support for the secagg device client on an STM32F405 (QEMU `-M netduinoplus2`): a
//! bounded heap with its peak, stack painting, an instruction counter, the host link through
//! semihosting (log, exit, QEMU's entropy), the RNG peripheral, the CSPRNG, the largest
//! round the RAM holds, and USART1 for the gateway.
//!
//! The protocol itself is `secagg-core`'s client state machine, unchanged.
//!
//! The parts that are plain logic (entropy conditioning and health checks, the CSPRNG, the
//! capacity bound, framing) also build for the host, where their unit tests run:
//! `cargo test --lib --target x86_64-unknown-linux-gnu`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod capacity;
#[cfg(target_os = "none")]
pub mod clock;
#[cfg(target_os = "none")]
pub mod driver;
pub mod frame;
pub mod heap;
pub mod host;
pub mod input;
#[cfg(target_os = "none")]
pub mod kat;
pub mod rng;
#[cfg(target_os = "none")]
pub mod stack;
pub mod trng;
pub mod uart;

/// Brings up the heap, paints the stack and starts the instruction counter. Call first.
#[cfg(target_os = "none")]
pub fn init() {
    heap::init();
    stack::paint();
    clock::start();
}

/// Peak working RAM so far: heap high-water mark plus stack high-water mark.
#[cfg(target_os = "none")]
pub fn ram_peak() -> usize {
    heap::peak() + stack::peak()
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    cortex_m_semihosting::heprintln!("device panic: {}", info);
    host::exit(false)
}
