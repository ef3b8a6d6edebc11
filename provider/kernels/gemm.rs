//! The blocked GEMM driver (BLIS loop order), ISA-agnostic: the tier's micro-kernel and epilogue come from its
//! [`KernelSet`].
//!
//! ```text
//! loop 5  jc over the block's columns, step nc
//!  loop 4  pc over K, step kc            B[pc.., jc..] packed into scratch (unless PackedB)
//!   loop 3  ic over the block's rows, step mc      A[ic.., pc..] packed into scratch (unless PackedA)
//!    loop 2  jr over NR column panels               (B micro-panel kc×NR stays in L1)
//!     loop 1  ir over MR row panels                 micro-kernel; on the last pc: the epilogue on the tile
//! ```
//! Pre-packed operands keep their own panel grid (origin at row / column 0), so blocks that do not start on an
//! MR / NR multiple still work: the partial tile at the edge is computed whole into a small temp tile and only the
//! owned part is stored.

use super::arch::{KernelSet, TileEpi};
use super::isa::{selected_isa, tile_info_for, Isa};
use super::pack::{pack_a, pack_a_from, pack_b, pack_b_from, pack_b_im2col};
use super::{gemv, AOperand, BOperand, FusedOp, MatMut, PackedA, PackedB, Scratch};
use std::ops::Range;

