//! The leaves: one micro-kernel per ISA behind one signature ([`GemmUkr`]), and per-ISA instantiations of the
//! portable loop bodies (epilogue, GEMV, depthwise) compiled with that ISA's target features.
//!
//! Kernel names follow `<isa>_<op>_<acc>_<MR>x<NR>`.

use super::isa::Isa;
use super::FusedOp;

#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64;
pub(crate) mod generic;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

/// The micro-kernel: `C[0..MR, 0..NR] = epi((C +) Apanel · Bpanel)` over `k ≥ 1` steps.
///
/// `a` holds `k` groups of MR floats (`a[p·MR + i] = A[i, p]`), `b` holds `k` groups of NR floats
/// (`b[p·NR + j] = B[p, j]`). C element (i, j) is at `c + i·rsc + j` (columns contiguous). With `accumulate` the
/// product is added to C, otherwise it overwrites C (C is not read, so it may hold NaN). `epi` (nullable) is applied
/// on the registers before the store.
///
/// # Safety
/// `a` and `b` must be readable for `k·MR` and `k·NR` floats, every C element of the tile writable (and readable
/// when accumulating), and no other thread may access the tile concurrently; a non-null `epi` must be valid with
/// its bias pointers (when non-null) readable for MR / NR floats. The set's ISA must be supported.
pub(crate) type GemmUkr =
    unsafe fn(k: usize, a: *const f32, b: *const f32, c: *mut f32, rsc: isize, accumulate: bool, epi: *const TileEpi);

/// A run of tile lanes stored to consecutive C columns: lane `t` (bit `t` of `mask`, NR ≤ 32) goes to column
/// offset `delta + t` of its C row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seg {
    pub(crate) delta: isize,
    pub(crate) mask: u32,
}

/// The micro-kernel on rows `0..m` (`m ≤ MR`) of a tile whose lanes are stored through `segs` (disjoint, non-zero
/// masks):
/// `C[i, delta + t] = epi((C +) A·B)[i, t]` for every lane `t` of every segment, nothing else touched. `c` points
/// to the C element of row 0 and column offset 0; a non-null `epi.col_bias` is indexed like C's columns (read
/// through the same masks). B is a packed NR panel when `boff` is null, else read in place: step `p` reads the NR
/// floats at `b + boff[p]`. Otherwise as [`GemmUkr`].
///
/// # Safety
/// As [`GemmUkr`], for the selected lanes of rows `0..m`; with a non-null `boff`, `boff` holds `k` offsets and
/// every `b + boff[p]` is readable for NR floats; the set's ISA must be supported.
pub(crate) type GemmSegUkr = unsafe fn(
    k: usize,
    m: usize,
    a: *const f32,
    b: *const f32,
    boff: *const usize,
    c: *mut f32,
    rsc: isize,
    segs: &[Seg],
    accumulate: bool,
    epi: *const TileEpi,
);

/// [`GemmSegUkr`] with A read in place and B packed: step `p` reads A's row `i < m` at `a + aoff[p] + i·ars` (the
/// channel-vectorized convolution's pixels straight from the window, `ars = 1`; a channels-last convolution's
/// pixels straight from the input, `ars` = stride × channels).
///
/// Meanwhile the kernel fetches `ahead` into L2, two lines every other step (the rest, if any, after the last).
///
/// # Safety
/// As [`GemmSegUkr`] with a packed B; `aoff` holds `k` offsets and every `a + aoff[p] + i·ars` (`i < m`) is readable.
pub(crate) type GemmSegAUkr = unsafe fn(
    k: usize,
    m: usize,
    a: *const f32,
    aoff: *const usize,
    ars: usize,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    segs: &[Seg],
    accumulate: bool,
    epi: *const TileEpi,
    ahead: Ahead,
);

