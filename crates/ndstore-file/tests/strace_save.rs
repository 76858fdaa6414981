//! Proof, from the system calls themselves, that a default `save` is atomic and durable: the
//! temporary file is created exclusively in the target's directory, written, fsynced, closed,
//! renamed over the target, and the directory is fsynced — and the old mode is kept.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const CHILD_ENV: &str = "NDSTORE_STRACE_SAVE_CHILD";

/// Run by the traced child: one default save of a 1 MiB array.
#[test]
fn strace_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let a = ndarray::Array2::<f64>::from_shape_fn((512, 256), |(i, j)| (i * 256 + j) as f64);
    ndstore_file::npy::save(Path::new(&path), &a).unwrap();
}

fn strace_available() -> bool {
    match Command::new("strace").arg("-V").output() {
        Ok(o) => o.status.success(),
        Err(_) if std::env::var_os("NDSTORE_REQUIRE_ORACLES").is_some() => {
            panic!("strace is not installed; run cargo xtask setup")
        }
        Err(_) => false,
    }
}

#[test]
fn default_save_creates_writes_fsyncs_renames_and_syncs_the_directory() {
    if !strace_available() {
        eprintln!("strace not installed; not run (cargo xtask test installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("traced.npy");
    std::fs::write(&target, b"old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    let log = dir.path().join("trace.log");
    let status = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=openat,write,pwrite64,fsync,fdatasync,fchmod,close,rename,renameat,renameat2",
            "-o",
        ])
        .arg(&log)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "strace_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, &target)
        .status()
        .unwrap();
    assert!(status.success());
    let trace = std::fs::read_to_string(&log).unwrap();
    let dir_s = dir.path().display().to_string();
    let lines: Vec<&str> = trace.lines().collect();
    let find = |from: usize, pred: &dyn Fn(&str) -> bool, what: &str| -> usize {
        lines[from..]
            .iter()
            .position(|l| pred(l))
            .map(|i| i + from)
            .unwrap_or_else(|| panic!("no {what} after line {from} in:\n{trace}"))
    };
    let temp_prefix = format!("\"{dir_s}/.traced.npy.");
    let create = find(
        0,
        &|l| l.contains("openat(") && l.contains(&temp_prefix),
        "temporary creation",
    );
    assert!(
        lines[create].contains("O_CREAT") && lines[create].contains("O_EXCL"),
        "not exclusive: {}",
        lines[create]
    );
    let fd = lines[create].rsplit("= ").next().unwrap().trim().to_owned();
    let write = find(
        create,
        &|l| l.contains(&format!("write({fd},")),
        "write to the temporary",
    );
    let chmod = find(
        create,
        &|l| l.contains(&format!("fchmod({fd}, 0640)")),
        "fchmod to the old mode",
    );
    let fsync = find(
        write,
        &|l| l.contains(&format!("fsync({fd})")),
        "fsync of the temporary",
    );
    let close = find(
        fsync,
        &|l| l.contains(&format!("close({fd})")),
        "close of the temporary",
    );
    let rename = find(
        close,
        &|l| {
            l.contains("rename")
                && l.contains(&temp_prefix)
                && l.contains(&format!("\"{}\"", target.display()))
        },
        "rename over the target",
    );
    let open_dir = find(
        rename,
        &|l| l.contains("openat(") && l.contains(&format!("\"{dir_s}\"")) && l.contains("O_RDONLY"),
        "open of the directory",
    );
    let dir_fd = lines[open_dir]
        .rsplit("= ")
        .next()
        .unwrap()
        .trim()
        .to_owned();
    find(
        open_dir,
        &|l| l.contains(&format!("fsync({dir_fd})")),
        "fsync of the directory",
    );
    assert!(
        chmod < rename,
        "the mode must be set before the file appears"
    );
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
}

const POISON_ENV: &str = "NDSTORE_STRACE_POISON_CHILD";

/// Run by the traced child whose first fsync fails: the writer must stay poisoned, and a fresh
/// atomic save must then succeed.
#[test]
fn poison_child() {
    use ndstore_core::{Commit, DType, DTypeKind, Durable, ErrorKind, SaveOptions};
    let Some(dir) = std::env::var_os(POISON_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let rows = ndarray::array![[1.0f64, 2.0]];
    let mut writer = ndstore_file::NpyWriter::create(
        dir.join("p.npy"),
        DType::native(DTypeKind::F64),
        &[2],
        &SaveOptions::new().in_place(),
    )
    .unwrap();
    writer.append(&rows).unwrap();
    let first = writer.sync().unwrap_err();
    assert_eq!(first.kind(), ErrorKind::Io, "{first}");
    assert_eq!(writer.sync().unwrap_err().kind(), ErrorKind::Poisoned);
    assert_eq!(writer.commit().unwrap_err().kind(), ErrorKind::Poisoned);
    ndstore_file::npy::save(dir.join("fresh.npy"), &rows).unwrap();
    println!("POISON-CHECKED");
}

#[test]
fn a_failed_fsync_poisons_the_writer() {
    if !strace_available() {
        eprintln!("strace not installed; not run (cargo xtask test installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "trace=fsync",
            "-e",
            "inject=fsync:error=EIO:when=1",
        ])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "poison_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(POISON_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("POISON-CHECKED"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let loaded: ndarray::Array2<f64> =
        ndstore_file::npy::load(dir.path().join("fresh.npy")).unwrap();
    assert_eq!(loaded, ndarray::array![[1.0, 2.0]]);
}
