fn main() -> std::process::ExitCode {
    ansible_module::main(
        "service_recovery",
        reliability_modules::service_recovery::spec(),
        reliability_modules::service_recovery::run,
    )
}
