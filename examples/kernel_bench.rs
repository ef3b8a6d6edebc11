//! Single-thread kernel throughput: GEMM (square and the conv GEMMs of ResNet-50 / MobileNetV1), GEMV, depthwise.
//!
//! `cargo run --release --example kernel_bench [-- --isa avx2|avx512|generic|neon|all] [--quick] [--filter TEXT]
//! [--iters N]` (`--iters`: a fixed number of calls per case and no clock probe, so that
//! `perf stat -e instructions:u` counts are comparable between builds on a busy machine).
//!
//! Prints GFLOP/s (median and best of several timed runs), the fraction of the tier's micro-kernel ceiling (its
//! GFLOP/s on L1-resident panels, measured first in the same run), and the fraction of this core's peak: the clock
//! is measured with a chain of dependent adds (x86_64; it reads low on a busy VM), peak = 32 FLOP/cycle for
//! AVX2+FMA, 64 for AVX-512 (two 512-bit FMA ports), 16 for NEON (two 128-bit FMA pipes), 8 for the generic tier.
//! Times are thread CPU time (CLOCK_THREAD_CPUTIME_ID), so time-sharing with other processes is not counted; cache
//! and frequency effects of a busy machine still are: compare tiers in one run, not across runs.

use asymo_ep::kernels::*;
use std::time::Duration;

/// Thread CPU time: time-sharing with other processes on a busy machine does not count (cache and frequency
/// effects still do).
#[derive(Clone, Copy)]
struct Instant(f64);

impl Instant {
    fn now() -> Self {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes one timespec through a valid pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Instant(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    }
    fn elapsed(&self) -> Elapsed {
        Elapsed(Instant::now().0 - self.0)
    }
}

struct Elapsed(f64);

impl Elapsed {
    fn as_secs_f64(&self) -> f64 {
        self.0
    }
}

struct Rng(u64);
impl Rng {
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }
}

/// Fixed call count per case (`--iters N`), for instruction counts with `perf stat -e instructions:u`.
static ITERS: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();

/// Median and best seconds per call of `f`, after a warm-up, over about `budget`.
fn time(budget: Duration, mut f: impl FnMut()) -> (f64, f64) {
    f();
    if let Some(n) = ITERS.get().copied().flatten() {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        let per = t.elapsed().as_secs_f64() / n as f64;
        return (per, per);
    }
    let t0 = Instant::now();
    f();
    let one = t0.elapsed().as_secs_f64().max(1e-7);
    let reps_per_sample = ((budget.as_secs_f64() / 7.0 / one) as usize).max(1);
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps_per_sample {
                f();
            }
            t.elapsed().as_secs_f64() / reps_per_sample as f64
        })
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (samples[3], samples[0])
}

/// Core clock in GHz from a chain of dependent adds (one cycle each).
fn clock_ghz() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let n: u64 = 200_000_000;
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let mut x: u64 = 0;
            let mut i = n / 8;
            // SAFETY: pure register arithmetic, no memory access. Register-register adds: recent cores eliminate
            // add-immediate at rename, which would make an immediate chain run faster than one add per cycle.
            unsafe {
                std::arch::asm!(
                    "2:",
                    "add {x}, {one}", "add {x}, {one}", "add {x}, {one}", "add {x}, {one}",
                    "add {x}, {one}", "add {x}, {one}", "add {x}, {one}", "add {x}, {one}",
                    "dec {i}",
                    "jnz 2b",
                    x = inout(reg) x, i = inout(reg) i, one = in(reg) 1u64,
                    options(nomem, nostack)
                );
            }
            std::hint::black_box((x, i));
            best = best.min(t.elapsed().as_secs_f64());
        }
        Some(n as f64 / best / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

fn peak_flop_per_cycle(isa: Isa) -> f64 {
    match isa {
        Isa::Avx512 => 64.0,
        Isa::Avx2 => 32.0,
        Isa::Neon => 16.0,
        Isa::Generic => 8.0,
    }
}

struct Ctx {
    ghz: Option<f64>,
    isa: Isa,
    budget: Duration,
    filter: Option<String>,
    /// The tier's micro-kernel GFLOP/s on L1-resident panels, measured first in the same run.
    ceiling: std::cell::Cell<Option<f64>>,
}

impl Ctx {
    fn report(&self, name: &str, flops: f64, (med, best): (f64, f64), extra: &str) {
        let g = flops / med / 1e9;
        let mut pk = match self.ghz {
            Some(ghz) => format!(
                "{:5.1}% of {} peak, {:5.1}% of AVX2 peak",
                100.0 * g / (ghz * peak_flop_per_cycle(self.isa)),
                self.isa.name(),
                100.0 * g / (ghz * 32.0)
            ),
            None => String::new(),
        };
        if let Some(c) = self.ceiling.get() {
            pk = format!("{:5.1}% of ukr, {pk}", 100.0 * g / c);
        }
        println!(
            "{:8} {:44} {:8.1} GFLOP/s (best {:6.1}) {:9.3} ms  {pk} {extra}",
            self.isa.name(),
            name,
            g,
            flops / best / 1e9,
            med * 1e3
        );
    }
    fn wants(&self, name: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| name.contains(f.as_str()))
    }
}

