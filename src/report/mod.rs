//! Report model and queries shared by the reporting API and the dashboard:
//! date ranges, filters, roll-up queries for unfiltered reports, raw-event
//! scans for filtered ones, comparison with the previous period, and CSV
//! output.

pub mod compare;
pub mod csv;
pub mod filter;
pub mod query;
pub mod range;
pub mod scan;

pub use filter::{Filter, FilterError, Op};
pub use query::{Breakdown, Bucket, Interval, ReportError, Row, Source, SummaryNumbers};
pub use range::{DayRange, RangeError};
