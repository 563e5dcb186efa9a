//! Report model and queries shared by the reporting API and the dashboard.

pub mod range;

pub use range::{DayRange, RangeError};