/// C (m×n) = A (m×k, row-major activations) · B (k×n packed weights): the MatMul/Gemm case.
fn bench_matmul(cx: &Ctx, name: &str, m: usize, n: usize, k: usize, rng: &mut Rng) {
    if !cx.wants(name) {
        return;
    }
    let (a, b) = (rng.vec(m * k), rng.vec(k * n));
    let pb = PackedB::pack(MatRef::row_major(&b, k, n));
    let mut c = vec![0.0; m * n];
    let mut s = Scratch::new();
    let t = time(cx.budget, || {
        let cm = MatMut::row_major(&mut c, m, n);
        let av = AOperand::View(MatRef::row_major(&a, m, k));
        gemm_block(av, BOperand::Packed(&pb), cm, k, 0..m, 0..n, &[], &mut s);
    });
    cx.report(name, 2.0 * (m * n * k) as f64, t, "");
}

/// A conv as GEMM: packed weights (c_out × K) times im2col (or the input itself for 1×1 stride 1), bias + Relu.
#[allow(clippy::too_many_arguments)]
fn bench_conv(cx: &Ctx, name: &str, c_in: usize, hw: usize, c_out: usize, kk: usize, stride: usize, rng: &mut Rng) {
    if !cx.wants(name) {
        return;
    }
    let pad = kk / 2;
    let out = (hw + 2 * pad - kk) / stride + 1;
    let g = ConvGeometry {
        channels: c_in,
        in_spatial: vec![hw, hw],
        kernel: vec![kk, kk],
        out_spatial: vec![out, out],
        strides: vec![stride, stride],
        dilations: vec![1, 1],
        pads_begin: vec![pad, pad],
    };
    let (x, w, bias) = (rng.vec(g.in_size()), rng.vec(c_out * g.k()), rng.vec(c_out));
    let pa = PackedA::pack(MatRef::row_major(&w, c_out, g.k()));
    let (k, n) = (g.k(), g.n());
    let mut c = vec![0.0; c_out * n];
    let mut s = Scratch::new();
    let direct = kk == 1 && stride == 1;
    let ops = [FusedOp::RowBias(&bias), FusedOp::Relu];
    let t = time(cx.budget, || {
        let cm = MatMut::row_major(&mut c, c_out, n);
        let b = if direct {
            BOperand::View(MatRef::row_major(&x, k, n))
        } else {
            BOperand::Im2col(Im2col { input: &x, geometry: &g })
        };
        gemm_block(AOperand::Packed(&pa), b, cm, k, 0..c_out, 0..n, &ops, &mut s);
    });
    let how = if direct { "view" } else { "im2col" };
    cx.report(&format!("{name} M{c_out} K{k} N{n} {how}"), 2.0 * (c_out * n * k) as f64, t, "");
}

/// y (1×n) = x (1×k) · W (k×n packed): FC / RNN step at batch 1. Reports GB/s of weights streamed.
fn bench_gemv(cx: &Ctx, name: &str, n: usize, k: usize, rng: &mut Rng) {
    if !cx.wants(name) {
        return;
    }
    let (x, w) = (rng.vec(k), rng.vec(k * n));
    let pw = PackedB::pack(MatRef::row_major(&w, k, n));
    let mut y = vec![0.0; n];
    let mut s = Scratch::new();
    let t = time(cx.budget, || {
        let ym = MatMut::row_major(&mut y, 1, n);
        gemm_block(AOperand::View(MatRef::row_major(&x, 1, k)), BOperand::Packed(&pw), ym, k, 0..1, 0..n, &[], &mut s);
    });
    let gbs = (4 * k * n) as f64 / t.0 / 1e9;
    cx.report(name, 2.0 * (n * k) as f64, t, &format!("{gbs:.1} GB/s of weights"));
}

