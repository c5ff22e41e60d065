//! `reliability-monitor`: see the library for what it does.

fn main() {
    let code = reliability_monitor::cli::run(std::env::args_os(), &mut std::io::stdout(), &mut std::io::stderr());
    #[allow(clippy::exit)] // The one exit of the program: main -> run -> exit code.
    std::process::exit(code)
}
