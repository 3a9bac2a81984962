//! tracer's demo. The three services and the scenario driver arrive with the demo issue; until
//! then `cargo run -p demo` runs one traced call against the in-process pipeline and says so.

use tracer_runtime::traced;

#[traced]
fn hello() -> &'static str {
    "tracer demo: the three-service demo is not built yet; see the README"
}

fn main() {
    println!("{}", hello());
}
