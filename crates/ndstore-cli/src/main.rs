//! `ndstore`, the command line over ndstore's backends: `info`, `ls`, `cat`, `verify`,
//! `convert` and `cp` of `.npy`, `.npz`, CSV and whitespace-separated text, HDF5 (parsed in
//! ndstore's isolated reader process, so a hostile file gives an error line, never a crash) and
//! Zarr v3 arrays and groups in local directories and in S3-compatible object storage
//! (`s3://bucket/prefix`, configured by the usual AWS environment variables).
//!
//! Errors are one line, `ndstore: PATH: PLACE: MESSAGE`, and the exit status is 0 when all went
//! well, 1 when `verify` found damage, 2 for a usage or I/O error (and for any error of the
//! other commands).

mod convert;
mod cp;
mod destination;
mod docs;
mod inspect;
mod interrupt;
mod print;
mod s3;
mod source;
mod verify;
mod zarr;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

/// What went wrong, and so which exit status the command ends with.
#[derive(Debug)]
pub enum Failure {
    /// An error of ndstore, printed as `ndstore: PATH: PLACE: MESSAGE` (exit 2).
    Error(ndstore::Error),
    /// `verify` found damage and has reported it (exit 1).
    Damaged,
    /// `verify` could not check a file and has reported it (exit 2).
    Failed,
}

impl From<ndstore::Error> for Failure {
    fn from(e: ndstore::Error) -> Failure {
        Failure::Error(e)
    }
}

/// The result of a command.
pub type Outcome = std::result::Result<(), Failure>;

