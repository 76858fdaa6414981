//! SE: a replace keeps the target's mode, a new file gets 0666 & ~umask, temporaries are
//! created exclusively in the target's directory (proven with strace), symbolic links are
//! followed and kept, a read-only directory gives a clear error and leaves nothing behind, and
//! the replace policy of careful tools holds ([`super::replace_policy`]).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use ndstore_core::SaveOptions;

use super::replace_policy::{self, Outcome};
use crate::Ctx;
use crate::check::Check;
use crate::checks::versioned;
use crate::child::{self, Task};
use crate::report::CheckResult;

fn mode(path: &Path) -> Result<u32, String> {
    Ok(fs::metadata(path)
        .map_err(|e| e.to_string())?
        .permissions()
        .mode()
        & 0o7777)
}

fn umask() -> Result<u32, String> {
    let status = fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let line = status
        .lines()
        .find(|l| l.starts_with("Umask:"))
        .ok_or("no Umask line")?;
    u32::from_str_radix(line.split_whitespace().nth(1).unwrap_or(""), 8).map_err(|e| e.to_string())
}

fn euid_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// SE: see the module documentation.
pub fn se(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let backend = ctx.backend;
    if !backend.capabilities().atomic_replace() {
        return Ok(CheckResult::not_applicable(
            Check::Security,
            "atomic_replace",
        ));
    }
    let save = |path: &Path, v: u64| {
        backend
            .save(path, &versioned(backend, 0, v), &SaveOptions::default())
            .map_err(|e| e.to_string())
    };
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut case = |name: &str, result: Result<(), String>| {
        cases += 1;
        if let Err(e) = result {
            failures.push(format!("{name}: {e}"));
        }
    };
    for old in [0o600, 0o644, 0o640] {
        let path = ctx.path(&format!("mode-{old:o}"));
        case(
            &format!("a {old:o} target keeps its mode"),
            (|| {
                save(&path, 0)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(old))
                    .map_err(|e| e.to_string())?;
                save(&path, 1)?;
                let now = mode(&path)?;
                if now == old {
                    Ok(())
                } else {
                    Err(format!("became {now:o}"))
                }
            })(),
        );
    }
    let path = ctx.path("new-file");
    case(
        "a new file gets 0666 & ~umask (a new directory, for a backend whose arrays are directory trees, 0777 & ~umask)",
        (|| {
            save(&path, 0)?;
            let created = if path.is_dir() { 0o777 } else { 0o666 };
            let want = created & !umask()?;
            let got = mode(&path)?;
            if got == want {
                Ok(())
            } else {
                Err(format!("got {got:o}, want {want:o}"))
            }
        })(),
    );
    let real = ctx.path("real");
    let link = ctx.path("link");
    case(
        "a symbolic link is followed and kept",
        (|| {
            save(&real, 0)?;
            std::os::unix::fs::symlink(&real, &link).map_err(|e| e.to_string())?;
            save(&link, 1)?;
            if !fs::symlink_metadata(&link)
                .map_err(|e| e.to_string())?
                .file_type()
                .is_symlink()
            {
                return Err("the link was replaced by a file".to_owned());
            }
            let (_, loaded) = crate::checks::load(backend, &real).map_err(|e| e.to_string())?;
            if loaded.bit_eq(&versioned(backend, 0, 1)) {
                Ok(())
            } else {
                Err("the link's target was not updated".to_owned())
            }
        })(),
    );
    case(
        "temporaries are created exclusively beside the target",
        exclusive_temp(ctx),
    );
    case(
        "a read-only directory is a clear error and leaves nothing",
        read_only_dir(ctx),
    );
    let mut skipped = Vec::new();
    for (name, outcome) in replace_policy::cases(ctx, euid_is_root()) {
        match outcome {
            Outcome::Ran(result) => case(&name, result),
            Outcome::Skipped(reason) => skipped.push(format!("{name}: {reason}")),
        }
    }
    let result = CheckResult::counted(
        Check::Security,
        cases,
        &failures,
        &format!(
            "0600/0644/0640 kept, new file 0666 & ~umask, O_CREAT|O_EXCL temporary in the target's directory (strace), symlink followed and kept, read-only directory; the replace policy, saving as nobody: 0444 and foreign files refused unless opted in, owner kept or the save refused, xattrs and ACLs kept, planted links in sticky directories not followed (fs.protected_symlinks is {} here; ndstore applies the rule whatever it says)",
            protected_symlinks()
        ),
    );
    Ok(with_skipped(result, &skipped))
}

