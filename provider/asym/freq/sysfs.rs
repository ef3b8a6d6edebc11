//! The Linux cpufreq sysfs backend: one entry per policy under `<root>/devices/system/cpu/cpufreq/policyN`.
//!
//! Two ways to set a frequency, chosen per policy by probing what is writable:
//! - **min/max pinning** (preferred): raise `scaling_min_freq` (latency: floor at the maximum) and, to pin exactly,
//!   lower `scaling_max_freq` too. Works under any governor (schedutil, interactive, intel_pstate's powersave...)
//!   and never switches governors, so it is cheap to do at every run.
//! - **userspace governor**: switch `scaling_governor` to `userspace` and write `scaling_setspeed`; the original
//!   governor comes back on release. Used only when min/max cannot be written.
//!
//! "Writable" means a write bit in the mode *and* `access(W_OK)`: kernfs enforces mode bits even for root, while
//! `access` catches read-only mounts and unprivileged users; checking both makes fixture trees behave like sysfs.
//!
//! Targets are clamped into the policy's original `[scaling_min_freq, scaling_max_freq]`, so whoever set those
//! limits (user, vendor daemon) is respected, and so restoring `min` before `max` is always a valid order.

use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::restore::Registration;
use super::{ClusterInfo, Level};

pub(crate) fn read_trim(p: &Path) -> io::Result<String> {
    Ok(fs::read_to_string(p)?.trim().to_string())
}

fn read_u32(p: &Path) -> Option<u32> {
    read_trim(p).ok()?.parse().ok()
}

