//! `cargo xtask load` (being written).

use crate::Result;

pub fn run(_args: &[String]) -> Result {
    Err("`xtask load` is not written yet".into())
}
