//! `--config FILE` for `cairn node` and `cairn relay`: a TOML file whose keys are the command's long flag
//! names. Precedence is flags > environment > file: each key the environment does not already set becomes
//! the environment variable of its flag (every such flag has one), before clap parses the command line.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Subcommands that read a config file.
const WITH_CONFIG: &[&str] = &["node", "relay"];

/// Applies the config file named on this command line (or in `CAIRN_CONFIG`), if any.
pub fn apply_from_args(args: &[String]) -> anyhow::Result<()> {
    let Some(sub) = subcommand(args) else {
        return Ok(());
    };
    if !WITH_CONFIG.contains(&sub.as_str()) {
        return Ok(());
    }
    let path = flag_value(args, "--config")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CAIRN_CONFIG").map(PathBuf::from));
    let Some(path) = path else { return Ok(()) };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    let command = <crate::cli::Cli as clap::CommandFactory>::command();
    let cmd = command
        .find_subcommand(&sub)
        .expect("a subcommand listed in WITH_CONFIG");
    for (var, value) in env_assignments(cmd, &text, &path)? {
        if std::env::var_os(&var).is_none() {
            std::env::set_var(var, value);
        }
    }
    Ok(())
}

/// The environment variables a config file sets, checked against the command's flags.
fn env_assignments(
    cmd: &clap::Command,
    text: &str,
    path: &Path,
) -> anyhow::Result<Vec<(String, String)>> {
    let table: toml::Table =
        toml::from_str(text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let Some(arg) = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()))
        else {
            let mut keys: Vec<&str> = cmd
                .get_arguments()
                .filter(|a| a.get_env().is_some() && !a.is_hide_set())
                .filter_map(|a| a.get_long())
                .filter(|k| *k != "config")
                .collect();
            keys.sort();
            bail!(
                "{}: unknown setting {key:?}; the settings are the long flags of `cairn {}` ({})",
                path.display(),
                cmd.get_name(),
                keys.join(", ")
            );
        };
        let Some(var) = arg.get_env() else {
            bail!("{}: {key:?} can only be given as a flag", path.display());
        };
        if key == "config" {
            bail!("{}: a config file cannot name another one", path.display());
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s),
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    other => bail!("{}: {key:?} holds {other}, not a string", path.display()),
                })
                .collect::<anyhow::Result<Vec<_>>>()?
                .join(","),
            other => bail!(
                "{}: {key:?} = {other} is not a value a flag takes",
                path.display()
            ),
        };
        out.push((var.to_string_lossy().into_owned(), text));
    }
    Ok(out)
}

/// The first positional argument (the subcommand), skipping the global `--log` flag.
fn subcommand(args: &[String]) -> Option<String> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--log" {
            it.next();
        } else if !a.starts_with('-') {
            return Some(a.clone());
        }
    }
    None
}

fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == flag {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            return Some(v.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> clap::Command {
        <crate::cli::Cli as clap::CommandFactory>::command()
            .find_subcommand("node")
            .unwrap()
            .clone()
    }

    #[test]
    fn file_keys_become_the_environment_variables_of_their_flags() {
        let text = r#"
            max-po2 = 18
            relay = ["/ip4/203.0.113.1/tcp/4001/p2p/12D3KooWA", "/ip4/203.0.113.2/tcp/4001/p2p/12D3KooWB"]
            no-mdns = true
            data-dir = "/var/lib/cairn"
            reachability = "private"
        "#;
        let mut got = env_assignments(&node(), text, Path::new("node.toml")).unwrap();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("CAIRN_DATA_DIR".into(), "/var/lib/cairn".into()),
                ("CAIRN_MAX_PO2".into(), "18".into()),
                ("CAIRN_NO_MDNS".into(), "true".into()),
                ("CAIRN_REACHABILITY".into(), "private".into()),
                (
                    "CAIRN_RELAY".into(),
                    "/ip4/203.0.113.1/tcp/4001/p2p/12D3KooWA,/ip4/203.0.113.2/tcp/4001/p2p/12D3KooWB".into()
                ),
            ]
        );
    }

    #[test]
    fn an_unknown_key_is_refused_with_the_list_of_settings() {
        let err = env_assignments(&node(), "max_po2 = 18", Path::new("node.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown setting \"max_po2\""), "{err}");
        assert!(err.contains("max-po2"), "{err}");
        assert!(
            !err.contains("misbehave"),
            "test-only flags are not listed: {err}"
        );
        let err = env_assignments(&node(), "max-po2 = [", Path::new("node.toml")).unwrap_err();
        assert!(err.to_string().contains("not valid TOML"), "{err}");
    }

    #[test]
    fn the_subcommand_and_config_flag_are_found_around_global_flags() {
        let args: Vec<String> = [
            "cairn",
            "--log",
            "info",
            "node",
            "--config=/etc/cairn/node.toml",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(subcommand(&args).as_deref(), Some("node"));
        assert_eq!(
            flag_value(&args, "--config").as_deref(),
            Some("/etc/cairn/node.toml")
        );
        let args: Vec<String> = ["cairn", "node", "--config", "n.toml"]
            .map(String::from)
            .to_vec();
        assert_eq!(flag_value(&args, "--config").as_deref(), Some("n.toml"));
    }

    /// `deploy/node.toml` lists every setting of `cairn node`, each line valid once uncommented.
    #[test]
    fn the_example_config_documents_every_setting_and_each_line_is_valid() {
        let example = include_str!("../../../deploy/node.toml");
        let lines: Vec<&str> = example
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_lowercase() || c == '-' || c.is_ascii_digit())
                })
            })
            .collect();
        let mut documented: Vec<&str> = lines
            .iter()
            .map(|l| l.split_once(" = ").unwrap().0)
            .collect();
        documented.sort();
        documented.dedup();
        let mut flags: Vec<&str> = Vec::new();
        let cmd = node();
        for a in cmd.get_arguments() {
            if let (Some(long), false) = (a.get_long(), a.is_hide_set()) {
                if a.get_env().is_some() && long != "config" {
                    flags.push(long);
                }
            }
        }
        flags.sort();
        assert_eq!(
            documented, flags,
            "deploy/node.toml and `cairn node`'s flags differ"
        );
        let uncommented = lines.join("\n");
        env_assignments(&cmd, &uncommented, Path::new("deploy/node.toml")).unwrap();
    }

    #[test]
    fn every_documented_node_setting_can_come_from_the_file() {
        // Every visible flag of `cairn node` has an environment variable, so the file can set it.
        for a in node().get_arguments() {
            if a.is_hide_set() || a.get_long().is_none() {
                continue;
            }
            assert!(
                a.get_env().is_some(),
                "--{} has no environment variable",
                a.get_long().unwrap()
            );
        }
    }
}