#[derive(Parser, Debug)]
#[command(
    name = "ndstore",
    version,
    about = "Inspect, list, print, verify and convert n-dimensional arrays (.npy, .npz, .csv, .txt, .tsv, .h5, .zarr)",
    after_help = "An array inside a file is named PATH::OBJECT: an .npz member, an HDF5 dataset path,\n\
                  a Zarr array inside a group.\n\
                  s3://bucket/prefix[::NODE] names a Zarr array or group in S3-compatible object\n\
                  storage; credentials, region and endpoint come from AWS_ACCESS_KEY_ID,\n\
                  AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL (AWS_ALLOW_HTTP=true for\n\
                  http://) and AWS_MAX_ATTEMPTS (attempts per request, default 3).\n\
                  With --json (info, ls, verify), errors are JSON on standard output too:\n\
                  {\"path\", \"status\": \"error\", \"kind\", \"place\", \"message\"}.\n\
                  Exit status: 0 ok, 1 damage found by verify, 2 usage or I/O error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Format, dtype (numpy notation), shape, order and bytes of each array; HDF5 chunks,
    /// filters and maxshape; Zarr chunks, shards, codecs, fill value and dimension names.
    #[command(
        after_help = "Examples:\n  ndstore info weights.npy\n  ndstore info --json run.h5::/results/loss\n  ndstore info store.zarr::group/a\n  ndstore info s3://bucket/run.zarr::temperature"
    )]
    Info {
        /// PATH or PATH::OBJECT.
        target: String,
        /// Print JSON for programs (errors too, on standard output, exit status 2).
        #[arg(long)]
        json: bool,
    },
    /// The objects of a file: .npz members, the HDF5 tree (links are never followed), the Zarr
    /// hierarchy (a linked directory is listed once); with ::OBJECT, that object and what lies
    /// below it.
    #[command(
        after_help = "Examples:\n  ndstore ls arrays.npz\n  ndstore ls run.h5\n  ndstore ls run.h5::/group\n  ndstore ls store.zarr\n  ndstore ls s3://bucket/run.zarr"
    )]
    Ls {
        /// PATH or PATH::OBJECT (a group to list).
        target: String,
        /// Print JSON for programs (errors too, on standard output, exit status 2).
        #[arg(long)]
        json: bool,
    },
    /// An array's values, as numpy prints them (large arrays summarised), or as CSV or JSON.
    #[command(
        after_help = "Examples:\n  ndstore cat a.npy\n  ndstore cat --slice 0:10,: --format csv run.h5::/data\n  ndstore cat --slice 0,0:2,0:3 s3://bucket/run.zarr::temperature"
    )]
    Cat {
        /// PATH or PATH::OBJECT.
        target: String,
        /// A numpy-style selection: `start:stop` or an index per axis, separated by commas
        /// (negative counts from the end).
        #[arg(long, allow_hyphen_values = true)]
        slice: Option<String>,
        /// The output's form.
        #[arg(long, value_enum, default_value_t = CatFormat::Numpy)]
        format: CatFormat,
    },
    /// Reads every array and checks every checksum the format has; reports the first damage.
    #[command(
        after_help = "Examples:\n  ndstore verify *.npz\n  ndstore verify --json run.h5 table.csv store.zarr\n  ndstore verify s3://bucket/run.zarr"
    )]
    Verify {
        /// The files or s3:// URLs; PATH::OBJECT checks only that member, dataset, group or node.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print JSON for programs (errors too, on standard output, exit status 2).
        #[arg(long)]
        json: bool,
    },
    /// Converts an array to another format, atomically and durably.
    #[command(
        after_help = "An existing destination is replaced only when it is an array of the format\n\
                      being written (judged at a symbolic link's target) or an empty file; anything\n\
                      else is refused: remove it, or pass --force to replace a file. A Zarr\n\
                      destination that is not a Zarr array is never replaced; on s3:// neither is a\n\
                      prefix holding other objects.\n\n\
                      Examples:\n  ndstore convert table.csv table.npy\n  ndstore convert --to npz run.h5::/data out.bin\n  ndstore convert --chunks 64,64 --compression gzip:6 big.npy big.h5\n  ndstore convert --compression zstd:3 big.npy big.zarr\n  ndstore convert --compression zstd:3 big.npy s3://bucket/big.zarr"
    )]
    Convert {
        /// PATH or PATH::OBJECT of the source.
        src: String,
        /// The destination file (or s3:// URL of a Zarr array).
        dst: PathBuf,
        /// The destination's format (default: from its extension).
        #[arg(long, value_enum)]
        to: Option<convert::ToFormat>,
        #[command(flatten)]
        layout: LayoutArgs,
        #[command(flatten)]
        force: ForceArg,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Copies an array (every member of an .npz) in its format, atomically, durably, checksums
    /// checked.
    #[command(
        after_help = "The destination keeps the source's format unless its extension names another;\n\
                      a directory receives a file of the source's name; a replaced file keeps its\n\
                      permissions; a Zarr array keeps its chunks and codecs. An existing destination\n\
                      is replaced only when it is an array of the format being written (judged at a\n\
                      symbolic link's target) or an empty file; anything else is refused: remove it,\n\
                      or pass --force to replace a file. On s3:// a new array appears whole at its\n\
                      commit (zarr.json written last) or not at all; a replaced array is rewritten\n\
                      chunk by chunk; a group, or a prefix holding other objects, is never replaced.\n\n\
                      Examples:\n  ndstore cp run.h5::/loss backup/loss.h5\n  ndstore cp arrays.npz /mnt/archive/\n  ndstore cp weights.npy s3://bucket/models/weights.zarr\n  ndstore cp s3://bucket/run.zarr::temperature t.npy"
    )]
    Cp {
        /// PATH or PATH::OBJECT of the source.
        src: String,
        /// The destination file or directory (or s3:// URL of a Zarr array).
        dst: String,
        #[command(flatten)]
        layout: LayoutArgs,
        #[command(flatten)]
        force: ForceArg,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
}

/// `--force`, for `convert` and `cp`.
#[derive(Args, Debug)]
struct ForceArg {
    /// Replace an existing destination file even when it is not an array of the format being
    /// written (through a symbolic link, the file it points to). A Zarr destination that is
    /// not a Zarr array is never replaced.
    #[arg(long)]
    force: bool,
}

