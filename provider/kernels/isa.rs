//! The ISA table: which micro-kernel family runs, chosen once at run time and overridable.
//!
//! Selection order: [`force_isa`] (programmatic) > `ASYMO_KERNEL=generic|avx2|avx512|neon|auto` (read once) > the
//! best tier this CPU *and* OS support. `is_x86_feature_detected!` checks both CPUID and the OS-enabled register
//! state (XGETBV), and `is_aarch64_feature_detected!` reads the kernel's HWCAP, so a selected tier always runs.
//! A requested tier that the host cannot run falls back to the best one (with a note on stderr, once).

use super::arch::{self, KernelSet};
use super::cache::CacheSizes;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// A micro-kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, any target (the reference speed floor).
    Generic,
    /// x86_64 AVX2 + FMA, 6×16 tiles.
    Avx2,
    /// x86_64 AVX-512F, 12×32 tiles.
    Avx512,
    /// aarch64 Advanced SIMD, 8×12 tiles with lane-indexed FMA.
    Neon,
}

impl Isa {
    pub const ALL: [Isa; 4] = [Isa::Generic, Isa::Avx2, Isa::Avx512, Isa::Neon];

    /// The knob spelling: `generic`, `avx2`, `avx512`, `neon`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parse a knob value (`auto` gives `None`).
    pub fn parse(s: &str) -> Result<Option<Isa>, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(None),
            "generic" => Ok(Some(Isa::Generic)),
            "avx2" => Ok(Some(Isa::Avx2)),
            "avx512" => Ok(Some(Isa::Avx512)),
            "neon" => Ok(Some(Isa::Neon)),
            other => Err(format!("ASYMO_KERNEL: unknown value {other:?} (expected generic|avx2|avx512|neon|auto)")),
        }
    }

    /// Whether this build has the tier and this CPU + OS can run it.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Generic => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            // The tier's portable bodies are compiled with AVX2 + FMA too (every AVX-512F core has them).
            Isa::Avx512 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    fn code(self) -> u8 {
        Isa::ALL.iter().position(|&i| i == self).unwrap() as u8 + 1
    }

    fn from_code(c: u8) -> Option<Isa> {
        Isa::ALL.get((c as usize).checked_sub(1)?).copied()
    }

    /// The kernel table of a supported tier.
    pub(crate) fn kernels(self) -> &'static KernelSet {
        assert!(self.is_supported(), "ISA {} is not supported on this host", self.name());
        arch::kernel_set(self)
    }
}

/// The fastest tier this host supports.
pub fn best_isa() -> Isa {
    static BEST: OnceLock<Isa> = OnceLock::new();
    *BEST.get_or_init(|| {
        [Isa::Avx512, Isa::Avx2, Isa::Neon].into_iter().find(|i| i.is_supported()).unwrap_or(Isa::Generic)
    })
}

/// 0 = no programmatic override; otherwise `Isa::code`.
static FORCED: AtomicU8 = AtomicU8::new(0);

/// Force a tier for the whole process (`None` returns to the knob / auto choice). Errors if the host cannot run it.
///
/// Operands packed before the change keep the layout of the tier they were packed for and are still computed by
/// that tier's kernels, so changing the tier never produces wrong results.
pub fn force_isa(isa: Option<Isa>) -> Result<(), String> {
    if let Some(i) = isa {
        if !i.is_supported() {
            return Err(format!("ISA {} is not supported on this host", i.name()));
        }
    }
    // Relaxed: the value is self-contained (no other memory is published through it).
    FORCED.store(isa.map_or(0, Isa::code), Ordering::Relaxed);
    Ok(())
}

/// The tier new work uses: forced > `ASYMO_KERNEL` > best.
pub fn selected_isa() -> Isa {
    if let Some(i) = Isa::from_code(FORCED.load(Ordering::Relaxed)) {
        return i;
    }
    static FROM_ENV: OnceLock<Isa> = OnceLock::new();
    *FROM_ENV.get_or_init(|| {
        let Ok(v) = std::env::var("ASYMO_KERNEL") else { return best_isa() };
        match Isa::parse(&v) {
            Ok(None) => best_isa(),
            Ok(Some(i)) if i.is_supported() => i,
            Ok(Some(i)) => {
                eprintln!("asymo: ASYMO_KERNEL={} is not supported here; using {}", i.name(), best_isa().name());
                best_isa()
            }
            Err(e) => {
                eprintln!("asymo: {e}; using {}", best_isa().name());
                best_isa()
            }
        }
    })
}

