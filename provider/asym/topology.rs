//! Core classes and clusters of an asymmetric CPU.
//!
//! Sources, in order of precedence:
//! 1. an explicit override string (option `topology`, see [`Topology::parse_override`]);
//! 2. sysfs under a root directory (a parameter, so tests use fixture trees of real phones and laptops):
//!    `devices/system/cpu/online`, `cpuN/cpu_capacity`, `cpuN/cpufreq/cpuinfo_max_freq`,
//!    `cpuN/topology/{cluster_id, physical_package_id | package_id, thread_siblings_list}`,
//!    `cpufreq/policyN/related_cpus`, and the Intel hybrid PMU lists `devices/cpu_core/cpus`, `devices/cpu_atom/cpus`;
//! 3. on x86_64, the hybrid core type from CPUID leaf 0x1A (only when reading the live `/` root);
//!
//! then restricted to the process affinity mask (`sched_getaffinity`: taskset, cpusets) and to the `cores` option.
//!
//! A **class** is a set of cores of one kind (same capacity); the cost model has coefficients per class.
//! A **cluster** is a set of cores of one class sharing a cpufreq policy / cluster id (and usually an L2/L3);
//! the partitioner's processor level splits work between clusters, and workers steal within their cluster first.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// Hybrid core type (Intel hybrid, from CPUID leaf 0x1A or the `cpu_core`/`cpu_atom` PMU lists).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CoreType {
    Performance,
    Efficiency,
}

/// Where a topology came from (for logs and profile keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopologySource {
    Sysfs(PathBuf),
    Override(String),
    /// No sysfs information: every allowed CPU is one class.
    Fallback,
}

/// One usable core (a logical CPU we run one worker on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Core {
    /// Logical CPU number (what `sched_setaffinity` takes).
    pub cpu: usize,
    /// Index into [`Topology::classes`].
    pub class: usize,
    /// Index into [`Topology::clusters`].
    pub cluster: usize,
}

/// A kind of core. Classes are sorted fastest first: class 0 has the highest capacity.
#[derive(Clone, Debug, PartialEq)]
pub struct CoreClass {
    /// Short name: `big`/`mid`/`little`, `P`/`E`, or `c0`, `c1`… when there are more than three.
    pub name: String,
    /// Relative compute capacity, 1024 = the fastest class (the kernel's `cpu_capacity` scale).
    pub capacity: u32,
    pub max_freq_khz: Option<u64>,
    pub core_type: Option<CoreType>,
    /// Usable CPUs of this class, ascending.
    pub cpus: Vec<usize>,
}

/// Cores of one class that share a frequency domain / cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub class: usize,
    /// Usable CPUs of this cluster, ascending.
    pub cpus: Vec<usize>,
}

/// The usable cores, their classes and clusters.
///
/// Invariants: `cores` is sorted by (class, cluster, cpu); every class and cluster is non-empty; every cpu appears once.
/// Worker `w` of the pool runs on `cores[w].cpu`.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    pub cores: Vec<Core>,
    pub classes: Vec<CoreClass>,
    pub clusters: Vec<Cluster>,
    pub source: TopologySource,
}

/// A topology error: names the file or the part of the option that is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopologyError(pub String);

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "topology: {}", self.0)
    }
}
impl std::error::Error for TopologyError {}

fn err<T>(msg: impl Into<String>) -> Result<T, TopologyError> {
    Err(TopologyError(msg.into()))
}

/// How to detect the topology (the `topology`, `cores` and `sysfs_root` options).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TopologyOptions {
    /// `None` or `"auto"`: detect; otherwise an override string (see [`Topology::parse_override`]).
    pub topology: Option<String>,
    /// Restrict to these CPUs (a cpu list, e.g. `0,2-3`).
    pub cores: Option<String>,
    /// Root of the sysfs tree (default `/sys`); the files read are under `<root>/devices/system/cpu`.
    pub sysfs_root: Option<PathBuf>,
    /// Keep only the first hardware thread of each physical core (default false: every logical CPU is a worker).
    pub one_thread_per_core: bool,
    /// Ignore the process affinity mask (tests over fixture trees of machines bigger than this one).
    pub ignore_affinity: bool,
}

