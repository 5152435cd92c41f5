//! `cargo xtask autobahn` (being written).

use crate::Result;

pub fn run(_args: &[String]) -> Result {
    Err("`xtask autobahn` is not written yet".into())
}
