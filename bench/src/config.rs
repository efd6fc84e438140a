//! The bench's settings, read once: the command line and the few environment variables it honours
//! (the emulators' endpoints that `scripts/emulators.sh run` sets, and `CARGO_TARGET_DIR`). The only
//! place that reads the environment.

use std::path::{Path, PathBuf};

use clap::Parser;

/// `make bench`: measures and prints; never fails on a time.
#[derive(Debug, Parser)]
#[command(name = "campbridge-bench", about = "campbridge's benchmarks (run by `make bench`)")]
pub struct Cli {
    /// Where the JSON results go.
    #[arg(long, default_value = "target/bench/results.json")]
    pub out: PathBuf,
    /// Fewer repetitions, for trying the bench out (the README quotes full runs).
    #[arg(long)]
    pub quick: bool,
    /// Sections to leave out: receiver, functions, load, e2e, calls, burst, store.
    #[arg(long, value_delimiter = ',')]
    pub skip: Vec<String>,
}

/// Everything the run needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cli_out: PathBuf,
    pub quick: bool,
    pub skip: Vec<String>,
    /// The workspace root (fixtures, events, functions, infra).
    pub root: PathBuf,
    /// Where this executable and the function binaries built with it live.
    pub bin_dir: PathBuf,
    /// Target directories that may hold `make build`'s `lambda/<name>/bootstrap`.
    pub target_dirs: Vec<PathBuf>,
    /// DynamoDB and SQS endpoints of the emulators, when both are set and on 127.0.0.1.
    pub emulators: Option<(String, String)>,
}

impl Settings {
    pub fn read(cli: Cli) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir()?;
        let root = if is_root(&cwd) { cwd } else { Path::new(env!("CARGO_MANIFEST_DIR")).join("..") };
        let exe = std::env::current_exe()?;
        let bin_dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut target_dirs = vec![root.join("target")];
        if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
            target_dirs.push(PathBuf::from(t));
        }
        if let Some(t) = bin_dir.parent() {
            target_dirs.push(t.to_path_buf());
        }
        let loopback = |v: &str| std::env::var(v).ok().filter(|u| u.starts_with("http://127.0.0.1:"));
        let emulators = loopback("AWS_ENDPOINT_URL_DYNAMODB")
            .zip(loopback("AWS_ENDPOINT_URL_SQS"))
            .filter(|_| loopback("AWS_ENDPOINT_URL_SECRETS_MANAGER").is_some());
        Ok(Self { cli_out: cli.out, quick: cli.quick, skip: cli.skip, root, bin_dir, target_dirs, emulators })
    }

    /// Whether a section runs.
    pub fn runs(&self, section: &str) -> bool {
        !self.skip.iter().any(|s| s == section)
    }
}

fn is_root(dir: &Path) -> bool {
    dir.join("infra/template.yaml").exists() && dir.join("functions").is_dir()
}
