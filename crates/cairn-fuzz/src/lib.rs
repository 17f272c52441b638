//! Cairn's fuzz targets: every decoder that reads a peer's or a user's bytes, called as the node calls it, with
//! seed inputs made of real messages, segments and receipts (mutations of valid inputs reach far deeper than
//! random bytes).
//!
//! Two drivers run them:
//! - `scripts/fuzz.sh` builds `fuzz/` with libFuzzer and coverage instrumentation and runs each target for a
//!   set number of executions (the campaign whose counts `docs/SECURITY.md` records);
//! - [`drive`], uninstrumented mutation of the seeds, runs in the test suite (`tests/smoke.rs`) so every
//!   target keeps building and holds on its seeds, its regressions and a few thousand mutations.
//!
//! A target returns `Ok` when the node would accept the input and `Err` with the reason when it would refuse
//! it; a panic, a hang or an allocation out of all proportion to the input is a finding. Inputs that once
//! crashed a target live in `regressions/<target>/` and are replayed by the smoke test.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

#[cfg(feature = "risc0")]
pub mod risc0;
mod targets;

pub use targets::TARGETS;

/// One fuzz target.
#[derive(Debug)]
pub struct Target {
    /// Name (the libFuzzer build selects it with `CAIRN_FUZZ_TARGET`).
    pub name: &'static str,
    /// What bytes it reads, and from whom.
    pub about: &'static str,
    /// A cheap decoder (the campaign's goal is 1 M executions or more); the others prove or verify with
    /// RISC Zero and get what the campaign's time allows.
    pub cheap: bool,
    /// Whether its seeds include inputs the node accepts (the join target's cannot: offline there are no
    /// succinct receipts to make a valid join from).
    pub accepts_seeds: bool,
    run: fn(&[u8]) -> Result<(), String>,
    seeds: fn() -> Vec<Vec<u8>>,
}

impl Target {
    /// Runs the target on one input: what the node would do with it.
    pub fn run(&self, data: &[u8]) -> Result<(), String> {
        (self.run)(data)
    }

    /// Seed inputs: real, valid messages (and a few refusals) of the kind this target reads.
    pub fn seeds(&self) -> Vec<Vec<u8>> {
        (self.seeds)()
    }
}

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// A small deterministic generator (xorshift64*), so a failing smoke run is reproduced by its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Values that sit on decoders' edges: lengths, counts and sizes near limits and type bounds.
const INTERESTING: &[u64] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    u64::MAX,
];

/// One mutation of `seed`: byte flips, interesting integers written over it, chunks removed, duplicated or
/// spliced in from another seed, truncation.
pub fn mutate(rng: &mut Rng, seed: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next_u64() as u8;
            }
            2 if len > 0 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let width = [1, 2, 4, 8][rng.below(4)];
                let i = rng.below(len);
                let bytes = if rng.below(2) == 0 {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                for (k, b) in bytes.iter().take(width).enumerate() {
                    if let Some(slot) = out.get_mut(i + k) {
                        *slot = *b;
                    }
                }
            }
            3 if len > 1 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                out.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let chunk = out[a..b].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, chunk);
            }
            5 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + 1 + rng.below(256)).min(other.len());
                    let at = rng.below(len + 1);
                    let end = (at + (b - a)).min(len);
                    out.splice(at..end, other[a..b].iter().copied());
                }
            }
            _ => out.truncate(rng.below(len + 1)),
        }
    }
    out
}

/// What a run of [`drive`] did.
#[derive(Debug, Default)]
pub struct DriveReport {
    /// Inputs run.
    pub executions: u64,
    /// Inputs the target accepted.
    pub accepted: u64,
    /// Time taken.
    pub elapsed: Duration,
    /// The first input that panicked, with the panic's message.
    pub crash: Option<(Vec<u8>, String)>,
}

/// Runs `target` on each of `inputs` and then on `mutations` mutations of them, catching panics; stops at the
/// first panic, or when `budget` (if any) is spent. Without a budget every mutation runs.
pub fn drive(
    target: &Target,
    inputs: &[Vec<u8>],
    mutations: u64,
    rng_seed: u64,
    budget: Option<Duration>,
) -> DriveReport {
    // The panic hook is process-wide: one drive at a time.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let start = Instant::now();
    let mut report = DriveReport::default();
    let mut rng = Rng::new(rng_seed);
    let quiet = QuietPanics::install();
    let one = |data: &[u8], report: &mut DriveReport| -> bool {
        report.executions += 1;
        match catch_unwind(AssertUnwindSafe(|| target.run(data))) {
            Ok(Ok(())) => report.accepted += 1,
            Ok(Err(_)) => {}
            Err(panic) => {
                report.crash = Some((data.to_vec(), panic_message(&panic)));
                return false;
            }
        }
        true
    };
    for input in inputs {
        if !one(input, &mut report) {
            break;
        }
    }
    if report.crash.is_none() && !inputs.is_empty() {
        for _ in 0..mutations {
            if budget.is_some_and(|b| start.elapsed() > b) {
                break;
            }
            let seed = &inputs[rng.below(inputs.len())];
            let input = mutate(&mut rng, seed, inputs);
            if !one(&input, &mut report) {
                break;
            }
        }
    }
    drop(quiet);
    report.elapsed = start.elapsed();
    report
}

/// The message of a caught panic.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Silences the default panic hook while [`drive`] runs (panics are reported with the input instead).
type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send>;

struct QuietPanics(Option<PanicHook>);

impl QuietPanics {
    fn install() -> Self {
        let old = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        Self(Some(old))
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        if let Some(old) = self.0.take() {
            std::panic::set_hook(old);
        }
    }
}

/// Where inputs that once crashed a target are kept: `crates/cairn-fuzz/regressions/<target>/`.
pub fn regressions_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions")
}

/// Why the regression inputs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RegressionsError {
    /// The folder, a target's folder in it or one of its files could not be read (a moved folder drops every
    /// input from the replay, so it is an error, not an empty list).
    #[error("cannot read the fuzz regressions at {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A folder that names no target: its inputs would never be replayed (a target renamed without it).
    #[error("{} names no fuzz target (`cairn-fuzz list`): move its inputs to their target's folder", path.display())]
    UnknownTarget { path: std::path::PathBuf },
}

/// Inputs that once crashed `target`, kept in `crates/cairn-fuzz/regressions/<target>/` (a target without
/// that folder has none). Every folder there must name a target.
pub fn regressions(target: &str) -> Result<Vec<(String, Vec<u8>)>, RegressionsError> {
    let root = regressions_dir();
    let read = |path: &std::path::Path, source| RegressionsError::Read {
        path: path.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(&root).map_err(|e| read(&root, e))? {
        let entry = entry.map_err(|e| read(&root, e))?;
        let name = entry.file_name();
        if !TARGETS.iter().any(|t| name.to_str() == Some(t.name)) {
            return Err(RegressionsError::UnknownTarget { path: entry.path() });
        }
    }
    let dir = root.join(target);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read(&dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| read(&dir, e))?.path();
        let bytes = std::fs::read(&path).map_err(|e| read(&path, e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((name, bytes));
    }
    out.sort();
    Ok(out)
}
