//! Repository tasks, run as `cargo xtask <task>`: set-up of what the tests need, the test suite,
//! the conformance report and repository lints. Standard library only, so it builds fast.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench;
mod fuzz;
mod tidy;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  test                        set up, then fmt --check, clippy -D warnings, tidy, and every test
  conformance [--backend NAME] [--full] [--allow-skip]
                              set up, run the conformance suite and the harness's self-tests,
                              print and save the matrix; a check that could not run here (SKIP)
                              fails the run unless --allow-skip, which CI=true refuses
  bench [--full] [--only OP] [--sizes LIST] [--runs N]
                              ndstore side by side with numpy, h5py, pandas, polars and dd
                              at 4 KiB, 1 MiB, 64 MiB and 256 MiB (--full adds 1 GiB; --sizes
                              4K,1M picks others), quartiles and a verdict per row (only the
                              operations whose names start with OP; N alternating rounds
                              instead of 15 to 40); writes bench/report.{md,json} and one
                              chart per operation (SVG) under the target directory
  fuzz [--target T] [--time S] [--runs N]
                              build and run the libFuzzer targets of fuzz/ (see fuzz --help)
  setup                       install what the tests need (system packages, Python oracles)
  dist-docs                   shell completions (bash, zsh, fish) and man pages of the `ndstore`
                              command line, from its clap definitions, under dist-docs/ of the
                              target directory
  tidy                        repository lints";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("conformance") => conformance(&args[1..]),
        Some("setup") => setup().map(|_| ()),
        Some("bench") => setup().and_then(|env| bench::bench(&args[1..], &env.python)),
        Some("fuzz") => fuzz::fuzz(&args[1..], || setup().map(|env| env.python)),
        Some("tidy") => tidy::run(&workspace_root()),
        Some("dist-docs") => dist_docs(),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task '{other}'\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the command line's completions and man pages under `dist-docs/` of the target
/// directory. The `ndstore` binary renders them from its own clap definitions (a hidden
/// command), so xtask needs no clap of its own.
fn dist_docs() -> Result<(), String> {
    let out = target_dir().join("dist-docs");
    run(cargo()
        .args([
            "run",
            "--quiet",
            "-p",
            "ndstore-cli",
            "--bin",
            "ndstore",
            "--",
            "dist-docs",
        ])
        .arg(&out))?;
    println!("xtask: wrote {}", out.display());
    Ok(())
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or(manifest.clone(), Path::to_path_buf)
}

