//! Cache sizes from sysfs (`/sys/devices/system/cpu/cpuN/cache/index*/{level,type,size}`), with safe defaults.

use std::path::Path;

/// Data cache sizes of one core, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSizes {
    pub l1d: usize,
    pub l2: usize,
    pub l3: usize,
}

impl Default for CacheSizes {
    /// Conservative values that hold for most cores of the last decade (small cores included).
    fn default() -> Self {
        CacheSizes { l1d: 32 << 10, l2: 512 << 10, l3: 4 << 20 }
    }
}

impl CacheSizes {
    /// Read core `cpu`'s caches under `sysfs_root` (normally `/sys`); missing levels keep their defaults.
    pub fn from_sysfs(sysfs_root: &Path, cpu: usize) -> Self {
        let mut out = CacheSizes::default();
        let dir = sysfs_root.join(format!("devices/system/cpu/cpu{cpu}/cache"));
        let Ok(entries) = std::fs::read_dir(&dir) else { return out };
        for e in entries.flatten() {
            let name = e.file_name();
            if !name.to_string_lossy().starts_with("index") {
                continue;
            }
            let read = |f: &str| std::fs::read_to_string(e.path().join(f)).ok().map(|s| s.trim().to_string());
            let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size")) else { continue };
            let Some(bytes) = parse_size(&size) else { continue };
            if kind == "Instruction" || bytes == 0 {
                continue;
            }
            match level.as_str() {
                "1" => out.l1d = bytes,
                "2" => out.l2 = bytes,
                "3" => out.l3 = bytes,
                _ => {}
            }
        }
        out
    }

    /// The caches of CPU 0 of this machine, read once.
    pub fn host() -> Self {
        static HOST: std::sync::OnceLock<CacheSizes> = std::sync::OnceLock::new();
        *HOST.get_or_init(|| CacheSizes::from_sysfs(Path::new("/sys"), 0))
    }
}

/// "48K", "2048K", "300M", "64" → bytes.
fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (num, mul) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1usize << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<usize>().ok().map(|n| n * mul)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("48K"), Some(48 << 10));
        assert_eq!(parse_size("300M"), Some(300 << 20));
        assert_eq!(parse_size("64"), Some(64));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn reads_a_fixture_tree_and_defaults_when_absent() {
        let root = std::env::temp_dir().join(format!("asymo-cache-fixture-{}", std::process::id()));
        for (idx, level, kind, size) in
            [(0, "1", "Data", "64K"), (1, "1", "Instruction", "64K"), (2, "2", "Unified", "512K")]
        {
            let d = root.join(format!("devices/system/cpu/cpu3/cache/index{idx}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("level"), level).unwrap();
            std::fs::write(d.join("type"), kind).unwrap();
            std::fs::write(d.join("size"), format!("{size}\n")).unwrap();
        }
        let c = CacheSizes::from_sysfs(&root, 3);
        assert_eq!(c, CacheSizes { l1d: 64 << 10, l2: 512 << 10, l3: CacheSizes::default().l3 });
        assert_eq!(CacheSizes::from_sysfs(&root, 9), CacheSizes::default());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