/// Compute `C[rows, cols] = epilogue(A[rows, :] · B[:, cols])` over the full `k`.
///
/// Every element of the block is written exactly once with its final value (when K spans several `kc` passes, the
/// partial sums in between live in the block); nothing outside it is touched, so several workers may call this
/// concurrently on disjoint blocks of the same `c`. Blocks with one row or one column take the GEMV path.
///
/// Panics if the operand shapes disagree with `c`, `k` or the ranges, or if an epilogue operand does not cover C.
#[allow(clippy::too_many_arguments)]
pub fn gemm_block(
    a: AOperand<'_>,
    b: BOperand<'_>,
    c: MatMut<'_>,
    k: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    epilogue: &[FusedOp<'_>],
    scratch: &mut Scratch,
) {
    gemm_block_on(None, a, b, c, k, rows, cols, epilogue, scratch)
}

/// [`gemm_block`] on a given tier for non-packed operands (`None`: the selected one). Packed operands always run
/// on the tier they were packed for.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_block_on(
    isa: Option<Isa>,
    a: AOperand<'_>,
    b: BOperand<'_>,
    c: MatMut<'_>,
    k: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    epilogue: &[FusedOp<'_>],
    scratch: &mut Scratch,
) {
    let isa = isa.unwrap_or_else(selected_isa);
    assert!(rows.start <= rows.end && cols.start <= cols.end, "empty-or-forward ranges");
    assert!(rows.end <= c.rows && cols.end <= c.cols, "block outside C");
    check_operands(&a, &b, c.rows, c.cols, k);
    check_epilogue(epilogue, c.rows, c.cols);
    if rows.is_empty() || cols.is_empty() {
        return;
    }
    if k == 0 {
        for i in rows {
            for j in cols.clone() {
                // SAFETY: (i, j) is in C and in the block this call owns.
                unsafe { *c.ptr_at(i, j) = super::apply_epilogue(0.0, i, j, epilogue) };
            }
        }
        return;
    }
    if rows.len() == 1 || cols.len() == 1 {
        gemv::gemv_block(isa.kernels(), a, b, c, k, rows, cols, epilogue, scratch);
        return;
    }
    let ks = match (&a, &b) {
        (AOperand::Packed(pa), _) => pa.isa().kernels(),
        (_, BOperand::Packed(pb)) => pb.isa().kernels(),
        _ => isa.kernels(),
    };
    driver(ks, a, b, c, k, rows, cols, epilogue, scratch);
}

pub(crate) fn check_operands(a: &AOperand<'_>, b: &BOperand<'_>, m: usize, n: usize, k: usize) {
    match a {
        AOperand::View(v) => assert!(v.rows == m && v.cols == k, "A shape"),
        AOperand::Packed(p) => assert!(p.rows() == m && p.k() == k, "packed A shape"),
    }
    match b {
        BOperand::View(v) => assert!(v.rows == k && v.cols == n, "B shape"),
        BOperand::Packed(p) => assert!(p.k() == k && p.cols() == n, "packed B shape"),
        BOperand::Im2col(im) => {
            let g = im.geometry;
            let nd = g.kernel.len();
            assert!(
                nd >= 1
                    && g.in_spatial.len() == nd
                    && g.out_spatial.len() == nd
                    && g.strides.len() == nd
                    && g.dilations.len() == nd
                    && g.pads_begin.len() == nd,
                "im2col geometry ranks"
            );
            assert!(g.k() == k && g.n() == n, "im2col shape");
            assert!(im.input.len() >= g.in_size(), "im2col input too short");
        }
    }
}

/// The epilogue's operands must cover C (the fast paths read them without per-element checks).
pub(crate) fn check_epilogue(ops: &[FusedOp<'_>], m: usize, n: usize) {
    for op in ops {
        match *op {
            FusedOp::AddScaled { src, .. } | FusedOp::Add(src) => {
                assert!(src.rows == m && src.cols == n, "epilogue operand shape {}x{} vs C {m}x{n}", src.rows, src.cols)
            }
            FusedOp::RowBias(b) => assert!(b.len() >= m, "row bias too short"),
            FusedOp::ColBias(b) => assert!(b.len() >= n, "column bias too short"),
            _ => {}
        }
    }
}

/// Where the A (or B) panels of one pass come from.
struct Panels {
    base: *const f32,
    /// Row (column) of C where panel 0 starts.
    origin: usize,
    /// Floats from one panel to the next.
    stride: usize,
    /// Offset of the current `pc` slice inside a panel.
    k_off: usize,
}

#[allow(clippy::too_many_arguments)]
fn driver(
    ks: &KernelSet,
    a: AOperand<'_>,
    b: BOperand<'_>,
    c: MatMut<'_>,
    k: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    ops: &[FusedOp<'_>],
    scratch: &mut Scratch,
) {
    let (mr, nr) = (ks.mr, ks.nr);
    let ti = tile_info_for(ks.isa);
    // A pre-packed B needs no column passes (and each pass would re-pack A); a B packed here is cut into nc passes.
    let mc = ti.mc;
    let nc = if matches!(b, BOperand::Packed(pb) if pb.nr() == nr) { cols.len() } else { ti.nc };
    // Split K into equal passes (K = 512 with kc = 384 runs 2 × 256, not 384 + 128).
    let kc = k.div_ceil(k.div_ceil(ti.kc)).next_multiple_of(8).min(ti.kc.max(8));
    let own_a: Option<&PackedA> = match a {
        AOperand::Packed(pa) if pa.mr() == mr => Some(pa),
        _ => None,
    };
    let own_b: Option<&PackedB> = match b {
        BOperand::Packed(pb) if pb.nr() == nr => Some(pb),
        _ => None,
    };
    let fused = FusedPrefix::of(ops);
    let Scratch { a: abuf, b: bbuf, tile, im2col, .. } = scratch;
    let tile = tile.get(mr * nr).as_mut_ptr();
    let mut jc = cols.start;
    while jc < cols.end {
        let jn = nc.min(cols.end - jc);
        let mut pc = 0;
        while pc < k {
            let kb = kc.min(k - pc);
            let (first, last) = (pc == 0, pc + kb == k);
            // Loop 4 body: the B block of this pass.
            let bp = match own_b {
                Some(pb) => Panels { base: pb.data().as_ptr(), origin: 0, stride: pb.k() * nr, k_off: pc * nr },
                None => {
                    let dst = bbuf.get(jn.div_ceil(nr) * nr * kb);
                    match b {
                        BOperand::View(v) => pack_b(v, pc, kb, jc, jn, nr, dst),
                        BOperand::Im2col(im) => pack_b_im2col(im, pc, kb, jc, jn, nr, dst, im2col),
                        BOperand::Packed(pb) => pack_b_from(pb, pc, kb, jc, jn, nr, dst),
                    }
                    Panels { base: dst.as_ptr(), origin: jc, stride: kb * nr, k_off: 0 }
                }
            };
            let mut ic = rows.start;
            while ic < rows.end {
                let im = mc.min(rows.end - ic);
                // Loop 3 body: the A block of this pass.
                let ap = match own_a {
                    Some(pa) => Panels { base: pa.data().as_ptr(), origin: 0, stride: pa.k() * mr, k_off: pc * mr },
                    None => {
                        let dst = abuf.get(im.div_ceil(mr) * mr * kb);
                        match a {
                            AOperand::View(v) => pack_a(v, ic, im, pc, kb, mr, dst),
                            AOperand::Packed(pa) => pack_a_from(pa, ic, im, pc, kb, mr, dst),
                        }
                        Panels { base: dst.as_ptr(), origin: ic, stride: kb * mr, k_off: 0 }
                    }
                };
                let pass = Pass { ks, kb, first, last, c, ops, fused, tile };
                // Loops 2 and 1.
                for jt in (jc - bp.origin) / nr..(jc + jn - bp.origin).div_ceil(nr) {
                    let tj = bp.origin + jt * nr;
                    let bptr = bp.base.wrapping_add(jt * bp.stride + bp.k_off);
                    let cj = tj.max(jc)..(tj + nr).min(jc + jn);
                    for it in (ic - ap.origin) / mr..(ic + im - ap.origin).div_ceil(mr) {
                        let ti = ap.origin + it * mr;
                        let aptr = ap.base.wrapping_add(it * ap.stride + ap.k_off);
                        let ri = ti.max(ic)..(ti + mr).min(ic + im);
                        // SAFETY: the panels were packed (or pre-packed) for these tiles with kb-deep slices at the
                        // computed offsets; ri × cj lies inside the caller's block of C.
                        unsafe { pass.tile(aptr, bptr, ti, ri, tj, cj.clone()) };
                    }
                }
                ic += im;
            }
            pc += kb;
        }
        jc += jn;
    }
}

/// One kc pass over a set of tiles.
struct Pass<'a, 'c> {
    ks: &'a KernelSet,
    kb: usize,
    first: bool,
    last: bool,
    c: MatMut<'c>,
    ops: &'a [FusedOp<'a>],
    fused: Option<FusedPrefix<'a>>,
    tile: *mut f32,
}

/// The prefix of an epilogue the micro-kernel applies in registers: biases (any order, they commute) then at most
/// one Relu / Clip.
#[derive(Clone, Copy)]
struct FusedPrefix<'a> {
    /// Number of ops covered.
    len: usize,
    row_bias: Option<&'a [f32]>,
    col_bias: Option<&'a [f32]>,
    /// Clamp settings (bias pointers are set per tile).
    tile: TileEpi,
}

impl<'a> FusedPrefix<'a> {
    fn of(ops: &[FusedOp<'a>]) -> Option<Self> {
        let mut f = FusedPrefix {
            len: 0,
            row_bias: None,
            col_bias: None,
            tile: TileEpi { row_bias: std::ptr::null(), col_bias: std::ptr::null(), clamp: false, lo: 0.0, hi: 0.0 },
        };
        for op in ops {
            match *op {
                FusedOp::RowBias(b) if f.row_bias.is_none() => f.row_bias = Some(b),
                FusedOp::ColBias(b) if f.col_bias.is_none() => f.col_bias = Some(b),
                FusedOp::Relu => {
                    (f.tile.clamp, f.tile.lo, f.tile.hi) = (true, 0.0, f32::INFINITY);
                    f.len += 1;
                    break;
                }
                FusedOp::Clip { lo, hi } => {
                    (f.tile.clamp, f.tile.lo, f.tile.hi) = (true, lo, hi);
                    f.len += 1;
                    break;
                }
                _ => break,
            }
            f.len += 1;
        }
        (f.len > 0).then_some(f)
    }
}

impl Pass<'_, '_> {
    /// The MR × NR tile with C origin (ti, tj); store only rows `ri` and columns `cj` of it.
    ///
    /// # Safety
    /// `a` / `b` point to `kb`-deep MR / NR panel slices; `ri × cj` is inside C and owned by the caller.
    #[inline]
    unsafe fn tile(&self, a: *const f32, b: *const f32, ti: usize, ri: Range<usize>, tj: usize, cj: Range<usize>) {
        let (mr, nr) = (self.ks.mr, self.ks.nr);
        let c = self.c;
        let full = ri.start == ti && ri.end == ti + mr && cj.start == tj && cj.end == tj + nr && c.cs == 1;
        if full {
            // SAFETY: the whole tile is inside C with contiguous columns and owned by the caller.
            unsafe {
                let cp = c.ptr_at(ti, tj);
                // On the last pass the simple prefix of the epilogue runs in registers, the rest on the stored tile.
                let (epi, rest) = match &self.fused {
                    Some(f) if self.last => {
                        let e = TileEpi {
                            row_bias: f.row_bias.map_or(std::ptr::null(), |b| b.as_ptr().add(ti)),
                            col_bias: f.col_bias.map_or(std::ptr::null(), |b| b.as_ptr().add(tj)),
                            ..f.tile
                        };
                        (Some(e), &self.ops[f.len..])
                    }
                    _ => (None, self.ops),
                };
                let ep = epi.as_ref().map_or(std::ptr::null(), |e| e as *const TileEpi);
                (self.ks.gemm)(self.kb, a, b, cp, c.rs, !self.first, ep);
                if self.last && !rest.is_empty() {
                    (self.ks.epilogue)(cp, c.rs, mr, nr, ti, tj, rest);
                }
            }
            return;
        }
        // Edge or strided tile: compute it whole into the temp tile, then merge the owned part.
        // SAFETY: the temp tile holds MR × NR floats (row stride NR) and belongs to this worker's scratch.
        unsafe { (self.ks.gemm)(self.kb, a, b, self.tile, nr as isize, false, std::ptr::null()) };
        let (m, n) = (ri.len(), cj.len());
        let t0 = self.tile.wrapping_add((ri.start - ti) * nr + (cj.start - tj));
        if !self.first {
            for r in 0..m {
                for j in 0..n {
                    // SAFETY: (ri.start + r, cj.start + j) is in the owned block; the temp index is inside the tile.
                    unsafe { *t0.add(r * nr + j) += *c.ptr_at(ri.start + r, cj.start + j) };
                }
            }
        }
        if self.last && !self.ops.is_empty() {
            // SAFETY: the m × n sub-tile of the temp tile, row stride NR.
            unsafe { (self.ks.epilogue)(t0, nr as isize, m, n, ri.start, cj.start, self.ops) };
        }
        for r in 0..m {
            for j in 0..n {
                // SAFETY: as above.
                unsafe { *c.ptr_at(ri.start + r, cj.start + j) = *t0.add(r * nr + j) };
            }
        }
    }
}

/// Run `isa`'s micro-kernel `reps` times on L1-resident panels of depth `k` (for benchmarks: the kernel's own
/// ceiling, without packing or memory traffic). Returns the FLOPs performed.
#[doc(hidden)]
pub fn microkernel_probe(isa: Isa, k: usize, reps: usize) -> f64 {
    let ks = isa.kernels();
    let a = vec![1.0f32; ks.mr * k];
    let b = vec![1e-3f32; ks.nr * k];
    let mut c = vec![0.0f32; ks.mr * ks.nr];
    for r in 0..reps {
        // SAFETY: the panels hold k·MR and k·NR floats; c is one MR × NR tile with row stride NR.
        unsafe { (ks.gemm)(k, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), ks.nr as isize, r > 0, std::ptr::null()) };
    }
    std::hint::black_box(&c);
    2.0 * (ks.mr * ks.nr * k * reps) as f64
}
