use std::process::ExitCode;

fn main() -> ExitCode {
    gatewatch::cli::main()
}
