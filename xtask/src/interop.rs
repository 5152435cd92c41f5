//! `cargo xtask interop` (being written).

use crate::Result;

pub fn run(_args: &[String]) -> Result {
    Err("`xtask interop` is not written yet".into())
}
