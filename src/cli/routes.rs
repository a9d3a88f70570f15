//! `cutover-proxy routes check`: green's manifests reviewed before the proxy is deployed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::args::{named, ClusterArgs};
use crate::base::names::named_enum;
use crate::routes::check::Check;
use crate::routes::{RouteError, RouteSource};

named_enum! {
    /// How `routes check` prints.
    pub(super) enum CheckOutput {
        /// Aligned columns, as kubent prints.
        Table = "table",
        /// One JSON object.
        Json = "json",
    }
}

/// `cutover-proxy routes …`.
#[derive(Debug, Subcommand)]
pub(super) enum RoutesCommand {
    /// Objects whose apiVersion green's Kubernetes removed (exit 1 when any), what is skipped as not
    /// manifests yet, route objects green would not serve, and the table the proxy would use.
    #[command(mut_args = super::args::no_env)]
    Check(CheckArgs),
}

/// `routes check`'s flags.
#[derive(Debug, Args)]
pub(super) struct CheckArgs {
    #[command(flatten)]
    cluster: ClusterArgs,

    /// `table` or `json`.
    #[arg(short = 'o', long = "output", value_name = "FORMAT", value_parser = named::<CheckOutput>(), default_value_t = CheckOutput::Table)]
    output: CheckOutput,

    /// Manifest files or folders, as for --green-routes; `-` reads standard input (`helm template … | cutover-proxy routes check -`).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

impl RoutesCommand {
    /// Prints the check; 0 when no removed apiVersion is found, 1 when one is, 2 for a broken file.
    pub(super) fn run(&self) -> ExitCode {
        let RoutesCommand::Check(args) = self;
        let source = match read(&args.paths) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let check = Check::new(&source, &args.cluster.cluster());
        match args.output {
            CheckOutput::Table => print!("{}", check.text()),
            CheckOutput::Json => match serde_json::to_string_pretty(&check) {
                Ok(json) => println!("{json}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            },
        }
        if check.found_removed() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// The files and folders together (ArgoCD Applications name the charts of other folders), then
/// standard input for `-`.
fn read(paths: &[PathBuf]) -> Result<RouteSource, RouteError> {
    let stdin = Path::new("-");
    let files: Vec<PathBuf> = paths.iter().filter(|p| p.as_path() != stdin).cloned().collect();
    let mut source = if files.is_empty() { RouteSource::default() } else { RouteSource::read(&files)? };
    if paths.iter().any(|p| p.as_path() == stdin) {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| RouteError {
            path: stdin.to_path_buf(),
            document: 0,
            line: None,
            column: None,
            field: String::new(),
            reason: format!("cannot read standard input: {e}"),
        })?;
        source.extend(RouteSource::from_text(stdin, &text)?);
    }
    Ok(source)
}
