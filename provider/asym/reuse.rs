//! Data reuse of a model: how many floating-point operations each element moved to or from memory pays for.
//!
//! AsyMo (MobiCom 2021, §4.3) sets the CPU frequency from the model's *data reuse*: a compute-bound model (high
//! reuse, e.g. a conv net) gains almost linearly from a higher frequency, a memory-bound one (low reuse, e.g. an LSTM
//! run one step at a time: GEMVs) barely does, so a lower frequency costs little time and saves energy.
//!
//! For one GEMM `C[M×N] += A[M×K] · B[K×N]` the reuse is
//!
//! ```text
//!            flops            2·M·N·K
//! reuse = ----------- = -------------------      (flops per element: A and B read once, C read and written once)
//!         elements       M·K + N·K + 2·M·N
//! ```
//!
//! A convolution is counted through its GEMM lowering (im2col): per image and group, `M = C_out/g`,
//! `N = output spatial size`, `K = C_in/g · kernel spatial size`, repeated `batch · groups` times. Repetition does not
//! change the reuse of one GEMM, only its weight in the model.
//!
//! A model's reuse is the FLOP-weighted mean of its GEMMs' reuse: the operators that dominate the run time dominate
//! the figure. Everything here is pure arithmetic on shapes.

/// One GEMM-shaped piece of work, repeated `count` times (batch × groups for a convolution, batch for a batched
/// MatMul).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmWork {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub count: usize,
}

impl GemmWork {
    /// A single `M×K · K×N` product.
    pub fn gemm(m: usize, n: usize, k: usize) -> GemmWork {
        GemmWork { m, n, k, count: 1 }
    }

    /// Floating-point operations of all `count` products (a multiply-add is 2).
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64 * self.count as f64
    }

    /// Data reuse of one product, in flops per element: `2MNK / (MK + NK + 2MN)`; 0 for an empty product.
    pub fn reuse(&self) -> f64 {
        gemm_reuse(self.m, self.n, self.k)
    }
}

/// `2MNK / (MK + NK + 2MN)`: flops per element read or written by one GEMM; 0 when any dimension is 0.
pub fn gemm_reuse(m: usize, n: usize, k: usize) -> f64 {
    let (m, n, k) = (m as f64, n as f64, k as f64);
    let elements = m * k + n * k + 2.0 * m * n;
    if elements == 0.0 || m * n * k == 0.0 {
        return 0.0;
    }
    2.0 * m * n * k / elements
}

/// The shape facts of a 2-D (or N-D) convolution that its GEMM lowering needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub groups: usize,
    /// Product of the kernel's spatial dimensions (e.g. 3·3).
    pub kernel_size: usize,
    /// Product of the output's spatial dimensions (e.g. 56·56).
    pub out_size: usize,
}

impl ConvShape {
    /// The im2col GEMM of one image and group, repeated `batch · groups` times. A depthwise convolution
    /// (`groups = C_in = C_out`) becomes `M = 1`: a row vector times a matrix, i.e. memory-bound, as it should.
    pub fn as_gemm(&self) -> GemmWork {
        let g = self.groups.max(1);
        GemmWork { m: self.c_out / g, n: self.out_size, k: self.c_in / g * self.kernel_size, count: self.batch * g }
    }
}

/// Reuse class: which side of the roofline ridge a model sits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReuseClass {
    /// Reuse at or above the threshold: time scales with frequency, a higher frequency pays off.
    ComputeBound,
    /// Reuse below the threshold: time is set by memory, a lower frequency costs little.
    MemoryBound,
}

impl ReuseClass {
    /// The key used in the energy profile's JSON (`"compute"` / `"memory"`).
    pub fn key(self) -> &'static str {
        match self {
            ReuseClass::ComputeBound => "compute",
            ReuseClass::MemoryBound => "memory",
        }
    }

    /// Inverse of [`ReuseClass::key`].
    pub fn from_key(key: &str) -> Option<ReuseClass> {
        match key {
            "compute" => Some(ReuseClass::ComputeBound),
            "memory" => Some(ReuseClass::MemoryBound),
            _ => None,
        }
    }

    pub const ALL: [ReuseClass; 2] = [ReuseClass::ComputeBound, ReuseClass::MemoryBound];
}

