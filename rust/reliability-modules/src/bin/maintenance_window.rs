fn main() -> std::process::ExitCode {
    ansible_module::main(
        "maintenance_window",
        reliability_modules::maintenance_window::spec(),
        reliability_modules::maintenance_window::run,
    )
}
