//! TEMPORARY STUB (replaced by the real module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreatModel {
    HonestButCurious,
    Malicious,
}
use alloc::string::String;
use alloc::vec::Vec;
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assumptions {
    pub corrupt_fraction: f64,
    pub dropout_fraction: f64,
    pub model: ThreatModel,
}
impl Default for Assumptions {
    fn default() -> Self {
        Self {
            corrupt_fraction: 0.05,
            dropout_fraction: 0.05,
            model: ThreatModel::HonestButCurious,
        }
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphParams {
    pub degree: u32,
    pub threshold: u32,
}
#[derive(Debug, Clone, PartialEq)]
pub enum ParamError {
    Infeasible(String),
    NoParameters(String),
    Insecure(String),
    Invalid(String),
}
impl core::fmt::Display for ParamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{self:?}")
    }
}
pub fn choose_harary(n: u32, _a: &Assumptions) -> Result<GraphParams, ParamError> {
    Ok(GraphParams {
        degree: n - 1,
        threshold: n / 2 + 1,
    })
}
pub fn choose_complete_threshold(n: u32, _a: &Assumptions) -> Result<u32, ParamError> {
    Ok(n / 2 + 1)
}
pub fn check_harary(
    _n: u32,
    _k: u32,
    _t: u32,
    _a: &Assumptions,
) -> Result<Vec<String>, ParamError> {
    Ok(Vec::new())
}
pub fn check_complete(_n: u32, _t: u32, _a: &Assumptions) -> Result<Vec<String>, ParamError> {
    Ok(Vec::new())
}
