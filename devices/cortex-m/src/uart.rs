//! USART1 of the STM32F405 (QEMU connects it to the first `-serial` chardev), polled.
//! QEMU holds incoming bytes back until the data register is read, so polling loses nothing.

const USART1: usize = 0x4001_1000;
const SR: *mut u32 = USART1 as *mut u32;
const DR: *mut u32 = (USART1 + 0x04) as *mut u32;
const CR1: *mut u32 = (USART1 + 0x0C) as *mut u32;
const SR_RXNE: u32 = 1 << 5;
const SR_TXE: u32 = 1 << 7;
const CR1_UE: u32 = 1 << 13;
const CR1_TE: u32 = 1 << 3;
const CR1_RE: u32 = 1 << 2;

/// Enables the transmitter and receiver.
pub fn init() {
    // SAFETY: USART1's registers, owned by this module alone.
    unsafe { CR1.write_volatile(CR1_UE | CR1_TE | CR1_RE) }
}

/// Sends bytes, waiting for the transmit register each time.
pub fn write(bytes: &[u8]) {
    for b in bytes {
        // SAFETY: as in init.
        unsafe {
            while SR.read_volatile() & SR_TXE == 0 {}
            DR.write_volatile(u32::from(*b));
        }
    }
}

/// The next received byte, waiting for it.
pub fn read_byte() -> u8 {
    // SAFETY: as in init.
    unsafe {
        while SR.read_volatile() & SR_RXNE == 0 {}
        DR.read_volatile() as u8
    }
}
