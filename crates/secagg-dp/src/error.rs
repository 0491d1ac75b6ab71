//! Errors: every refusal says what to change.

use alloc::string::String;

/// A refused parameter or input; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpError(pub String);

impl core::fmt::Display for DpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DpError {}
