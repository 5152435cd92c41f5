//! `cargo xtask bench` (being written).

use crate::Result;

pub fn run(_args: &[String]) -> Result {
    Err("`xtask bench` is not written yet".into())
}
