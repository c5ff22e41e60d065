fn main() -> std::process::ExitCode {
    ansible_module::main(
        "health_check",
        reliability_modules::health_check::spec(),
        reliability_modules::health_check::run,
    )
}
