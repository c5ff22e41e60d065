fn main() -> std::process::ExitCode {
    ansible_module::main(
        "backup_manifest",
        reliability_modules::backup_manifest::spec(),
        reliability_modules::backup_manifest::run,
    )
}
