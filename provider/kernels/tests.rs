//! Kernel tests: every tier this host supports (others are skipped, not failed) against naive references, on seeded
//! random shapes and on the edges (1, primes, MR ± 1, NR ± 1, KC ± 1), with NaN-filled, strided outputs to prove each
//! call writes exactly its block.

use super::depthwise::{depthwise_on, DwPath};
use super::gemm::{gemm_block_cfg, gemm_block_on};
use super::gemv::{col_partial, row_partial};
use super::*;
use std::ops::Range;

/// splitmix64: small, seeded, good enough for shapes and values.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in lo..=hi.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    pub(crate) fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    pub(crate) fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f()).collect()
    }
    pub(crate) fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.range(0, xs.len() - 1)]
    }
}

fn tiers() -> Vec<Isa> {
    let t: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.is_supported()).collect();
    for i in Isa::ALL.into_iter().filter(|i| !i.is_supported()) {
        eprintln!("skipping tier {} (not supported on this host)", i.name());
    }
    t
}

/// Compare with tolerance relative to the largest |value|.
fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (t, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(err <= 1e-4 * scale, "{what}: element {t}: got {g}, want {w} (scale {scale})");
    }
}

/// A matrix stored in one of several layouts, for building views.
struct Stored {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
    off: usize,
}

impl Stored {
    /// Layout 0: row-major; 1: column-major; 2: padded rows with a column stride of 2; 3: negative row stride.
    fn new(vals: &[f32], rows: usize, cols: usize, layout: usize) -> Self {
        let (rs, cs, len, off) = match layout {
            0 => (cols as isize, 1, rows * cols, 0),
            1 => (1, rows as isize, rows * cols, 0),
            2 => ((2 * cols + 3) as isize, 2, rows * (2 * cols + 3), 0),
            _ => (-(cols as isize), 1, rows * cols, (rows - 1) * cols),
        };
        let mut data = vec![f32::NAN; len.max(1)];
        for i in 0..rows {
            for j in 0..cols {
                data[(off as isize + i as isize * rs + j as isize * cs) as usize] = vals[i * cols + j];
            }
        }
        Stored { data, rows, cols, rs, cs, off }
    }
    fn view(&self) -> MatRef<'_> {
        MatRef::with_offset(&self.data, self.off, self.rows, self.cols, self.rs, self.cs)
    }
}

/// Naive `epilogue(A·B)` in f64 (epilogue in f32 through the scalar reference, which the fast paths must match).
fn naive_gemm(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, ops: &[FusedOp<'_>]) -> Vec<f64> {
    let mut c = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum();
            c[i * n + j] = if ops.is_empty() { s } else { apply_epilogue(s as f32, i, j, ops) as f64 };
        }
    }
    c
}

/// Split `0..len` into random consecutive ranges (possibly unaligned, some aligned to `align`).
fn random_split(rng: &mut Rng, len: usize, align: usize) -> Vec<Range<usize>> {
    let mut cuts = vec![0];
    let mut x = 0;
    while x < len {
        let step = if rng.range(0, 1) == 0 { align * rng.range(1, 3) } else { rng.range(1, len.max(1)) };
        x = (x + step).min(len);
        cuts.push(x);
    }
    cuts.windows(2).map(|w| w[0]..w[1]).collect()
}

/// Random epilogue (may be empty) over C of m × n, with its operand storage.
struct EpiData {
    row_bias: Vec<f32>,
    col_bias: Vec<f32>,
    add: Vec<f32>,
    add_row: Vec<f32>,
    /// A residual with padded rows (row stride n + 3).
    add_padded: Vec<f32>,
}

fn epi_data(rng: &mut Rng, m: usize, n: usize) -> EpiData {
    EpiData {
        row_bias: rng.vec(m),
        col_bias: rng.vec(n),
        add: rng.vec(m * n),
        add_row: rng.vec(n),
        add_padded: rng.vec(m * (n + 3)),
    }
}

fn random_ops<'a>(rng: &mut Rng, d: &'a EpiData, m: usize, n: usize) -> Vec<FusedOp<'a>> {
    if rng.range(0, 5) == 0 {
        // A residual block's chain (bias, Add, activation), which the micro-kernels fuse into their store.
        let res = if rng.range(0, 2) == 0 {
            MatRef::row_major(&d.add, m, n)
        } else {
            MatRef::new(&d.add_padded, m, n, n as isize + 3, 1)
        };
        let bias = if rng.range(0, 2) == 0 { FusedOp::RowBias(&d.row_bias) } else { FusedOp::ColBias(&d.col_bias) };
        let act = if rng.range(0, 2) == 0 { FusedOp::Relu } else { FusedOp::Clip { lo: -0.3, hi: 0.4 } };
        return vec![bias, FusedOp::Add(res), act];
    }
    let mut ops = vec![];
    for _ in 0..rng.range(0, 3) {
        ops.push(match rng.range(0, 12) {
            0 => FusedOp::Scale(rng.f() * 2.0),
            1 => FusedOp::AddScaled { src: MatRef::row_major(&d.add, m, n), beta: rng.f() },
            // Broadcast Gemm C: one row repeated (row stride 0).
            2 => FusedOp::AddScaled { src: MatRef::new(&d.add_row, m, n, 0, 1), beta: rng.f() },
            3 => FusedOp::RowBias(&d.row_bias),
            4 => FusedOp::ColBias(&d.col_bias),
            5 => FusedOp::Relu,
            6 => FusedOp::Clip { lo: -0.5, hi: 0.7 },
            7 => FusedOp::LeakyRelu(0.1),
            8 => FusedOp::Sigmoid,
            9 => FusedOp::HardSigmoid { alpha: 0.2, beta: 0.5 },
            10 => FusedOp::HardSwish,
            11 => FusedOp::Add(MatRef::row_major(&d.add, m, n)),
            _ => FusedOp::AddScaled { src: MatRef::new(&d.add_row[..1], m, n, 0, 0), beta: 1.0 },
        });
    }
    ops
}

