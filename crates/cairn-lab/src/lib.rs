//! Cairn's test harnesses that run whole processes: they start `cairn node`, `cairn prove` and `cairn gateway`
//! processes (the running `cairn` executable), disturb and attack them, and check what must hold. They are
//! tools for the people who build Cairn, kept out of the user-facing CLI, which only parses their arguments
//! and calls them.
//!
//! - [`soak`]: `cairn soak`, a devnet under chaos and then under attack after a quiet baseline.

pub mod soak;
