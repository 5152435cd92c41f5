//! `cargo xtask fuzz` (being written).

use crate::Result;

pub fn run(_args: &[String]) -> Result {
    Err("`xtask fuzz` is not written yet".into())
}