/// One GEMM case on one tier: random operand layouts and block split, C strided inside a NaN-filled buffer.
#[allow(clippy::too_many_arguments)]
fn gemm_case(rng: &mut Rng, isa: Isa, m: usize, n: usize, k: usize, with_ops: bool, scratch: &mut Scratch) {
    let (av, bv) = (rng.vec(m * k), rng.vec(k * n));
    let ti = tile_info_for(isa);
    let a_layout = rng.range(0, 4); // 4 = packed
    let b_layout = rng.range(0, 4);
    let sa = Stored::new(&av, m, k, a_layout.min(3));
    let sb = Stored::new(&bv, k, n, b_layout.min(3));
    let pa = PackedA::pack_for(isa, MatRef::row_major(&av, m, k));
    let pb = PackedB::pack_for(isa, MatRef::row_major(&bv, k, n));
    let a = if a_layout == 4 { AOperand::Packed(&pa) } else { AOperand::View(sa.view()) };
    let b = if b_layout == 4 { BOperand::Packed(&pb) } else { BOperand::View(sb.view()) };
    let d = epi_data(rng, m, n);
    let ops = if with_ops { random_ops(rng, &d, m, n) } else { vec![] };
    let want = naive_gemm(&av, &bv, m, n, k, &ops);
    // C inside a larger NaN buffer: padded row stride, or column stride 2.
    let (rs, cs) = if rng.range(0, 2) == 0 { ((2 * n + 1) as isize, 2) } else { ((n + 3) as isize, 1) };
    let len = (m - 1) * rs as usize + (n - 1) * cs as usize + 1;
    let mut buf = vec![f32::NAN; len + 5];
    {
        let c = MatMut::new(&mut buf, m, n, rs, cs);
        for r in random_split(rng, m, ti.mr) {
            for cc in random_split(rng, n, ti.nr) {
                gemm_block_on(Some(isa), a, b, c, k, r.clone(), cc, &ops, scratch);
            }
        }
    }
    let mut got = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let at = i * rs as usize + j * cs as usize;
            got[i * n + j] = buf[at];
            buf[at] = f32::NAN;
        }
    }
    let what = format!("{} {m}x{n}x{k} A{a_layout} B{b_layout} C({rs},{cs}) ops {ops:?}", isa.name());
    assert!(buf.iter().all(|v| v.is_nan()), "{what}: wrote outside C");
    assert_close(&got, &want, &what);
}

#[test]
fn gemm_random_shapes_all_tiers() {
    let mut scratch = Scratch::new();
    for isa in tiers() {
        let mut rng = Rng::new(0x5EED ^ isa as u64);
        for _ in 0..60 {
            let (m, n, k) = (rng.range(1, 40), rng.range(1, 70), rng.range(1, 60));
            gemm_case(&mut rng, isa, m, n, k, true, &mut scratch);
        }
    }
}

#[test]
fn gemm_edges_all_tiers() {
    let mut scratch = Scratch::new();
    for isa in tiers() {
        let ti = tile_info_for(isa);
        let mut rng = Rng::new(77 + isa as u64);
        let ms = [1, 2, 7, ti.mr - 1, ti.mr, ti.mr + 1, 2 * ti.mr + 1];
        let ns = [1, 3, 13, ti.nr - 1, ti.nr, ti.nr + 1, 2 * ti.nr + 3];
        let ks = [1, 2, 5, 17, ti.kc - 1, ti.kc, ti.kc + 1];
        for &m in &ms {
            for &n in &ns {
                let k = rng.pick(&ks);
                let with_ops = rng.range(0, 1) == 1;
                gemm_case(&mut rng, isa, m, n, k, with_ops, &mut scratch);
            }
        }
        // A couple of blocks larger than mc / nc, K across several kc passes.
        gemm_case(&mut rng, isa, ti.mc + ti.mr + 1, 2 * ti.nr + 1, 2 * ti.kc + 3, true, &mut scratch);
    }
}