/// Cache lines a micro-kernel prefetches into L2 while it runs, paced over its steps: the next weight micro-panel
/// of a channel-vectorized convolution, read once from memory. Prefetched in one burst before the tile instead, its
/// misses queued up in front of the tile's own loads (twelve 512 ↔ 2048 1 × 1 layers on 7 × 7, 48 MB of weights:
/// 0.72 of the CPU EP's speed with bursts, 0.86 with the bursts cut in four).
#[derive(Clone, Copy, Debug)]
// Only the AVX-512 kernel reads the stream (the other tiers have no A-in-place kernel).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct Ahead {
    /// First line (any address: prefetches never fault).
    pub(crate) start: *const f32,
    /// Number of consecutive 64-byte lines.
    pub(crate) lines: usize,
}

impl Ahead {
    pub(crate) const NONE: Ahead = Ahead { start: std::ptr::null(), lines: 0 };
}

/// The part of an epilogue a micro-kernel applies in registers before storing a tile:
/// `y = clamp(y + row_bias[i] + col_bias[j] + res[i, j], lo, hi)`, each part optional, in that order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TileEpi {
    /// MR per-row values for this tile, or null.
    pub(crate) row_bias: *const f32,
    /// NR per-column values for this tile, or null.
    pub(crate) col_bias: *const f32,
    /// A residual addend laid out like the tile (element (i, t) at `res + i·res_rs + t`, lanes through the same
    /// segments as C), or null. When non-null, every element the kernel stores has its addend readable there.
    pub(crate) res: *const f32,
    pub(crate) res_rs: isize,
    /// Whether to clamp to `[lo, hi]` (NaN stays NaN, as `FusedOp::Clip` / `Relu`).
    pub(crate) clamp: bool,
    pub(crate) lo: f32,
    pub(crate) hi: f32,
}

/// Apply `ops` to the `m × n` tile at `c` (row stride `rsc`, columns contiguous) whose element (0, 0) is C's
/// element (i0, j0).
pub(crate) type EpilogueFn =
    unsafe fn(c: *mut f32, rsc: isize, m: usize, n: usize, i0: usize, j0: usize, ops: &[FusedOp<'_>]);

/// `out[q·NR .. q·NR + NR] = Σ_p x[p] · panel_q[p·NR .. p·NR + NR]` over `k` steps for `count` (1 ..=
/// [`GEMV_PANELS`](crate::kernels::gemv::GEMV_PANELS)) panels, panel `q` at `panel + q·stride`, all streamed at once.
pub(crate) type GemvPanelFn =
    unsafe fn(k: usize, x: *const f32, panel: *const f32, stride: usize, count: usize, out: *mut f32);

/// `out[0..n] = Σ_p x[p] · B[p, 0..n]`, B row `p` at `b + p·ldb` (contiguous), `n ≤ 64`.
pub(crate) type GemvRowsFn = unsafe fn(k: usize, x: *const f32, b: *const f32, ldb: isize, n: usize, out: *mut f32);

/// `Σ x[t]·y[t]` over `n` contiguous floats.
pub(crate) type DotFn = unsafe fn(n: usize, x: *const f32, y: *const f32) -> f32;

/// `y[t] += a·x[t]` over `n` contiguous floats.
pub(crate) type AxpyFn = unsafe fn(n: usize, a: f32, x: *const f32, y: *mut f32);

/// `out[0..mr] = Σ_t panel[t]·xe[t]` folded by `t mod mr`, over `len` contiguous floats of both streams.
pub(crate) type FoldDotFn = unsafe fn(len: usize, xe: *const f32, panel: *const f32, mr: usize, out: *mut f32);

/// Depthwise interior: `out[o] = init + Σ_t w_t·src_t[o + off_t]` for `o` in `lo..hi`, all reads in bounds;
/// `out` itself may point outside its buffer (only `out + o` for `o ∈ lo..hi` is written).
pub(crate) type DwRowFn = unsafe fn(lo: usize, hi: usize, taps: &[super::depthwise::Tap], init: f32, out: *mut f32);

/// `dst[t] = src[2·t]` for `t < n` (`src` readable for `2·n − 1` floats): stride-2 phase splits.
pub(crate) type Stride2Fn = unsafe fn(n: usize, src: *const f32, dst: *mut f32);

/// One channel of a 3×3 depthwise convolution (dilation 1, stride `s` ∈ {1, 2}) read straight from the input
/// plane and written straight to the output plane: `y[oy, ox] = clamp(init + Σ k[ky·3 + kx] · x[oy·s + ky − pt,
/// ox·s + kx − pl], lo, hi)`, input positions outside the `h × w` plane counting as zero.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dw3x3 {
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) ho: usize,
    pub(crate) wo: usize,
    pub(crate) s: usize,
    pub(crate) pt: usize,
    pub(crate) pl: usize,
    /// Small "same" planes (stride 1, one pixel of padding, ≤ 64 outputs): the plane read as one flat row, where
    /// tap (ky, kx) of output `o` is input `o + (ky − 1)·w + kx − 1`; `flat[c·9 + tap]` masks the lanes of
    /// 16-output step `c` whose tap lies inside the plane (not across a row end). `None` otherwise.
    pub(crate) flat: Option<[u16; 36]>,
    /// [`Dw3x3::step_masks`] of the first two and the last two 16-output steps of a row (the same on every row
    /// and channel: computed once per layer, see [`Dw3x3::edge_masks`]).
    pub(crate) edge: [[u16; 3]; 4],
}