/// y (m×1) = W (m×k packed, conv weights) · x (k×1): a 1×1 convolution on a 1×1 map. Reports GB/s of weights.
fn bench_gemv_col(cx: &Ctx, name: &str, m: usize, k: usize, rng: &mut Rng) {
    if !cx.wants(name) {
        return;
    }
    let (x, w) = (rng.vec(k), rng.vec(k * m));
    let pw = PackedA::pack(MatRef::row_major(&w, m, k));
    let mut y = vec![0.0; m];
    let mut s = Scratch::new();
    let t = time(cx.budget, || {
        let ym = MatMut::row_major(&mut y, m, 1);
        gemm_block(AOperand::Packed(&pw), BOperand::View(MatRef::row_major(&x, k, 1)), ym, k, 0..m, 0..1, &[], &mut s);
    });
    let gbs = (4 * k * m) as f64 / t.0 / 1e9;
    cx.report(name, 2.0 * (m * k) as f64, t, &format!("{gbs:.1} GB/s of weights"));
}

/// MobileNetV1 depthwise 3×3 (pad 1) over all channels, bias + Relu6.
fn bench_dw(cx: &Ctx, c: usize, hw: usize, stride: usize, rng: &mut Rng) {
    let name = format!("mobilenet dw3x3 C{c} {hw}x{hw} s{stride}");
    if !cx.wants(&name) {
        return;
    }
    let out = (hw + 2 - 3) / stride + 1;
    let g = ConvGeometry {
        channels: c,
        in_spatial: vec![hw, hw],
        kernel: vec![3, 3],
        out_spatial: vec![out, out],
        strides: vec![stride, stride],
        dilations: vec![1, 1],
        pads_begin: vec![1, 1],
    };
    let (x, w, bias) = (rng.vec(g.in_size()), rng.vec(c * 9), rng.vec(c));
    let mut y = vec![0.0; c * g.n()];
    let mut s = Scratch::new();
    let ops = [FusedOp::Clip { lo: 0.0, hi: 6.0 }];
    let t = time(cx.budget, || {
        let ym = MatMut::row_major(&mut y, c, g.n());
        depthwise_conv(&x, &w, Some(&bias), &g, 1, ym, 0..c, &ops, &mut s);
    });
    cx.report(&name, 2.0 * 9.0 * (c * g.n()) as f64, t, "");
}

