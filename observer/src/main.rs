use std::process::ExitCode;

fn main() -> ExitCode {
    observer::cli::main()
}