/// The destination's layout, for `convert` and `cp`.
#[derive(Args, Debug)]
struct LayoutArgs {
    /// Chunk shape, one length per axis, none longer than the array along its axis (HDF5 and
    /// Zarr destinations only).
    #[arg(long, value_name = "N,N,...", value_parser = convert::parse_chunks)]
    chunks: Option<convert::Chunks>,
    /// gzip[:LEVEL] (0-9; HDF5: default 4, with shuffle and Fletcher-32; Zarr: default 5),
    /// zstd[:LEVEL] (1-22, default 3; Zarr only) or none; HDF5, Zarr and .npz destinations only
    /// (an .npz member takes gzip without a level).
    #[arg(long, value_name = "gzip[:LEVEL]|zstd[:LEVEL]|none", value_parser = convert::parse_compression)]
    compression: Option<convert::Compression>,
}

impl LayoutArgs {
    fn layout(self) -> convert::Layout {
        convert::Layout {
            chunks: self.chunks.map(|c| c.0),
            compression: self.compression,
        }
    }
}

/// The output forms of `cat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CatFormat {
    /// As numpy prints an array.
    Numpy,
    /// Comma-separated rows (0-, 1- and 2-dimensional arrays).
    Csv,
    /// Nested JSON arrays; a complex element is [re, im], nan and the infinities (which JSON has
    /// no number for) are the strings "nan", "inf" and "-inf".
    Json,
}

/// The directory of `ndstore dist-docs DIR`, the build step `cargo xtask dist-docs` runs;
/// kept out of clap's definitions so the completions and pages it writes do not list it.
fn dist_docs_dir() -> Option<PathBuf> {
    let mut args = std::env::args_os().skip(1);
    match (args.next(), args.next(), args.next()) {
        (Some(command), Some(dir), None) if command == "dist-docs" => Some(PathBuf::from(dir)),
        _ => None,
    }
}

fn main() -> ExitCode {
    if let Some(dir) = dist_docs_dir() {
        return finish(docs::write(Cli::command(), &dir).map_err(Failure::from));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            // Help and version go to standard output; a failure to print them is not ours.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if matches!(cli.command, Command::Convert { .. } | Command::Cp { .. }) {
        interrupt::catch();
    }
    // A URL of another scheme than s3:// is refused, never taken for a local path:
    // `convert a.npy gs://b/x.zarr` must not make a directory `gs:`.
    if let Some(url) = cli
        .command
        .spelled_paths()
        .into_iter()
        .find(|p| cp::is_url(p) && !matches!(cp::Endpoint::parse(p), cp::Endpoint::S3(_)))
    {
        return finish(
            cp::Endpoint::parse(&url)
                .target()
                .map(|_| ())
                .map_err(Failure::from),
        );
    }
    let outcome = match cli.command {
        Command::Info { target, json } => as_json(
            inspect::info(&source::Target::parse(&target), json),
            json,
            &target,
        ),
        Command::Ls { target, json } => as_json(
            inspect::ls(&source::Target::parse(&target), json),
            json,
            &target,
        ),
        Command::Cat {
            target,
            slice,
            format,
        } => {
            let target = source::Target::parse(&target);
            // Every error of cat names the file, those of printing too.
            print::cat(&target, slice.as_deref(), format).map_err(|failure| match failure {
                Failure::Error(e) => Failure::Error(e.with_path(&target.path)),
                other => other,
            })
        }
        Command::Verify { paths, json } => verify::verify(&paths, json),
        Command::Convert {
            src,
            dst,
            to,
            layout,
            force,
            quiet,
        } => convert::convert(
            &source::Target::parse(&src),
            &convert::destination_path(dst),
            to,
            &layout.layout(),
            convert::Flags {
                force: force.force,
                quiet,
            },
        ),
        Command::Cp {
            src,
            dst,
            layout,
            force,
            quiet,
        } => cp::cp(
            &src,
            &dst,
            &layout.layout(),
            convert::Flags {
                force: force.force,
                quiet,
            },
        ),
    };
    finish(outcome)
}

