//! The command line: clap, `CUTOVER_*` environment variables and `serve`'s TOML config file turned
//! into typed settings, and each subcommand run with its exit code (0 done, 1 failure at run time
//! such as an address in use, 2 bad flags, configuration or input). Nothing imports it but
//! `main.rs`.

mod analyze;
mod args;
mod config_file;
mod report;
mod routes;
mod serve;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// The whole command line.
#[derive(Debug, Parser)]
#[command(
    name = "cutover-proxy",
    version,
    about = "Forwards everything to the old (blue) cluster and records which hosts and paths still arrive during a DNS cutover",
    propagate_version = true
)]
struct Cli {
    /// What to run.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy in front of blue.
    Serve(Box<serve::ServeArgs>),
    /// Work with report files offline (render, merge replicas' reports).
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Read blue's access logs from before the proxy (ALB or nginx JSON, gzip too) into the same report.
    #[command(mut_args = args::no_env)]
    Analyze(Box<analyze::AnalyzeArgs>),
    /// Review green's manifests: removed Kubernetes APIs, charts to render, the table the proxy would use.
    #[command(subcommand)]
    Routes(routes::RoutesCommand),
    /// Certificates for --cert-dir.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Try it in one minute: embedded blue, sample green routes, replayed traffic, the report.
    Demo {
        /// Print the report and exit instead of serving it until Ctrl-C.
        #[arg(long)]
        exit: bool,
        /// Where report.json, report.md, report.csv and access.log are written.
        #[arg(long, value_name = "DIR", default_value = "cutover-demo")]
        out: PathBuf,
    },
}

/// `cutover-proxy certs …`.
#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Make a development CA (DIR/ca/ca.crt, ca.key) and a leaf certificate per name signed by it
    /// (DIR/NAME.crt, DIR/NAME.key), ready for --cert-dir DIR. For demos and tests, not production.
    Generate {
        /// Folder to write to (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Host names (`*.example.com` for a wildcard); one certificate each.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
}

