//! The host side of the debug link (ARM semihosting): log lines, the exit status, and, under
//! QEMU only, the entropy that seeds the device's CSPRNG.
//!
//! **What stands in for the hardware RNG under QEMU:** QEMU's `netduinoplus2` does not emulate
//! the STM32F405's RNG (its registers read as zero), so with the `qemu` feature (which
//! `scripts/device-round.sh` enables) the firmware reads 256 bytes of the host's
//! `/dev/urandom` through semihosting (`SYS_OPEN`/`SYS_READ`, carried by QEMU, never by the
//! gateway) and conditions them as it would the RNG's words ([`crate::trng::condition`]).
//! Without the feature the firmware reads the RNG peripheral ([`crate::trng`]): on a board
//! without a debugger a semihosting call would fault, and with one the host serving it might
//! be the gateway's.

use cortex_m_semihosting::debug;

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

/// [`crate::trng::WORDS`] words of the host's /dev/urandom, or `None` if the host refuses
/// or returns fewer bytes.
#[cfg(feature = "qemu")]
pub fn entropy_words() -> Option<[u32; crate::trng::WORDS]> {
    use cortex_m_semihosting::{nr, syscall};
    use zeroize::Zeroize;
    const PATH: &[u8] = b"/dev/urandom\0";
    let mut bytes = [0u8; 4 * crate::trng::WORDS];
    // SAFETY: semihosting calls with a NUL-terminated path and a buffer we own.
    let complete = unsafe {
        let fd = syscall!(OPEN, PATH.as_ptr(), nr::open::R_BINARY, PATH.len() - 1) as isize;
        if fd < 0 {
            return None;
        }
        let left = syscall!(READ, fd, bytes.as_mut_ptr(), bytes.len());
        syscall!(CLOSE, fd);
        left == 0
    };
    let mut words = [0u32; crate::trng::WORDS];
    for (w, b) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    bytes.zeroize();
    if complete {
        Some(words)
    } else {
        words.zeroize();
        None
    }
}
