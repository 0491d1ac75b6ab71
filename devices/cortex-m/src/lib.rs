//! Board support for the secagg device client on an STM32F405 (QEMU `-M netduinoplus2`): a
//! bounded heap with its peak, stack painting, an instruction counter, the host link through
//! semihosting (log, exit, entropy) and USART1 for the gateway.
//!
//! The protocol itself is `secagg-core`'s client state machine, unchanged.
#![no_std]

extern crate alloc;

pub mod clock;
pub mod driver;
pub mod frame;
pub mod heap;
pub mod host;
pub mod input;
pub mod kat;
pub mod stack;
pub mod uart;

use core::panic::PanicInfo;

/// Brings up the heap, paints the stack and starts the instruction counter. Call first.
pub fn init() {
    heap::init();
    stack::paint();
    clock::start();
}

/// Peak working RAM so far: heap high-water mark plus stack high-water mark.
pub fn ram_peak() -> usize {
    heap::peak() + stack::peak()
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    cortex_m_semihosting::heprintln!("device panic: {}", info);
    host::exit(false)
}