impl Topology {
    /// Detect per `opts`: override or sysfs, then restrict to the affinity mask and the `cores` list.
    pub fn detect(opts: &TopologyOptions) -> Result<Topology, TopologyError> {
        let mut topo = match opts.topology.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() && s != "auto" => Topology::parse_override(s)?,
            _ => {
                let root = opts.sysfs_root.clone().unwrap_or_else(|| PathBuf::from("/sys"));
                let live = root == Path::new("/sys");
                let t = Topology::from_sysfs(&root, live, opts.one_thread_per_core)?;
                match t {
                    Some(t) => t,
                    // A root the user named must describe CPUs; only the live /sys may lack them (containers).
                    None if !live => {
                        return Err(TopologyError(format!(
                            "sysfs_root {}: no CPUs under {}",
                            root.display(),
                            root.join("devices/system/cpu").display()
                        )))
                    }
                    None => Topology::symmetric(&online_fallback()),
                }
            }
        };
        if !opts.ignore_affinity {
            if let Some(mask) = process_affinity() {
                topo = topo.restrict(&mask).map_err(|e| {
                    TopologyError(format!("{} (after applying the process affinity mask {})", e.0, fmt_cpu_list(&mask)))
                })?;
            }
        }
        if let Some(list) = opts.cores.as_deref().map(str::trim).filter(|s| !s.is_empty() && *s != "all") {
            let cpus = parse_cpu_list(list).map_err(|e| TopologyError(format!("option cores: {}", e.0)))?;
            topo = topo.restrict(&cpus).map_err(|e| TopologyError(format!("option cores={list}: {}", e.0)))?;
        }
        Ok(topo)
    }

    /// One class, one cluster, over `cpus`.
    pub fn symmetric(cpus: &[usize]) -> Topology {
        let class = ClassSpec { capacity: 1024, max_freq_khz: None, core_type: None };
        let cores: Vec<RawCore> = cpus.iter().map(|&cpu| RawCore { cpu, spec: class, cluster_key: (0, 0) }).collect();
        Topology::build(cores, TopologySource::Fallback).expect("non-empty cpu list")
    }

    /// Parse an explicit topology: classes separated by `,` or `;`, each a cpu list followed by `:capacity`.
    ///
    /// `0-3:1024,4-7:462` — CPUs 0–3 with capacity 1024 (big), 4–7 with 462 (little).
    /// `0,2-3:1024;1:512` — a cpu list may itself contain commas: items accumulate until one carries `:capacity`.
    /// Capacities are relative (any positive integers; rescaled so the fastest class is 1024). Each class is one cluster.
    pub fn parse_override(s: &str) -> Result<Topology, TopologyError> {
        let ctx = |m: String| TopologyError(format!("option topology={s:?}: {m}"));
        let mut cores = Vec::new();
        let mut pending: Vec<usize> = Vec::new();
        let mut classes = 0u32;
        for item in s.split([',', ';']).map(str::trim) {
            if item.is_empty() {
                return Err(ctx("empty item (expected e.g. 0-3:1024,4-7:462)".into()));
            }
            let (cpus, cap) = match item.split_once(':') {
                Some((c, cap)) => (c.trim(), Some(cap.trim())),
                None => (item, None),
            };
            pending.extend(parse_cpu_list(cpus).map_err(|e| ctx(e.0))?);
            if let Some(cap) = cap {
                let capacity: u32 = cap
                    .parse()
                    .ok()
                    .filter(|&c| c > 0)
                    .ok_or_else(|| ctx(format!("capacity {cap:?} of CPUs {cpus:?} is not a positive integer")))?;
                let spec = ClassSpec { capacity, max_freq_khz: None, core_type: None };
                for cpu in pending.drain(..) {
                    cores.push(RawCore { cpu, spec, cluster_key: (classes as i64, 0) });
                }
                classes += 1;
            }
        }
        if !pending.is_empty() {
            return Err(ctx(format!(
                "CPUs {} have no ':capacity' (expected e.g. 0-3:1024,4-7:462)",
                fmt_cpu_list(&pending)
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &cores {
            if !seen.insert(c.cpu) {
                return Err(ctx(format!("CPU {} is listed twice", c.cpu)));
            }
        }
        Topology::build(cores, TopologySource::Override(s.to_string())).ok_or_else(|| ctx("no CPUs".into()))
    }

    /// Read a sysfs tree. `Ok(None)` if the tree has no CPU information at all (fall back to a symmetric topology);
    /// an error if a file exists but cannot be parsed. `live` allows CPUID probing (only for the running machine).
    pub fn from_sysfs(root: &Path, live: bool, one_thread_per_core: bool) -> Result<Option<Topology>, TopologyError> {
        let cpu_dir = root.join("devices/system/cpu");
        let online = match read_opt(&cpu_dir.join("online"))? {
            Some(s) => parse_cpu_list(&s)
                .map_err(|e| TopologyError(format!("{}: {}", cpu_dir.join("online").display(), e.0)))?,
            None => {
                // No `online` file: list cpuN directories.
                let mut v = Vec::new();
                if let Ok(rd) = fs::read_dir(&cpu_dir) {
                    for e in rd.flatten() {
                        let name = e.file_name();
                        let name = name.to_string_lossy();
                        if let Some(n) = name.strip_prefix("cpu").and_then(|n| n.parse::<usize>().ok()) {
                            v.push(n);
                        }
                    }
                }
                v.sort_unstable();
                v
            }
        };
        if online.is_empty() {
            return Ok(None);
        }
        // Hybrid core types: PMU cpu lists in sysfs, or CPUID on the live machine.
        let mut core_type: BTreeMap<usize, CoreType> = BTreeMap::new();
        for (pmu, ty) in [("cpu_core", CoreType::Performance), ("cpu_atom", CoreType::Efficiency)] {
            let p = root.join("devices").join(pmu).join("cpus");
            if let Some(s) = read_opt(&p)? {
                for cpu in parse_cpu_list(&s).map_err(|e| TopologyError(format!("{}: {}", p.display(), e.0)))? {
                    core_type.insert(cpu, ty);
                }
            }
        }
        if core_type.is_empty() && live {
            core_type = cpuid_core_types(&online);
        }
        // cpufreq policies: cpu → policy id (the first CPU of related_cpus).
        let mut policy_of: BTreeMap<usize, i64> = BTreeMap::new();
        if let Ok(rd) = fs::read_dir(cpu_dir.join("cpufreq")) {
            let mut dirs: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            dirs.sort();
            for d in dirs {
                if !d.file_name().is_some_and(|n| n.to_string_lossy().starts_with("policy")) {
                    continue;
                }
                let p = d.join("related_cpus");
                if let Some(s) = read_opt(&p)? {
                    let cpus = parse_cpu_list_ws(&s).map_err(|e| TopologyError(format!("{}: {}", p.display(), e.0)))?;
                    if let Some(&first) = cpus.first() {
                        for c in cpus {
                            policy_of.insert(c, first as i64);
                        }
                    }
                }
            }
        }
        let mut raw = Vec::new();
        let mut seen_threads = std::collections::BTreeSet::new();
        let mut any_capacity = false;
        for &cpu in &online {
            let d = cpu_dir.join(format!("cpu{cpu}"));
            if one_thread_per_core {
                if let Some(s) = read_opt(&d.join("topology/thread_siblings_list"))? {
                    let sib = parse_cpu_list(&s).map_err(|e| {
                        TopologyError(format!("{}: {}", d.join("topology/thread_siblings_list").display(), e.0))
                    })?;
                    let first = sib.first().copied().unwrap_or(cpu);
                    if !seen_threads.insert(first) {
                        continue;
                    }
                }
            }
            let capacity = read_num(&d.join("cpu_capacity"))?;
            any_capacity |= capacity.is_some();
            let max_freq = match read_num(&d.join("cpufreq/cpuinfo_max_freq"))? {
                Some(f) => Some(f),
                None => match policy_of.get(&cpu) {
                    Some(&p) => read_num(&cpu_dir.join(format!("cpufreq/policy{p}/cpuinfo_max_freq")))?,
                    None => None,
                },
            };
            let cluster_id = read_num(&d.join("topology/cluster_id"))?.map(|v| v as i64);
            let package = match read_num(&d.join("topology/physical_package_id"))? {
                Some(p) => Some(p as i64),
                None => read_num(&d.join("topology/package_id"))?.map(|v| v as i64),
            };
            raw.push((cpu, capacity, max_freq, core_type.get(&cpu).copied(), (package, cluster_id)));
        }
        // Cluster: the cluster id when it tells cores apart; else the cpufreq policy when policies group several CPUs
        // (a DynamIQ phone reports cluster_id 0 everywhere, its policies separate the clusters); else the package
        // (x86 servers have one policy per CPU).
        let ids: std::collections::BTreeSet<i64> = raw.iter().filter_map(|r| r.4 .1).collect();
        let use_cluster_id = ids.len() > 1;
        let grouped_policies = {
            let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
            for p in policy_of.values() {
                *counts.entry(*p).or_default() += 1;
            }
            counts.values().any(|&n| n > 1)
        };
        let raw: Vec<_> = raw
            .into_iter()
            .map(|(cpu, cap, freq, ty, (package, cluster_id))| {
                let pkg = package.unwrap_or(0);
                let key = if use_cluster_id {
                    (pkg, cluster_id.unwrap_or(-1))
                } else if grouped_policies {
                    (pkg, policy_of.get(&cpu).copied().unwrap_or(-1))
                } else {
                    (pkg, 0)
                };
                (cpu, cap, freq, ty, key)
            })
            .collect();
        // Capacities: cpu_capacity if present; else max frequency × a core-type factor (E cores ≈ 0.6 of a P core's
        // work per cycle on GEMM); else all 1024. Only a prior: calibration and adaptation measure the real ratio.
        let max_freq_all = raw.iter().filter_map(|r| r.2).max();
        let mut cores = Vec::new();
        for (cpu, cap, freq, ty, cluster_key) in raw {
            let capacity = if any_capacity {
                cap.ok_or_else(|| TopologyError(format!("cpu{cpu}/cpu_capacity missing while other CPUs have one")))?
                    as f64
            } else {
                let f = match (freq, max_freq_all) {
                    (Some(f), Some(m)) if m > 0 => f as f64 / m as f64,
                    _ => 1.0,
                };
                let t = if ty == Some(CoreType::Efficiency) { E_CORE_FACTOR } else { 1.0 };
                1024.0 * f * t
            };
            let spec = ClassSpec { capacity: capacity.round().max(1.0) as u32, max_freq_khz: freq, core_type: ty };
            cores.push(RawCore { cpu, spec, cluster_key });
        }
        Ok(Topology::build(cores, TopologySource::Sysfs(root.to_path_buf())))
    }

    /// Keep only `cpus`. Error if none of the topology's CPUs remain, or if a requested CPU is not in the topology.
    pub fn restrict(&self, cpus: &[usize]) -> Result<Topology, TopologyError> {
        let known: Vec<usize> = self.cores.iter().map(|c| c.cpu).collect();
        let keep: Vec<&Core> = self.cores.iter().filter(|c| cpus.contains(&c.cpu)).collect();
        if keep.is_empty() {
            return err(format!(
                "none of CPUs {} is usable (the topology has CPUs {})",
                fmt_cpu_list(cpus),
                fmt_cpu_list(&known)
            ));
        }
        let raw = keep
            .into_iter()
            .map(|c| {
                let cl = &self.classes[c.class];
                RawCore {
                    cpu: c.cpu,
                    spec: ClassSpec { capacity: cl.capacity, max_freq_khz: cl.max_freq_khz, core_type: cl.core_type },
                    cluster_key: (0, c.cluster as i64),
                }
            })
            .collect();
        let mut t = Topology::build(raw, self.source.clone()).expect("non-empty");
        // Keep the original capacity scale (the fastest remaining class may be a little one).
        for (cl, orig) in
            t.classes.iter_mut().zip(self.classes.iter().filter(|o| o.cpus.iter().any(|c| cpus.contains(c))))
        {
            cl.capacity = orig.capacity;
            cl.name = orig.name.clone();
        }
        Ok(t)
    }

    pub fn num_cores(&self) -> usize {
        self.cores.len()
    }

    /// Worker index of a CPU.
    pub fn worker_of_cpu(&self, cpu: usize) -> Option<usize> {
        self.cores.iter().position(|c| c.cpu == cpu)
    }

    /// True if all cores are of one class.
    pub fn is_symmetric(&self) -> bool {
        self.classes.len() == 1
    }

    /// A short stable description, e.g. `big:4-7@1024/2362000 little:0-3@462/1844000`, used in profile keys and logs.
    pub fn fingerprint(&self) -> String {
        let mut s = String::new();
        for (i, c) in self.classes.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(&format!("{}:{}@{}", c.name, fmt_cpu_list(&c.cpus), c.capacity));
            if let Some(f) = c.max_freq_khz {
                s.push_str(&format!("/{f}"));
            }
        }
        s
    }

    /// Group raw cores into classes (by capacity, frequency, type; fastest first) and clusters.
    fn build(mut raw: Vec<RawCore>, source: TopologySource) -> Option<Topology> {
        if raw.is_empty() {
            return None;
        }
        raw.sort_by_key(|r| r.cpu);
        raw.dedup_by_key(|r| r.cpu);
        let mut specs: Vec<ClassSpec> = raw.iter().map(|r| r.spec).collect();
        specs.sort_by(|a, b| {
            b.capacity.cmp(&a.capacity).then(b.max_freq_khz.cmp(&a.max_freq_khz)).then(a.core_type.cmp(&b.core_type))
        });
        specs.dedup();
        let top = specs[0].capacity.max(1) as f64;
        let n = specs.len();
        let classes: Vec<CoreClass> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| CoreClass {
                name: class_name(i, n, s.core_type),
                capacity: ((s.capacity as f64 / top) * 1024.0).round().max(1.0) as u32,
                max_freq_khz: s.max_freq_khz,
                core_type: s.core_type,
                cpus: raw.iter().filter(|r| r.spec == *s).map(|r| r.cpu).collect(),
            })
            .collect();
        // Clusters: (class, cluster key) pairs in order of class then first cpu.
        let mut keys: Vec<(usize, (i64, i64), usize)> = Vec::new(); // (class, key, first cpu)
        let mut cores = Vec::new();
        for r in &raw {
            let class = specs.iter().position(|s| *s == r.spec).expect("spec listed");
            let idx = match keys.iter().position(|k| k.0 == class && k.1 == r.cluster_key) {
                Some(i) => i,
                None => {
                    keys.push((class, r.cluster_key, r.cpu));
                    keys.len() - 1
                }
            };
            cores.push((r.cpu, class, idx));
        }
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by_key(|&i| (keys[i].0, keys[i].2));
        let remap: Vec<usize> = {
            let mut m = vec![0; keys.len()];
            for (new, &old) in order.iter().enumerate() {
                m[old] = new;
            }
            m
        };
        let mut cores: Vec<Core> =
            cores.into_iter().map(|(cpu, class, k)| Core { cpu, class, cluster: remap[k] }).collect();
        cores.sort_by_key(|c| (c.class, c.cluster, c.cpu));
        let clusters = order
            .iter()
            .map(|&old| Cluster {
                class: keys[old].0,
                cpus: cores.iter().filter(|c| c.cluster == remap[old]).map(|c| c.cpu).collect(),
            })
            .collect();
        Some(Topology { cores, classes, clusters, source })
    }
}

/// Relative GEMM throughput per cycle of an Intel E core vs a P core, used only as a prior when sysfs has no
/// `cpu_capacity` (calibration measures the real value).
pub const E_CORE_FACTOR: f64 = 0.6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ClassSpec {
    capacity: u32,
    max_freq_khz: Option<u64>,
    core_type: Option<CoreType>,
}

struct RawCore {
    cpu: usize,
    spec: ClassSpec,
    cluster_key: (i64, i64),
}

fn class_name(i: usize, n: usize, ty: Option<CoreType>) -> String {
    match ty {
        Some(CoreType::Performance) if n <= 2 => return "P".into(),
        Some(CoreType::Efficiency) if n <= 2 => return "E".into(),
        _ => {}
    }
    match (n, i) {
        (1, _) => "core".into(),
        (2, 0) => "big".into(),
        (2, 1) => "little".into(),
        (3, 0) => "prime".into(),
        (3, 1) => "big".into(),
        (3, 2) => "little".into(),
        _ => format!("c{i}"),
    }
}

fn read_opt(p: &Path) -> Result<Option<String>, TopologyError> {
    match fs::read_to_string(p) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(None),
        Err(e) => err(format!("{}: {e}", p.display())),
    }
}

