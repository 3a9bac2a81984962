//! The driver: starts the three servers as child processes of its own, plays the scenarios
//! against server1, and draws each trace from the embedded receiver.

mod ping;
mod play;
mod serve;
mod sink;
mod supervisor;

pub(crate) use ping::ping;
pub(crate) use play::{play_one, run};
pub(crate) use serve::serve;
