fn main() -> std::process::ExitCode {
    ansible_module::main(
        "backup_retention",
        reliability_modules::backup_retention::spec(),
        reliability_modules::backup_retention::run,
    )
}
