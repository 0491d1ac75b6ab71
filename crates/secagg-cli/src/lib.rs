//! The parts of the `secagg` command that other crates call: [`combine_cmd`] (`secagg
//! combine`), which the Python package exposes as `secagg.combine`, and [`logging`], the log
//! set-up the Python package shares.

pub mod combine_cmd;
pub mod logging;
