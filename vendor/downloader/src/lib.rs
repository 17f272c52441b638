//! Cairn's stand-in for the `downloader` crate's API (see Cargo.toml): `Downloader::builder()`,
//! `Download::new(url).file_name(..).verify(..)`, `verify::with_digest::<D>(hash)` and
//! `Downloader::download`, with each file fetched by the `curl` command and then checked by its verify
//! callback. Mirrors, progress reporting and parallel requests of the original are not offered.

use std::{
    fmt,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
};

pub mod verify;

pub use verify::{SimpleProgress, Verification, Verify};

/// What can go wrong.
#[derive(Debug)]
pub enum Error {
    /// The set-up is incomplete (no download folder, no URL).
    Setup(String),
    /// `curl` could not be run or did not fetch the file.
    Download(DownloadSummary),
    /// The file was fetched but its verify callback rejected it.
    Verification(DownloadSummary),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Setup(what) => write!(f, "Setup error: {what}"),
            Error::Download(summary) => write!(f, "Download failed for {summary}"),
            Error::Verification(summary) => write!(f, "Verification failed for {summary}"),
        }
    }
}

impl std::error::Error for Error {}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// The outcome of one download.
#[derive(Debug)]
pub struct DownloadSummary {
    /// Each attempted URL with its HTTP status (0 where none was received).
    pub status: Vec<(String, u16)>,
    /// Where the file was written.
    pub file_name: PathBuf,
    /// What the verify callback said.
    pub verified: Verification,
}

impl fmt::Display for DownloadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: (verification: {}):", self.file_name.display(), self.verified)?;
        for (i, (url, code)) in self.status.iter().enumerate() {
            writeln!(f, "  {}: {url} with status {code}", i + 1)?;
        }
        Ok(())
    }
}

/// One file to fetch.
pub struct Download {
    /// Where to fetch it from (the first URL is used).
    pub urls: Vec<String>,
    /// The name to save it under, relative to the download folder unless absolute.
    pub file_name: PathBuf,
    /// Checks the fetched file.
    pub verify_callback: Verify,
}

impl Download {
    /// A download from `url`, saved under the last segment of its path.
    #[must_use]
    pub fn new(url: &str) -> Self {
        let name = url
            .split(['?', '#'])
            .next()
            .and_then(|path| path.rsplit('/').next())
            .unwrap_or("");
        Self {
            urls: vec![url.to_owned()],
            file_name: PathBuf::from(name),
            verify_callback: verify::noop(),
        }
    }

    /// Saves the file under `path`.
    #[must_use]
    pub fn file_name(mut self, path: &Path) -> Self {
        self.file_name = path.to_owned();
        self
    }

    /// Checks the fetched file with `func`.
    #[must_use]
    pub fn verify(mut self, func: Verify) -> Self {
        self.verify_callback = func;
        self
    }
}

/// Builds a [`Downloader`].
#[derive(Debug, Default)]
pub struct Builder {
    folder: Option<PathBuf>,
    retries: u16,
}

impl Builder {
    /// The folder files are saved in.
    pub fn download_folder(&mut self, folder: &Path) -> &mut Self {
        self.folder = Some(folder.to_owned());
        self
    }

    /// How many times `curl` retries a failed transfer.
    pub fn retries(&mut self, count: u16) -> &mut Self {
        self.retries = count;
        self
    }

    /// The downloader.
    pub fn build(&mut self) -> Result<Downloader> {
        let folder = self
            .folder
            .clone()
            .ok_or_else(|| Error::Setup("no download folder was set".into()))?;
        Ok(Downloader { folder, retries: self.retries })
    }
}

/// Fetches files with the `curl` command.
#[derive(Debug)]
pub struct Downloader {
    folder: PathBuf,
    retries: u16,
}

impl Downloader {
    /// A builder (set the download folder, then `build`).
    #[must_use]
    pub fn builder() -> Builder {
        Builder { folder: None, retries: 3 }
    }

    /// Fetches each download in turn; one result per download.
    pub fn download(&mut self, downloads: &[Download]) -> Result<Vec<Result<DownloadSummary>>> {
        downloads
            .iter()
            .map(|download| {
                let url = download
                    .urls
                    .first()
                    .ok_or_else(|| Error::Setup("a download has no URL".into()))?;
                Ok(self.fetch(url, download))
            })
            .collect()
    }

    fn fetch(&self, url: &str, download: &Download) -> Result<DownloadSummary> {
        let path = self.folder.join(&download.file_name);
        if std::env::var_os("DOCS_RS").is_some() {
            return offline_placeholder(url, path);
        }
        let output = Command::new("curl")
            .args(["--location", "--fail", "--silent", "--show-error"])
            .args(["--retry", &self.retries.to_string(), "--connect-timeout", "30"])
            .args(["--write-out", "%{http_code}", "--output"])
            .arg(&path)
            .arg(url)
            .output();
        let mut summary = DownloadSummary {
            status: vec![(url.to_owned(), 0)],
            file_name: path.clone(),
            verified: Verification::NotVerified,
        };
        let output = match output {
            Ok(output) => output,
            Err(err) => {
                eprintln!("downloader: could not run curl to fetch {url}: {err}");
                return Err(Error::Download(summary));
            }
        };
        summary.status[0].1 = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap_or(0);
        if !output.status.success() {
            eprintln!("downloader: curl {url}: {}", String::from_utf8_lossy(&output.stderr).trim());
            return Err(Error::Download(summary));
        }
        summary.verified = (download.verify_callback)(path, &|_| {});
        match summary.verified {
            Verification::Failed => Err(Error::Verification(summary)),
            _ => Ok(summary),
        }
    }
}

/// Offline builds (`DOCS_RS` set, as scripts/cargo.sh does where the artifacts cannot be reached) want an empty
/// file, never a download. risc0-circuit-recursion's build script writes that empty archive itself on its first
/// run, but when it runs again over the same output folder (its own dependencies were rebuilt) it finds the
/// empty file, deletes it as a bad download and calls us: without this, every warm offline rebuild failed
/// trying to reach the network (CI, stop 21).
fn offline_placeholder(url: &str, path: PathBuf) -> Result<DownloadSummary> {
    let summary =
        DownloadSummary { status: vec![(url.to_owned(), 0)], file_name: path.clone(), verified: Verification::NotVerified };
    match std::fs::write(&path, b"") {
        Ok(()) => {
            eprintln!("downloader: DOCS_RS is set (offline build): wrote an empty {} instead of fetching {url}", path.display());
            Ok(summary)
        }
        Err(err) => {
            eprintln!("downloader: could not write {}: {err}", path.display());
            Err(Error::Download(summary))
        }
    }
}

/// The progress reporter type of the original crate; nothing reports progress here.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;
