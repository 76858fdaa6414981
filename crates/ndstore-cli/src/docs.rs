//! `ndstore dist-docs DIR`: shell completions and man pages made from the command line's own
//! clap definitions, so they say what `--help` says. `cargo xtask dist-docs` runs it. It is
//! recognised before clap parses the arguments, so it appears in no help, completion or page.
//!
//! It writes `completions/ndstore.bash`, `completions/_ndstore` (zsh) and
//! `completions/ndstore.fish`, and `man/ndstore.1` with one page per command
//! (`man/ndstore-info.1`, ...).

use std::fs;
use std::path::Path;

use clap_complete::Shell;
use ndstore::{Error, Result};

/// Writes the completions and man pages of `cmd` (the `ndstore` command) under `dir`.
///
/// # Errors
///
/// An `Io` error naming the file that could not be created or written.
pub fn write(mut cmd: clap::Command, dir: &Path) -> Result<()> {
    cmd.build();
    let completions = dir.join("completions");
    let man = dir.join("man");
    for sub in [&completions, &man] {
        fs::create_dir_all(sub)
            .map_err(|e| Error::io("cannot create the directory", e).with_path(sub))?;
    }
    let name = cmd.get_name().to_owned();
    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cmd, &name, &mut text);
        save(&completions.join(file), &text)?;
    }
    save(&man.join(format!("{name}.1")), &page(cmd.clone())?)?;
    // Built, each command's display name is `ndstore-info` and its usage `ndstore info`.
    // clap's own `help` command needs no page of its own.
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let title = sub
            .get_display_name()
            .map_or_else(|| format!("{name}-{}", sub.get_name()), str::to_owned);
        let sub = sub.clone().version(env!("CARGO_PKG_VERSION"));
        save(&man.join(format!("{title}.1")), &page(sub)?)?;
    }
    Ok(())
}

/// The roff text of `cmd`'s man page.
fn page(cmd: clap::Command) -> Result<Vec<u8>> {
    let mut text = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut text)
        .map_err(|e| Error::io("cannot render a man page", e))?;
    Ok(text)
}

fn save(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(|e| Error::io("cannot write", e).with_path(path))
}