/// The cargo target directory, honouring CARGO_TARGET_DIR.
fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(OsStr::to_string_lossy)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("xtask: running {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

fn on_path(program: &str) -> bool {
    env::var_os("PATH")
        .map(|paths| env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// What the environment provides to the tests, passed to them as variables.
struct Environment {
    python: PathBuf,
}

/// Installs what the tests need, when missing: system packages through apt-get (as root), and a
/// Python virtual environment with the reference libraries under the target directory.
fn setup() -> Result<Environment, String> {
    let succeeds = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
    // Each system package the tests need, and whether it is there.
    let packages = [
        ("strace", on_path("strace")),
        // A FUSE file system for the test that old files are not held open across a rename
        // there.
        ("bindfs", on_path("bindfs")),
        ("python3", on_path("python3")),
        (
            "python3-venv",
            succeeds(Command::new("python3").args(["-c", "import venv, ensurepip"])),
        ),
        // The hdf5 backend links the system libhdf5, found through pkg-config.
        ("pkg-config", on_path("pkg-config")),
        (
            "libhdf5-dev",
            succeeds(Command::new("pkg-config").args(["--exists", "hdf5"])),
        ),
    ];
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, there)| !there)
        .map(|(package, _)| *package)
        .collect();
    if !missing.is_empty() {
        if !is_root() || !on_path("apt-get") {
            return Err(format!(
                "missing system packages: {}. Install them (Debian: `sudo apt-get install {}`) and run again",
                missing.join(", "),
                missing.join(" ")
            ));
        }
        println!("xtask: installing system packages: {}", missing.join(" "));
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    rust_components()?;
    let python = python_venv()?;
    Ok(Environment { python })
}

/// rustfmt and clippy, which the test command runs, through rustup when they are missing.
fn rust_components() -> Result<(), String> {
    let has = |tool: &str| {
        cargo()
            .args([tool, "--version"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let missing: Vec<&str> = [("fmt", "rustfmt"), ("clippy", "clippy")]
        .into_iter()
        .filter(|(tool, _)| !has(tool))
        .map(|(_, component)| component)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !on_path("rustup") {
        return Err(format!(
            "missing Rust components: {}; install them with your toolchain manager",
            missing.join(", ")
        ));
    }
    run(Command::new("rustup")
        .args(["component", "add"])
        .args(&missing))
}

/// Creates (once) a virtual environment with the pinned requirements, and returns its python.
fn python_venv() -> Result<PathBuf, String> {
    let venv = target_dir().join("py-venv");
    let python = venv.join("bin").join("python");
    let requirements = workspace_root().join("xtask").join("requirements.txt");
    let wanted = fs::read_to_string(&requirements)
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    let stamp = venv.join("requirements.installed");
    if python.is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    println!("xtask: creating the Python environment {}", venv.display());
    run(Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg("--clear")
        .arg(&venv))?;
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements))
    .map_err(|e| {
        format!("{e}\nthe Python oracles (numpy, h5py) could not be installed from PyPI; check network access to PyPI")
    })?;
    fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(python)
}

fn with_env(cmd: &mut Command, environment: &Environment) {
    cmd.env("NDSTORE_PYTHON", &environment.python)
        .env("NDSTORE_REQUIRE_ORACLES", "1");
}

fn test() -> Result<(), String> {
    let environment = setup()?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    tidy::run(&workspace_root())?;
    // The suites gated by a feature (GATED_SUITES) are linted too, and so is the code behind
    // the features the tests enable (TEST_FEATURES).
    let mut gated: Vec<String> = GATED_SUITES
        .iter()
        .map(|package| format!("{package}/conformance"))
        .collect();
    gated.extend(TEST_FEATURES.iter().map(|f| (*f).to_owned()));
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--features",
        &gated.join(","),
        "--quiet",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The facade's optional backends (hdf5 is off by default) are linted and tested too.
    run(cargo().args([
        "clippy",
        "-p",
        "ndstore",
        "--all-features",
        "--all-targets",
        "--quiet",
        "--",
        "-D",
        "warnings",
    ]))?;
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--workspace",
        "--features",
        &TEST_FEATURES.join(","),
    ]);
    with_env(&mut cmd, &environment);
    let mut facade = cargo();
    facade.args([
        "test",
        "-p",
        "ndstore",
        "--all-features",
        "--test",
        "open_by_extension",
    ]);
    with_env(&mut facade, &environment);
    run_counting_tests(&mut [cmd, facade])
}

/// Runs each `cargo test` command, echoing its output, and closes with one line that totals
/// every test binary's results (cargo's own last line may be a doctest run of zero tests).
fn run_counting_tests(commands: &mut [Command]) -> Result<(), String> {
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    let mut failure = None;
    for cmd in commands.iter_mut() {
        let (p, f, i, ok) = run_one_test_command(cmd)?;
        passed += p;
        failed += f;
        ignored += i;
        if !ok && failure.is_none() {
            failure = Some("cargo test failed".to_owned());
        }
    }
    if ignored > 0 {
        println!("xtask: {ignored} test(s) are marked ignored; the project allows none");
    }
    println!("tests: {passed} passed, {failed} failed");
    match failure {
        None if ignored == 0 => Ok(()),
        None => Err("tests were marked ignored".to_owned()),
        Some(why) => Err(why),
    }
}

/// Runs one `cargo test` command, echoing it; returns (passed, failed, ignored, success).
fn run_one_test_command(cmd: &mut Command) -> Result<(u64, u64, u64, bool), String> {
    use std::io::{BufRead, BufReader};
    let shown: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    println!("xtask: running cargo {}", shown.join(" "));
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start cargo test: {e}"))?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |word: &str| -> u64 {
                    rest.split(';')
                        .find_map(|part| {
                            part.trim()
                                .trim_start_matches("ok. ")
                                .trim_start_matches("FAILED. ")
                                .strip_suffix(word)
                        })
                        .and_then(|n| n.trim().parse().ok())
                        .unwrap_or(0)
                };
                passed += count(" passed");
                failed += count(" failed");
                ignored += count(" ignored");
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for cargo test: {e}"))?;
    Ok((passed, failed, ignored, status.success()))
}

