//! What a map does when a program that ignores ndstore's locks truncates the mapped file: the
//! documented outcome is that touching a lost page raises SIGBUS, which kills the process (the
//! kernel has no page to give it). Tested in a child process, which the parent watches die.

// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use ndarray::ArrayD;
use ndstore_core::{Backend, DynArray, SaveOptions};
use ndstore_mmap::{MappedArray, MmapBackend, Mode};

const CHILD: &str = "NDSTORE_MMAP_SIGBUS_CHILD";

/// The child: maps the file, truncates it behind the map's back, reads it.
#[test]
fn child_process_entry() {
    let Some(path) = std::env::var_os(CHILD) else {
        return;
    };
    // SAFETY: deliberately violated below; this process exists to show the consequence.
    let map = unsafe { MappedArray::open_npy(&path, Mode::Read).unwrap() };
    // A non-cooperating program: plain open and truncate, no lock taken.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    println!("TRUNCATED");
    let view = map.view::<f64>().unwrap();
    let sum: f64 = view.iter().sum();
    // Not reached: the read above faults.
    println!("READ {sum}");
}

#[test]
fn truncating_a_mapped_file_behind_its_back_kills_the_reader_with_sigbus() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("victim.npy");
    let a = DynArray::from(ArrayD::<f64>::from_elem(ndarray::IxDyn(&[64 * 1024]), 1.5));
    // SAFETY: the save maps only the fresh temporary it creates, which nothing else touches.
    unsafe { MmapBackend::new() }
        .save(&path, &a, &SaveOptions::default())
        .unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_entry", "--nocapture"])
        .env(CHILD, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("TRUNCATED"), "{stdout}");
    assert!(!stdout.contains("READ"), "the read survived: {stdout}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "expected death by SIGBUS, got {}",
        out.status
    );
}
