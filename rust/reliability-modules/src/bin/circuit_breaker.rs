fn main() -> std::process::ExitCode {
    ansible_module::main(
        "circuit_breaker",
        reliability_modules::circuit_breaker::spec(),
        reliability_modules::circuit_breaker::run,
    )
}