/// Parses the process's arguments and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = match parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // Diagnostics go to stderr as JSON; stdout carries the access log and events.
    let (writer, _guard) = tracing_appender::non_blocking(std::io::stderr());
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(EnvFilter::try_from_env("CUTOVER_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(writer)
        .init();
    match cli.command {
        Command::Serve(args) => {
            let settings = match args.into_settings() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            match crate::serve::run(settings) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Certs(CertsCommand::Generate { out, names }) => match crate::tls::generate::generate(&out, &names) {
            Ok(files) => {
                for f in files {
                    println!("{}", f.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Demo { exit, out } => match crate::demo::run(&out, exit) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Analyze(args) => args.run(),
        Command::Routes(cmd) => cmd.run(),
        Command::Report(cmd) => match cmd.run() {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// The command line, with `serve --config FILE`'s values as the defaults of its flags (so flags
/// and environment variables still win). Help, version and usage errors end here with their
/// exit code.
fn parse(argv: Vec<OsString>) -> Result<Cli, ExitCode> {
    let command = Cli::command();
    let matches = command.clone().try_get_matches_from(&argv).map_err(clap_exit)?;
    let config = match matches.subcommand() {
        Some(("serve", sub)) => sub.get_one::<PathBuf>("config").cloned(),
        _ => None,
    };
    let matches = match config {
        None => matches,
        Some(path) => {
            let mut applied = Err(ExitCode::from(2));
            let command = command.mut_subcommand("serve", |serve| match config_file::apply(serve.clone(), &path) {
                Ok(with_file) => {
                    applied = Ok(());
                    with_file
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    serve
                }
            });
            applied?;
            command.try_get_matches_from(&argv).map_err(clap_exit)?
        }
    };
    Cli::from_arg_matches(&matches).map_err(clap_exit)
}

/// Help and version go to stdout with exit 0; a usage error is one line on stderr with exit 2.
fn clap_exit(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(2)
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("error: invalid arguments");
            eprintln!("{first} (see `cutover-proxy --help`)");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use crate::base::error::ConfigError;
    use crate::serve::ServeSettings;

    fn resolve_with(toml: &str, flags: &[&str]) -> Result<ServeSettings, ConfigError> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("cutover-config-{}-{seq}.toml", std::process::id()));
        std::fs::write(&path, toml).unwrap();
        let mut argv: Vec<OsString> =
            ["cutover-proxy", "serve", "--config", path.to_str().unwrap()].iter().map(OsString::from).collect();
        argv.extend(flags.iter().map(OsString::from));
        let cli = parse(argv);
        let _ = std::fs::remove_file(&path);
        let Ok(Cli { command: Command::Serve(args) }) = cli else {
            return Err(ConfigError::Invalid { what: "test", why: "the command line was refused".into() });
        };
        args.into_settings()
    }

    #[test]
    fn dns_and_tls_keys_in_the_config_file_and_flags_over_them() {
        let toml = r#"
upstream = "http://blue:80"
blue_target = ["k8s-blue-1.eu-west-1.elb.amazonaws.com", "10.1.0.0/16"]
green-target = ["k8s-green-2.eu-west-1.elb.amazonaws.com"]
dns-server = ["127.0.0.1:5353"]
route53_records = ["Z123=zone.json"]
close-stale-connections = true
green_weight = 50
ttl-grace = "10s"
dns_samples = 5
tls-handshake-timeout = "3s"
"#;
        let cfg = resolve_with(toml, &["--green-weight", "70"]).unwrap();
        assert_eq!(cfg.dns.targets.blue.len(), 2);
        assert_eq!(cfg.dns.resolver.servers, vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]);
        assert_eq!(cfg.dns.route53, vec![("Z123".to_owned(), PathBuf::from("zone.json"))]);
        assert!(cfg.dns.live && cfg.proxy.close_stale_connections);
        assert_eq!(cfg.export.green_weight, 70, "the flag wins over the file");
        assert_eq!((cfg.dns.ttl_grace, cfg.dns.resolver.samples), (Duration::from_secs(10), 5));
        assert_eq!(cfg.tls_handshake_timeout, Duration::from_secs(3));
    }

    #[test]
    fn bad_values_in_the_file_are_refused() {
        // Each refused before serve starts: by the file's own check (with the line), or by the
        // settings' checks (naming the flag).
        let cases: &[(&str, &str)] = &[
            ("upstream = \"http://blue:80\"\n\ngreen_target = [\"not a name\"]\n", "line 3"),
            ("upstream = \"http://blue:80\"\ngreen_weight = 0\n", "--green-weight"),
            (
                "upstream = \"http://blue:80\"\nblue_target = [\"10.0.0.0/8\"]\ngreen_target = [\"10.0.0.0/8\"]\n",
                "also a --blue-target",
            ),
        ];
        for (toml, want) in cases {
            let path = std::env::temp_dir().join(format!("cutover-bad-{}-{}.toml", std::process::id(), toml.len()));
            std::fs::write(&path, toml).unwrap();
            let serve = Cli::command().find_subcommand("serve").cloned().unwrap();
            let err = match config_file::apply(serve, &path) {
                Err(e) => e.to_string(),
                Ok(_) => resolve_with(toml, &[]).err().map(|e| e.to_string()).unwrap_or_default(),
            };
            let _ = std::fs::remove_file(&path);
            assert!(err.contains(want), "{toml}: {err}");
        }
    }

    #[test]
    fn defaults_need_no_flags_but_the_upstream() {
        let s = resolve_with("upstream = \"http://blue:80\"\n", &[]).unwrap();
        let d = ServeSettings::new(s.upstream.clone());
        assert_eq!((s.listen, s.admin_listen, s.connect_timeout), (d.listen, d.admin_listen, d.connect_timeout));
        assert_eq!((s.client.header, s.client.idle), (d.client.header, d.client.idle));
        assert_eq!(s.ledger.ignore_paths, d.ledger.ignore_paths);
        assert_eq!(s.quiet_period, Duration::from_secs(900));
    }
}
