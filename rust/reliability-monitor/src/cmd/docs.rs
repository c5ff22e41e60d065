//! Shell completions and the man page, generated from the clap definition (so they cannot
//! drift from the parser): `reliability-monitor completions bash|zsh|fish` and
//! `reliability-monitor man`.

use clap::Command;
use std::io::Write;

/// The shells completions are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The completion script of `shell` for `cmd`.
pub fn completions(mut cmd: Command, shell: Shell, out: &mut dyn Write) {
    let name = cmd.get_name().to_string();
    let mut buf = Vec::new();
    match shell {
        Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, &name, &mut buf),
        Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, &name, &mut buf),
        Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, &name, &mut buf),
    }
    let _ = out.write_all(&buf);
}

/// The man page (roff) of `cmd`, which lists its subcommands.
pub fn man(cmd: Command, out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(cmd).render(out)
}
