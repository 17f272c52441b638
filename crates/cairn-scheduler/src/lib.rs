//! Cairn's scheduler (work in progress).
pub mod types;
