//! The bottom layer: it imports nothing from the crate, and everything may import it. Time, host
//! names and placeholders, value types of settings, error causes, typed configuration errors, and
//! the macro for closed sets of names.

pub mod cause;
pub mod error;
pub mod host;
pub mod names;
pub mod time;
pub mod values;
