//! BI's corpus: the cases of a run (hostile inputs, a small file cut and corrupted, realistic
//! files damaged region by region) and the making of each damaged file from its source.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use ndstore_core::{DTypeKind, Order, SaveOptions};

use super::{Case, ChildCase, Damage, Via, Want};
use crate::fixtures::{Density, REALISTIC_MIN_BYTES, Realistic, Region};
use crate::sample::{self, Rng};
use crate::{Ctx, Mode};

/// How many cuts of the small valid file quick mode makes (spread evenly; full mode cuts at
/// every byte). Most formats' small files are shorter, and get every cut.
pub(super) const SMALL_CUTS_QUICK: u64 = 1024;

pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A hostile input's file, with its loader and whether it is valid.
pub(super) struct Kept {
    path: PathBuf,
    loader: Option<&'static str>,
    valid: bool,
}

/// The hostile inputs of the fixtures as files: in the repository's `corpus/<backend>/` when
/// that directory exists (kept there for readers, rewritten when the fixtures change, files no
/// fixture makes any more removed), otherwise in `scratch`.
pub(super) fn kept_corpus(ctx: &Ctx<'_>, scratch: &Path) -> Result<Vec<Kept>, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(ctx.backend.name());
    let dir = if repo.is_dir() {
        repo
    } else {
        scratch.to_path_buf()
    };
    let inputs = ctx.fixtures.hostile_inputs();
    let mut files = Vec::new();
    let mut names = HashSet::new();
    for hostile in &inputs {
        let name = format!("hostile-{}", hostile.name);
        let path = dir.join(&name);
        if std::fs::read(&path).ok().as_deref() != Some(hostile.bytes.as_slice()) {
            std::fs::write(&path, &hostile.bytes)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        names.insert(name);
        files.push(Kept {
            path,
            loader: hostile.loader,
            valid: hostile.valid,
        });
    }
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = file_name(&path);
        if name.starts_with("hostile-") && !names.contains(&name) {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(files)
}

/// The positions of a region that get damage: every byte (dense regions in full mode, and
/// small ones), or `cap` positions spread evenly from the first byte to the last.
pub(super) fn positions(region: &Region, cap: u64) -> Vec<u64> {
    let (start, end) = (region.range.start, region.range.end);
    let len = end.saturating_sub(start);
    if len == 0 {
        return Vec::new();
    }
    if len <= cap {
        return (start..end).collect();
    }
    let mut out: Vec<u64> = (0..cap)
        .map(|i| start + i * (len - 1) / (cap - 1).max(1))
        .collect();
    out.dedup();
    out
}

/// How many positions of a region get corrupt bytes and cuts, by density and mode.
pub(super) fn caps(density: Density, mode: Mode) -> (u64, u64) {
    match (density, mode) {
        (Density::Dense, Mode::Full) => (u64::MAX, u64::MAX),
        (Density::Dense, Mode::Quick) => (128, 32),
        (Density::Sampled, Mode::Full) => (96, 32),
        (Density::Sampled, Mode::Quick) => (12, 4),
    }
}

/// A corrupt value for `old`: a flipped bit, 0x00 or 0xff in turn (`turn`), never `old` itself.
pub(super) fn corrupt(old: u8, turn: u64, rng: &mut Rng) -> u8 {
    let new = match turn % 3 {
        0 => old ^ (1 << rng.below(8)),
        1 => 0x00,
        _ => 0xff,
    };
    if new == old { old ^ 0xff } else { new }
}

/// The length of a case's file.
pub(super) fn case_len(case: &ChildCase, sources: &mut Sources) -> Result<u64, String> {
    let source = sources.get(&case.source)?.len() as u64;
    Ok(match case.damage {
        Damage::Truncate(len) => len.min(source),
        Damage::None | Damage::Set { .. } => source,
    })
}

/// Checks a realistic file: at least 1 MiB, regions inside it and covering every byte.
pub(super) fn check_map(file: &Realistic, len: u64) -> Vec<String> {
    let mut problems = Vec::new();
    if len < REALISTIC_MIN_BYTES {
        problems.push(format!(
            "{}: {len} bytes, under the {REALISTIC_MIN_BYTES} a realistic file must have",
            file.name
        ));
    }
    let mut ranges: Vec<_> = file.regions.iter().map(|r| r.range.clone()).collect();
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut covered = 0u64;
    for range in &ranges {
        if range.end > len {
            problems.push(format!(
                "{}: a region ends at byte {}, past the end ({len})",
                file.name, range.end
            ));
        }
        if range.start > covered {
            problems.push(format!(
                "{}: bytes {covered}..{} are in no region",
                file.name, range.start
            ));
        }
        covered = covered.max(range.end);
    }
    if covered < len {
        problems.push(format!(
            "{}: bytes {covered}..{len} are in no region",
            file.name
        ));
    }
    problems
}

/// Every case of the run, with the problems found while building it (a missing realistic file,
/// a map with holes, an unknown loader) and a description of the corpus.
pub(super) struct Corpus {
    pub(super) cases: Vec<Case>,
    pub(super) problems: Vec<String>,
    pub(super) what: Vec<String>,
}

/// Builds the run's cases: the hostile inputs, a small valid file cut and corrupted, and the
/// realistic files damaged in every region.
pub(super) fn build_corpus(ctx: &Ctx<'_>, dir: &Path) -> Result<Corpus, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut corpus = Corpus {
        cases: Vec::new(),
        problems: Vec::new(),
        what: Vec::new(),
    };
    hostile_cases(ctx, dir, &mut corpus)?;
    small_file_cases(ctx, &mut corpus)?;
    realistic_cases(ctx, &mut corpus)?;
    Ok(corpus)
}

/// How a file a fixture meant for `loader` is loaded; an unknown name is a problem of the run.
fn via(ctx: &Ctx<'_>, loader: Option<&'static str>, problems: &mut Vec<String>) -> Via {
    match loader {
        None => Via::Backend,
        Some(name) => {
            if !ctx.fixtures.loaders().iter().any(|l| l.name == name) {
                problems.push(format!(
                    "a fixture names the loader {name:?}, which does not exist"
                ));
            }
            Via::Loader(name.to_owned())
        }
    }
}

/// The hostile inputs, each of which must be refused, except the valid ones, which must load
/// or be refused clearly.
fn hostile_cases(ctx: &Ctx<'_>, dir: &Path, corpus: &mut Corpus) -> Result<(), String> {
    let kept = kept_corpus(ctx, dir)?;
    corpus.what.push(format!("{} hostile inputs", kept.len()));
    for Kept {
        path,
        loader,
        valid,
    } in kept
    {
        let via = via(ctx, loader, &mut corpus.problems);
        corpus.cases.push(Case {
            child: ChildCase {
                name: file_name(&path),
                via,
                source: path,
                damage: Damage::None,
            },
            want: if valid { Want::Either } else { Want::Error },
            region: None,
        });
    }
    Ok(())
}

/// A small valid file saved by the backend: cut at every byte (evenly spread in quick mode), and
/// corrupt bytes in its first 256.
fn small_file_cases(ctx: &Ctx<'_>, corpus: &mut Corpus) -> Result<(), String> {
    let backend = ctx.backend;
    let ext = backend.extension();
    let caps = backend.capabilities();
    let kind = if caps.stores(DTypeKind::F64) {
        DTypeKind::F64
    } else {
        caps.dtypes.first().copied().unwrap_or(DTypeKind::U8)
    };
    let small = ctx.dir.path().join(format!("small.{ext}"));
    backend
        .save(
            &small,
            &sample::array(kind, &[3, 4], Order::C, 5),
            &SaveOptions::default(),
        )
        .map_err(|e| format!("saving the small valid file: {e}"))?;
    let bytes = crate::tree::read_source(&small)?;
    let whole = Region::dense("small file", 0..bytes.len() as u64);
    let cuts = match ctx.mode {
        Mode::Full => positions(&whole, u64::MAX),
        Mode::Quick => positions(&whole, SMALL_CUTS_QUICK),
    };
    for &len in &cuts {
        corpus.cases.push(Case {
            child: ChildCase {
                name: format!("trunc-{len:06}.{ext}"),
                via: Via::Backend,
                source: small.clone(),
                damage: Damage::Truncate(len),
            },
            want: Want::Error,
            region: None,
        });
    }
    let mut rng = Rng::new(0xbad_1257);
    for (at, &old) in bytes.iter().enumerate().take(256) {
        let byte = corrupt(old, rng.below(3), &mut rng);
        corpus.cases.push(Case {
            child: ChildCase {
                name: format!("flip-{at:06}-{byte:02x}.{ext}"),
                via: Via::Backend,
                source: small.clone(),
                damage: Damage::Set {
                    at: at as u64,
                    byte,
                },
            },
            want: Want::Either,
            region: None,
        });
    }
    corpus.what.push(format!(
        "{} of a 3×4 file ({} bytes) and {} corrupt bytes of it",
        if cuts.len() == bytes.len() {
            "every cut".to_owned()
        } else {
            format!("{} cuts", cuts.len())
        },
        bytes.len(),
        bytes.len().min(256)
    ));
    Ok(())
}

/// The fixtures' realistic files: each loads intact, and is damaged in every region.
fn realistic_cases(ctx: &Ctx<'_>, corpus: &mut Corpus) -> Result<(), String> {
    let dir = ctx.dir.path().join("realistic");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let files = ctx.fixtures.realistic_files(ctx.backend, &dir)?;
    if files.is_empty() {
        corpus.problems.push(
            "the fixtures give no realistic file, so no region of a real file is damaged"
                .to_owned(),
        );
    }
    for (n, file) in files.iter().enumerate() {
        let bytes = crate::tree::read_source(&file.path)?;
        corpus.problems.extend(check_map(file, bytes.len() as u64));
        let via = via(ctx, file.loader, &mut corpus.problems);
        let ext = file.path.extension().map_or_else(
            || ctx.backend.extension().to_owned(),
            |e| e.to_string_lossy().into_owned(),
        );
        let stem = format!("real{n}");
        corpus.cases.push(Case {
            child: ChildCase {
                name: format!("{stem}-intact.{ext}"),
                via: via.clone(),
                source: file.path.clone(),
                damage: Damage::None,
            },
            want: Want::Data,
            region: None,
        });
        let mut rng = Rng::new(0x5eed_0000 + n as u64);
        for (r, region) in file.regions.iter().enumerate() {
            let made = RegionCases {
                file,
                bytes: &bytes,
                via: &via,
                name: &format!("{stem}-r{r}"),
                ext: &ext,
                turn: r as u64,
            };
            corpus.cases.extend(made.cases(region, ctx.mode, &mut rng));
        }
    }
    Ok(())
}

/// What the cases of one region of a realistic file share.
struct RegionCases<'a> {
    file: &'a Realistic,
    bytes: &'a [u8],
    via: &'a Via,
    /// The stem of the cases' names (`real0-r3`).
    name: &'a str,
    ext: &'a str,
    /// Where the rotation of corruptions (bit flip, 0x00, 0xff) starts.
    turn: u64,
}