/// Threshold between memory- and compute-bound, in flops per element (fp32: divide by 4 for flops per byte).
///
/// It is the roofline ridge of a typical mobile big core: ~40 GFLOP/s (2 × 128-bit FMA at ~2.5 GHz) over ~10 GB/s
/// of sustained DRAM bandwidth ≈ 4 flops/byte = 16 flops per fp32 element. Below it a kernel waits for memory even
/// when perfectly blocked. The figures it separates are far apart in practice: a GEMV (LSTM step, batch 1) has
/// reuse < 2, a ResNet 3×3 conv layer ~100, so the exact value matters little.
pub const COMPUTE_BOUND_REUSE: f64 = 16.0;

/// Class of a reuse figure against [`COMPUTE_BOUND_REUSE`].
pub fn classify(reuse: f64) -> ReuseClass {
    if reuse >= COMPUTE_BOUND_REUSE {
        ReuseClass::ComputeBound
    } else {
        ReuseClass::MemoryBound
    }
}

/// A model's data-reuse profile, computed once at Compile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelReuse {
    /// Total flops of the model's GEMM-shaped work.
    pub flops: f64,
    /// FLOP-weighted mean reuse (flops per element); 0 for a model without GEMM work.
    pub weighted_reuse: f64,
    /// `classify(weighted_reuse)`.
    pub class: ReuseClass,
}

impl ModelReuse {
    /// Profile of a model from its GEMM-shaped work (convs through [`ConvShape::as_gemm`]).
    pub fn from_work<I: IntoIterator<Item = GemmWork>>(work: I) -> ModelReuse {
        let mut acc = ReuseAccumulator::default();
        for w in work {
            acc.add(w);
        }
        acc.finish()
    }
}

/// Incremental form of [`ModelReuse::from_work`], for Compile, which sees one fused node at a time.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReuseAccumulator {
    flops: f64,
    flops_times_reuse: f64,
}

impl ReuseAccumulator {
    pub fn add(&mut self, work: GemmWork) {
        let f = work.flops();
        self.flops += f;
        self.flops_times_reuse += f * work.reuse();
    }

    pub fn add_conv(&mut self, conv: ConvShape) {
        self.add(conv.as_gemm());
    }

    pub fn finish(&self) -> ModelReuse {
        let weighted_reuse = if self.flops > 0.0 { self.flops_times_reuse / self.flops } else { 0.0 };
        ModelReuse { flops: self.flops, weighted_reuse, class: classify(weighted_reuse) }
    }
}