fn read_num(p: &Path) -> Result<Option<u64>, TopologyError> {
    match read_opt(p)? {
        None => Ok(None),
        Some(s) => match s.parse::<i64>() {
            Ok(v) if v >= 0 => Ok(Some(v as u64)),
            Ok(_) => Ok(None), // e.g. cluster_id -1: unknown
            Err(_) => err(format!("{}: expected a number, found {s:?}", p.display())),
        },
    }
}

/// Parse a kernel cpu list: `0-3,6,8-9`. Empty string → empty list. Result sorted, deduplicated.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, TopologyError> {
    let mut v = Vec::new();
    let s = s.trim();
    if s.is_empty() {
        return Ok(v);
    }
    for part in s.split(',').map(str::trim) {
        let num = |x: &str| {
            x.trim().parse::<usize>().map_err(|_| TopologyError(format!("bad CPU number {x:?} in cpu list {s:?}")))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return err(format!("bad range {part:?} in cpu list {s:?} (start after end)"));
                }
                if b - a > 4096 {
                    return err(format!("range {part:?} in cpu list {s:?} is implausibly large"));
                }
                v.extend(a..=b);
            }
            None => v.push(num(part)?),
        }
    }
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// `related_cpus` is whitespace-separated (`0 1 2 3`); accept both that and the comma/range form.
fn parse_cpu_list_ws(s: &str) -> Result<Vec<usize>, TopologyError> {
    let joined: Vec<&str> = s.split_whitespace().collect();
    parse_cpu_list(&joined.join(","))
}

