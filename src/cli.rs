//! The commands behind `ltigate`'s subcommands, other than `serve`'s
//! serving itself: `check`, `keygen`, `health`, `grades` and `sessions`.
//! `main.rs` parses the command line and calls these.

pub mod check;
pub mod grades;
pub mod health;
pub mod keygen;
pub mod sessions;