impl std::fmt::Display for ModelReuse {
    /// E.g. `data reuse 103.2 flops/element over 3.62 GFLOP: compute-bound` (for `log_plan=1`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let class = match self.class {
            ReuseClass::ComputeBound => "compute-bound",
            ReuseClass::MemoryBound => "memory-bound",
        };
        write!(
            f,
            "data reuse {:.1} flops/element over {:.3} GFLOP: {class} (threshold {COMPUTE_BOUND_REUSE})",
            self.weighted_reuse,
            self.flops * 1e-9
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn square_gemm_reuse_is_n_over_2() {
        // 2n³ / (n² + n² + 2n²) = n/2.
        for n in [1usize, 2, 64, 1000] {
            assert!(close(gemm_reuse(n, n, n), n as f64 / 2.0));
        }
    }

    #[test]
    fn gemv_reuse_is_below_2() {
        // 2MK / (MK + K + 2M) < 2 for any M, K.
        for (m, k) in [(1, 1), (512, 512), (4096, 1024), (2048, 8)] {
            let r = gemm_reuse(m, 1, k);
            assert!(r < 2.0, "{m}x{k}: {r}");
            assert!(classify(r) == ReuseClass::MemoryBound);
        }
        assert!(close(gemm_reuse(512, 1, 512), 2.0 * 512.0 * 512.0 / (512.0 * 512.0 + 512.0 + 1024.0)));
    }

    #[test]
    fn empty_gemm_has_no_reuse_and_no_weight() {
        assert_eq!(gemm_reuse(0, 5, 5), 0.0);
        let r = ModelReuse::from_work([GemmWork::gemm(0, 3, 3)]);
        assert_eq!(r.flops, 0.0);
        assert_eq!(r.weighted_reuse, 0.0);
        assert_eq!(r.class, ReuseClass::MemoryBound);
    }

    #[test]
    fn conv_lowering() {
        // ResNet-50 conv2_x 3×3: 64 → 64 channels, 56×56 output, batch 2.
        let c = ConvShape { batch: 2, c_in: 64, c_out: 64, groups: 1, kernel_size: 9, out_size: 56 * 56 };
        assert_eq!(c.as_gemm(), GemmWork { m: 64, n: 3136, k: 576, count: 2 });
        assert!(close(c.as_gemm().flops(), 2.0 * 2.0 * 64.0 * 3136.0 * 576.0));
        // Depthwise 3×3 on 32 channels: M = 1, K = 9, repeated per channel.
        let dw = ConvShape { batch: 1, c_in: 32, c_out: 32, groups: 32, kernel_size: 9, out_size: 112 * 112 };
        assert_eq!(dw.as_gemm(), GemmWork { m: 1, n: 12544, k: 9, count: 32 });
        assert_eq!(classify(dw.as_gemm().reuse()), ReuseClass::MemoryBound);
    }

    #[test]
    fn weighting_is_by_flops() {
        let big = GemmWork::gemm(256, 256, 256); // reuse 128
        let small = GemmWork::gemm(256, 1, 256); // reuse ~2
        let r = ModelReuse::from_work([big, small]);
        let expect = (big.flops() * big.reuse() + small.flops() * small.reuse()) / (big.flops() + small.flops());
        assert!(close(r.weighted_reuse, expect));
        assert!(close(r.flops, big.flops() + small.flops()));
        // Repeating a GEMM changes its weight, not its reuse.
        let rep = GemmWork { count: 1000, ..small };
        assert!(close(rep.reuse(), small.reuse()));
        assert!(ModelReuse::from_work([big, rep]).weighted_reuse < r.weighted_reuse);
    }

    /// A small conv net (ResNet-style stem and stages) is compute-bound.
    #[test]
    fn conv_net_is_compute_bound() {
        let layers = [
            ConvShape { batch: 1, c_in: 3, c_out: 64, groups: 1, kernel_size: 49, out_size: 112 * 112 },
            ConvShape { batch: 1, c_in: 64, c_out: 64, groups: 1, kernel_size: 9, out_size: 56 * 56 },
            ConvShape { batch: 1, c_in: 64, c_out: 128, groups: 1, kernel_size: 9, out_size: 28 * 28 },
            ConvShape { batch: 1, c_in: 128, c_out: 256, groups: 1, kernel_size: 9, out_size: 14 * 14 },
            ConvShape { batch: 1, c_in: 256, c_out: 512, groups: 1, kernel_size: 9, out_size: 7 * 7 },
        ];
        let mut acc = ReuseAccumulator::default();
        for l in layers {
            acc.add_conv(l);
        }
        acc.add(GemmWork::gemm(1, 1000, 512)); // the classifier: a GEMV, negligible flops
        let r = acc.finish();
        assert_eq!(r.class, ReuseClass::ComputeBound, "{r:?}");
        assert!(r.weighted_reuse > 50.0, "{r:?}");
    }

    /// An LSTM run step by step at batch 1: per step two GEMVs (input and recurrent, 4 gates).
    #[test]
    fn lstm_is_memory_bound() {
        let hidden = 512;
        let input = 256;
        let steps = 50;
        let work =
            (0..steps).flat_map(|_| [GemmWork::gemm(4 * hidden, 1, input), GemmWork::gemm(4 * hidden, 1, hidden)]);
        let r = ModelReuse::from_work(work);
        assert_eq!(r.class, ReuseClass::MemoryBound, "{r:?}");
        assert!(r.weighted_reuse < 2.0, "{r:?}");
        assert!(r.to_string().contains("memory-bound"), "{r}");
    }

    #[test]
    fn class_keys_round_trip() {
        for c in ReuseClass::ALL {
            assert_eq!(ReuseClass::from_key(c.key()), Some(c));
        }
        assert_eq!(ReuseClass::from_key("other"), None);
    }
}
