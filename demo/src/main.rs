//! `demo`: see the `demo` library's docs, or run `demo --help`.

fn main() -> std::process::ExitCode {
    demo::main()
}
