//! Session options of the EP: `ep.asymoexecutionprovider.<key>` entries parsed into a typed [`EpConfig`].
//!
//! Every key is listed in [`OPTIONS`] (README and `include/asymo_ep.h` list the same keys; a test keeps them in
//! step). An unknown key or a bad value fails session creation with a message naming the key, the value and what
//! is accepted.

use std::path::PathBuf;

use asymo_ep_ffi::{Error, Result};

use crate::asym::freq::{parse_hold_ms, BackendChoice, FreqOption, FreqRequest, GovMode};
use crate::asym::AsymConfig;

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
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "topology",
        accepted: "auto, or core classes `cpus:capacity[,cpus:capacity…]` (e.g. `0-3:1024,4-7:462`)",
        default: "auto",
        doc: "core classes: detected from sysfs (cpu_capacity, cpufreq, clusters), x86 hybrid CPUID and the affinity mask, or declared",
    },
    OptionSpec {
        key: "cores",
        accepted: "all, or a cpu list (e.g. `0,2-3`)",
        default: "all",
        doc: "restrict the EP's workers to these CPUs (one pinned worker per CPU)",
    },
    OptionSpec {
        key: "sysfs_root",
        accepted: "a directory holding devices/system/cpu",
        default: "/sys",
        doc: "where topology and cpufreq are read (fixture trees in tests)",
    },
    OptionSpec {
        key: "profile",
        accepted: "path of a JSON profile written by asymo-profile",
        default: "(none: quick calibration, cached)",
        doc: "offline cost model (and energy curves); a missing or corrupt file is an error",
    },
    OptionSpec {
        key: "calibration_cache",
        accepted: "a directory",
        default: "$XDG_CACHE_HOME/asymo-ep or ~/.cache/asymo-ep",
        doc: "where the quick built-in calibration is cached, keyed by CPU model and cores",
    },
    OptionSpec {
        key: "schedule",
        accepted: "asymo, equal",
        default: "asymo",
        doc: "asymo: cost-model partition between clusters and cores; equal: equal split (ablation)",
    },
    OptionSpec { key: "steal", accepted: "1, 0", default: "1", doc: "idle workers steal tasks (ablation: 0)" },
    OptionSpec {
        key: "adapt",
        accepted: "1, 0",
        default: "1",
        doc: "feed measured per-core speed back into the split (ablation: 0)",
    },
    OptionSpec {
        key: "log_plan",
        accepted: "1, 0",
        default: "0",
        doc: "log each compiled node's lowering, each partition plan, the model's data reuse and frequency plan",
    },
    OptionSpec {
        key: "smt",
        accepted: "1, 0",
        default: "1",
        doc: "1: every hardware thread gets a worker; 0: one worker per physical core",
    },
    OptionSpec {
        key: "min_task_us",
        accepted: "a positive number of microseconds",
        default: "15",
        doc: "tuning: smallest predicted task; smaller problems use fewer tasks and cores",
    },
    OptionSpec {
        key: "tasks_per_core",
        accepted: "a positive integer",
        default: "4",
        doc: "tuning: most tasks per core in a plan (more: finer balance and stealing, more overhead)",
    },
    OptionSpec {
        key: "spin_us",
        accepted: "microseconds (integer)",
        default: "50",
        doc: "tuning: how long an idle worker spins before parking",
    },
    OptionSpec {
        key: "caller_affinity",
        accepted: "1, 0",
        default: "1",
        doc: "during each Run, keep the calling thread on the cores measured fastest (restored at the end of the Run), so a busy core does not slow ORT's own work",
    },
    OptionSpec {
        key: "layout",
        accepted: "nchw, nhwc",
        default: "nchw",
        doc: "data layout the EP asks ORT for: nchw keeps ONNX's layout; nhwc lets ORT move our convolutions and pools to channels-last (and claims the Transposes it inserts where channels-last values meet channels-first ones); measured as fast as nchw (MobileNetV1) to 11% slower (SqueezeNet) on the benchmark models today (BENCHMARKS.md)",
    },
    OptionSpec {
        key: "mode",
        accepted: "latency, energy",
        default: "latency",
        doc: "with freq=auto: latency raises frequency during runs; energy picks the least-energy frequency per cluster for the model's data reuse (needs measured curves in profile)",
    },
    OptionSpec {
        key: "freq",
        accepted: "off, auto, max, or a frequency in kHz",
        default: "auto",
        doc: "off: never touch CPU frequencies; max: maximum during runs; <kHz>: pin every cluster at that frequency",
    },
    OptionSpec {
        key: "freq_hold_ms",
        accepted: "whole milliseconds",
        default: "50",
        doc: "how long frequencies stay set after the last run ends",
    },
    OptionSpec {
        key: "freq_backend",
        accepted: "auto, sysfs, uclamp, none",
        default: "auto",
        doc: "how frequencies are set: cpufreq sysfs when writable, utilization clamps on our workers, or nothing",
    },
    OptionSpec {
        key: "freq_state_dir",
        accepted: "a directory",
        default: "/run/asymo-ep as root, else $XDG_RUNTIME_DIR/asymo-ep",
        doc: "where original frequency settings are recorded so a killed process's changes are undone on next load",
    },
];

