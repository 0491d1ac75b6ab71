//! TEMPORARY STUB (replaced by the real module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreatModel { HonestButCurious, Malicious }
