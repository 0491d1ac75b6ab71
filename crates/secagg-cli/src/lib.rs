//! The parts of the `secagg` command that other crates call: [`combine_cmd`] (`secagg
//! combine`), which the Python package exposes as `secagg.combine`, and [`logging`], the log
//! set-up the Python package shares, and [`machine_limits`], this machine's limits measured in
//! the run that uses them (`secagg bench` and the load benchmark).

pub mod combine_cmd;
pub mod logging;
pub mod machine_limits;
