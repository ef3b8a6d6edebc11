//! Session options of the EP: `ep.asymoexecutionprovider.<key>` entries parsed into a typed [`EpConfig`].
//!
//! Only options that do something exist. Every key is listed in [`OPTIONS`] (README and `include/asymo_ep.h` list
//! the same keys; a test keeps them in step). An unknown key or a bad value fails session creation with a message
//! naming the key, the value and what is accepted.

use asymo_ep_ffi::{Error, Result};

/// Prefix ORT puts before our option keys (`ep.` + lowercased EP name + `.`).
pub const OPTION_PREFIX: &str = "ep.asymoexecutionprovider.";

/// One documented option.
#[derive(Debug)]
pub struct OptionSpec {
    pub key: &'static str,
    pub accepted: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

/// Every option the EP accepts.
pub const OPTIONS: &[OptionSpec] = &[OptionSpec {
    key: "log_plan",
    accepted: "0 or 1",
    default: "0",
    doc: "log each compiled node's lowering (and, with the AsyMo core, each partition plan) at WARNING level",
}];

/// The typed configuration of one EP instance (one session).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpConfig {
    pub log_plan: bool,
}

impl EpConfig {
    /// Parse from session config entries; entries without our prefix are ignored (they belong to ORT or other EPs).
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut cfg = EpConfig::default();
        for (full_key, value) in entries {
            let Some(key) = full_key.strip_prefix(OPTION_PREFIX) else { continue };
            match key {
                "log_plan" => cfg.log_plan = parse_bool(full_key, value)?,
                _ => {
                    let known: Vec<&str> = OPTIONS.iter().map(|o| o.key).collect();
                    return Err(Error::invalid_argument(format!(
                        "unknown AsyMo EP option '{key}' (session config key '{full_key}', value '{value}'); accepted options: {}",
                        known.join(", ")
                    )));
                }
            }
        }
        Ok(cfg)
    }
}

fn spec(full_key: &str) -> &'static OptionSpec {
    let key = full_key.strip_prefix(OPTION_PREFIX).unwrap_or(full_key);
    OPTIONS.iter().find(|o| o.key == key).expect("parsers exist only for listed options")
}

fn bad_value(full_key: &str, value: &str) -> Error {
    let s = spec(full_key);
    Error::invalid_argument(format!(
        "invalid value '{value}' for AsyMo EP option '{}' (session config key '{full_key}'): expected {}",
        s.key, s.accepted
    ))
}

fn parse_bool(full_key: &str, value: &str) -> Result<bool> {
    match value.trim() {
        "1" | "true" | "True" | "TRUE" => Ok(true),
        "0" | "false" | "False" | "FALSE" => Ok(false),
        _ => Err(bad_value(full_key, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<EpConfig> {
        EpConfig::from_entries(pairs.iter().copied())
    }

    #[test]
    fn defaults_and_foreign_keys() {
        let cfg = parse(&[("session.intra_op.allow_spinning", "0"), ("ep.otherep.x", "1")]).unwrap();
        assert_eq!(cfg, EpConfig::default());
    }

    #[test]
    fn log_plan() {
        assert!(parse(&[("ep.asymoexecutionprovider.log_plan", "1")]).unwrap().log_plan);
        let e = parse(&[("ep.asymoexecutionprovider.log_plan", "maybe")]).unwrap_err();
        assert!(
            e.message.contains("log_plan") && e.message.contains("maybe") && e.message.contains("0 or 1"),
            "{}",
            e.message
        );
    }

    #[test]
    fn unknown_key_names_key_value_and_accepted() {
        let e = parse(&[("ep.asymoexecutionprovider.bogus", "7")]).unwrap_err();
        assert!(
            e.message.contains("bogus") && e.message.contains("'7'") && e.message.contains("log_plan"),
            "{}",
            e.message
        );
    }

    #[test]
    fn versions_agree() {
        let version = env!("CARGO_PKG_VERSION");
        assert!(include_str!("../include/asymo_ep.h").contains(&format!("#define ASYMO_EP_VERSION \"{version}\"")));
        assert!(include_str!("../cmake/AsyMoEPConfigVersion.cmake")
            .contains(&format!("set(PACKAGE_VERSION \"{version}\")")));
    }

    #[test]
    fn header_and_readme_list_every_option() {
        let header = include_str!("../include/asymo_ep.h");
        let readme = include_str!("../README.md");
        for o in OPTIONS {
            assert!(header.contains(&format!("\"{}\"", o.key)), "include/asymo_ep.h misses option {}", o.key);
            assert!(readme.contains(&format!("`{}`", o.key)), "README.md misses option {}", o.key);
        }
    }
}