/// Format a sorted cpu list compactly: `0-3,6`.
pub fn fmt_cpu_list(cpus: &[usize]) -> String {
    let mut v = cpus.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if j > i { format!("{}-{}", v[i], v[j]) } else { v[i].to_string() });
        i = j + 1;
    }
    out.join(",")
}

/// The CPUs this process may run on (`sched_getaffinity`), or `None` if unavailable.
pub fn process_affinity() -> Option<Vec<usize>> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: pid 0 = this thread; we pass the size of the set we own.
        let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        if rc != 0 {
            return None;
        }
        // Called at every Run start (caller steering): stop at the last set CPU rather than scan all 1024.
        // SAFETY: `set` was filled by sched_getaffinity.
        let count = unsafe { libc::CPU_COUNT(&set) } as usize;
        let mut v = Vec::with_capacity(count);
        for cpu in 0..libc::CPU_SETSIZE as usize {
            if v.len() == count {
                break;
            }
            // SAFETY: cpu < CPU_SETSIZE.
            if unsafe { libc::CPU_ISSET(cpu, &set) } {
                v.push(cpu);
            }
        }
        Some(v)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Pin the calling thread to one CPU. Returns false if the OS refused.
pub fn pin_current_thread(cpu: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        if cpu >= libc::CPU_SETSIZE as usize {
            return false;
        }
        // SAFETY: zeroed cpu_set_t is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: cpu < CPU_SETSIZE (checked above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: pid 0 = the calling thread; the set is ours and sized correctly.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
    }
}