impl Dw3x3 {
    /// The geometry with its precomputed masks.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(h: usize, w: usize, ho: usize, wo: usize, s: usize, pt: usize, pl: usize) -> Dw3x3 {
        let mut d = Dw3x3 { h, w, ho, wo, s, pt, pl, flat: None, edge: [[0; 3]; 4] };
        d.flat = d.flat_masks();
        d.edge = d.edge_masks();
        d
    }

    /// Lanes `t` of a 16-float load at input column `q` (possibly negative) that lie inside the row: 0 ≤ q + t < w.
    pub(crate) fn inside(&self, q: isize) -> u16 {
        let lo = (-q).clamp(0, 16);
        let hi = (self.w as isize - q).clamp(0, 16);
        if hi <= lo {
            0
        } else {
            (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as u16
        }
    }

    /// The load masks of 16-output step `i` of a row: stride 1, the loads at its first input column `q`, `q + 1`,
    /// `q + 2`; stride 2, at `q`, `q + 16` and lane 0 at `q + 32`.
    pub(crate) fn step_masks(&self, i: usize) -> [u16; 3] {
        let q = (self.s * 16 * i) as isize - self.pl as isize;
        if self.s == 1 {
            [self.inside(q), self.inside(q + 1), self.inside(q + 2)]
        } else {
            [self.inside(q), self.inside(q + 16), self.inside(q + 32) & 1]
        }
    }

    /// `step_masks` of steps 0, 1, steps − 2, steps − 1 (clamped to the row's steps).
    pub(crate) fn edge_masks(&self) -> [[u16; 3]; 4] {
        let steps = self.wo.div_ceil(16);
        [
            self.step_masks(0),
            self.step_masks(1),
            self.step_masks(steps.saturating_sub(2)),
            self.step_masks(steps.saturating_sub(1)),
        ]
    }

    /// The flat-plane masks when the geometry allows them (see `flat`).
    pub(crate) fn flat_masks(&self) -> Option<[u16; 36]> {
        let same = self.s == 1 && self.pt == 1 && self.pl == 1 && self.ho == self.h && self.wo == self.w;
        let n = self.ho * self.wo;
        if !same || n == 0 || n > 64 {
            return None;
        }
        // Built once per layer call (the geometry is a run-time one): one pass over the ≤ 64 outputs.
        let mut m = [0u16; 36];
        for o in 0..n {
            let (oy, ox) = (o / self.wo, o % self.wo);
            let rows = [oy > 0, true, oy + 1 < self.h];
            let cols = [ox > 0, true, ox + 1 < self.w];
            for tap in 0..9 {
                if rows[tap / 3] && cols[tap % 3] {
                    m[(o / 16) * 9 + tap] |= 1 << (o % 16);
                }
            }
        }
        Some(m)
    }
}