impl RegionCases<'_> {
    /// The corrupt bytes and cuts of `region`: at every byte (up to the mode's cap, evenly
    /// spread) when dense, at sampled places otherwise; in full mode each dense byte gets all
    /// three corruptions.
    fn cases(&self, region: &Region, mode: Mode, rng: &mut Rng) -> Vec<Case> {
        let len = self.bytes.len() as u64;
        let (flip_cap, cut_cap) = caps(region.density, mode);
        let label = Some((self.file.name.clone(), region.name.clone()));
        let at = |cap: u64, rng: &mut Rng| match region.density {
            Density::Dense => positions(region, cap),
            Density::Sampled => sampled(region, cap, rng),
        };
        let turns: u64 = match (region.density, mode) {
            (Density::Dense, Mode::Full) => 3,
            _ => 1,
        };
        let case = |name: String, damage: Damage, want: Want| Case {
            child: ChildCase {
                name,
                via: self.via.clone(),
                source: self.file.path.clone(),
                damage,
            },
            want,
            region: label.clone(),
        };
        let mut cases = Vec::new();
        for pos in at(flip_cap, rng).into_iter().filter(|&p| p < len) {
            for t in 0..turns {
                let byte = corrupt(self.bytes[pos as usize], pos + t + self.turn, rng);
                cases.push(case(
                    format!("{}-set{t}-{pos:08}-{byte:02x}.{}", self.name, self.ext),
                    Damage::Set { at: pos, byte },
                    region.flips.into(),
                ));
            }
        }
        for pos in at(cut_cap, rng).into_iter().filter(|&p| p < len) {
            cases.push(case(
                format!("{}-cut-{pos:08}.{}", self.name, self.ext),
                Damage::Truncate(pos),
                region.truncation.into(),
            ));
        }
        cases
    }
}

