//! The `laxmon` binary: parse the command line and hand over to `cli::main`.

fn main() -> std::process::ExitCode {
    laxmon::cli::main()
}