/// The typed configuration of one EP instance (one session).
#[derive(Clone, Debug, PartialEq)]
pub struct EpConfig {
    /// Topology, cost model, partitioner, pool and adaptation settings (the AsyMo core's own parser).
    pub asym: AsymConfig,
    pub freq: FreqRequest,
    pub freq_backend: BackendChoice,
    pub freq_state_dir: Option<PathBuf>,
    pub log_plan: bool,
    pub caller_affinity: bool,
    /// The data layout asked of ORT (its layout transformer then rewrites the convolutions and pools we claim).
    pub layout: Layout,
}

/// The `layout` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Nchw,
    Nhwc,
}

impl Default for EpConfig {
    fn default() -> Self {
        EpConfig {
            asym: AsymConfig::default(),
            freq: FreqRequest::default(),
            freq_backend: BackendChoice::Auto,
            freq_state_dir: None,
            log_plan: false,
            caller_affinity: true,
            layout: Layout::Nchw,
        }
    }
}

impl EpConfig {
    /// Parse from session config entries; entries without our prefix are ignored (they belong to ORT or other EPs).
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut cfg = EpConfig::default();
        for (full_key, value) in entries {
            let Some(key) = full_key.strip_prefix(OPTION_PREFIX) else { continue };
            cfg.set(key, value).map_err(|msg| {
                Error::invalid_argument(format!(
                    "invalid AsyMo EP option '{key}' = '{value}' (session config key '{full_key}'): {msg}"
                ))
            })?;
        }
        Ok(cfg)
    }

    fn set(&mut self, key: &str, value: &str) -> std::result::Result<(), String> {
        let v = value.trim();
        match key {
            "mode" => self.freq.mode = GovMode::parse(v)?,
            "freq" => self.freq.freq = FreqOption::parse(v)?,
            "freq_hold_ms" => self.freq.hold = parse_hold_ms(v)?,
            "freq_backend" => self.freq_backend = BackendChoice::parse(v)?,
            "caller_affinity" => {
                self.caller_affinity = match v {
                    "1" => true,
                    "0" => false,
                    _ => return Err("expected 1 or 0".into()),
                }
            }
            "layout" => {
                self.layout = match v {
                    "nhwc" => Layout::Nhwc,
                    "nchw" => Layout::Nchw,
                    _ => return Err("expected nchw or nhwc".into()),
                }
            }
            "freq_state_dir" => {
                self.freq_state_dir = Some(crate::asym::directory_option(key, v).map_err(|e| e.to_string())?)
            }
            _ => {
                if !self.asym.set(key, value).map_err(|e| e.to_string())? {
                    let known: Vec<&str> = OPTIONS.iter().map(|o| o.key).collect();
                    return Err(format!("unknown option; accepted options: {}", known.join(", ")));
                }
                if key == "log_plan" {
                    self.log_plan = self.asym.partition.log_plan;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asym::partition::Schedule;

    fn parse(pairs: &[(&str, &str)]) -> Result<EpConfig> {
        EpConfig::from_entries(pairs.iter().copied())
    }

    #[test]
    fn defaults_and_foreign_keys() {
        let cfg = parse(&[("session.intra_op.allow_spinning", "0"), ("ep.otherep.x", "1")]).unwrap();
        assert_eq!(cfg, EpConfig::default());
    }

    #[test]
    fn every_listed_option_is_accepted() {
        let good = [
            ("topology", "0:1024,1:512"),
            ("cores", "0"),
            ("sysfs_root", "/sys"),
            ("profile", "/tmp/p.json"),
            ("calibration_cache", "/tmp"),
            ("schedule", "equal"),
            ("steal", "0"),
            ("adapt", "0"),
            ("log_plan", "1"),
            ("layout", "nhwc"),
            ("smt", "0"),
            ("min_task_us", "10"),
            ("tasks_per_core", "2"),
            ("spin_us", "5"),
            ("caller_affinity", "0"),
            ("mode", "energy"),
            ("freq", "off"),
            ("freq_hold_ms", "0"),
            ("freq_backend", "none"),
            ("freq_state_dir", "/tmp"),
        ];
        assert_eq!(good.len(), OPTIONS.len());
        let entries: Vec<(String, String)> =
            good.iter().map(|(k, v)| (format!("{OPTION_PREFIX}{k}"), v.to_string())).collect();
        let cfg = EpConfig::from_entries(entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert!(cfg.log_plan && !cfg.asym.pool.steal && cfg.asym.partition.schedule == Schedule::Equal);
        assert_eq!(cfg.freq.mode, GovMode::Energy);
        for (k, _) in good {
            assert!(OPTIONS.iter().any(|o| o.key == k), "{k} missing from OPTIONS");
        }
    }

    #[test]
    fn bad_values_name_key_value_and_accepted() {
        for (key, value, accepted) in [
            ("log_plan", "maybe", "expected 1 or 0"),
            ("schedule", "fast", "asymo or equal"),
            ("freq", "warp", "off, auto, max"),
            ("mode", "turbo", "latency, energy"),
            ("cores", "3-1", "cores"),
        ] {
            let e = parse(&[(&format!("{OPTION_PREFIX}{key}"), value)]).unwrap_err();
            assert!(
                e.message.contains(key) && e.message.contains(value) && e.message.contains(accepted),
                "{}",
                e.message
            );
        }
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