/// Set the calling thread's affinity to a set of CPUs (used to restore a caller's mask after calibration).
pub fn set_current_affinity(cpus: &[usize]) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: zeroed cpu_set_t is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &cpu in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            // SAFETY: cpu < CPU_SETSIZE (filtered).
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
        // SAFETY: pid 0 = the calling thread; the set is ours and sized correctly.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpus;
        false
    }
}

/// Online CPUs when sysfs is unavailable: the affinity mask, or 0..available_parallelism.
fn online_fallback() -> Vec<usize> {
    process_affinity()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).collect())
}

/// Hybrid core type of each CPU from CPUID leaf 0x1A, probed by a short-lived thread pinned to each CPU in turn.
/// Empty if the CPU is not hybrid (CPUID.07H:EDX bit 15) or on other architectures.
pub fn cpuid_core_types(cpus: &[usize]) -> BTreeMap<usize, CoreType> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__cpuid, __cpuid_count};
        // CPUID is always available on x86_64 (safe intrinsics); leaf 0 gives the highest leaf.
        let max_leaf = __cpuid(0).eax;
        if max_leaf < 0x1A {
            return BTreeMap::new();
        }
        // Leaf 7 ≤ max_leaf (0x1A > 7): EDX bit 15 = hybrid part.
        let hybrid = __cpuid_count(7, 0).edx & (1 << 15) != 0;
        if !hybrid {
            return BTreeMap::new();
        }
        let cpus = cpus.to_vec();
        std::thread::spawn(move || {
            let mut out = BTreeMap::new();
            for cpu in cpus {
                if !pin_current_thread(cpu) {
                    continue;
                }
                // Leaf 0x1A ≤ max_leaf (checked above): EAX[31:24] = core type of the CPU we run on.
                let eax = __cpuid_count(0x1A, 0).eax;
                match eax >> 24 {
                    0x40 => {
                        out.insert(cpu, CoreType::Performance);
                    }
                    0x20 => {
                        out.insert(cpu, CoreType::Efficiency);
                    }
                    _ => {}
                }
            }
            out
        })
        .join()
        .unwrap_or_default()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = cpus;
        BTreeMap::new()
    }
}