/// See [`Dw3x3`]; `clamp` = `(lo, hi)` or none.
///
/// # Safety
/// `x` is readable for `h·w` floats and `y` writable for `ho·wo`; `s` is 1 or 2.
pub(crate) type Dw3x3Fn =
    unsafe fn(g: &Dw3x3, x: *const f32, k: &[f32; 9], init: f32, clamp: Option<(f32, f32)>, y: *mut f32);

/// `dst[j·ldd + i] = src[i·lds + j]` for `i < rows`, `j < cols` (a `rows × cols` block transposed; the
/// channel-vectorized convolution's `pixels × channels` buffer into C's channel rows).
pub(crate) type TransposeFn =
    unsafe fn(rows: usize, cols: usize, src: *const f32, lds: usize, dst: *mut f32, ldd: usize);

/// Fill the phase-split padded plane of one depthwise channel: for each `(src, dst, n)` triple of `copies`,
/// `padded[dst + t] = x[src + t·sw]` for `t < n` (`stride2` does `sw = 2`). See `depthwise::plane_2d`.
pub(crate) type DwFillFn = unsafe fn(copies: &[usize], sw: usize, x: *const f32, padded: *mut f32, stride2: Stride2Fn);

/// A run of `px` output pixels of a channels-last depthwise convolution over `n` channels, pixel `p`'s taps one
/// `px_step` further than pixel `p − 1`'s: `y[p·ldy + c] = clamp(bias[c] + Σ_t x[offs[t] + p·px_step + c] ·
/// wt[t·ldw + c])`, taps with `offs[t] == dw_nhwc::SKIP` skipped; `bias` may be null (zero).
///
/// # Safety
/// For every non-skipped tap and `p < px`, `x + offs[t] + p·px_step` is readable for `n` floats; `wt + t·ldw` for
/// `n` floats for every tap; `bias` (when non-null) for `n`; `y + p·ldy` writable for `n` and not aliased.
pub(crate) type DwNhwcFn = unsafe fn(
    offs: &[usize],
    x: *const f32,
    wt: *const f32,
    ldw: usize,
    bias: *const f32,
    n: usize,
    px: usize,
    px_step: usize,
    ldy: usize,
    clamp: Option<(f32, f32)>,
    y: *mut f32,
);

/// Pooling: `out[ch] = max` (or sum) over the taps of `input[t·c + ch]`, every channel `ch < c`.
///
/// # Safety
/// `input` readable for `len` floats with `(t + 1)·c ≤ len` for every tap, `taps` non-empty, `out` writable for `c`.
pub(crate) type PoolReduceFn =
    unsafe fn(input: *const f32, len: usize, c: usize, taps: &[usize], out: *mut f32, max: bool);

/// Channels-first pooling of a range of output lines (`PoolPlan::run_nchw`'s arguments, and the tier's
/// [`PoolMaxLinesFn`]).
///
/// # Safety
/// The tier's CPU features are present, and those `max_lines` (when given) needs.
pub(crate) type PoolNchwFn = unsafe fn(
    plan: &crate::kernels::pool::PoolPlan<'_>,
    input: &[f32],
    lines: std::ops::Range<usize>,
    out: &mut [f32],
    row: &mut crate::kernels::buf::AlignedBuf,
    max_lines: Option<PoolMaxLinesFn>,
);

