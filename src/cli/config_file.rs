//! The `--config` TOML file of `serve`: its keys are the flags (kebab-case or snake_case), and
//! each value becomes that flag's default, so flags and `CUTOVER_*` variables still win over it
//! (flag > environment > file > built-in default). A value is checked by the flag's own parser,
//! and a bad one names the file and the line.

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;

use crate::base::error::ConfigError;

/// `serve` with the file's values as its flags' defaults.
pub(super) fn apply(serve: clap::Command, path: &Path) -> Result<clap::Command, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| bad(path, None, e.to_string()))?;
    let mut serve = serve;
    for (id, values) in parse(&serve, path, &text)? {
        serve = serve.mut_arg(id, |arg| arg.default_values(values));
    }
    Ok(serve)
}

/// Each key's flag id and its values as text, checked by the flag's parser.
fn parse(serve: &clap::Command, path: &Path, text: &str) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let table: BTreeMap<Spanned<String>, Spanned<toml::Value>> = toml::from_str(text)
        .map_err(|err| bad(path, err.span().map(|s| line_of(s.start)), err.message().replace('\n', " ")))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let line = Some(line_of(key.span().start));
        let id = key.get_ref().replace('-', "_");
        let arg = serve
            .get_arguments()
            .find(|a| a.get_id() == id.as_str() && id != "config")
            .ok_or_else(|| bad(path, line, format!("unknown key `{}` (keys are serve's flags)", key.get_ref())))?;
        let values = texts(value.get_ref()).map_err(|why| bad(path, line, format!("`{}`: {why}", key.get_ref())))?;
        let many = matches!(arg.get_action(), clap::ArgAction::Append);
        if values.len() != 1 && !many {
            return Err(bad(path, line, format!("`{}` takes one value, not a list", key.get_ref())));
        }
        for v in &values {
            check(arg, v).map_err(|why| bad(path, line, why))?;
        }
        out.push((id, values));
    }
    Ok(out)
}

/// Runs the flag's own parser on one value: a command with only this flag parses `--flag=VALUE`
/// (a switch takes `true` or `false`).
fn check(arg: &clap::Arg, value: &str) -> Result<(), String> {
    if !arg.get_action().takes_values() {
        return match value {
            "true" | "false" => Ok(()),
            _ => Err(format!("`{value}` is not true or false")),
        };
    }
    let long = arg.get_long().unwrap_or_default();
    let probe = clap::Command::new("serve").no_binary_name(true).arg(arg.clone().env(None::<&str>));
    probe.try_get_matches_from([format!("--{long}={value}")]).map(|_| ()).map_err(|e| {
        let text = e.to_string();
        text.lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned()
    })
}

/// A TOML value as the flag's text values: strings as they are, numbers and booleans written
/// out, a list element by element.
fn texts(value: &toml::Value) -> Result<Vec<String>, String> {
    let one = |v: &toml::Value| match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err("must be a string, a number, a boolean or a list of them".to_owned()),
    };
    match value {
        toml::Value::Array(items) => items.iter().map(one).collect(),
        v => one(v).map(|s| vec![s]),
    }
}

fn bad(path: &Path, line: Option<usize>, why: String) -> ConfigError {
    ConfigError::File { path: path.to_owned(), line, why }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::CommandFactory;

    use super::*;

    fn serve() -> clap::Command {
        let cli = crate::cli::Cli::command();
        cli.find_subcommand("serve").cloned().unwrap_or_else(|| panic!("no serve subcommand"))
    }

    fn parse_file(path: &Path, text: &str) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
        parse(&serve(), path, text)
    }

    fn value<'a>(parsed: &'a [(String, Vec<String>)], id: &str) -> Option<&'a [String]> {
        parsed.iter().find(|(k, _)| k == id).map(|(_, v)| v.as_slice())
    }

    #[test]
    fn tls_keys_in_the_file() {
        let text = "upstream = \"https://blue:443\"\ntls_listen = [\"127.0.0.1:8443\"]\ncert-dir = \"/etc/certs\"\n\
                    default_cert = \"shop\"\ntls-handshake-timeout = \"3s\"\npassthrough_listen = [\"127.0.0.1:9443\"]\n\
                    passthrough-upstream = \"blue-nlb:443\"\nupstream_ca = \"/etc/ca.pem\"\nupstream-sni = \"blue.internal\"\n";
        let f = parse_file(Path::new("t.toml"), text).unwrap();
        assert_eq!(value(&f, "tls_listen"), Some(&["127.0.0.1:8443".to_owned()][..]));
        assert_eq!(value(&f, "cert_dir"), Some(&["/etc/certs".to_owned()][..]));
        assert_eq!(value(&f, "tls_handshake_timeout"), Some(&["3s".to_owned()][..]));
        assert_eq!(value(&f, "upstream_sni"), Some(&["blue.internal".to_owned()][..]));
        let err = parse_file(Path::new("t.toml"), "passthrough_upstream = \"blue\"\n").unwrap_err();
        assert!(err.to_string().contains("line 1") && err.to_string().contains("HOST:PORT"), "{err}");
    }

    #[test]
    fn file_errors_name_the_line() {
        let p = Path::new("x.toml");
        let err = parse_file(p, "upstream = \"http://a:1\"\nlisten = [\"nope\"]\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("x.toml") && msg.contains("line 2"), "{msg}");
        let err = parse_file(p, "upstream = \"http://a:1\"\nbogus_key = 1\n").unwrap_err();
        assert!(err.to_string().contains("line 2") && err.to_string().contains("bogus"), "{err}");
        let err = parse_file(p, "upstream = [\n").unwrap_err();
        assert!(err.to_string().contains("x.toml"), "{err}");
        let err = parse_file(p, "upstream = \"http://a:1\"\nlog-query = \"yes\"\n").unwrap_err();
        assert!(err.to_string().contains("line 2") && err.to_string().contains("true or false"), "{err}");
        let err = parse_file(p, "upstream = [\"http://a:1\", \"http://b:1\"]\n").unwrap_err();
        assert!(err.to_string().contains("one value"), "{err}");
        let ok = parse_file(p, "upstream = \"http://a:1\"\nidle_timeout = \"3s\"\nconnect-timeout = 2\n").unwrap();
        assert_eq!(value(&ok, "idle_timeout"), Some(&["3s".to_owned()][..]));
        assert_eq!(value(&ok, "connect_timeout"), Some(&["2".to_owned()][..]));
        let _ = Duration::from_secs(2);
    }
}