impl Command {
    /// Every path the command names, as spelled.
    fn spelled_paths(&self) -> Vec<String> {
        let shown = |p: &Path| p.to_string_lossy().into_owned();
        match self {
            Command::Info { target, .. }
            | Command::Ls { target, .. }
            | Command::Cat { target, .. } => vec![target.clone()],
            Command::Verify { paths, .. } => paths.iter().map(|p| shown(p)).collect(),
            Command::Convert { src, dst, .. } => vec![src.clone(), shown(dst)],
            Command::Cp { src, dst, .. } => vec![src.clone(), dst.clone()],
        }
    }
}

/// Under `--json`, an error becomes a JSON report on standard output (as `verify --json`
/// reports a file it could not check: path, status `error`, kind, place, message) and the
/// command fails with exit status 2 without another line.
fn as_json(outcome: Outcome, json: bool, spelled: &str) -> Outcome {
    match outcome {
        Err(Failure::Error(e)) if json => {
            let path = e
                .path()
                .map_or_else(|| spelled.to_owned(), |p| p.display().to_string());
            let report = verify::error_json(&path, "error", &e);
            source::emit(&format!("{report:#}\n"))?;
            Err(Failure::Failed)
        }
        other => other,
    }
}

/// Advice of the library that names its API, and what the command line says instead: a user
/// of `ndstore` has no `SaveOptions` to set. Each is the end of a message, so the message
/// before it stands as the library wrote it.
const LIBRARY_ADVICE: &[(&str, &str)] = &[
    (
        "SaveOptions::replace_read_only() replaces it anyway",
        "make it writable (chmod u+w) or remove it to replace it",
    ),
    (
        "SaveOptions::allow_owner_change() lets the owner change",
        "run as its owner, or remove it first to make a new one yours",
    ),
    (
        "set LoadOptions::memory_limit to load it",
        "read a part of it with cat --slice",
    ),
    (
        "since this writer opened it; open it again",
        "while this command ran; run it again",
    ),
    (
        "try again after its commit, opening the array anew, or in",
        "run the command again after that copy ends, or in",
    ),
];

/// An error's text in the command line's words: library advice that names an API
/// ([`LIBRARY_ADVICE`]) becomes what to do with `ndstore` or in plain words.
pub fn in_cli_words(text: &str) -> String {
    LIBRARY_ADVICE
        .iter()
        .fold(text.to_owned(), |text, (api, cli)| text.replace(api, cli))
}

/// The exit status of `outcome`, its error printed.
/// `text` with its control characters escaped (`\u{1b}`, `\n`): an error quotes names and
/// bytes from files, which must neither drive the terminal nor break the one-line error.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn finish(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Damaged) => ExitCode::from(1),
        Err(Failure::Failed) => ExitCode::from(2),
        // A reader that stopped early (`ndstore cat big.npy | head`) is not an error.
        Err(Failure::Error(e))
            if e.io_error().map(std::io::Error::kind) == Some(std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(Failure::Error(e)) => {
            match interrupt::received() {
                // What failed after a signal (the HDF5 reader, say, which the terminal's Ctrl-C
                // reached too) failed because of it.
                Some(signal) => {
                    let dst = e.path().map(Path::to_path_buf).unwrap_or_default();
                    if let Err(why) = interrupt::check(&dst) {
                        eprintln!("ndstore: {}", printable(&in_cli_words(&why.to_string())));
                    }
                    return interrupt::die_of(signal);
                }
                None => eprintln!("ndstore: {}", printable(&in_cli_words(&e.to_string()))),
            }
            ExitCode::from(2)
        }
    }
}
