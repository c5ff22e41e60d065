fn main() -> std::process::ExitCode {
    ansible_module::main(
        "reliability_facts",
        reliability_modules::facts::spec(),
        reliability_modules::facts::run,
    )
}
