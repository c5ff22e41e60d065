fn main() -> std::process::ExitCode {
    ansible_module::main(
        "backup_verify",
        reliability_modules::backup_verify::spec(),
        reliability_modules::backup_verify::run,
    )
}
