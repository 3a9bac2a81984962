//! The demo's program (`cargo run -p demo`), as a binary of this package: cargo builds a
//! package's binaries before its integration tests and tells them where
//! (`CARGO_BIN_EXE_tracer-demo`), which it does for no other package's. `tests/demo_e2e.rs`
//! spawns it.

fn main() -> std::process::ExitCode {
    demo::main()
}