/// Channels-first max pooling of some lines of one channel plane over undilated windows, `k` ∈ {2, 3} taps at
/// stride `s` ∈ {1, 2} along the row ([`crate::kernels::pool::MaxLines`]), into `out` (one line of
/// `out.len() / positions` values each; lines with no input row are left unwritten). Returns whether any value
/// read was NaN (the lines are then not NaN-exact: the caller redoes them with the NaN-propagating reduction).
///
/// # Safety
/// The tier's CPU features are present. (Panics if a row lies outside the plane or `out` is not a whole number of
/// lines.)
pub(crate) type PoolMaxLinesFn = unsafe fn(lines: &crate::kernels::pool::MaxLines<'_>, out: &mut [f32]) -> bool;

/// Everything one ISA tier provides.
pub(crate) struct KernelSet {
    pub(crate) isa: Isa,
    pub(crate) mr: usize,
    pub(crate) nr: usize,
    pub(crate) name: &'static str,
    pub(crate) gemm: GemmUkr,
    /// Edge / split tiles stored in place (tiers without it compute such tiles into a temp tile).
    pub(crate) gemm_seg: Option<GemmSegUkr>,
    /// The masked-store kernel with A read in place (channel-vectorized convolution; else A is packed).
    pub(crate) gemm_seg_arows: Option<GemmSegAUkr>,
    pub(crate) epilogue: EpilogueFn,
    pub(crate) gemv_panel: GemvPanelFn,
    pub(crate) gemv_rows: GemvRowsFn,
    pub(crate) dot: DotFn,
    pub(crate) axpy: AxpyFn,
    pub(crate) fold_dot: FoldDotFn,
    pub(crate) dw_row: DwRowFn,
    pub(crate) stride2: Stride2Fn,
    pub(crate) dw_fill: DwFillFn,
    pub(crate) transpose: TransposeFn,
    /// The direct 3×3 depthwise kernel, on tiers that have one (the others take the padded-plane path).
    pub(crate) dw3x3: Option<Dw3x3Fn>,
    pub(crate) dw_nhwc: DwNhwcFn,
    pub(crate) pool_reduce: PoolReduceFn,
    pub(crate) pool_nchw: PoolNchwFn,
    /// The fused max-pooling lines for the common windows, on tiers that have them.
    pub(crate) pool_max_lines: Option<PoolMaxLinesFn>,
}

impl std::fmt::Debug for KernelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KernelSet({})", self.name)
    }
}

