//! The host side of the debug link (ARM semihosting): log lines, the exit status, and the
//! entropy that seeds the device's CSPRNG.
//!
//! **What stands in for the hardware RNG:** QEMU does not emulate the STM32F405's TRNG
//! (RNG_DR at 0x5006_0808), so the firmware reads 32 bytes of the host's `/dev/urandom`
//! through semihosting (`SYS_OPEN`/`SYS_READ`, carried by QEMU, never by the gateway). On a
//! real board this function reads the RNG peripheral instead; everything after it is the same.

use cortex_m_semihosting::{debug, nr, syscall};

/// Ends the program (QEMU exits with status 0 or 1).
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}

/// 32 bytes from the entropy source, or `None` if the host refuses.
pub fn entropy() -> Option<[u8; 32]> {
    const PATH: &[u8] = b"/dev/urandom\0";
    let mut out = [0u8; 32];
    // SAFETY: semihosting calls with a NUL-terminated path and a buffer we own.
    unsafe {
        let fd = syscall!(OPEN, PATH.as_ptr(), nr::open::R_BINARY, PATH.len() - 1) as isize;
        if fd < 0 {
            return None;
        }
        let left = syscall!(READ, fd, out.as_mut_ptr(), out.len());
        syscall!(CLOSE, fd);
        if left != 0 {
            return None;
        }
    }
    Some(out)
}