fn conformance(args: &[String]) -> Result<(), String> {
    let mut backend: Option<String> = None;
    let mut full = false;
    let mut allow_skip = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--full" => full = true,
            "--allow-skip" => allow_skip = true,
            "--backend" => backend = Some(iter.next().ok_or("--backend needs a name")?.clone()),
            other => return Err(format!("unknown option '{other}'\n\n{USAGE}")),
        }
    }
    if allow_skip && env::var("CI").is_ok_and(|v| v == "true") {
        return Err("--allow-skip is refused under CI=true: in CI every check must run".to_owned());
    }
    if let Some(name) = &backend
        && !BACKENDS.iter().any(|(known, _)| known == name)
    {
        let known: Vec<&str> = BACKENDS.iter().map(|(name, _)| *name).collect();
        return Err(format!(
            "unknown backend '{name}' (known: {})",
            known.join(", ")
        ));
    }
    let environment = setup()?;
    let out = target_dir().join("conformance");
    let results = out.join("results");
    let _ = fs::remove_dir_all(&results);
    fs::create_dir_all(&results)
        .map_err(|e| format!("cannot create {}: {e}", results.display()))?;
    let mode = if full { "full" } else { "quick" };
    let suite = |cmd: &mut Command| {
        with_env(cmd, &environment);
        cmd.env("NDSTORE_CONFORMANCE_OUT", &results)
            .env("NDSTORE_CONFORMANCE_MODE", mode);
        if allow_skip {
            cmd.env("NDSTORE_CONFORMANCE_ALLOW_SKIP", "1");
        }
    };
    let mut failed = Vec::new();
    // The harness proves it can fail first: every check against a backend broken for it.
    let mut self_tests = cargo();
    self_tests.args([
        "test",
        "--quiet",
        "-p",
        "ndstore-conformance",
        "--test",
        "self_test",
        "--",
        "--test-threads",
        "1",
        "--skip",
        "control_",
    ]);
    suite(&mut self_tests);
    if run(&mut self_tests).is_err() {
        failed.push("self-tests");
    }
    for (name, package) in BACKENDS {
        if backend.as_deref().is_some_and(|b| b != name) {
            continue;
        }
        if !package_exists(package) {
            println!("xtask: backend `{name}` is not built yet; it is reported as missing");
            continue;
        }
        let (test, features) = suite_of(name, package);
        let mut cmd = cargo();
        cmd.args(["test", "--quiet", "-p", package, "--test", test]);
        if !features.is_empty() {
            cmd.args(["--features", &features.join(",")]);
        }
        cmd.args(["--", "--test-threads", "1"]);
        suite(&mut cmd);
        if run(&mut cmd).is_err() {
            failed.push(name);
        }
    }
    let mut report = cargo();
    report.args([
        "run",
        "--quiet",
        "-p",
        "ndstore-conformance",
        "--bin",
        "conformance-report",
        "--",
    ]);
    report.arg(&results).arg(&out).arg(mode);
    if allow_skip {
        report.arg("--allow-skip");
    }
    run(&mut report)?;
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("conformance failures in: {}", failed.join(", ")))
    }
}

/// Every backend, by name, with the crate that holds it, in the order the conformance suite
/// runs them.
const BACKENDS: [(&str, &str); 6] = [
    ("file", "ndstore-file"),
    ("mmap", "ndstore-mmap"),
    ("hdf5", "ndstore-hdf5"),
    ("text", "ndstore-text"),
    ("zarr", "ndstore-zarr"),
    ("zarr-s3", "ndstore-zarr"),
];

/// The test target and the features of backend `name`'s suite: `conformance` unless the
/// crate holds several; the gated feature (GATED_SUITES), and for `zarr-s3` (arrays in object
/// storage, against the local S3 server its suite starts) the `s3` feature too.
fn suite_of(name: &str, package: &str) -> (&'static str, Vec<&'static str>) {
    let mut features = Vec::new();
    if GATED_SUITES.contains(&package) {
        features.push("conformance");
    }
    if name == "zarr-s3" {
        features.push("s3");
        return ("conformance_s3", features);
    }
    ("conformance", features)
}

/// The crate features `cargo xtask test` enables beside the defaults, so the code behind them
/// is linted and tested: ndstore-zarr's object storage (its moto tests start the local S3
/// server, and a server that cannot start fails them under `CI=true`).
const TEST_FEATURES: [&str; 1] = ["ndstore-zarr/s3"];

/// The crates whose conformance suite is a test target gated by their `conformance` feature,
/// which this command enables: their suite runs here and stays out of `cargo test --workspace`
/// (see the feature's comment in the crate's `Cargo.toml`).
const GATED_SUITES: [&str; 1] = ["ndstore-zarr"];

/// Whether the crate `package` exists in the workspace yet.
fn package_exists(package: &str) -> bool {
    workspace_root()
        .join("crates")
        .join(package)
        .join("Cargo.toml")
        .is_file()
}
