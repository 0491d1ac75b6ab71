//! Stack painting: the free stack is filled with a pattern at boot; the lowest word that no
//! longer holds it is the deepest the stack has reached.

const PAINT: u32 = 0xC0FF_EE5A;

unsafe extern "C" {
    // cortex-m-rt: end of .bss (the stack grows down towards it) and the initial SP.
    static mut __ebss: u32;
    static _stack_start: u32;
}

fn bottom() -> *mut u32 {
    core::ptr::addr_of_mut!(__ebss)
}

fn top() -> usize {
    core::ptr::addr_of!(_stack_start) as usize
}

/// Paints from the end of .bss up to a little below the current stack pointer.
pub(crate) fn paint() {
    let sp = cortex_m::register::msp::read() as usize - 64;
    let mut p = bottom();
    while (p as usize) < sp {
        // SAFETY: [__ebss, sp) is free stack below every live frame; nothing else uses it.
        unsafe {
            p.write_volatile(PAINT);
            p = p.add(1);
        }
    }
}

/// Bytes of stack ever used: from the top down to the lowest repainted word.
pub fn peak() -> usize {
    let mut p = bottom();
    // SAFETY: reads within the stack region painted above.
    while (p as usize) < top() && unsafe { p.read_volatile() } == PAINT {
        p = unsafe { p.add(1) };
    }
    top() - p as usize
}

/// Bytes of stack the region has at most (what the arena and statics leave of the RAM).
pub fn capacity() -> usize {
    top() - bottom() as usize
}