/// Tile and blocking geometry of a tier, for schedulers that align block boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileInfo {
    pub isa: Isa,
    /// Micro-tile rows: row-block boundaries should be multiples of `mr`.
    pub mr: usize,
    /// Micro-tile columns: column-block boundaries should be multiples of `nr`.
    pub nr: usize,
    /// Depth of one packed panel pass of the GEMM driver (B micro-panel `kc × nr` fills L1).
    pub kc: usize,
    /// Depth of one pass of the channel-vectorized convolution (`conv_t`), whose weight micro-panel must stay in
    /// half of L1 beside the window rows it meets (see [`blocking`]).
    pub kc_t: usize,
    /// Rows of A packed per pass (`mc × kc` stays in L2).
    pub mc: usize,
    /// Columns of B packed per pass when B is packed per block (`kc × nc` stays in L2 between packing and use).
    /// A pre-packed B is not cut into column passes.
    pub nc: usize,
}

/// Tile info of the selected tier on this host's caches.
pub fn tile_info() -> TileInfo {
    tile_info_for(selected_isa())
}

/// Tile info of `isa` on this host's caches (cached per tier).
pub fn tile_info_for(isa: Isa) -> TileInfo {
    static INFO: [OnceLock<TileInfo>; 4] = [OnceLock::new(), OnceLock::new(), OnceLock::new(), OnceLock::new()];
    *INFO[isa.code() as usize - 1].get_or_init(|| {
        let (mr, nr) = arch::tile_shape(isa);
        blocking(isa, mr, nr, &CacheSizes::host())
    })
}

/// Blocking sizes from cache sizes (the usual BLIS analysis, with floors and caps so odd sysfs values stay safe):
/// the `kc × nr` B micro-panel fills L1 (up to 512 steps), the `mc × kc` A block half of L2, and a B block packed
/// per pass (`kc × nc`) the other half of L2, so it is still there when the micro-kernel reads it back.
///
/// Why all of L1 and not the textbook half: the A micro-panels stream from L2 under the kernel's prefetches either
/// way, and a longer pass amortizes the tile's C loads, stores and prefetches over more steps. On Zen 5
/// (48 KB L1, AVX-512 12×32) kc 384 instead of 192 ran the driver's square SGEMMs 1.02–1.10× and ResNet-50's
/// convolutions 1.00–1.12× faster (`examples/kernel_bench`, best of 3); the AVX2 tier (6×16, 384 → 512 here)
/// measured the same at 384, 512 and 768; the cap keeps the NEON and portable tiers at their earlier 512 (a
/// longer pass was never measured there). The channel-vectorized convolution is the exception (`kc_t`,
/// the textbook half): its weight micro-panel comes cold from memory and is reused by every pixel panel of the
/// block, next to the window rows — with 384 steps ResNet-50 ran 3 % slower on one core, with 192 1 % faster.
pub(crate) fn blocking(isa: Isa, mr: usize, nr: usize, caches: &CacheSizes) -> TileInfo {
    let kc = (caches.l1d / (nr * 4)).clamp(64, 512) / 16 * 16;
    let kc_t = (caches.l1d / 2 / (nr * 4)).clamp(64, 512) / 16 * 16;
    let mc = ((caches.l2 / 2 / (kc * 4)).clamp(mr, 960) / mr * mr).max(mr);
    let nc = ((caches.l2 / 2).min(caches.l3 / 4) / (kc * 4)).clamp(nr, 4096) / nr * nr;
    TileInfo { isa, mr, nr, kc, kc_t, mc, nc }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_names_round_trip() {
        for i in Isa::ALL {
            assert_eq!(Isa::parse(i.name()).unwrap(), Some(i));
            assert_eq!(Isa::from_code(i.code()), Some(i));
        }
        assert_eq!(Isa::parse("auto").unwrap(), None);
        assert!(Isa::parse("sse9").is_err());
    }

    #[test]
    fn blocking_is_sane_for_odd_caches() {
        for caches in [
            CacheSizes::default(),
            CacheSizes { l1d: 0, l2: 0, l3: 0 },
            CacheSizes { l1d: 1 << 30, l2: 1 << 30, l3: 1 << 40 },
        ] {
            for (mr, nr) in [(6, 16), (12, 32), (8, 12), (4, 8)] {
                let t = blocking(Isa::Generic, mr, nr, &caches);
                assert!(t.kc >= 64 && t.kc <= 512 && t.kc.is_multiple_of(16), "{t:?}");
                assert!(t.kc_t >= 64 && t.kc_t <= t.kc && t.kc_t.is_multiple_of(16), "{t:?}");
                assert!(t.mc >= mr && t.mc.is_multiple_of(mr) && t.mc <= 960, "{t:?}");
                assert!(t.nc >= nr && t.nc.is_multiple_of(nr) && t.nc <= 4096, "{t:?}");
            }
        }
    }

    /// CI sets `ASYMO_EXPECT_ISA` (e.g. `neon` under qemu) to prove the intended tier really ran.
    #[test]
    fn expected_isa_is_selected() {
        let Ok(want) = std::env::var("ASYMO_EXPECT_ISA") else { return };
        let want = Isa::parse(&want).unwrap().expect("ASYMO_EXPECT_ISA must name a tier");
        assert!(want.is_supported(), "expected ISA {} is not supported on this host", want.name());
        assert_eq!(selected_isa(), want);
        assert_eq!(tile_info().isa, want);
    }
}
