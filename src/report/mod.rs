//! Report model and queries shared by the reporting API and the dashboard:
//! date ranges, filters, queries over the store boundary (roll-ups for
//! unfiltered reports, raw-event scans for filtered ones), comparison with
//! the previous period, and CSV output.

pub mod compare;
pub mod csv;
pub mod filter;
pub mod goals;
pub mod query;
pub mod range;

pub use filter::{Filter, FilterError, Op};
pub use query::{Breakdown, Bucket, Interval, ReportError, Row, Source, SummaryNumbers};
pub use range::{DayRange, RangeError};