/// Parse a cpu list: "0-3", "4 5 6 7", "0,2-3".
pub(crate) fn parse_cpus(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.split(|c: char| c == ',' || c.is_whitespace()).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                out.extend(a..=b);
            }
        } else if let Ok(a) = part.parse() {
            out.push(a);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

pub(crate) fn writable(p: &Path) -> bool {
    let Ok(m) = fs::metadata(p) else { return false };
    if !m.is_file() || m.permissions().mode() & 0o222 == 0 {
        return false;
    }
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else { return false };
    // SAFETY: valid NUL-terminated path; access has no other preconditions.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// The cpufreq directory under a sysfs root.
pub(crate) fn cpufreq_dir(root: &Path) -> PathBuf {
    root.join("devices/system/cpu/cpufreq")
}

/// What a policy looks like, read-only. `Err` when the cpufreq directory itself cannot be listed.
pub(crate) fn read_policies(root: &Path) -> io::Result<Vec<(PathBuf, ClusterInfo)>> {
    let dir = cpufreq_dir(root);
    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    for e in fs::read_dir(&dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(n) = name.to_str().and_then(|n| n.strip_prefix("policy")).and_then(|n| n.parse().ok()) else {
            continue;
        };
        found.push((n, e.path()));
    }
    found.sort();
    let mut out = Vec::new();
    for (_, p) in found {
        let mut cpus = read_trim(&p.join("related_cpus")).map(|s| parse_cpus(&s)).unwrap_or_default();
        if cpus.is_empty() {
            cpus = read_trim(&p.join("affected_cpus")).map(|s| parse_cpus(&s)).unwrap_or_default();
        }
        let cpuinfo_min = read_u32(&p.join("cpuinfo_min_freq")).unwrap_or(0);
        let cpuinfo_max = read_u32(&p.join("cpuinfo_max_freq")).unwrap_or(0);
        let min_khz = read_u32(&p.join("scaling_min_freq")).unwrap_or(cpuinfo_min);
        let max_khz = read_u32(&p.join("scaling_max_freq")).unwrap_or(cpuinfo_max);
        let mut available: Vec<u32> = read_trim(&p.join("scaling_available_frequencies"))
            .map(|s| s.split_whitespace().filter_map(|f| f.parse().ok()).collect())
            .unwrap_or_default();
        available.sort_unstable();
        available.dedup();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("policy?").to_string();
        out.push((
            p,
            ClusterInfo { policy: name, cpus, available_khz: available, cpuinfo_min, cpuinfo_max, min_khz, max_khz },
        ));
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    MinMax,
    Userspace,
}

/// One controlled policy.
pub(crate) struct Policy {
    pub(crate) info: ClusterInfo,
    dir: PathBuf,
    method: Method,
    orig_gov: String,
    /// What we believe is in the files now.
    cur_min: u32,
    cur_max: u32,
    cur_userspace: bool,
    cur_speed: Option<u32>,
    /// Index of this policy's first item in the restore set: MinMax → [min, max]; Userspace → [governor].
    first_item: usize,
    failed: bool,
}

/// Probe each policy for a usable method. Returns the controllable policies and, for the others, why not.
pub(crate) fn probe(policies: Vec<(PathBuf, ClusterInfo)>) -> (Vec<Policy>, Vec<String>) {
    let mut ok = Vec::new();
    let mut why = Vec::new();
    for (dir, info) in policies {
        let gov_path = dir.join("scaling_governor");
        let orig_gov = read_trim(&gov_path).unwrap_or_default();
        let method = if writable(&dir.join("scaling_min_freq")) && writable(&dir.join("scaling_max_freq")) {
            Some(Method::MinMax)
        } else if writable(&gov_path)
            && orig_gov != "userspace"
            && dir.join("scaling_setspeed").exists()
            && read_trim(&dir.join("scaling_available_governors"))
                .is_ok_and(|g| g.split_whitespace().any(|g| g == "userspace"))
        {
            Some(Method::Userspace)
        } else {
            None
        };
        match method {
            Some(method) if info.max_khz > 0 => ok.push(Policy {
                cur_min: info.min_khz,
                cur_max: info.max_khz,
                cur_userspace: orig_gov == "userspace",
                cur_speed: None,
                info,
                dir,
                method,
                orig_gov,
                first_item: 0,
                failed: false,
            }),
            Some(_) => why.push(format!("{}: no readable scaling_max_freq/cpuinfo_max_freq", info.policy)),
            None => why.push(format!(
                "{}: scaling_min_freq/scaling_max_freq not writable and no writable userspace governor",
                info.policy
            )),
        }
    }
    (ok, why)
}

/// Restore items of all policies, in restore order, with `first_item` set on each policy.
pub(crate) fn restore_items(policies: &mut [Policy]) -> Vec<(PathBuf, String)> {
    let mut items = Vec::new();
    for p in policies.iter_mut() {
        p.first_item = items.len();
        match p.method {
            Method::MinMax => {
                items.push((p.dir.join("scaling_min_freq"), p.info.min_khz.to_string()));
                items.push((p.dir.join("scaling_max_freq"), p.info.max_khz.to_string()));
            }
            Method::Userspace => items.push((p.dir.join("scaling_governor"), p.orig_gov.clone())),
        }
    }
    items
}

/// Where sysfs writes go: the files, the restore table's armed flags, an optional journal, and a hook that runs
/// before the first change of each attribute (state file, signal handlers).
pub(crate) struct Writer<'a> {
    pub(crate) reg: &'a Registration,
    pub(crate) journal: Option<&'a mut Vec<(PathBuf, String)>>,
    /// Called with the item index before an attribute is first moved away from its original value.
    pub(crate) before_arm: &'a mut dyn FnMut(usize),
    pub(crate) errors: Vec<String>,
}

impl Writer<'_> {
    fn write(&mut self, path: &Path, value: &str) -> io::Result<()> {
        let r = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
            .and_then(|mut f| f.write_all(value.as_bytes()));
        if r.is_ok() {
            if let Some(j) = self.journal.as_deref_mut() {
                j.push((path.to_path_buf(), value.to_string()));
            }
        }
        r
    }

    /// Write one restorable attribute, keeping its armed flag right.
    fn write_item(&mut self, item: usize, path: &Path, value: u32, original: u32) -> io::Result<()> {
        if value != original {
            (self.before_arm)(item);
            self.reg.arm(item, true);
        }
        self.write(path, &value.to_string())?;
        if value == original {
            self.reg.arm(item, false);
        }
        Ok(())
    }
}

impl Policy {
    /// Bring the files to `level` (None = original settings). Writes only what differs from the current state.
    pub(crate) fn apply(&mut self, level: Option<Level>, w: &mut Writer<'_>) {
        if self.failed {
            return;
        }
        let r = match self.method {
            Method::MinMax => {
                let (min, max) = match level {
                    None => (self.info.min_khz, self.info.max_khz),
                    Some(l) => (l.floor, l.cap.unwrap_or(self.info.max_khz)),
                };
                self.set_min_max(min, max, w)
            }
            Method::Userspace => self.set_userspace(level.map(|l| l.floor), w),
        };
        if let Err(e) = r {
            self.failed = true;
            w.errors.push(format!(
                "{}: writing cpufreq settings failed ({e}); leaving this policy alone from now on",
                self.info.policy
            ));
            // Best effort: put back what we may have changed.
            let _ = match self.method {
                Method::MinMax => self.set_min_max(self.info.min_khz, self.info.max_khz, w),
                Method::Userspace => self.set_userspace(None, w),
            };
            self.failed = true;
        }
    }

    fn set_min_max(&mut self, min: u32, max: u32, w: &mut Writer<'_>) -> io::Result<()> {
        let (omin, omax) = (self.info.min_khz, self.info.max_khz);
        let (i_min, i_max) = (self.first_item, self.first_item + 1);
        let (p_min, p_max) = (self.dir.join("scaling_min_freq"), self.dir.join("scaling_max_freq"));
        // Keep min <= max at every step: raise max first when the new min is above the current max.
        if min > self.cur_max {
            if max != self.cur_max {
                w.write_item(i_max, &p_max, max, omax)?;
                self.cur_max = max;
            }
            if min != self.cur_min {
                w.write_item(i_min, &p_min, min, omin)?;
                self.cur_min = min;
            }
        } else {
            if min != self.cur_min {
                w.write_item(i_min, &p_min, min, omin)?;
                self.cur_min = min;
            }
            if max != self.cur_max {
                w.write_item(i_max, &p_max, max, omax)?;
                self.cur_max = max;
            }
        }
        Ok(())
    }

    fn set_userspace(&mut self, speed: Option<u32>, w: &mut Writer<'_>) -> io::Result<()> {
        let gov = self.dir.join("scaling_governor");
        let item = self.first_item;
        match speed {
            None => {
                if self.cur_userspace != (self.orig_gov == "userspace") {
                    w.write(&gov, &self.orig_gov)?;
                    w.reg.arm(item, false);
                    self.cur_userspace = self.orig_gov == "userspace";
                }
                self.cur_speed = None;
            }
            Some(s) => {
                if !self.cur_userspace {
                    (w.before_arm)(item);
                    w.reg.arm(item, true);
                    w.write(&gov, "userspace")?;
                    self.cur_userspace = true;
                    self.cur_speed = None;
                }
                if self.cur_speed != Some(s) {
                    w.write(&self.dir.join("scaling_setspeed"), &s.to_string())?;
                    self.cur_speed = Some(s);
                }
            }
        }
        Ok(())
    }

    /// Forget the cached state after the signal/atexit path restored the originals behind our back.
    pub(crate) fn reset_to_original(&mut self) {
        self.cur_min = self.info.min_khz;
        self.cur_max = self.info.max_khz;
        self.cur_userspace = self.orig_gov == "userspace";
        self.cur_speed = None;
    }

    /// Use originals recorded by another live process of ours instead of the values we read.
    pub(crate) fn adopt_originals(&mut self, recorded: &[(PathBuf, String)]) -> bool {
        let mut changed = false;
        for (p, v) in recorded {
            if p.parent() != Some(self.dir.as_path()) {
                continue;
            }
            match p.file_name().and_then(|n| n.to_str()) {
                Some("scaling_min_freq") => {
                    if let Ok(v) = v.parse() {
                        self.info.min_khz = v;
                        changed = true;
                    }
                }
                Some("scaling_max_freq") => {
                    if let Ok(v) = v.parse() {
                        self.info.max_khz = v;
                        changed = true;
                    }
                }
                Some("scaling_governor") => {
                    self.orig_gov = v.clone();
                    changed = true;
                }
                _ => {}
            }
        }
        changed
    }

    pub(crate) fn method(&self) -> Method {
        self.method
    }
}

/// Snap `khz` to the highest available frequency <= khz inside `[min_khz, max_khz]` (the lowest one if none is
/// <= khz); without a frequency table, clamp.
pub(crate) fn snap(info: &ClusterInfo, khz: u32) -> u32 {
    let (lo, hi) = (info.min_khz.min(info.max_khz), info.max_khz);
    let inside: Vec<u32> = info.available_khz.iter().copied().filter(|&f| f >= lo && f <= hi).collect();
    if inside.is_empty() {
        return khz.clamp(lo, hi);
    }
    inside.iter().copied().filter(|&f| f <= khz).max().unwrap_or(inside[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("0-3\n"), [0, 1, 2, 3]);
        assert_eq!(parse_cpus("4 5 6 7"), [4, 5, 6, 7]);
        assert_eq!(parse_cpus("0,2-3"), [0, 2, 3]);
        assert_eq!(parse_cpus(""), Vec::<usize>::new());
    }

    #[test]
    fn snapping() {
        let info = ClusterInfo {
            policy: "policy0".into(),
            cpus: vec![0],
            available_khz: vec![500, 1000, 1500, 2000],
            cpuinfo_min: 500,
            cpuinfo_max: 2000,
            min_khz: 1000,
            max_khz: 1500,
        };
        assert_eq!(snap(&info, 1200), 1000);
        assert_eq!(snap(&info, 1500), 1500);
        assert_eq!(snap(&info, 9999), 1500, "capped at the original scaling_max_freq");
        assert_eq!(snap(&info, 100), 1000, "raised to the original scaling_min_freq");
        let cont = ClusterInfo { available_khz: vec![], ..info };
        assert_eq!(snap(&cont, 1234), 1234);
        assert_eq!(snap(&cont, 99), 1000);
    }
}