/// Cache sizes in bytes of CPU `cpu` from `<root>/devices/system/cpu/cpuN/cache/index*/{level,type,size}`.
pub fn cache_sizes(root: &Path, cpu: usize) -> CacheSizes {
    let mut cs = CacheSizes::default();
    let base = root.join(format!("devices/system/cpu/cpu{cpu}/cache"));
    for i in 0..8 {
        let d = base.join(format!("index{i}"));
        let (Ok(Some(level)), Ok(Some(ty)), Ok(Some(size))) =
            (read_opt(&d.join("level")), read_opt(&d.join("type")), read_opt(&d.join("size")))
        else {
            continue;
        };
        let bytes = parse_size(&size);
        match (level.as_str(), ty.as_str()) {
            ("1", "Data") | ("1", "Unified") => cs.l1d = bytes,
            ("2", _) => cs.l2 = bytes,
            ("3", _) => cs.l3 = bytes,
            _ => {}
        }
    }
    cs
}

/// Data cache sizes in bytes (0 = unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheSizes {
    pub l1d: u64,
    pub l2: u64,
    pub l3: u64,
}

fn parse_size(s: &str) -> u64 {
    let s = s.trim();
    let (num, mul) = match s.chars().last() {
        Some('K') | Some('k') => (&s[..s.len() - 1], 1024),
        Some('M') | Some('m') => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<u64>().map(|n| n * mul).unwrap_or(0)
}

/// The CPU model string: `/proc/cpuinfo` "model name" (x86), else "Hardware"/"CPU part" lines (arm), else "unknown".
pub fn cpu_model() -> String {
    let Ok(info) = fs::read_to_string("/proc/cpuinfo") else { return "unknown".into() };
    let field = |key: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':').map(|(_, v)| v.trim().to_string()))
    };
    if let Some(m) = field("model name") {
        return m;
    }
    let mut parts: Vec<String> = Vec::new();
    if let Some(h) = field("Hardware") {
        parts.push(h);
    }
    let mut cpu_parts: Vec<&str> = info
        .lines()
        .filter(|l| l.starts_with("CPU part"))
        .filter_map(|l| l.split_once(':').map(|(_, v)| v.trim()))
        .collect();
    cpu_parts.sort_unstable();
    cpu_parts.dedup();
    if !cpu_parts.is_empty() {
        parts.push(format!("parts {}", cpu_parts.join("/")));
    }
    if parts.is_empty() {
        "unknown".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("provider/asym/fixtures/sysfs").join(name)
    }

    fn load(name: &str) -> Topology {
        let opts = TopologyOptions { sysfs_root: Some(fixture(name)), ignore_affinity: true, ..Default::default() };
        Topology::detect(&opts).unwrap()
    }

    fn summary(t: &Topology) -> Vec<(String, String, u32)> {
        t.classes.iter().map(|c| (c.name.clone(), fmt_cpu_list(&c.cpus), c.capacity)).collect()
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,6, 8-9").unwrap(), vec![0, 1, 2, 3, 6, 8, 9]);
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<usize>::new());
        assert!(parse_cpu_list("3-1").unwrap_err().0.contains("start after end"));
        assert!(parse_cpu_list("0,x").unwrap_err().0.contains("\"x\""));
        assert_eq!(fmt_cpu_list(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(parse_cpu_list_ws("0 1 2 3").unwrap(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn kirin970_4_plus_4() {
        let t = load("kirin970");
        assert_eq!(summary(&t), vec![("big".into(), "4-7".into(), 1024), ("little".into(), "0-3".into(), 462)]);
        assert_eq!(t.clusters.len(), 2);
        assert_eq!(t.cores[0].cpu, 4, "fastest class first");
        assert_eq!(t.classes[0].max_freq_khz, Some(2362000));
    }

    #[test]
    fn snapdragon855_1_3_4() {
        let t = load("sd855");
        assert_eq!(
            summary(&t),
            vec![
                ("prime".into(), "7".into(), 1024),
                ("big".into(), "4-6".into(), 871),
                ("little".into(), "0-3".into(), 378)
            ]
        );
        // DynamIQ: cluster_id is 0 everywhere; the cpufreq policies separate the three clusters.
        assert_eq!(t.clusters.len(), 3);
        assert_eq!(t.clusters[1].cpus, vec![4, 5, 6]);
    }

    #[test]
    fn helio_2_plus_6() {
        let t = load("helio_g90");
        assert_eq!(summary(&t), vec![("big".into(), "6-7".into(), 1024), ("little".into(), "0-5".into(), 382)]);
    }

    #[test]
    fn intel_hybrid_6p_8e() {
        let t = load("intel_12700h");
        assert_eq!(t.classes.len(), 2);
        assert_eq!(t.classes[0].name, "P");
        assert_eq!(t.classes[0].core_type, Some(CoreType::Performance));
        assert_eq!(fmt_cpu_list(&t.classes[0].cpus), "0-11");
        assert_eq!(t.classes[1].name, "E");
        assert_eq!(fmt_cpu_list(&t.classes[1].cpus), "12-19");
        // 3.5 GHz / 4.7 GHz × 0.6
        let want = (1024.0 * 3_500_000.0 / 4_700_000.0 * E_CORE_FACTOR).round() as u32;
        assert_eq!(t.classes[1].capacity, want);
        // One hardware thread per P core.
        let opts = TopologyOptions {
            sysfs_root: Some(fixture("intel_12700h")),
            ignore_affinity: true,
            one_thread_per_core: true,
            ..Default::default()
        };
        let t1 = Topology::detect(&opts).unwrap();
        assert_eq!(fmt_cpu_list(&t1.classes[0].cpus), "0,2,4,6,8,10");
        assert_eq!(t1.num_cores(), 14);
    }

    #[test]
    fn symmetric_server() {
        let t = load("server16");
        assert!(t.is_symmetric());
        assert_eq!(t.num_cores(), 16);
        assert_eq!(t.classes[0].capacity, 1024);
        // Two packages → two clusters.
        assert_eq!(t.clusters.len(), 2);
        assert_eq!(t.clusters[0].cpus, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn cores_restriction_and_errors() {
        let opts = TopologyOptions {
            sysfs_root: Some(fixture("kirin970")),
            ignore_affinity: true,
            cores: Some("0,5-6".into()),
            ..Default::default()
        };
        let t = Topology::detect(&opts).unwrap();
        assert_eq!(summary(&t), vec![("big".into(), "5-6".into(), 1024), ("little".into(), "0".into(), 462)]);
        let opts = TopologyOptions { cores: Some("40-41".into()), ..opts };
        let e = Topology::detect(&opts).unwrap_err();
        assert!(e.0.contains("cores=40-41") && e.0.contains("none of CPUs 40-41"), "{e}");
        // little-only keeps the little capacity.
        let t = load("kirin970").restrict(&[0, 1]).unwrap();
        assert_eq!(t.classes[0].capacity, 462);
        assert_eq!(t.classes[0].name, "little");
    }

    #[test]
    fn corrupt_sysfs_names_the_file() {
        let e = Topology::from_sysfs(&fixture("corrupt"), false, false).unwrap_err();
        assert!(e.0.contains("cpu1/cpu_capacity") && e.0.contains("abc"), "{e}");
    }

    #[test]
    fn overrides() {
        let t = Topology::parse_override("0-3:1024,4-7:462").unwrap();
        assert_eq!(summary(&t), vec![("big".into(), "0-3".into(), 1024), ("little".into(), "4-7".into(), 462)]);
        let t = Topology::parse_override("0,2-3:2; 1:1").unwrap();
        assert_eq!(summary(&t), vec![("big".into(), "0,2-3".into(), 1024), ("little".into(), "1".into(), 512)]);
        let t = Topology::parse_override("0:1024,1:512,2:256,3:100").unwrap();
        assert_eq!(t.classes[3].name, "c3");
        for (bad, what) in [
            ("0-3", "no ':capacity'"),
            ("0-3:big", "not a positive integer"),
            ("0-3:0", "not a positive integer"),
            ("0-3:1,3:1", "listed twice"),
            ("0-3:1,,4:1", "empty item"),
            ("a:1", "bad CPU number"),
        ] {
            let e = Topology::parse_override(bad).unwrap_err();
            assert!(e.0.contains(what) && e.0.contains("option topology"), "{bad}: {e}");
        }
    }

    #[test]
    fn affinity_mask_restricts() {
        let mask = process_affinity().unwrap();
        let first = mask[0];
        // sched_getaffinity(0) reads the calling thread's mask: restrict a scratch thread, detect from it.
        let t = std::thread::spawn(move || {
            assert!(pin_current_thread(first));
            Topology::detect(&TopologyOptions::default())
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(t.cores.iter().map(|c| c.cpu).collect::<Vec<_>>(), vec![first]);
        // A cores list outside the mask is an error that names both.
        let e = std::thread::spawn(move || {
            assert!(pin_current_thread(first));
            Topology::detect(&TopologyOptions { cores: Some(format!("{}", first + 1)), ..Default::default() })
        })
        .join()
        .unwrap()
        .unwrap_err();
        assert!(e.0.contains("option cores"), "{e}");
    }

    #[test]
    fn live_machine_detects_something() {
        let t = Topology::detect(&TopologyOptions::default()).unwrap();
        assert!(t.num_cores() >= 1);
        let mask = process_affinity().unwrap();
        assert!(t.cores.iter().all(|c| mask.contains(&c.cpu)));
        assert!(!cpu_model().is_empty());
    }
}
