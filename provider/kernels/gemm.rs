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

use super::arch::{Ahead, GemmSegAUkr, KernelSet, Seg, TileEpi};
use super::buf::AlignedBuf;
use super::isa::{selected_isa, tile_info_for, Isa};
use super::pack::{pack_a, pack_a_from, pack_a_im2col_nhwc, pack_b, pack_b_from, pack_b_im2col, Im2colWork, NO_ORIGIN};
use super::prefetch;
use super::window::{self, pack_b_shifted, ColMap};
use super::{conv_t, gemv, AOperand, BOperand, FusedOp, MatMut, PackedA, PackedB, Scratch};
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
    gemm_block_cfg(isa, read_in_place(), a, b, c, k, rows, cols, epilogue, scratch)
}

/// [`gemm_block_on`] choosing whether convolution windows may be read in place by the micro-kernel (tests cover
/// both; `ASYMO_CONV_INPLACE=0` turns it off process-wide).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_block_cfg(
    isa: Option<Isa>,
    in_place: bool,
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
    if let AOperand::PackedT(wt) = a {
        match b {
            BOperand::Im2col(im) if window::supports(im.geometry) => {
                conv_t::conv_t_block(wt, im, c, k, rows, cols, epilogue, scratch)
            }
            // Not produced by the ops (only 1-D / 2-D convolutions get transposed weights): one GEMV per column.
            _ => {
                for j in cols {
                    gemv::gemv_block(isa.kernels(), a, b, c, k, rows.clone(), j..j + 1, epilogue, scratch);
                }
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
    let Scratch { a: abuf, b: bbuf, tile, im2col, conv, conv_off, conv_of, job, v0: arows, .. } = scratch;
    match b {
        BOperand::Im2col(im) if window::supports(im.geometry) => {
            let w = window::prepare(im, cols, conv, conv_off, ks.stride2, *job, conv_of);
            let b = BSrc::Shifted { data: w.data, row_off: w.row_off, in_place };
            driver(ks, a, b, c, k, rows, w.vcols, w.map, epilogue, [abuf, bbuf, tile, arows], im2col);
        }
        _ => {
            let bufs = [abuf, bbuf, tile, arows];
            driver(ks, a, BSrc::Op(b), c, k, rows, cols, ColMap::identity(), epilogue, bufs, im2col)
        }
    }
}

pub(crate) fn check_operands(a: &AOperand<'_>, b: &BOperand<'_>, m: usize, n: usize, k: usize) {
    match a {
        AOperand::View(v) => assert!(v.rows == m && v.cols == k, "A shape"),
        AOperand::Packed(p) => assert!(p.rows() == m && p.k() == k, "packed A shape"),
        AOperand::PackedT(p) => assert!(p.cols() == m && p.k() == k, "packed Aᵀ shape"),
        AOperand::Im2colNhwc(im) => {
            im.check();
            assert!(im.rows() == m && im.geometry.k() == k, "NHWC im2col shape");
        }
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
    /// Row (virtual column) of C where panel 0 starts.
    origin: usize,
    /// Floats from one panel to the next.
    stride: usize,
    /// Offset of the current `pc` slice inside a panel.
    k_off: usize,
}

/// The B operand as the driver reads it.
#[derive(Clone, Copy)]
enum BSrc<'a> {
    Op(BOperand<'a>),
    /// Element (p, v) at `data[row_off[p] + v]` (a convolution window, see `window.rs`); columns are virtual.
    /// `in_place`: let a masked-store micro-kernel read the rows where they are (else they are packed).
    Shifted {
        data: &'a [f32],
        row_off: &'a [usize],
        in_place: bool,
    },
}

#[allow(clippy::too_many_arguments)]
fn driver(
    ks: &KernelSet,
    a: AOperand<'_>,
    b: BSrc<'_>,
    c: MatMut<'_>,
    k: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    map: ColMap,
    ops: &[FusedOp<'_>],
    [abuf, bbuf, tile, arows]: [&mut AlignedBuf; 4],
    im2col: &mut Im2colWork,
) {
    let (mr, nr) = (ks.mr, ks.nr);
    let ti = tile_info_for(ks.isa);
    let own_b: Option<&PackedB> = match b {
        BSrc::Op(BOperand::Packed(pb)) if pb.nr() == nr => Some(pb),
        _ => None,
    };
    // A pre-packed B needs no column passes (and each pass would re-pack A); a B packed here is cut into nc passes.
    let mc = ti.mc;
    let nc = if own_b.is_some() { cols.len() } else { ti.nc };
    // Split K into equal passes (K = 512 with kc = 384 runs 2 × 256, not 384 + 128).
    let kc = k.div_ceil(k.div_ceil(ti.kc)).next_multiple_of(8).min(ti.kc.max(8));
    let own_a: Option<&PackedA> = match a {
        AOperand::Packed(pa) if pa.mr() == mr => Some(pa),
        _ => None,
    };
    let fused = FusedPrefix::of(ops, true);
    // A channels-last convolution with few channels per tap (a first layer) has its A read in place by the
    // masked-store kernel on every panel whose windows lie inside the input (row i + r one stride after row i: no
    // im2col copy of short runs); the other panels pack. With ≥ 16 channels packing is faster (measured on
    // ResNet-50's 3×3 layers: 1.04–1.16×; first layers read in place 1.15–1.28×).
    // (B a packed or viewed operand: an in-place B would take the tile path, which reads A from the packed panel.)
    let direct = match (a, ks.gemm_seg_arows, &b) {
        (AOperand::Im2colNhwc(x), Some(f), BSrc::Op(_))
            if x.geometry.channels < 16 && c.cs == 1 && map.pitch == map.width && map.base == 0 =>
        {
            Some((x, f))
        }
        _ => None,
    };
    let tile = tile.get(mr * nr).as_mut_ptr();
    // Shifted B rows are read in place by tiers with a masked-store kernel (at most 8 runs per tile: pitch ≥ 8).
    let in_place_ok = ks.gemm_seg.is_some() && c.cs == 1 && map.pitch >= 8;
    let mut jc = cols.start;
    while jc < cols.end {
        let jn = nc.min(cols.end - jc);
        let mut pc = 0;
        while pc < k {
            let kb = kc.min(k - pc);
            let (first, last) = (pc == 0, pc + kb == k);
            if let Some((x, _)) = direct {
                x.direct_offsets(pc, kb, &mut im2col.aoffs);
            }
            // A shifted B read in place by the micro-kernel (no block packing): its data, this pass's row
            // offsets and their maximum.
            let in_place = match b {
                BSrc::Shifted { data, row_off, in_place: true } if in_place_ok => {
                    let offs = &row_off[pc..pc + kb];
                    Some((data, offs, offs.iter().copied().max().unwrap_or(0)))
                }
                _ => None,
            };
            // Loop 4 body: the B block of this pass.
            let bp = match own_b {
                Some(pb) => Panels { base: pb.data().as_ptr(), origin: 0, stride: pb.k() * nr, k_off: pc * nr },
                None if in_place.is_some() => Panels { base: std::ptr::null(), origin: jc, stride: 0, k_off: 0 },
                None => {
                    let dst = bbuf.get(jn.div_ceil(nr) * nr * kb);
                    match b {
                        BSrc::Op(BOperand::View(v)) => pack_b(v, pc, kb, jc, jn, nr, dst),
                        BSrc::Op(BOperand::Im2col(im)) => pack_b_im2col(im, pc, kb, jc, jn, nr, dst, im2col),
                        BSrc::Op(BOperand::Packed(pb)) => pack_b_from(pb, pc, kb, jc, jn, nr, dst),
                        BSrc::Shifted { data, row_off, .. } => {
                            pack_b_shifted(data, &row_off[pc..pc + kb], jc, jn, nr, dst)
                        }
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
                            AOperand::View(v) => pack_a(ks.transpose, v, ic, im, pc, kb, mr, dst),
                            AOperand::Packed(pa) => pack_a_from(pa, ic, im, pc, kb, mr, dst),
                            AOperand::PackedT(_) => unreachable!("transposed A runs in conv_t"),
                            AOperand::Im2colNhwc(x) if direct.is_some() => {
                                im2col.origins.clear();
                                for q in 0..im.div_ceil(mr) {
                                    let (ti, h) = (ic + q * mr, mr.min(im - q * mr));
                                    let origin = x.direct_origin(ti, h);
                                    im2col.origins.push(origin.unwrap_or(NO_ORIGIN));
                                    if origin.is_none() {
                                        let pan = &mut dst[q * mr * kb..(q + 1) * mr * kb];
                                        pack_a_im2col_nhwc(ks.transpose, x, ti, h, pc, kb, mr, pan, arows);
                                    }
                                }
                            }
                            AOperand::Im2colNhwc(x) => {
                                pack_a_im2col_nhwc(ks.transpose, x, ic, im, pc, kb, mr, dst, arows)
                            }
                        }
                        Panels { base: dst.as_ptr(), origin: ic, stride: kb * mr, k_off: 0 }
                    }
                };
                let pass = Pass { ks, kb, first, last, c, map, ops, fused, tile };
                // Loops 2 and 1.
                for jt in (jc - bp.origin) / nr..(jc + jn - bp.origin).div_ceil(nr) {
                    let tj = bp.origin + jt * nr;
                    let cj = tj.max(jc)..(tj + nr).min(jc + jn);
                    let (bptr, boff) = match in_place {
                        // B read in place when the whole micro-panel is inside the data, else packed here.
                        Some((data, offs, max_off)) if tj + max_off + nr <= data.len() => {
                            (data.as_ptr().wrapping_add(tj), offs.as_ptr())
                        }
                        Some((data, offs, _)) => {
                            let dst = bbuf.get(nr * kb);
                            pack_b_shifted(data, offs, tj, cj.end - tj, nr, dst);
                            (dst.as_ptr(), std::ptr::null())
                        }
                        None => (bp.base.wrapping_add(jt * bp.stride + bp.k_off), std::ptr::null()),
                    };
                    // Where the panel's columns go in C: the same for every row tile below.
                    let cols = pass.tile_cols(tj, cj.clone());
                    for it in (ic - ap.origin) / mr..(ic + im - ap.origin).div_ceil(mr) {
                        let ti = ap.origin + it * mr;
                        let aptr = ap.base.wrapping_add(it * ap.stride + ap.k_off);
                        let ri = ti.max(ic)..(ti + mr).min(ic + im);
                        if first && tj + nr < jc + jn {
                            pass.prefetch_c(ri.clone(), tj + nr);
                        }
                        if let Some((x, arows_ukr)) = direct {
                            let origin = im2col.origins[it];
                            if origin != NO_ORIGIN && boff.is_null() {
                                // SAFETY: the panel's rows ri read their windows inside the input (direct_origin),
                                // at the pass's offsets; ri × cj lies inside the caller's block of C.
                                unsafe {
                                    let step = x.row_step();
                                    let a0 = x.input.as_ptr().add(origin + (ri.start - ti) * step);
                                    pass.tile_arows(
                                        arows_ukr,
                                        a0,
                                        im2col.aoffs.as_ptr(),
                                        step,
                                        ri,
                                        bptr,
                                        tj,
                                        cj.clone(),
                                    );
                                }
                                continue;
                            }
                        }
                        // SAFETY: the panels were packed (or pre-packed) for these tiles with kb-deep slices at the
                        // computed offsets; ri × cj lies inside the caller's block of C.
                        unsafe { pass.tile(aptr, bptr, boff, ti, ri, tj, cj.clone(), &cols) };
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
    /// Tile columns are virtual columns of this map.
    map: ColMap,
    ops: &'a [FusedOp<'a>],
    fused: Option<FusedPrefix<'a>>,
    tile: *mut f32,
}

/// Where a column panel's tiles go in C ([`Pass::tile_cols`]).
struct TileCols {
    /// The C column of lane 0 when all NR lanes are one run of consecutive C columns.
    whole: Option<usize>,
    /// With a masked-store kernel: the runs as lane-mask segments (`ns` of them; more than fit: the temp-tile path),
    /// and each run's length and first C column.
    segs: [Seg; 8],
    runs: [(usize, usize); 8],
    ns: usize,
}

/// The prefix of an epilogue the micro-kernel applies in registers: biases (any order, they commute), then at most
/// one residual `Add` with contiguous columns (when the caller's tile layout is C's), then at most one Relu / Clip.
#[derive(Clone, Copy)]
pub(crate) struct FusedPrefix<'a> {
    /// Number of ops covered.
    pub(crate) len: usize,
    pub(crate) row_bias: Option<&'a [f32]>,
    pub(crate) col_bias: Option<&'a [f32]>,
    pub(crate) residual: Option<super::MatRef<'a>>,
    /// Clamp settings (bias and residual pointers are set per tile).
    pub(crate) tile: TileEpi,
}

impl<'a> FusedPrefix<'a> {
    /// `residual_ok`: the micro-kernel's tile lanes are C's columns (not so for the transposed lowering).
    pub(crate) fn of(ops: &[FusedOp<'a>], residual_ok: bool) -> Option<Self> {
        let mut f = FusedPrefix {
            len: 0,
            row_bias: None,
            col_bias: None,
            residual: None,
            tile: TileEpi {
                row_bias: std::ptr::null(),
                col_bias: std::ptr::null(),
                res: std::ptr::null(),
                res_rs: 0,
                clamp: false,
                lo: 0.0,
                hi: 0.0,
            },
        };
        for op in ops {
            match *op {
                // Biases after the residual would be added in a different order than the graph's: stop there.
                FusedOp::RowBias(b) if f.row_bias.is_none() && f.residual.is_none() => f.row_bias = Some(b),
                FusedOp::ColBias(b) if f.col_bias.is_none() && f.residual.is_none() => f.col_bias = Some(b),
                FusedOp::Add(src) if residual_ok && src.cs == 1 && f.residual.is_none() => f.residual = Some(src),
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
    /// Rows `ri` × columns `cj` of the tile at virtual column `tj` (identity column map), A read in place: row
    /// `ri.start + r` at `a + aoff[p] + r·ars`, B the packed micro-panel `b`.
    ///
    /// # Safety
    /// Every `a + aoff[p] + r·ars` (p < kb, r < ri.len()) is readable; `b` is a kb-deep NR micro-panel; `ri × cj`
    /// maps inside C (columns contiguous) and is owned by the caller.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_arows(
        &self,
        arows: GemmSegAUkr,
        a: *const f32,
        aoff: *const usize,
        ars: usize,
        ri: Range<usize>,
        b: *const f32,
        tj: usize,
        cj: Range<usize>,
    ) {
        let c = self.c;
        let (l0, n) = (cj.start - tj, cj.len());
        let mask = if n >= 32 { u32::MAX } else { ((1u32 << n) - 1) << l0 };
        let seg = Seg { delta: tj as isize, mask };
        // SAFETY: the caller's contract; lane t of the segment is C column tj + t of rows ri.
        unsafe {
            let cp = c.ptr_at(ri.start, 0);
            let (epi, rest) = self.seg_epi(ri.start);
            let ep = epi.as_ref().map_or(std::ptr::null(), |e| e as *const TileEpi);
            arows(self.kb, ri.len(), a, aoff, ars, b, cp, c.rs, &[seg], !self.first, ep, Ahead::NONE);
            if self.last && !rest.is_empty() {
                (self.ks.epilogue)(c.ptr_at(ri.start, cj.start), c.rs, ri.len(), n, ri.start, cj.start, rest);
            }
        }
    }

    /// Ask for C's lines under rows `ri`, virtual columns `tj .. tj + NR` to be fetched into L2. The driver
    /// calls it on the first pass for the tile below the same rows one column panel on (a whole panel of tiles
    /// later): a model's activations are cold when a layer writes them (the layers in between evicted them), and
    /// the panels' rows are that many separate streams (one per output channel of a convolution), too many for the
    /// hardware prefetchers to follow; unprefetched, the tiles' stores stalled on the misses (SqueezeNet's first
    /// convolution 2.6× slower with the caches flushed before it, the CPU EP's 1.5×; prefetched, 1.6×). Three
    /// prefetches per row cover a 32-float run's lines whatever its alignment (a loop over the exact lines cost
    /// more than the extra prefetch when C is warm; NR ≤ 32 on every tier). Measured on AVX-512 only (the other
    /// tiers take the same hints, unmeasured).
    #[inline]
    fn prefetch_c(&self, ri: Range<usize>, tj: usize) {
        let (c, nr) = (self.c, self.ks.nr);
        let col = self.map.col_of(tj);
        if c.cs != 1 || col >= c.cols {
            return;
        }
        for r in ri {
            let p = c.ptr.wrapping_offset(r as isize * c.rs + col as isize);
            prefetch::read_l2(p);
            prefetch::read_l2(p.wrapping_add(nr / 2));
            prefetch::read_l2(p.wrapping_add(nr - 1));
        }
    }

    /// On the last pass, the register epilogue of tiles stored through segments whose rows start at C row `row0`
    /// (biases and residual indexed from column 0, the segment's delta selecting the columns) and the rest of the
    /// epilogue; otherwise nothing and the whole epilogue is deferred.
    fn seg_epi(&self, row0: usize) -> (Option<TileEpi>, &[FusedOp<'_>]) {
        match &self.fused {
            Some(f) if self.last => {
                // SAFETY: pointer arithmetic only; row0 is a row of C (so of the row bias and the residual).
                let e = TileEpi {
                    row_bias: f.row_bias.map_or(std::ptr::null(), |b| b.as_ptr().wrapping_add(row0)),
                    col_bias: f.col_bias.map_or(std::ptr::null(), |b| b.as_ptr()),
                    res: f.residual.map_or(std::ptr::null(), |r| r.ptr_at(row0, 0)),
                    res_rs: f.residual.map_or(0, |r| r.rs),
                    ..f.tile
                };
                (Some(e), &self.ops[f.len..])
            }
            _ => (None, self.ops),
        }
    }

    /// Where the tiles of the column panel at virtual column `tj` store their (virtual) columns `cj` in C: worked
    /// out once per panel, not per tile (the divisions by the window's pitch were a tenth of a K = 27 first
    /// layer's time).
    fn tile_cols(&self, tj: usize, cj: Range<usize>) -> TileCols {
        let (c, map, nr) = (self.c, self.map, self.ks.nr);
        // The C column of lane 0 when the whole tile is one run of consecutive C columns.
        let whole_run = map.pitch == map.width || tj % map.pitch + nr <= map.width;
        let whole = (cj.start == tj && cj.end == tj + nr && c.cs == 1 && whole_run).then(|| map.col_of(tj));
        let mut cols = TileCols { whole, segs: [Seg { delta: 0, mask: 0 }; 8], runs: [(0, 0); 8], ns: 0 };
        if self.ks.gemm_seg.is_some() && c.cs == 1 {
            let lane0 = cj.start - tj;
            map.segments(cj, |lane, n, col| {
                if cols.ns < cols.segs.len() {
                    let l = lane0 + lane;
                    let mask = if n >= 32 { u32::MAX } else { ((1u32 << n) - 1) << l };
                    cols.segs[cols.ns] = Seg { delta: col as isize - l as isize, mask };
                    cols.runs[cols.ns] = (n, col);
                }
                cols.ns += 1;
            });
        }
        cols
    }

    /// The MR × NR tile with origin row `ti`, virtual column `tj`; store only rows `ri` and (virtual) columns `cj`,
    /// which go to C as `cols` (from [`Pass::tile_cols`]) says. B is a packed micro-panel, or (non-null `boff`, only
    /// with the tier's `gemm_seg`) rows `b + boff[p]`.
    ///
    /// # Safety
    /// `a` / `b` point to `kb`-deep MR / NR panel slices (or `kb` offsets of readable NR-float rows); `ri × cj` maps
    /// inside C and is owned by the caller.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        &self,
        a: *const f32,
        b: *const f32,
        boff: *const usize,
        ti: usize,
        ri: Range<usize>,
        tj: usize,
        cj: Range<usize>,
        cols: &TileCols,
    ) {
        let (mr, nr) = (self.ks.mr, self.ks.nr);
        let c = self.c;
        let map = self.map;
        if let (Some(tc), true) = (cols.whole, ri.start == ti && ri.end == ti + mr && boff.is_null()) {
            // SAFETY: the whole tile is inside C with contiguous columns and owned by the caller.
            unsafe {
                let cp = c.ptr_at(ti, tc);
                // On the last pass the simple prefix of the epilogue runs in registers, the rest on the stored tile.
                let (epi, rest) = match &self.fused {
                    Some(f) if self.last => {
                        let e = TileEpi {
                            row_bias: f.row_bias.map_or(std::ptr::null(), |b| b.as_ptr().add(ti)),
                            col_bias: f.col_bias.map_or(std::ptr::null(), |b| b.as_ptr().add(tc)),
                            res: f.residual.map_or(std::ptr::null(), |r| r.ptr_at(ti, tc)),
                            res_rs: f.residual.map_or(0, |r| r.rs),
                            ..f.tile
                        };
                        (Some(e), &self.ops[f.len..])
                    }
                    _ => (None, self.ops),
                };
                let ep = epi.as_ref().map_or(std::ptr::null(), |e| e as *const TileEpi);
                (self.ks.gemm)(self.kb, a, b, cp, c.rs, !self.first, ep);
                if self.last && !rest.is_empty() {
                    (self.ks.epilogue)(cp, c.rs, mr, nr, ti, tc, rest);
                }
            }
            return;
        }
        let m = ri.len();
        let lane0 = cj.start - tj;
        if let (Some(seg_ukr), 1) = (self.ks.gemm_seg, c.cs) {
            // Edge or split tile stored in place through lane masks (rows ri.start.. of the panel: the kernel reads
            // A at a row offset, the panel step stays MR).
            let TileCols { segs, runs, ns, .. } = cols;
            let ns = *ns;
            if ns <= segs.len() {
                // SAFETY: every selected lane is a C element of the owned block (rows ri, the mapped columns);
                // the A slice starts ri.start − ti rows into its panel, so rows 0..m are the panel's ri rows.
                unsafe {
                    let cp = c.ptr_at(ri.start, 0);
                    let ar = a.add(ri.start - ti);
                    let (epi, rest) = self.seg_epi(ri.start);
                    let ep = epi.as_ref().map_or(std::ptr::null(), |e| e as *const TileEpi);
                    seg_ukr(self.kb, m, ar, b, boff, cp, c.rs, &segs[..ns], !self.first, ep);
                    if self.last && !rest.is_empty() {
                        for &(n, col) in &runs[..ns] {
                            (self.ks.epilogue)(c.ptr_at(ri.start, col), c.rs, m, n, ri.start, col, rest);
                        }
                    }
                }
                return;
            }
        }
        debug_assert!(boff.is_null(), "in-place B needs the masked-store kernel");
        // Edge, strided or split tile: compute it whole into the temp tile, then merge the owned runs.
        // SAFETY: the temp tile holds MR × NR floats (row stride NR) and belongs to this worker's scratch.
        unsafe { (self.ks.gemm)(self.kb, a, b, self.tile, nr as isize, false, std::ptr::null()) };
        map.segments(cj, |lane, n, col| {
            let t0 = self.tile.wrapping_add((ri.start - ti) * nr + lane0 + lane);
            if !self.first {
                for r in 0..m {
                    // SAFETY: row r of the sub-tile (n floats of the temp tile) and of the owned C run.
                    let t = unsafe { std::slice::from_raw_parts_mut(t0.add(r * nr), n) };
                    if c.cs == 1 {
                        // SAFETY: the C run is n contiguous floats of the owned block.
                        let cr = unsafe { std::slice::from_raw_parts(c.ptr_at(ri.start + r, col), n) };
                        t.iter_mut().zip(cr).for_each(|(t, c)| *t += c);
                    } else {
                        for (j, t) in t.iter_mut().enumerate() {
                            // SAFETY: (ri.start + r, col + j) is in the owned block.
                            *t += unsafe { *c.ptr_at(ri.start + r, col + j) };
                        }
                    }
                }
            }
            if self.last && !self.ops.is_empty() {
                // SAFETY: the m × n sub-tile of the temp tile, row stride NR.
                unsafe { (self.ks.epilogue)(t0, nr as isize, m, n, ri.start, col, self.ops) };
            }
            for r in 0..m {
                // SAFETY: as above.
                let t = unsafe { std::slice::from_raw_parts(t0.add(r * nr), n) };
                if c.cs == 1 {
                    // SAFETY: as above.
                    let cr = unsafe { std::slice::from_raw_parts_mut(c.ptr_at(ri.start + r, col), n) };
                    cr.copy_from_slice(t);
                } else {
                    for (j, &t) in t.iter().enumerate() {
                        // SAFETY: as above.
                        unsafe { *c.ptr_at(ri.start + r, col + j) = t };
                    }
                }
            }
        });
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

/// [`microkernel_probe`] for the masked-store kernel on `m` rows (`None` if the tier has none).
#[doc(hidden)]
pub fn microkernel_seg_probe(isa: Isa, k: usize, m: usize, reps: usize) -> Option<f64> {
    let ks = isa.kernels();
    let seg = ks.gemm_seg?;
    let a = vec![1.0f32; ks.mr * k];
    let b = vec![1e-3f32; ks.nr * k];
    let mut c = vec![0.0f32; ks.mr * ks.nr];
    let segs = [Seg { delta: 0, mask: u32::MAX }];
    for r in 0..reps {
        // SAFETY: as in microkernel_probe; m ≤ MR rows of the tile.
        unsafe {
            seg(
                k,
                m,
                a.as_ptr(),
                b.as_ptr(),
                std::ptr::null(),
                c.as_mut_ptr(),
                ks.nr as isize,
                &segs,
                r > 0,
                std::ptr::null(),
            )
        };
    }
    std::hint::black_box(&c);
    Some(2.0 * (m * ks.nr * k * reps) as f64)
}

/// Whether the tier `ks` reads shifted B operands in place (its masked-store kernel, and `ASYMO_CONV_INPLACE` not
/// `0`).
pub(crate) fn reads_b_in_place(ks: &KernelSet) -> bool {
    ks.gemm_seg.is_some() && read_in_place()
}

/// Whether shifted B operands are read in place (`ASYMO_CONV_INPLACE=0` packs them instead; read once).
fn read_in_place() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("ASYMO_CONV_INPLACE").map_or(true, |v| v != "0"))
}