/// `cap` random positions of a sampled region (the first and the last byte among them).
pub(super) fn sampled(region: &Region, cap: u64, rng: &mut Rng) -> Vec<u64> {
    let (start, end) = (region.range.start, region.range.end);
    if end <= start {
        return Vec::new();
    }
    let mut out = vec![start, end - 1];
    while (out.len() as u64) < cap.min(end - start) {
        out.push(start + rng.below(end - start));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Makes a case's file in `scratch` from its source bytes.
pub(super) fn materialise(
    case: &ChildCase,
    source: &[u8],
    scratch: &Path,
) -> Result<PathBuf, String> {
    let path = scratch.join(&case.name);
    if crate::tree::is_packed(source) {
        let damage = match case.damage {
            Damage::None => crate::tree::Damage::None,
            Damage::Truncate(len) => crate::tree::Damage::Cut(len),
            Damage::Set { at, byte } => crate::tree::Damage::Set(at, byte),
        };
        crate::tree::unpack(source, damage, &path)?;
        return Ok(path);
    }
    let result = match case.damage {
        Damage::None => std::fs::write(&path, source),
        Damage::Truncate(len) => std::fs::write(&path, &source[..(len as usize).min(source.len())]),
        Damage::Set { at, byte } => {
            let mut bytes = source.to_vec();
            if let Some(b) = bytes.get_mut(at as usize) {
                *b = byte;
            }
            std::fs::write(&path, &bytes)
        }
    };
    result.map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Reads a case's source once per run.
#[derive(Default)]
pub(super) struct Sources(HashMap<PathBuf, Vec<u8>>);

impl Sources {
    pub(super) fn get(&mut self, path: &Path) -> Result<&[u8], String> {
        if !self.0.contains_key(path) {
            let bytes = crate::tree::read_source(path)?;
            self.0.insert(path.to_path_buf(), bytes);
        }
        Ok(self.0.get(path).map_or(&[][..], Vec::as_slice))
    }
}