/// `fs.protected_symlinks` as this machine sets it.
fn protected_symlinks() -> String {
    fs::read_to_string("/proc/sys/fs/protected_symlinks")
        .map_or_else(|_| "unknown".to_owned(), |v| v.trim().to_owned())
}

/// A case that could not run here makes SE SKIP with its reason, never PASS (a FAIL stays FAIL).
fn with_skipped(result: CheckResult, skipped: &[String]) -> CheckResult {
    if skipped.is_empty() {
        result
    } else {
        result.with_skipped_part(&skipped.join("; "))
    }
}

/// Records a save in a child with strace and checks the temporary's creation and the rename.
fn exclusive_temp(ctx: &Ctx<'_>) -> Result<(), String> {
    let target = ctx.path("traced");
    let log = ctx.dir.path().join("strace.log");
    let inner = child::command(&Task::SaveOnce {
        path: target.clone(),
        version: 0,
        policy: child::Policy::default(),
    })?;
    let mut cmd = Command::new("strace");
    cmd.args([
        "-f",
        "-qq",
        "-e",
        "trace=openat,rename,renameat,renameat2",
        "-o",
    ])
    .arg(&log)
    .arg("--")
    .arg(inner.get_program())
    .args(inner.get_args())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    for (key, value) in inner.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run strace (install it: apt-get install strace): {e}"))?;
    if !status.success() {
        return Err(format!("the traced save failed ({status})"));
    }
    let text = fs::read_to_string(&log).map_err(|e| e.to_string())?;
    let dir = target.parent().ok_or("no parent")?.display().to_string();
    let name = target
        .file_name()
        .ok_or("no name")?
        .to_string_lossy()
        .into_owned();
    let created = text
        .lines()
        .find(|l| {
            l.contains("openat(")
                && l.contains(&format!("\"{dir}/.{name}."))
                && l.contains("O_CREAT")
        })
        .ok_or("no temporary file was created beside the target")?;
    if !created.contains("O_EXCL") {
        return Err(format!(
            "the temporary was not created exclusively: {created}"
        ));
    }
    let renamed = text.lines().any(|l| {
        l.contains("rename")
            && l.contains(&format!("\"{dir}/.{name}."))
            && l.contains(&format!("\"{}\"", target.display()))
    });
    if !renamed {
        return Err("the temporary was not renamed over the target".to_owned());
    }
    Ok(())
}

/// Saving into a directory the process cannot write: as root, the child drops to `nobody`.
fn read_only_dir(ctx: &Ctx<'_>) -> Result<(), String> {
    let dir = ctx.dir.path().join("read-only");
    fs::create_dir(&dir).map_err(|e| e.to_string())?;
    let target = dir.join(format!("x.{}", ctx.backend.extension()));
    let mut cmd = child::command(&Task::SaveOnce {
        path: target.clone(),
        version: 0,
        policy: child::Policy::default(),
    })?;
    if euid_is_root() {
        // Root ignores permission bits; an unprivileged child shows what users see.
        fs::set_permissions(ctx.dir.path(), fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        cmd.uid(65534).gid(65534);
    } else {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).map_err(|e| e.to_string())?;
    }
    let (status, saved) = child::save_outcome(cmd)?;
    let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
    let error = match saved {
        Some(Err(error)) => error,
        Some(Ok(())) => return Err("the save into a read-only directory succeeded".to_owned()),
        None => {
            return Err(format!(
                "the child said nothing ({status}); is the test binary readable by nobody?"
            ));
        }
    };
    if !error.message.contains(&dir.display().to_string()) {
        return Err(format!("the error does not name the path: {error}"));
    }
    let left = fs::read_dir(&dir).map_err(|e| e.to_string())?.count();
    if left != 0 {
        return Err(format!("{left} file(s) left in the directory"));
    }
    Ok(())
}