/// Measured FMA throughput in GFLOP/s: 24 independent zmm accumulators (AVX-512F), register operands only, so
/// nothing but the FMA ports limits it (the clock probe above gives the nominal rate; under AVX-512 load a core
/// may run slower than that).
fn fma_peak_gflops() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return None;
        }
        let n: u64 = 20_000_000;
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let mut i = n;
            // SAFETY: AVX-512F is present (checked above); register-only arithmetic on zmm0..zmm25, all declared
            // clobbered, no memory access.
            unsafe {
                std::arch::asm!(
                    "vxorps zmm0, zmm0, zmm0",
                    "vxorps zmm1, zmm1, zmm1",
                    "2:",
                    ".irp r,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25",
                    "vfmadd231ps zmm\\r, zmm0, zmm1",
                    ".endr",
                    "dec {i}",
                    "jnz 2b",
                    i = inout(reg) i,
                    out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _, out("zmm5") _,
                    out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
                    out("zmm12") _, out("zmm13") _, out("zmm14") _, out("zmm15") _, out("zmm16") _,
                    out("zmm17") _, out("zmm18") _, out("zmm19") _, out("zmm20") _, out("zmm21") _,
                    out("zmm22") _, out("zmm23") _, out("zmm24") _, out("zmm25") _,
                    options(nomem, nostack)
                );
            }
            std::hint::black_box(i);
            best = best.min(t.elapsed().as_secs_f64());
        }
        Some(n as f64 * 24.0 * 32.0 / best / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let quick = args.iter().any(|a| a == "--quick");
    ITERS.set(arg("--iters").map(|n| n.parse().expect("--iters N"))).unwrap();
    let isas: Vec<Isa> = match arg("--isa").as_deref() {
        None => vec![selected_isa()],
        Some("all") => Isa::ALL.into_iter().filter(|i| i.is_supported()).collect(),
        Some(s) => vec![Isa::parse(s).expect("--isa").unwrap_or_else(best_isa)],
    };
    let ghz = if arg("--iters").is_some() { None } else { clock_ghz() };
    match ghz {
        Some(g) => println!("measured clock: {g:.2} GHz (dependent-add chain); single thread"),
        None => println!("clock not measured on this target; single thread"),
    }
    if let Some(p) = fma_peak_gflops().filter(|_| arg("--iters").is_none()) {
        println!("measured AVX-512 FMA throughput: {p:.1} GFLOP/s (24 register accumulators)");
    }
    let budget = Duration::from_millis(if quick { 150 } else { 600 });
    for isa in isas {
        force_isa(Some(isa)).expect("tier not supported here");
        let t = tile_info();
        println!("== tier {} (mr {} nr {} kc {} mc {} nc {})", isa.name(), t.mr, t.nr, t.kc, t.mc, t.nc);
        let cx = Ctx { ghz, isa, budget, filter: arg("--filter"), ceiling: std::cell::Cell::new(None) };
        let mut rng = Rng(42);
        {
            let mut flops = 0.0;
            let t = time(cx.budget, || flops = microkernel_probe(isa, 256, 2000));
            cx.report("microkernel only (k 256, L1-resident)", flops, t, "");
            cx.ceiling.set(Some(flops / t.0 / 1e9));
        }
        for s in [64, 128, 256, 512, 1024, 2048] {
            bench_matmul(&cx, &format!("square {s}"), s, s, s, &mut rng);
        }
        // ResNet-50 convolutions (224×224 input): name, C_in, H=W, C_out, kernel, stride.
        for (name, ci, hw, co, kk, st) in [
            ("resnet50 conv1 7x7/2", 3, 224, 64, 7, 2),
            ("resnet50 res2 1x1 reduce", 256, 56, 64, 1, 1),
            ("resnet50 res2 3x3", 64, 56, 64, 3, 1),
            ("resnet50 res2 1x1 expand", 64, 56, 256, 1, 1),
            ("resnet50 res3 3x3", 128, 28, 128, 3, 1),
            ("resnet50 res3 1x1 expand", 128, 28, 512, 1, 1),
            ("resnet50 res4 3x3", 256, 14, 256, 3, 1),
            ("resnet50 res4 1x1 expand", 256, 14, 1024, 1, 1),
            ("resnet50 res5 3x3", 512, 7, 512, 3, 1),
            ("resnet50 res5 1x1 expand", 512, 7, 2048, 1, 1),
            ("mobilenet conv1 3x3/2", 3, 224, 32, 3, 2),
            ("mobilenet pw 32->64 @112", 32, 112, 64, 1, 1),
            ("mobilenet pw 64->128 @56", 64, 56, 128, 1, 1),
            ("mobilenet pw 128->256 @28", 128, 28, 256, 1, 1),
            ("mobilenet pw 256->512 @14", 256, 14, 512, 1, 1),
            ("mobilenet pw 512->512 @14", 512, 14, 512, 1, 1),
            ("mobilenet pw 1024->1024 @7", 1024, 7, 1024, 1, 1),
        ] {
            bench_conv(&cx, name, ci, hw, co, kk, st, &mut rng);
        }
        bench_gemv(&cx, "gemv 1x4096x4096", 4096, 4096, &mut rng);
        bench_gemv(&cx, "gemv 1x1024x4096 (K 1024, N 4096)", 4096, 1024, &mut rng);
        bench_gemv(&cx, "resnet50 fc 1x2048x1000", 1000, 2048, &mut rng);
        bench_gemv(&cx, "char-rnn step 1x512x1024", 1024, 512, &mut rng);
        bench_gemv(&cx, "char-rnn step 1x321x1024", 1024, 321, &mut rng);
        bench_gemv_col(&cx, "mobilenet fc conv1x1 M1000 K1024 N1 (packed A)", 1000, 1024, &mut rng);
        for (c, hw, s) in [
            (32, 112, 1),
            (64, 112, 2),
            (128, 56, 1),
            (128, 56, 2),
            (256, 28, 1),
            (256, 28, 2),
            (512, 14, 1),
            (512, 14, 2),
            (1024, 7, 1),
        ] {
            bench_dw(&cx, c, hw, s, &mut rng);
        }
    }
}