#[test]
fn gemm_k_zero_gives_epilogue_of_zero() {
    let mut c = vec![f32::NAN; 6];
    let bias = [1.0, -2.0];
    gemm_block(
        AOperand::View(MatRef::row_major(&[], 2, 0)),
        BOperand::View(MatRef::row_major(&[], 0, 3)),
        MatMut::row_major(&mut c, 2, 3),
        0,
        0..2,
        0..3,
        &[FusedOp::RowBias(&bias), FusedOp::Relu],
        &mut Scratch::new(),
    );
    assert_eq!(c, vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn epilogue_ops_alone_and_chained_on_every_tier() {
    let (m, n, k) = (9, 37, 11);
    let mut scratch = Scratch::new();
    for isa in tiers() {
        let mut rng = Rng::new(3);
        let (av, bv) = (rng.vec(m * k), rng.vec(k * n));
        let d = epi_data(&mut rng, m, n);
        let singles: Vec<Vec<FusedOp<'_>>> = (0..40)
            .map(|_| random_ops(&mut rng, &d, m, n))
            .chain([
                vec![FusedOp::Scale(2.0), FusedOp::Sigmoid],
                vec![FusedOp::ColBias(&d.col_bias), FusedOp::HardSwish, FusedOp::Add(MatRef::row_major(&d.add, m, n))],
                vec![FusedOp::RowBias(&d.row_bias), FusedOp::Clip { lo: 0.0, hi: 6.0 }],
                vec![FusedOp::RowBias(&d.row_bias), FusedOp::Add(MatRef::row_major(&d.add, m, n)), FusedOp::Relu],
                vec![
                    FusedOp::Add(MatRef::new(&d.add_padded, m, n, n as isize + 3, 1)),
                    FusedOp::RowBias(&d.row_bias),
                    FusedOp::Relu,
                ],
                vec![
                    FusedOp::ColBias(&d.col_bias),
                    FusedOp::Add(MatRef::new(&d.add_padded, m, n, n as isize + 3, 1)),
                    FusedOp::Add(MatRef::row_major(&d.add, m, n)),
                    FusedOp::Clip { lo: -0.2, hi: 0.3 },
                ],
            ])
            .collect();
        for ops in singles {
            let want = naive_gemm(&av, &bv, m, n, k, &ops);
            let mut c = vec![f32::NAN; m * n];
            gemm_block_on(
                Some(isa),
                AOperand::View(MatRef::row_major(&av, m, k)),
                BOperand::View(MatRef::row_major(&bv, k, n)),
                MatMut::row_major(&mut c, m, n),
                k,
                0..m,
                0..n,
                &ops,
                &mut scratch,
            );
            assert_close(&c, &want, &format!("{} {ops:?}", isa.name()));
        }
    }
}

#[test]
fn packed_operands_round_trip() {
    let mut rng = Rng::new(11);
    for isa in tiers() {
        for (r, c) in [(1, 1), (5, 3), (13, 40), (33, 7)] {
            let v = rng.vec(r * c);
            let pa = PackedA::pack_for(isa, MatRef::row_major(&v, r, c));
            let pb = PackedB::pack_for(isa, MatRef::row_major(&v, r, c));
            let pat = PackedA::pack_for(isa, MatRef::row_major(&v, r, c).t().t());
            for i in 0..r {
                for j in 0..c {
                    assert_eq!(pa.at(i, j), v[i * c + j]);
                    assert_eq!(pb.at(i, j), v[i * c + j]);
                    assert_eq!(pat.at(i, j), v[i * c + j]);
                }
            }
            assert_eq!((pa.rows(), pa.k(), pb.k(), pb.cols(), pa.isa()), (r, c, r, c, isa));
        }
    }
}

#[test]
fn packed_for_another_tier_still_matches() {
    // A packed for one tier, B for another: the B panels are repacked on the fly.
    let t = tiers();
    let (m, n, k) = (17, 29, 23);
    let mut rng = Rng::new(5);
    let (av, bv) = (rng.vec(m * k), rng.vec(k * n));
    let want = naive_gemm(&av, &bv, m, n, k, &[]);
    for &ia in &t {
        for &ib in &t {
            let pa = PackedA::pack_for(ia, MatRef::row_major(&av, m, k));
            let pb = PackedB::pack_for(ib, MatRef::row_major(&bv, k, n));
            let mut c = vec![f32::NAN; m * n];
            let cm = MatMut::row_major(&mut c, m, n);
            gemm_block(AOperand::Packed(&pa), BOperand::Packed(&pb), cm, k, 0..m, 0..n, &[], &mut Scratch::new());
            assert_close(&c, &want, &format!("A {} B {}", ia.name(), ib.name()));
        }
    }
}

#[test]
fn warm_scratch_does_not_reallocate() {
    let (m, n, k) = (40, 50, 30);
    let mut rng = Rng::new(9);
    let (av, bv) = (rng.vec(m * k), rng.vec(k * n));
    let mut c = vec![0.0; m * n];
    let mut s = Scratch::new();
    let run = |s: &mut Scratch, c: &mut [f32]| {
        let cm = MatMut::row_major(c, m, n);
        let (a, b) = (AOperand::View(MatRef::row_major(&av, m, k)), BOperand::View(MatRef::row_major(&bv, k, n)));
        gemm_block(a, b, cm, k, 0..m, 0..n, &[], s);
    };
    run(&mut s, &mut c);
    let ptrs = (s.a.as_slice().as_ptr(), s.b.as_slice().as_ptr());
    run(&mut s, &mut c);
    assert_eq!(ptrs, (s.a.as_slice().as_ptr(), s.b.as_slice().as_ptr()));
    assert_eq!(s.a.as_slice().as_ptr() as usize % 64, 0);
}

// ---- convolution through im2col ----

fn conv_out(i: usize, k: usize, s: usize, d: usize, pb: usize, pe: usize) -> usize {
    let eff = d * (k - 1) + 1;
    if i + pb + pe < eff {
        0
    } else {
        (i + pb + pe - eff) / s + 1
    }
}

fn random_geometry(rng: &mut Rng, nd: usize, channels: usize) -> ConvGeometry {
    loop {
        let mut g = ConvGeometry {
            channels,
            in_spatial: vec![],
            kernel: vec![],
            out_spatial: vec![],
            strides: vec![],
            dilations: vec![],
            pads_begin: vec![],
        };
        for _ in 0..nd {
            let (i, k, s, d) = (rng.range(1, 12), rng.pick(&[1, 1, 2, 3, 5]), rng.range(1, 3), rng.range(1, 2));
            let (pb, pe) = (rng.range(0, 2), rng.range(0, 2));
            g.in_spatial.push(i);
            g.kernel.push(k);
            g.strides.push(s);
            g.dilations.push(d);
            g.pads_begin.push(pb);
            g.out_spatial.push(conv_out(i, k, s, d, pb, pe));
        }
        if g.n() > 0 {
            return g;
        }
    }
}

/// Direct convolution: out[oc][pos] = Σ_c Σ_taps w[oc][c][tap] · x[c][in(pos, tap)] (one group).
fn naive_conv(x: &[f32], w: &[f32], g: &ConvGeometry, c_out: usize, cin_per_out: Option<usize>) -> Vec<f64> {
    let nd = g.kernel.len();
    let taps: usize = g.kernel.iter().product();
    let in_plane: usize = g.in_spatial.iter().product();
    let mut out = vec![0.0f64; c_out * g.n()];
    let (mut oi, mut ki) = (vec![0; nd], vec![0; nd]);
    for oc in 0..c_out {
        let chans: Vec<usize> = match cin_per_out {
            None => (0..g.channels).collect(),
            Some(mult) => vec![oc / mult],
        };
        for pos in 0..g.n() {
            super::pack::unravel(pos, &g.out_spatial, &mut oi);
            let mut s = 0.0f64;
            for (cw, &c) in chans.iter().enumerate() {
                for t in 0..taps {
                    super::pack::unravel(t, &g.kernel, &mut ki);
                    let mut off = 0usize;
                    let mut inside = true;
                    for d in 0..nd {
                        let p = (oi[d] * g.strides[d] + ki[d] * g.dilations[d]) as isize - g.pads_begin[d] as isize;
                        if p < 0 || p as usize >= g.in_spatial[d] {
                            inside = false;
                        }
                        off = off * g.in_spatial[d] + p.max(0) as usize;
                    }
                    if inside {
                        let wi = oc * chans.len() * taps + cw * taps + t;
                        s += w[wi] as f64 * x[c * in_plane + off] as f64;
                    }
                }
            }
            out[oc * g.n() + pos] = s;
        }
    }
    out
}

#[test]
fn im2col_conv_matches_direct_conv() {
    let mut scratch = Scratch::new();
    for isa in tiers() {
        let mut rng = Rng::new(21 + isa as u64);
        let ti = tile_info_for(isa);
        for case in 0..40 {
            let nd = [1, 2, 2, 3][case % 4];
            let c_in = rng.range(1, 5);
            let g = random_geometry(&mut rng, nd, c_in);
            let c_out = rng.range(1, 20);
            let x = rng.vec(g.in_size());
            let w = rng.vec(c_out * g.k());
            let want = naive_conv(&x, &w, &g, c_out, None);
            let packed = rng.range(0, 1) == 1;
            let pa = PackedA::pack_for(isa, MatRef::row_major(&w, c_out, g.k()));
            let a = if packed { AOperand::Packed(&pa) } else { AOperand::View(MatRef::row_major(&w, c_out, g.k())) };
            let mut c = vec![f32::NAN; c_out * g.n()];
            {
                let cm = MatMut::row_major(&mut c, c_out, g.n());
                let b = BOperand::Im2col(Im2col { input: &x, geometry: &g });
                for cols in random_split(&mut rng, g.n(), ti.nr) {
                    gemm_block_on(Some(isa), a, b, cm, g.k(), 0..c_out, cols, &[], &mut scratch);
                }
            }
            assert_close(&c, &want, &format!("{} conv {g:?} c_out {c_out}", isa.name()));
        }
    }
}

#[test]
fn im2col_crosses_kc() {
    // K = channels · taps larger than kc: packing restarts mid-channel.
    let isa = selected_isa();
    let ti = tile_info();
    let g = ConvGeometry {
        channels: ti.kc / 9 + 3,
        in_spatial: vec![6, 7],
        kernel: vec![3, 3],
        out_spatial: vec![6, 7],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads_begin: vec![1, 1],
    };
    let mut rng = Rng::new(4);
    let (x, w) = (rng.vec(g.in_size()), rng.vec(5 * g.k()));
    let want = naive_conv(&x, &w, &g, 5, None);
    let mut c = vec![f32::NAN; 5 * g.n()];
    gemm_block_on(
        Some(isa),
        AOperand::View(MatRef::row_major(&w, 5, g.k())),
        BOperand::Im2col(Im2col { input: &x, geometry: &g }),
        MatMut::row_major(&mut c, 5, g.n()),
        g.k(),
        0..5,
        0..g.n(),
        &[],
        &mut Scratch::new(),
    );
    assert_close(&c, &want, "im2col across kc");
}

/// The convolution window path (1-D / 2-D): larger planes than the im2col test (pitches ≥ 8, so rows are read in
/// place on tiers that can), K across kc passes, every tile row count, random column splits, random epilogues, C
/// with padded rows inside a NaN buffer; rows read in place and packed.
#[test]
fn window_conv_matches_direct_conv() {
    let mut scratch = Scratch::new();
    for isa in tiers() {
        let ti = tile_info_for(isa);
        let mut rng = Rng::new(0x3C0 + isa as u64);
        for case in 0..36 {
            let nd = if case % 5 == 0 { 1 } else { 2 };
            let mut g = random_geometry(&mut rng, nd, 1);
            for d in 0..nd {
                // Widen: inputs 6..40, kernels up to 7, pads up to 3.
                let (i, k) = (rng.range(6, if nd == 1 { 90 } else { 40 }), rng.pick(&[1, 1, 3, 3, 5, 7]));
                let (s, dl, pb, pe) = (rng.range(1, 3), rng.range(1, 2), rng.range(0, 3), rng.range(0, 3));
                // Every sixth case a pointwise convolution: the input itself is B (its end is not padded).
                let (k, s, pb, pe) = if case % 6 == 1 { (1, 1, 0, 0) } else { (k, s, pb, pe) };
                g.in_spatial[d] = i;
                g.kernel[d] = k;
                g.strides[d] = s;
                g.dilations[d] = dl;
                g.pads_begin[d] = pb;
                g.out_spatial[d] = conv_out(i, k, s, dl, pb, pe);
            }
            if g.n() == 0 {
                continue;
            }
            g.channels = if case % 4 == 0 {
                ti.kc / g.kernel.iter().product::<usize>() + rng.range(1, 9)
            } else {
                rng.range(1, 12)
            };
            let c_out = rng.range(1, 2 * ti.mr + 3);
            let (x, w) = (rng.vec(g.in_size()), rng.vec(c_out * g.k()));
            let n = g.n();
            let d = epi_data(&mut rng, c_out, n);
            let ops = random_ops(&mut rng, &d, c_out, n);
            let want: Vec<f64> = {
                let raw = naive_conv(&x, &w, &g, c_out, None);
                (0..c_out * n).map(|t| apply_epilogue(raw[t] as f32, t / n, t % n, &ops) as f64).collect()
            };
            let pa = PackedA::pack_for(isa, MatRef::row_major(&w, c_out, g.k()));
            for in_place in [true, false] {
                let rs = n + rng.range(0, 5);
                let mut buf = vec![f32::NAN; (c_out - 1) * rs + n + 7];
                {
                    let cm = MatMut::new(&mut buf, c_out, n, rs as isize, 1);
                    let b = BOperand::Im2col(Im2col { input: &x, geometry: &g });
                    let a = if case % 3 == 0 {
                        AOperand::View(MatRef::row_major(&w, c_out, g.k()))
                    } else {
                        AOperand::Packed(&pa)
                    };
                    for r in random_split(&mut rng, c_out, ti.mr) {
                        for cols in random_split(&mut rng, n, ti.nr) {
                            gemm_block_cfg(Some(isa), in_place, a, b, cm, g.k(), r.clone(), cols, &ops, &mut scratch);
                        }
                    }
                }
                let mut got = vec![0.0; c_out * n];
                for i in 0..c_out {
                    for j in 0..n {
                        got[i * n + j] = buf[i * rs + j];
                        buf[i * rs + j] = f32::NAN;
                    }
                }
                let what = format!("{} window conv {g:?} c_out {c_out} in_place {in_place} ops {ops:?}", isa.name());
                assert!(buf.iter().all(|v| v.is_nan()), "{what}: wrote outside C");
                assert_close(&got, &want, &what);
            }
        }
    }
}

/// The channel-vectorized lowering (`AOperand::PackedT`, `conv_t.rs`): small maps (rows of 1 … 30 pixels, so
/// panels of every row count), C_out on and off the lane grid, strides, dilations, pads, pointwise inputs read
/// directly, K across kc passes, random row (channel) and column (pixel) splits, random epilogues, C with padded rows
/// inside a NaN buffer; every tier (those without a masked-store kernel take the temp-tile path).
#[test]
fn conv_t_matches_direct_conv() {
    let mut scratch = Scratch::new();
    for isa in tiers() {
        let ti = tile_info_for(isa);
        let mut rng = Rng::new(0xC07 + isa as u64);
        for case in 0..40 {
            let nd = if case % 7 == 3 { 1 } else { 2 };
            let mut g = random_geometry(&mut rng, nd, 1);
            for d in 0..nd {
                let (i, k) = (rng.range(1, if nd == 1 { 60 } else { 30 }), rng.pick(&[1, 1, 2, 3, 3, 5]));
                let (s, dl, pb, pe) = (rng.range(1, 3), rng.range(1, 2), rng.range(0, 2), rng.range(0, 2));
                let (k, s, pb, pe) = if case % 5 == 1 { (1, 1, 0, 0) } else { (k, s, pb, pe) };
                g.in_spatial[d] = i;
                g.kernel[d] = k;
                g.strides[d] = s;
                g.dilations[d] = dl;
                g.pads_begin[d] = pb;
                g.out_spatial[d] = conv_out(i, k, s, dl, pb, pe);
            }
            // The ResNet shapes: 3×3 pad 1 at 7×7 and 14×14, stride 2 into them.
            if case % 8 == 0 {
                let (i, s) = rng.pick(&[(7, 1), (14, 1), (14, 2), (28, 2)]);
                g = ConvGeometry {
                    channels: 1,
                    in_spatial: vec![i, i],
                    kernel: vec![3, 3],
                    out_spatial: vec![i / s, i / s],
                    strides: vec![s, s],
                    dilations: vec![1, 1],
                    pads_begin: vec![1, 1],
                };
            }
            if g.n() == 0 {
                continue;
            }
            g.channels = if case % 4 == 0 {
                ti.kc / g.kernel.iter().product::<usize>() + rng.range(1, 9)
            } else {
                rng.range(1, 12)
            };
            let c_out = if case % 3 == 0 { ti.nr * rng.range(1, 3) } else { rng.range(1, 2 * ti.nr + 5) };
            let (x, w) = (rng.vec(g.in_size()), rng.vec(c_out * g.k()));
            let n = g.n();
            let d = epi_data(&mut rng, c_out, n);
            let ops = random_ops(&mut rng, &d, c_out, n);
            let want: Vec<f64> = {
                let raw = naive_conv(&x, &w, &g, c_out, None);
                (0..c_out * n).map(|t| apply_epilogue(raw[t] as f32, t / n, t % n, &ops) as f64).collect()
            };
            let pt = PackedB::pack_for(isa, MatRef::row_major(&w, c_out, g.k()).t());
            let rs = n + rng.range(0, 5);
            let mut buf = vec![f32::NAN; (c_out - 1) * rs + n + 7];
            {
                let cm = MatMut::new(&mut buf, c_out, n, rs as isize, 1);
                let b = BOperand::Im2col(Im2col { input: &x, geometry: &g });
                let whole = case % 2 == 0;
                let rsplit: Vec<Range<usize>> =
                    if whole { std::iter::once(0..c_out).collect() } else { random_split(&mut rng, c_out, ti.nr) };
                for r in rsplit {
                    let csplit: Vec<Range<usize>> =
                        if whole { std::iter::once(0..n).collect() } else { random_split(&mut rng, n, 7) };
                    for cols in csplit {
                        gemm_block_on(
                            Some(isa),
                            AOperand::PackedT(&pt),
                            b,
                            cm,
                            g.k(),
                            r.clone(),
                            cols,
                            &ops,
                            &mut scratch,
                        );
                    }
                }
            }
            let mut got = vec![0.0; c_out * n];
            for i in 0..c_out {
                for j in 0..n {
                    got[i * n + j] = buf[i * rs + j];
                    buf[i * rs + j] = f32::NAN;
                }
            }
            let what = format!("{} conv_t {g:?} c_out {c_out} ops {ops:?}", isa.name());
            assert!(buf.iter().all(|v| v.is_nan()), "{what}: wrote outside C");
            assert_close(&got, &want, &what);
        }
    }
    // Rank 3 (no window): the fallback, one GEMV per column.
    let mut rng = Rng::new(0xC08);
    let g = random_geometry(&mut rng, 3, 3);
    let c_out = 37;
    let (x, w) = (rng.vec(g.in_size()), rng.vec(c_out * g.k()));
    let want = naive_conv(&x, &w, &g, c_out, None);
    let pt = PackedB::pack(MatRef::row_major(&w, c_out, g.k()).t());
    let mut c = vec![f32::NAN; c_out * g.n()];
    let b = BOperand::Im2col(Im2col { input: &x, geometry: &g });
    gemm_block(
        AOperand::PackedT(&pt),
        b,
        MatMut::row_major(&mut c, c_out, g.n()),
        g.k(),
        0..c_out,
        0..g.n(),
        &[],
        &mut scratch,
    );
    assert_close(&c, &want, "conv_t rank-3 fallback");
}

// ---- GEMV ----

#[test]
fn gemv_row_and_col_all_operand_kinds() {
    let mut scratch = Scratch::new();
    for isa in tiers() {
        let ks = isa.kernels();
        let mut rng = Rng::new(31 + isa as u64);
        for _ in 0..40 {
            let (n, k) = (rng.range(1, 300), rng.range(1, 130));
            let (xv, wv) = (rng.vec(k), rng.vec(k * n));
            // Row: y (1×n) = x (1×k) · W (k×n).
            let want = naive_gemm(&xv, &wv, 1, n, k, &[]);
            let layout = rng.range(0, 4);
            let sw = Stored::new(&wv, k, n, layout.min(3));
            let pw = PackedB::pack_for(isa, MatRef::row_major(&wv, k, n));
            let b = if layout == 4 { BOperand::Packed(&pw) } else { BOperand::View(sw.view()) };
            let cols = rng.range(0, n - 1)..n;
            let mut y = vec![f32::NAN; cols.len()];
            row_partial(
                ks,
                AOperand::View(MatRef::row_major(&xv, 1, k)),
                0,
                b,
                0..k,
                cols.clone(),
                &mut y,
                &mut scratch,
            );
            let w2: Vec<f64> = want[cols.clone()].to_vec();
            assert_close(&y, &w2, &format!("{} row gemv n {n} k {k} layout {layout}", isa.name()));
            // Col: y (n×1) = W^T (n×k) · x (k×1), with W^T in various layouts.
            let wt: Vec<f32> = (0..n * k).map(|t| wv[(t % k) * n + t / k]).collect();
            let want = naive_gemm(&wt, &xv, n, 1, k, &[]);
            let st = Stored::new(&wt, n, k, layout.min(3));
            let pt = PackedA::pack_for(isa, MatRef::row_major(&wt, n, k));
            let a = if layout == 4 { AOperand::Packed(&pt) } else { AOperand::View(st.view()) };
            let rows = rng.range(0, n - 1)..n;
            let mut y = vec![f32::NAN; rows.len()];
            col_partial(
                ks,
                a,
                rows.clone(),
                BOperand::View(MatRef::row_major(&xv, k, 1)),
                0,
                0..k,
                &mut y,
                &mut scratch,
            );
            let w2: Vec<f64> = want[rows].to_vec();
            assert_close(&y, &w2, &format!("{} col gemv n {n} k {k} layout {layout}", isa.name()));
        }
    }
}

/// A GEMV column's value must not depend on which other panels share its loop (the task's column range decides
/// that, and the scheduler may move it between runs): every start column gives bitwise the same outputs.
#[test]
fn gemv_packed_columns_independent_of_range() {
    let mut scratch = Scratch::new();
    for isa in tiers() {
        let ks = isa.kernels();
        let mut rng = Rng::new(77 + isa as u64);
        let (n, k) = (9 * ks.nr + 5, 97);
        let (xv, wv) = (rng.vec(k), rng.vec(k * n));
        let pw = PackedB::pack_for(isa, MatRef::row_major(&wv, k, n));
        let x = AOperand::View(MatRef::row_major(&xv, 1, k));
        let mut whole = vec![f32::NAN; n];
        row_partial(ks, x, 0, BOperand::Packed(&pw), 0..k, 0..n, &mut whole, &mut scratch);
        for start in [1, ks.nr, 2 * ks.nr + 3, 5 * ks.nr, n - 1] {
            let mut part = vec![f32::NAN; n - start];
            row_partial(ks, x, 0, BOperand::Packed(&pw), 0..k, start..n, &mut part, &mut scratch);
            assert_eq!(part, whole[start..], "{} columns {start}..{n}", isa.name());
        }
    }
}

#[test]
fn gemv_k_split_is_deterministic_and_close() {
    let (n, k) = (300, 1000);
    let mut rng = Rng::new(8);
    let (xv, wv) = (rng.vec(k), rng.vec(k * n));
    let bias = rng.vec(n);
    let ops = [FusedOp::ColBias(&bias), FusedOp::Relu];
    let want = naive_gemm(&xv, &wv, 1, n, k, &ops);
    let pw = PackedB::pack(MatRef::row_major(&wv, k, n));
    let (a, b) = (AOperand::View(MatRef::row_major(&xv, 1, k)), BOperand::Packed(&pw));
    assert_eq!(gemv_shape(1, n), Some(GemvShape::Row));
    let mut s = Scratch::new();
    let run = |s: &mut Scratch| {
        let splits = [0..333, 333..700, 700..1000];
        let mut parts = vec![vec![0.0; 200]; 3];
        for (p, kr) in parts.iter_mut().zip(splits) {
            gemv_partial(a, b, k, 100..300, kr, p, s);
        }
        let mut y = vec![f32::NAN; n];
        let refs: Vec<&[f32]> = parts.iter().map(|p| p.as_slice()).collect();
        gemv_reduce(&refs, MatMut::row_major(&mut y, 1, n), 100..300, &ops);
        y
    };
    let (y1, y2) = (run(&mut s), run(&mut s));
    assert_eq!(
        y1[100..].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        y2[100..].iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert!(y1[..100].iter().all(|v| v.is_nan()));
    assert_close(&y1[100..], &want[100..], "k-split gemv");
    // N = 1 through gemm_block and through the split API.
    let want = naive_gemm(&wv[..n * 7], &xv[..7], n, 1, 7, &[]);
    let pa = PackedA::pack(MatRef::row_major(&wv[..n * 7], n, 7));
    let mut y = vec![f32::NAN; n];
    let xb = BOperand::View(MatRef::row_major(&xv[..7], 7, 1));
    gemm_block(AOperand::Packed(&pa), xb, MatMut::row_major(&mut y, n, 1), 7, 0..n, 0..1, &[], &mut s);
    assert_close(&y, &want, "col gemv via gemm_block");
    let mut p0 = vec![0.0; n];
    let mut p1 = vec![0.0; n];
    gemv_partial(AOperand::Packed(&pa), xb, 7, 0..n, 0..3, &mut p0, &mut s);
    gemv_partial(AOperand::Packed(&pa), xb, 7, 0..n, 3..7, &mut p1, &mut s);
    let mut y = vec![f32::NAN; n];
    gemv_reduce(&[&p0, &p1], MatMut::row_major(&mut y, n, 1), 0..n, &[]);
    assert_close(&y, &want, "col gemv split");
}

// ---- depthwise ----

#[test]
fn depthwise_matches_direct_conv() {
    let mut scratch = Scratch::new();
    for isa in tiers() {
        let mut rng = Rng::new(41 + isa as u64);
        let mut cases: Vec<(ConvGeometry, usize)> = vec![];
        // The fast-path shapes: 3×3, stride 1 and 2, rows wide enough for full 64-wide chunks and several 16-float
        // masked moves, and MobileNet's small planes (7, 14, 28; the row-phase split and masked tails).
        // Also every row width around the direct kernel's 16-lane steps and masks, and trailing pads unlike the
        // leading ones (TF-style SAME: 0 before, 1 after); planes of 2 … 4 steps with several four-row blocks.
        for (h, w) in [
            (9, 70),
            (7, 7),
            (14, 14),
            (28, 28),
            (6, 37),
            (1, 1),
            (2, 15),
            (3, 16),
            (5, 17),
            (4, 33),
            (12, 64),
            (11, 49),
        ] {
            for s in [1, 2] {
                for (pb, pe) in [(0, 0), (1, 1), (2, 2), (0, 1), (1, 0), (2, 1)] {
                    let (oh, ow) = (conv_out(h, 3, s, 1, pb, pe), conv_out(w, 3, s, 1, pb, pe));
                    if oh == 0 || ow == 0 {
                        continue;
                    }
                    let g = ConvGeometry {
                        channels: 3,
                        in_spatial: vec![h, w],
                        kernel: vec![3, 3],
                        out_spatial: vec![oh, ow],
                        strides: vec![s, s],
                        dilations: vec![1, 1],
                        pads_begin: vec![pb, pb],
                    };
                    cases.push((g, rng.range(1, 2)));
                }
            }
        }
        let fixed = cases.len();
        for t in 0..60 {
            let nd = [1, 2, 2, 3][t % 4];
            let c = rng.range(1, 4);
            cases.push((random_geometry(&mut rng, nd, c), rng.range(1, 3)));
        }
        for (case, (g, mult)) in cases.into_iter().enumerate() {
            let c_out = g.channels * mult;
            let taps: usize = g.kernel.iter().product();
            let (x, w, bias) = (rng.vec(g.in_size()), rng.vec(c_out * taps), rng.vec(c_out));
            let d = epi_data(&mut rng, c_out, g.n());
            let ops = random_ops(&mut rng, &d, c_out, g.n());
            let conv = naive_conv(&x, &w, &g, c_out, Some(mult));
            let want: Vec<f64> = conv
                .iter()
                .enumerate()
                .map(|(t, &v)| {
                    let (i, j) = (t / g.n(), t % g.n());
                    apply_epilogue((v + bias[i] as f64) as f32, i, j, &ops) as f64
                })
                .collect();
            // Output with a padded row stride, or column stride 2 (which the direct kernel leaves to the plane
            // path), inside NaN. Every path and both column strides on the fixed 3×3 cases, one draw of each on
            // the random ones.
            let runs: Vec<(DwPath, usize)> = if case < fixed {
                [DwPath::Auto, DwPath::Plane, DwPath::General].into_iter().flat_map(|p| [(p, 1), (p, 2)]).collect()
            } else {
                vec![([DwPath::Auto, DwPath::General][case % 2], rng.range(1, 2))]
            };
            for (path, cs) in runs {
                let rs = g.n() * cs + 3;
                let mut buf = vec![f32::NAN; c_out * rs];
                {
                    let out = MatMut::new(&mut buf, c_out, g.n(), rs as isize, cs as isize);
                    for r in random_split(&mut rng, c_out, 1) {
                        depthwise_on(isa, path, &x, &w, Some(&bias), &g, mult, out, r, &ops, &mut scratch);
                    }
                }
                let mut got = vec![0.0; c_out * g.n()];
                for i in 0..c_out {
                    for j in 0..g.n() {
                        got[i * g.n() + j] = std::mem::replace(&mut buf[i * rs + j * cs], f32::NAN);
                    }
                }
                let what = format!("{} depthwise {path:?} {g:?} mult {mult} ops {ops:?}", isa.name());
                assert!(buf.iter().all(|v| v.is_nan()), "{what}: wrote outside the output");
                assert_close(&got, &want, &what);
            }
        }
    }
}

#[test]
fn pool_rows_match_reference_on_every_tier() {
    // 1-D channels-first pools (one row per channel): every line length, window, stride and dilation the row
    // kernels specialize on and others, with NaNs, against a naive fold.
    use super::pool::{PoolGeometry, PoolKind, PoolPlan};
    let mut rng = Rng::new(41);
    for isa in tiers() {
        let ks = isa.kernels();
        for case in 0..300 {
            let (n, k) = (rng.range(1, 70), rng.range(1, 5));
            let (stride, dil) = (rng.pick(&[1, 1, 2, 2, 3]), rng.pick(&[1, 1, 2]));
            let len = (n - 1) * stride + (k - 1) * dil + 1 + rng.range(0, stride - 1);
            let c = rng.range(1, 3);
            let mut src = rng.vec(len * c);
            if case % 7 == 0 {
                src[rng.range(0, len * c - 1)] = f32::NAN;
            }
            let g = PoolGeometry {
                channels: c,
                in_spatial: vec![len],
                out_spatial: vec![n],
                kernel: vec![k],
                strides: vec![stride],
                dilations: vec![dil],
                pads_begin: vec![0],
                pads_end: vec![0],
            };
            for kind in [PoolKind::Max, PoolKind::AvgExcludePad] {
                let max = kind == PoolKind::Max;
                // Sentinels past the end catch stray writes.
                let mut out = vec![1234.5; n * c + 9];
                let plan = PoolPlan::new(kind, &g);
                let mut h = Default::default();
                plan.run_nchw(ks, &src, 0..c, &mut out[..n * c], &mut h);
                for (i, &got) in out[..n * c].iter().enumerate() {
                    let (ch, j) = (i / n, i % n);
                    let taps = (0..k).map(|e| src[ch * len + j * stride + e * dil]);
                    let want =
                        if max { taps.clone().fold(f32::MIN, f32::max) } else { taps.clone().sum::<f32>() / k as f32 };
                    let nan = taps.clone().any(f32::is_nan);
                    let ok = if nan { got.is_nan() } else { (got - want).abs() <= 1e-5 * want.abs().max(1.0) };
                    assert!(
                        ok,
                        "{} n {n} k {k} s {stride} d {dil} {kind:?}: out {i} got {got} want {want}",
                        isa.name()
                    );
                }
                assert!(out[n * c..].iter().all(|&v| v == 1234.5), "{}: write past the output", isa.name());
            }
        }
    }
}

#[test]
fn force_isa_rejects_unsupported_tiers() {
    for i in Isa::ALL.into_iter().filter(|i| !i.is_supported()) {
        assert!(force_isa(Some(i)).is_err());
    }
}

#[test]
fn shared_types_are_thread_safe() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<Scratch>();
    send::<PackedA>();
    sync::<PackedA>();
    send::<PackedB>();
    sync::<PackedB>();
    send::<MatMut<'static>>();
    sync::<MatRef<'static>>();
}

#[test]
fn concurrent_workers_write_disjoint_blocks() {
    let (m, n, k) = (50, 70, 40);
    let mut rng = Rng::new(12);
    let (av, bv, bias) = (rng.vec(m * k), rng.vec(k * n), rng.vec(m));
    let ops = [FusedOp::RowBias(&bias), FusedOp::Relu];
    let want = naive_gemm(&av, &bv, m, n, k, &ops);
    let pb = PackedB::pack(MatRef::row_major(&bv, k, n));
    let ti = tile_info();
    let mut c = vec![f32::NAN; m * n];
    let cm = MatMut::row_major(&mut c, m, n);
    let blocks: Vec<(Range<usize>, Range<usize>)> = (0..m)
        .step_by(ti.mr * 2)
        .flat_map(|r| (0..n).step_by(ti.nr).map(move |j| (r..(r + ti.mr * 2).min(m), j..(j + ti.nr).min(n))))
        .collect();
    std::thread::scope(|s| {
        for w in 0..3 {
            let (blocks, av, pb, ops) = (&blocks, &av, &pb, &ops);
            s.spawn(move || {
                let mut scratch = Scratch::new();
                for (r, cc) in blocks.iter().skip(w).step_by(3) {
                    let a = AOperand::View(MatRef::row_major(av, m, k));
                    gemm_block(a, BOperand::Packed(pb), cm, k, r.clone(), cc.clone(), ops, &mut scratch);
                }
            });
        }
    });
    assert_close(&c, &want, "concurrent blocks");
}

#[test]
fn alpha_beta_variants_through_the_epilogue() {
    // Gemm: Y = alpha·A·B + beta·C, with alpha and beta of 0, −0, 1 and others; C broadcast as a row.
    let (m, n, k) = (7, 19, 9);
    let mut rng = Rng::new(13);
    let (av, bv, cv) = (rng.vec(m * k), rng.vec(k * n), rng.vec(n));
    for alpha in [0.0, -0.0, 1.0, -2.5] {
        for beta in [0.0, -0.0, 1.0, 0.5] {
            let ops = [FusedOp::Scale(alpha), FusedOp::AddScaled { src: MatRef::new(&cv, m, n, 0, 1), beta }];
            let want = naive_gemm(&av, &bv, m, n, k, &ops);
            for isa in tiers() {
                let mut c = vec![f32::NAN; m * n];
                gemm_block_on(
                    Some(isa),
                    AOperand::View(MatRef::row_major(&av, m, k)),
                    BOperand::View(MatRef::row_major(&bv, k, n)),
                    MatMut::row_major(&mut c, m, n),
                    k,
                    0..m,
                    0..n,
                    &ops,
                    &mut Scratch::new(),
                );
                assert_close(&c, &want, &format!("{} alpha {alpha} beta {beta}", isa.name()));
            }
        }
    }
}

/// A longer sweep (`cargo test --release --lib kernels -- --ignored`): larger shapes, K across several kc passes,
/// blocks larger than mc / nc.
#[test]
#[ignore]
fn stress_large_random_shapes() {
    let mut scratch = Scratch::new();
    for isa in tiers() {
        let mut rng = Rng::new(0xB16 ^ isa as u64);
        for _ in 0..150 {
            let (m, n, k) = (rng.range(1, 300), rng.range(1, 1500), rng.range(1, 1300));
            gemm_case(&mut rng, isa, m, n, k, true, &mut scratch);
        }
        for case in 0..60 {
            let nd = [1, 2, 2, 3][case % 4];
            let c_in = rng.range(1, 40);
            let g = random_geometry(&mut rng, nd, c_in);
            let c_out = rng.range(1, 70);
            let (x, w) = (rng.vec(g.in_size()), rng.vec(c_out * g.k()));
            let want = naive_conv(&x, &w, &g, c_out, None);
            let pa = PackedA::pack_for(isa, MatRef::row_major(&w, c_out, g.k()));
            let mut c = vec![f32::NAN; c_out * g.n()];
            gemm_block_on(
                Some(isa),
                AOperand::Packed(&pa),
                BOperand::Im2col(Im2col { input: &x, geometry: &g }),
                MatMut::row_major(&mut c, c_out, g.n()),
                g.k(),
                0..c_out,
                0..g.n(),
                &[],
                &mut scratch,
            );
            assert_close(&c, &want, &format!("{} stress conv {g:?}", isa.name()));
        }
    }
}

#[test]
fn nan_propagates_through_relu_clip_hardsigmoid_on_every_tier() {
    // ORT's CPU EP keeps NaN through Relu, Clip, HardSigmoid and HardSwish; a fused epilogue must too, both in the
    // micro-kernel's register prefix (bias + Relu/Clip) and in the tile pass.
    let (m, n, k) = (13, 40, 7);
    let mut av = vec![0.5f32; m * k];
    av[3 * k] = f32::NAN; // row 3 of C is all NaN
    let bv = vec![0.25f32; k * n];
    let bias = vec![0.1f32; m];
    let chains: Vec<Vec<FusedOp<'_>>> = vec![
        vec![FusedOp::Relu],
        vec![FusedOp::RowBias(&bias), FusedOp::Relu],
        vec![FusedOp::RowBias(&bias), FusedOp::Clip { lo: 0.0, hi: 6.0 }],
        vec![FusedOp::Scale(2.0), FusedOp::Clip { lo: -1.0, hi: 1.0 }],
        vec![FusedOp::HardSigmoid { alpha: 0.2, beta: 0.5 }],
        vec![FusedOp::HardSwish],
    ];
    let mut scratch = Scratch::new();
    for isa in tiers() {
        let pb = PackedB::pack_for(isa, MatRef::row_major(&bv, k, n));
        for ops in &chains {
            let mut c = vec![0.0f32; m * n];
            gemm_block(
                AOperand::View(MatRef::row_major(&av, m, k)),
                BOperand::Packed(&pb),
                MatMut::row_major(&mut c, m, n),
                k,
                0..m,
                0..n,
                ops,
                &mut scratch,
            );
            for i in 0..m {
                for j in 0..n {
                    assert_eq!(c[i * n + j].is_nan(), i == 3, "{isa:?} {ops:?} at ({i}, {j}): {}", c[i * n + j]);
                }
            }
        }
    }
}

/// The tiers' block transpose (the channel-vectorized convolution's buffer into C): every shape around the 8 × 8
/// register blocks, padded source and destination rows, nothing written outside the block.
#[test]
fn transpose_every_tier() {
    let mut rng = Rng::new(0x7A);
    for isa in tiers() {
        let ks = isa.kernels();
        for &rows in &[1, 2, 4, 7, 8, 9, 12, 15, 16, 17, 20, 49, 196] {
            for &cols in &[1, 3, 8, 9, 16, 23, 32] {
                let (lds, ldd) = (cols + rng.range(0, 5), rows + rng.range(0, 5));
                let src = rng.vec(rows * lds);
                let mut dst = vec![f32::NAN; cols * ldd];
                // SAFETY: src holds rows rows of lds ≥ cols floats, dst cols rows of ldd ≥ rows floats.
                unsafe { (ks.transpose)(rows, cols, src.as_ptr(), lds, dst.as_mut_ptr(), ldd) };
                for j in 0..cols {
                    for i in 0..ldd {
                        let got = dst[j * ldd + i];
                        if i < rows {
                            assert_eq!(got, src[i * lds + j], "{} {rows}x{cols} at ({i}, {j})", isa.name());
                        } else {
                            assert!(got.is_nan(), "{} {rows}x{cols}: wrote padding ({i}, {j})", isa.name());
                        }
                    }
                }
            }
        }
    }
}

/// Blocks of one job on one scratch share the convolution window (`Scratch::set_job`): row blocks of both
/// lowerings with one token give the convolution; a new token after the input changed sees the new input; another
/// column range or geometry under the same token prepares its own window.
#[test]
fn window_is_reused_only_within_a_job() {
    let mut rng = Rng::new(0x51);
    for isa in tiers() {
        let g = ConvGeometry {
            channels: 5,
            in_spatial: vec![9, 11],
            kernel: vec![3, 3],
            out_spatial: vec![conv_out(9, 3, 2, 1, 1, 1), conv_out(11, 3, 2, 1, 1, 1)],
            strides: vec![2, 2],
            dilations: vec![1, 1],
            pads_begin: vec![1, 1],
        };
        let c_out = 64;
        let n = g.n();
        let w = rng.vec(c_out * g.k());
        let pa = PackedA::pack_for(isa, MatRef::row_major(&w, c_out, g.k()));
        let pt = PackedB::pack_for(isa, MatRef::row_major(&w, c_out, g.k()).t());
        let mut x = rng.vec(g.in_size());
        let mut scratch = Scratch::new();
        for (token, transposed) in [(11, false), (12, true), (13, false), (14, true)] {
            if token >= 13 {
                // New data at the same address; the last window of the previous job is still held, and only the
                // token tells it apart.
                x.iter_mut().for_each(|v| *v = -*v + 0.25);
                scratch.set_job(token);
            }
            let want = naive_conv(&x, &w, &g, c_out, None);
            let mut c = vec![f32::NAN; c_out * n];
            {
                let cm = MatMut::row_major(&mut c, c_out, n);
                let b = BOperand::Im2col(Im2col { input: &x, geometry: &g });
                let a = if transposed { AOperand::PackedT(&pt) } else { AOperand::Packed(&pa) };
                scratch.set_job(token);
                // Row blocks over all columns, other columns of the same job in between (their own window); the
                // job starts and ends on the same window.
                for (r, cols) in [(0..16, 0..n), (16..32, 0..n), (0..c_out, 3..n), (32..48, 0..n), (48..64, 0..n)] {
                    gemm_block_on(Some(isa), a, b, cm, g.k(), r, cols, &[], &mut scratch);
                }
                scratch.set_job(0);
            }
            assert_close(&c, &want, &format!("{} token {token} transposed {transposed}", isa.name()));
        }
    }
}