/// `a·b + c`, fused when the tier has FMA (`F`), else a plain multiply-add (never a libm call).
#[inline(always)]
pub(crate) fn fma<const F: bool>(a: f32, b: f32, c: f32) -> f32 {
    if F {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Instantiate the portable bodies with the caller's target features; `$nr` is the tier's NR, `$fma` whether the
/// tier has fused multiply-add.
macro_rules! portable_wrappers {
    ($nr:literal, $fma:expr $(, $feat:literal)?) => {
        use crate::kernels::{depthwise, epilogue, gemv, FusedOp};

        $(#[target_feature(enable = $feat)])?
        pub(crate) unsafe fn epilogue(
            c: *mut f32, rsc: isize, m: usize, n: usize, i0: usize, j0: usize, ops: &[FusedOp<'_>],
        ) {
            // SAFETY: the caller upholds `EpilogueFn`'s contract, which is the bodies'.
            unsafe {
                if n == $nr {
                    epilogue::tile_body_fixed::<$nr>(c, rsc, m, i0, j0, ops)
                } else {
                    epilogue::tile_body(c, rsc, m, n, i0, j0, ops)
                }
            }
        }

        $(#[target_feature(enable = $feat)])?
        pub(crate) unsafe fn gemv_panel(
            k: usize, x: *const f32, panel: *const f32, stride: usize, count: usize, out: *mut f32,
        ) {
            debug_assert!((1..=crate::kernels::gemv::GEMV_PANELS).contains(&count), "GEMV panel count {count}");
            // SAFETY: `GemvPanelFn`'s contract.
            unsafe {
                match count {
                    1 => gemv::panel_body::<$nr, 1, { $fma }>(k, x, panel, stride, out),
                    2 => gemv::panel_body::<$nr, 2, { $fma }>(k, x, panel, stride, out),
                    3 => gemv::panel_body::<$nr, 3, { $fma }>(k, x, panel, stride, out),
                    _ => gemv::panel_body::<$nr, 4, { $fma }>(k, x, panel, stride, out),
                }
            }
        }

        $(#[target_feature(enable = $feat)])?
        pub(crate) unsafe fn gemv_rows(k: usize, x: *const f32, b: *const f32, ldb: isize, n: usize, out: *mut f32) {
            // SAFETY: `GemvRowsFn`'s contract.
            unsafe { gemv::rows_body::<{ $fma }>(k, x, b, ldb, n, out) }
        }

        $(#[target_feature(enable = $feat)])?
        pub(crate) unsafe fn dot(n: usize, x: *const f32, y: *const f32) -> f32 {
            // SAFETY: `DotFn`'s contract.
            unsafe { gemv::dot_body::<{ $fma }>(n, x, y) }
        }

        $(#[target_feature(enable = $feat)])?
        pub(crate) unsafe fn axpy(n: usize, a: f32, x: *const f32, y: *mut f32) {
            // SAFETY: `AxpyFn`'s contract.
            unsafe { gemv::axpy_body::<{ $fma }>(n, a, x, y) }
        }

        $(#[target_feature(enable = $feat)])?
        pub(crate) unsafe fn fold_dot(len: usize, xe: *const f32, panel: *const f32, mr: usize, out: *mut f32) {
            // SAFETY: `FoldDotFn`'s contract.
            unsafe { gemv::fold_dot_body::<{ $fma }>(len, xe, panel, mr, out) }
        }

        $(#[target_feature(enable = $feat)])?
        pub(crate) unsafe fn dw_row(lo: usize, hi: usize, taps: &[depthwise::Tap], init: f32, out: *mut f32) {
            // SAFETY: `DwRowFn`'s contract.
            unsafe { depthwise::row_body::<{ $fma }>(lo, hi, taps, init, out) }
        }

        $(#[target_feature(enable = $feat)])?
        #[allow(clippy::too_many_arguments)]
        pub(crate) unsafe fn dw_nhwc(
            offs: &[usize], x: *const f32, wt: *const f32, ldw: usize, bias: *const f32, n: usize, px: usize,
            px_step: usize, ldy: usize, clamp: Option<(f32, f32)>, y: *mut f32,
        ) {
            // SAFETY: `DwNhwcFn`'s contract.
            unsafe {
                crate::kernels::dw_nhwc::run_body::<{ $fma }>(offs, x, wt, ldw, bias, n, px, px_step, ldy, clamp, y)
            }
        }

        $(#[target_feature(enable = $feat)])?
        pub(crate) unsafe fn pool_reduce(
            input: *const f32, len: usize, c: usize, taps: &[usize], out: *mut f32, max: bool,
        ) {
            // SAFETY: `PoolReduceFn`'s contract.
            unsafe { crate::kernels::pool::reduce_body(input, len, c, taps, out, max) }
        }

        $(#[target_feature(enable = $feat)])?
        pub(crate) unsafe fn pool_nchw(
            plan: &crate::kernels::pool::PoolPlan<'_>, input: &[f32], lines: std::ops::Range<usize>, out: &mut [f32],
            row: &mut crate::kernels::buf::AlignedBuf, max_lines: Option<crate::kernels::arch::PoolMaxLinesFn>,
        ) {
            // SAFETY: `PoolNchwFn`'s contract: `max_lines` runs on this CPU.
            unsafe { plan.nchw_body(input, lines, out, row, max_lines) }
        }

        $(#[target_feature(enable = $feat)])?
        pub(crate) unsafe fn stride2(n: usize, src: *const f32, dst: *mut f32) {
            // SAFETY: `Stride2Fn`'s contract.
            for t in 0..n {
                // SAFETY: t < n, 2t ≤ 2n − 2.
                unsafe { *dst.add(t) = *src.add(2 * t) };
            }
        }

        $(#[target_feature(enable = $feat)])?
        pub(crate) unsafe fn dw_fill(
            copies: &[usize], sw: usize, x: *const f32, padded: *mut f32, stride2: crate::kernels::arch::Stride2Fn,
        ) {
            // SAFETY: `DwFillFn`'s contract.
            unsafe { depthwise::fill_body(copies, sw, x, padded, stride2) }
        }

        $(#[target_feature(enable = $feat)])?
        pub(crate) unsafe fn transpose(
            rows: usize, cols: usize, src: *const f32, lds: usize, dst: *mut f32, ldd: usize,
        ) {
            // SAFETY: `TransposeFn`'s contract.
            unsafe { crate::kernels::arch::transpose_body(rows, cols, src, lds, dst, ldd) }
        }
    };
}
pub(crate) use portable_wrappers;

/// Portable [`TransposeFn`]: 8 × 8 blocks, so each source row and destination row is touched in runs.
///
/// # Safety
/// `src` is readable at `i·lds + j` and `dst` writable at `j·ldd + i` for every `i < rows`, `j < cols`; the two do
/// not overlap.
#[inline(always)]
pub(crate) unsafe fn transpose_body(rows: usize, cols: usize, src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
    const B: usize = 8;
    for i0 in (0..rows).step_by(B) {
        for j0 in (0..cols).step_by(B) {
            for j in j0..(j0 + B).min(cols) {
                for i in i0..(i0 + B).min(rows) {
                    // SAFETY: i < rows, j < cols (the contract's ranges).
                    unsafe { *dst.add(j * ldd + i) = *src.add(i * lds + j) };
                }
            }
        }
    }
}

/// `$store!(i)` for each listed row index, each a constant: the micro-kernels' epilogues store their accumulator
/// rows by constant index, so the accumulators stay in registers (with a loop over them LLVM kept them in a stack
/// array, zeroed and spilled on every call: the AVX-512 kernel ran 1.25× faster at K = 27 once fixed).
macro_rules! each_row {
    ($store:ident: $($i:literal)*) => { $( $store!($i); )* };
}
pub(crate) use each_row;

/// Build a `KernelSet` from a module holding `portable_wrappers!` and a micro-kernel.
macro_rules! make_kernel_set {
    ($isa:expr, $mr:expr, $nr:expr, $name:literal, $ukr:path, $m:path) => {{
        use $m as w;
        crate::kernels::arch::KernelSet {
            isa: $isa,
            mr: $mr,
            nr: $nr,
            name: $name,
            gemm: $ukr,
            gemm_seg: None,
            gemm_seg_arows: None,
            epilogue: w::epilogue,
            gemv_panel: w::gemv_panel,
            gemv_rows: w::gemv_rows,
            dot: w::dot,
            axpy: w::axpy,
            fold_dot: w::fold_dot,
            dw_row: w::dw_row,
            stride2: w::stride2,
            dw_fill: w::dw_fill,
            transpose: w::transpose,
            dw3x3: None,
            dw_nhwc: w::dw_nhwc,
            pool_reduce: w::pool_reduce,
            pool_nchw: w::pool_nchw,
            pool_max_lines: None,
        }
    }};
}
pub(crate) use make_kernel_set;

/// (MR, NR) of a tier (also for tiers this build lacks, so tile info can be reported anywhere).
pub(crate) fn tile_shape(isa: Isa) -> (usize, usize) {
    match isa {
        Isa::Generic => (generic::MR, generic::NR),
        Isa::Avx2 => (6, 16),
        Isa::Avx512 => (12, 32),
        Isa::Neon => (8, 12),
    }
}

/// The table of a tier this build has (callers check support first).
pub(crate) fn kernel_set(isa: Isa) -> &'static KernelSet {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => &x86_64::AVX2,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => &x86_64::AVX512,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => &aarch64::NEON,
        _ => &generic::GENERIC,
    }
}
