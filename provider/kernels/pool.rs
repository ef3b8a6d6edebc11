//! Pooling (no ORT types): windowed max / average pooling over 1–3 spatial dims, and global pooling over all pixels,
//! channels-last (NHWC) or channels-first (NCHW).
//!
//! Channels-last, an image is `Π in_spatial` pixels of `channels` contiguous floats. Every output pixel reduces the
//! input pixels under its window; the channel dimension is the inner loop, so each tap is one contiguous row of
//! `channels` floats and the reduction vectorizes across channels. Channels go in blocks of [`LANES`] held in a stack
//! array across all taps of a window (registers, not the output row), then stored once. Output pixels are
//! independent: [`pool_nhwc`] takes a range of them so callers can split an image across threads.
//!
//! Channels-first, each channel is its own plane and the work is split by output *lines* (one output row along the
//! last spatial dim of one channel, [`PoolPlan::run_nchw`]). A 2-D pool's lines whose windows lie inside the image
//! vertically go in bands: the row taps, then the column taps, as two long contiguous sweeps over the band's input
//! rows, sampled at the window origins (rows of 13 floats cost as little per value as rows of 200). Other lines (1-D
//! and 3-D pools, rows clipped by padding) reduce the input rows their windows cover along the outer dims into one
//! row, then reduce along that row, with loops specialized on the common windows (a constant stride of 1 or 2
//! vectorizes as shifted or interleaved loads). Outputs clipped at a row's ends are done one by one.
//!
//! The window rules (which taps count, what an average divides by) are ONNX Runtime's CPU EP rules; the ops layer
//! (`ops/pool.rs`) computes output sizes and pads and picks the [`PoolKind`].

use std::ops::Range;

use super::isa::selected_isa;

/// Channels reduced together in one stack block (a multiple of every vector width we target).
const LANES: usize = 64;

/// Channels computed together by the narrow blocks of [`reduce_taps`]: one AVX-512 vector.
const BLOCK: usize = 16;

/// What a window computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PoolKind {
    /// Maximum of the in-bounds taps; NaN propagates (see [`max_nan`]); `f32::MIN` (ORT's `lowest()`) when no tap is
    /// in bounds.
    Max,
    /// Sum of the in-bounds taps divided by their number (0 when there are none).
    AvgExcludePad,
    /// Sum of the in-bounds taps divided by the full kernel size `Π kernel` (MLAS's include-pad rule).
    AvgIncludePad,
    /// Sum of the in-bounds taps divided by, per dim, the number of taps before `in + pad_end` (padding counts, but a
    /// window hanging past the end padding, as ceil_mode allows, does not count the overhang). ORT's rule for
    /// AveragePool-19+ and for ceil_mode.
    AvgIncludePadClipped,
}

impl PoolKind {
    /// The value of a window with no tap in bounds (ORT: `lowest()` for max, 0 for average).
    fn empty(self) -> f32 {
        if self == PoolKind::Max {
            f32::MIN
        } else {
            0.0
        }
    }

    /// An average's divisor, from a window's in-bounds `taps`, the `full` kernel size and the product of its dims'
    /// `clipped` factors (see the variants).
    fn divisor(self, taps: usize, full: usize, clipped: usize) -> f32 {
        (match self {
            PoolKind::AvgExcludePad => taps,
            PoolKind::AvgIncludePad => full,
            _ => clipped,
        }) as f32
    }
}

/// Geometry of one image's pooling, spatial rank 1–3. Windows are clipped to the input, so any begin/end pads are
/// valid (ONNX Runtime keeps them below the kernel size).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PoolGeometry {
    pub(crate) channels: usize,
    pub(crate) in_spatial: Vec<usize>,
    pub(crate) out_spatial: Vec<usize>,
    pub(crate) kernel: Vec<usize>,
    pub(crate) strides: Vec<usize>,
    pub(crate) dilations: Vec<usize>,
    pub(crate) pads_begin: Vec<usize>,
    pub(crate) pads_end: Vec<usize>,
}

impl PoolGeometry {
    pub(crate) fn in_pixels(&self) -> usize {
        self.in_spatial.iter().product()
    }

    pub(crate) fn out_pixels(&self) -> usize {
        self.out_spatial.iter().product()
    }

    /// Inputs per window (for pricing the work).
    pub(crate) fn kernel_taps(&self) -> usize {
        self.kernel.iter().product()
    }

    fn check(&self) {
        let nd = self.in_spatial.len();
        assert!((1..=3).contains(&nd), "pooling supports 1–3 spatial dims, got {nd}");
        for v in [&self.out_spatial, &self.kernel, &self.strides, &self.dilations, &self.pads_begin, &self.pads_end] {
            assert_eq!(v.len(), nd, "pool geometry: inconsistent ranks {self:?}");
        }
        assert!(
            self.kernel.iter().chain(&self.strides).chain(&self.dilations).all(|&v| v > 0),
            "pool geometry: kernel, strides and dilations must be positive {self:?}"
        );
    }
}

/// The in-bounds taps of one output index along one dim: input indices `first + j·step` for `j < count`, and the
/// dim's factor of the include-pad divisor.
#[derive(Clone, Copy, Debug, Default)]
struct DimTaps {
    first: usize,
    count: usize,
    factor: usize,
}

/// Per-dim tap tables for every output index (cheap: `Σ out_spatial` entries).
fn dim_taps(g: &PoolGeometry, d: usize, clipped: bool) -> Vec<DimTaps> {
    let (n, k, s, dil) = (g.in_spatial[d] as i64, g.kernel[d] as i64, g.strides[d] as i64, g.dilations[d] as i64);
    let (pb, pe) = (g.pads_begin[d] as i64, g.pads_end[d] as i64);
    (0..g.out_spatial[d] as i64)
        .map(|o| {
            let start = o * s - pb;
            // First tap at or after 0, one past the last tap before n (ceiling divisions of non-negative values).
            let lo = if start < 0 { (-start + dil - 1) / dil } else { 0 };
            let hi = if n > start { ((n - start + dil - 1) / dil).min(k) } else { 0 };
            let count = (hi - lo).max(0);
            let factor = if clipped {
                // As ORT: end = min(start + k·dil, n + pad_end); taps = 1 + (end − start − 1) / dil (C division).
                let end = (start + k * dil).min(n + pe);
                1 + (end - start - 1) / dil
            } else {
                k
            };
            DimTaps {
                first: if count > 0 { (start + lo * dil) as usize } else { 0 },
                count: count as usize,
                factor: factor as usize,
            }
        })
        .collect()
}

/// Pool output pixels `pixels` (row-major indices into `out_spatial`) of one image.
///
/// `input` holds the image (`in_pixels × channels`), `out` the selected output pixels (`pixels.len() × channels`).
/// Panics if the geometry is inconsistent or the slices have the wrong length.
#[cfg(test)]
pub(crate) fn pool_nhwc(kind: PoolKind, g: &PoolGeometry, input: &[f32], pixels: Range<usize>, out: &mut [f32]) {
    PoolPlan::new(kind, g).run(input, pixels, out, &mut Vec::new());
}

/// A windowed pool's per-dimension tap tables, built once per run (`Σ out_spatial` entries) and shared by its tasks.
#[derive(Debug)]
pub(crate) struct PoolPlan<'g> {
    kind: PoolKind,
    g: &'g PoolGeometry,
    /// Three dims (unit dims prepended: one input pixel, one output, a 1-tap window).
    tables: [Vec<DimTaps>; 3],
    in_dims: [usize; 3],
    dil: [usize; 3],
    /// Channels-first: the outputs along the last dim whose window lies wholly inside the input row (a range; the
    /// others are clipped by the row's ends).
    inner: Range<usize>,
    /// 2-D channels-first: the output rows whose windows lie wholly inside the image (else empty).
    inner_rows: Range<usize>,
}

/// The outputs along dim `d` whose window lies wholly inside the input (a range: clipping happens only at the ends).
fn interior(table: &[DimTaps], g: &PoolGeometry, d: usize) -> Range<usize> {
    let (k, s, pb) = (g.kernel[d], g.strides[d] as i64, g.pads_begin[d] as i64);
    let whole = |j: usize, t: &DimTaps| t.count == k && t.first as i64 == j as i64 * s - pb;
    let lo = table.iter().enumerate().position(|(j, t)| whole(j, t)).unwrap_or(0);
    let len = table[lo..].iter().enumerate().take_while(|(j, t)| whole(lo + j, t)).count();
    lo..lo + len
}

impl<'g> PoolPlan<'g> {
    /// Panics if the geometry is inconsistent.
    pub(crate) fn new(kind: PoolKind, g: &'g PoolGeometry) -> Self {
        g.check();
        let nd = g.in_spatial.len();
        let clipped = kind == PoolKind::AvgIncludePadClipped;
        let lead = 3 - nd;
        let tables = std::array::from_fn(|d| {
            if d < lead {
                vec![DimTaps { first: 0, count: 1, factor: 1 }]
            } else {
                dim_taps(g, d - lead, clipped)
            }
        });
        let in_dims = std::array::from_fn(|d| if d < lead { 1 } else { g.in_spatial[d - lead] });
        let dil = std::array::from_fn(|d| if d < lead { 1 } else { g.dilations[d - lead] });
        let inner = interior(&tables[2], g, nd - 1);
        let inner_rows = if nd == 2 { interior(&tables[1], g, 0) } else { 0..0 };
        PoolPlan { kind, g, tables, in_dims, dil, inner, inner_rows }
    }

    /// Output lines per channel-first image: `channels × Π out_spatial[..last]`, each `out_spatial[last]` values.
    pub(crate) fn nchw_lines(&self) -> usize {
        self.g.channels * self.tables[0].len() * self.tables[1].len()
    }

    /// Channels-first output lines `lines` of one image (`input`: `channels × in_pixels`, `out`: `lines.len()` rows
    /// of `out_spatial[last]` values) with the kernels of tier `ks` (one this host supports). `rows` and `bufs` are
    /// reusable scratch. Panics on wrong lengths.
    pub(crate) fn run_nchw(
        &self,
        ks: &super::arch::KernelSet,
        input: &[f32],
        lines: Range<usize>,
        out: &mut [f32],
        rows: &mut Vec<usize>,
        bufs: [&mut super::buf::AlignedBuf; 2],
    ) {
        assert!(ks.isa.is_supported(), "tier {} is not supported here", ks.isa.name());
        // SAFETY: the tier's features are present (asserted); the body checks its own slice lengths.
        unsafe { (ks.pool_nchw)(self, input, lines, out, rows, bufs) }
    }

    /// [`super::arch::PoolNchwFn`]'s body, compiled with the tier's features so the row loops inline into it.
    ///
    /// A 2-D pool's output rows whose windows lie inside the image go in bands per channel ([`Self::band_2d`]);
    /// every other line (1-D and 3-D pools, rows clipped by the padding) takes [`Self::lines_general`].
    #[inline(always)]
    pub(crate) fn nchw_body(
        &self,
        input: &[f32],
        lines: Range<usize>,
        out: &mut [f32],
        rows: &mut Vec<usize>,
        bufs: [&mut super::buf::AlignedBuf; 2],
    ) {
        let o2 = self.tables[2].len();
        assert!(lines.end <= self.nchw_lines(), "line range {lines:?} beyond {} lines", self.nchw_lines());
        assert_eq!(input.len(), self.g.channels * self.g.in_pixels(), "pool input length");
        assert_eq!(out.len(), lines.len() * o2, "pool output length");
        if o2 == 0 {
            return;
        }
        let [h, v] = bufs;
        let (o1, band) = (self.tables[1].len(), &self.inner_rows);
        if band.is_empty() || self.inner.is_empty() {
            return self.lines_general(input, lines, out, rows, h);
        }
        // Per channel: the lines before the band, the band, the lines after it.
        let mut l = lines.start;
        while l < lines.end {
            let ch = l / o1;
            let end = lines.end.min((ch + 1) * o1);
            let (a, b) = (l - ch * o1, end - ch * o1);
            // The band's rows within this task's rows a..b (possibly none: a task may lie wholly before or after it).
            let ra = band.start.clamp(a, b);
            let rb = band.end.clamp(ra, b);
            let out_at = |oh: usize| (ch * o1 + oh - lines.start) * o2;
            let (before, rest) = out[out_at(a)..out_at(b)].split_at_mut((ra - a) * o2);
            let (inside, after) = rest.split_at_mut((rb - ra) * o2);
            self.lines_general(input, l..ch * o1 + ra, before, rows, h);
            if ra < rb {
                let plane = self.g.in_pixels();
                self.band_2d(&input[ch * plane..(ch + 1) * plane], ra..rb, inside, [&mut *h, &mut *v]);
            }
            self.lines_general(input, ch * o1 + rb..end, after, rows, h);
            l = end;
        }
    }

    /// Output rows `oh` (all inside the image vertically) of one 2-D channel plane `image` into `out`
    /// (`oh.len()` rows). The windows are separable: `h[p]` reduces the row taps at every input position of the band
    /// and `v[p]` the column taps of `h`, each one long contiguous sweep however narrow the rows are; the outputs
    /// are then `v` sampled at the window origins. Outputs clipped by the row's ends are computed directly.
    #[inline(always)]
    fn band_2d(&self, image: &[f32], oh: Range<usize>, out: &mut [f32], bufs: [&mut super::buf::AlignedBuf; 2]) {
        // The reduction as a constant function, so every sweep is branch-free. Max pooling takes the one-instruction
        // maximum unless the band's input may hold a NaN (a vectorized scan): `max_nan` costs four.
        if self.kind == PoolKind::Max {
            let t1 = &self.tables[1];
            let (i2, k1, d1) = (self.g.in_spatial[1], self.g.kernel[0], self.g.dilations[0]);
            let rows = t1[oh.start].first..t1[oh.end - 1].first + (k1 - 1) * d1 + 1;
            let band = &image[rows.start * i2..rows.end * i2];
            if may_hold_nan(band) {
                self.band_2d_with(image, oh, out, bufs, max_nan)
            } else {
                self.band_2d_with(image, oh, out, bufs, |a, x| if a > x { a } else { x })
            }
        } else {
            self.band_2d_with(image, oh, out, bufs, |a, x| a + x)
        }
    }

    #[inline(always)]
    fn band_2d_with(
        &self,
        image: &[f32],
        oh: Range<usize>,
        out: &mut [f32],
        bufs: [&mut super::buf::AlignedBuf; 2],
        f: impl Fn(f32, f32) -> f32 + Copy,
    ) {
        let (g, t1, t2) = (self.g, &self.tables[1], &self.tables[2]);
        let (i2, o2) = (g.in_spatial[1], t2.len());
        let (k1, d1) = (g.kernel[0], g.dilations[0]);
        let (k2, s2, d2) = (g.kernel[1], g.strides[1], g.dilations[1]);
        let max = self.kind == PoolKind::Max;
        let full_kernel = (k1 * k2) as f32;
        let [hb, vb] = bufs;
        let inner = self.inner.clone();
        let c0 = t2[inner.start].first;
        // Chunks of output rows whose input rows span ~16 KB, so the sweeps' buffers stay in L1.
        let chunk = (4096 / (g.strides[0] * i2).max(1)).max(1);
        for (q0, out_rows) in out.chunks_mut(chunk * o2).enumerate() {
            let oh0 = oh.start + q0 * chunk;
            let n_rows = out_rows.len() / o2;
            // Input rows r0 .. r_end hold every tap of these output rows.
            let r0 = t1[oh0].first;
            let r_end = t1[oh0 + n_rows - 1].first + (k1 - 1) * d1 + 1;
            let x = &image[r0 * i2..r_end * i2];
            let h = hb.get(x.len() - (k2 - 1) * d2);
            sweep(h, x, k2, d2, f);
            let v = vb.get(h.len() - (k1 - 1) * d1 * i2);
            sweep(v, h, k1, d1 * i2, f);
            for (q, out_line) in out_rows.chunks_exact_mut(o2).enumerate() {
                let top = t1[oh0 + q];
                let src = &v[(top.first - r0) * i2 + c0..][..(inner.len() - 1) * s2 + 1];
                let dst = &mut out_line[inner.clone()];
                match s2 {
                    1 => dst.copy_from_slice(src),
                    2 => sample::<2>(src, 2, dst),
                    _ => sample::<0>(src, s2, dst),
                }
                if !max {
                    for o in dst.iter_mut() {
                        *o /= full_kernel;
                    }
                }
                // Windows clipped by the row's ends: every row tap, the in-bounds column taps.
                for j in (0..inner.start).chain(inner.end..o2) {
                    let tj = t2[j];
                    if tj.count == 0 {
                        out_line[j] = self.kind.empty();
                        continue;
                    }
                    let mut acc = image[top.first * i2 + tj.first];
                    for a in 0..k1 {
                        let r = (top.first + a * d1) * i2 + tj.first;
                        for e in usize::from(a == 0)..tj.count {
                            acc = f(acc, image[r + e * d2]);
                        }
                    }
                    out_line[j] =
                        if max { acc } else { acc / self.kind.divisor(k1 * tj.count, k1 * k2, top.factor * tj.factor) };
                }
            }
        }
    }

    /// Output lines `lines` one by one: the line's input rows reduced into one (`row`), then reduced along it.
    #[inline(always)]
    fn lines_general(
        &self,
        input: &[f32],
        lines: Range<usize>,
        out: &mut [f32],
        rows: &mut Vec<usize>,
        row: &mut super::buf::AlignedBuf,
    ) {
        let (kind, g, tables, dil) = (self.kind, self.g, &self.tables, &self.dil);
        let (o0, o1, o2) = (tables[0].len(), tables[1].len(), tables[2].len());
        let (i1, i2) = (self.in_dims[1], self.in_dims[2]);
        let plane = g.in_pixels();
        let max = kind == PoolKind::Max;
        let empty = kind.empty();
        let full_kernel: usize = g.kernel.iter().product();
        let (k2, s2, d2) = (g.kernel[g.kernel.len() - 1], g.strides[g.strides.len() - 1], dil[2]);
        for (l, out_line) in lines.zip(out.chunks_exact_mut(o2)) {
            let (ch, a, b) = (l / (o0 * o1), l / o1 % o0, l % o1);
            let (t0, t1) = (tables[0][a], tables[1][b]);
            let image = &input[ch * plane..(ch + 1) * plane];
            rows.clear();
            for ia in 0..t0.count {
                let y0 = t0.first + ia * dil[0];
                rows.extend((0..t1.count).map(|ib| y0 * i1 + t1.first + ib * dil[1]));
            }
            // The line's input row: the only one, or the outer taps' rows reduced into scratch.
            let src: &[f32] = match rows.as_slice() {
                [] => {
                    out_line.fill(empty);
                    continue;
                }
                [r] => &image[r * i2..(r + 1) * i2],
                _ => {
                    let buf = row.get(i2);
                    // SAFETY: `image` holds `i1 · i0` rows of `i2` floats and every entry of `rows` is one of them;
                    // `buf` is writable for `i2` floats and distinct from `image`.
                    unsafe { reduce_body(image.as_ptr(), image.len(), i2, rows, buf.as_mut_ptr(), max) };
                    buf
                }
            };
            let inner = self.inner.clone();
            if !inner.is_empty() {
                let first = tables[2][inner.start].first;
                assert!(first + (inner.len() - 1) * s2 + (k2 - 1) * d2 < src.len(), "pool window beyond the row");
                // SAFETY: the last tap read (asserted above) is inside `src`; `out_line[inner]` is writable and
                // distinct from `src` (scratch or the input).
                unsafe { line_body(src[first..].as_ptr(), inner.len(), k2, s2, d2, out_line[inner].as_mut_ptr(), max) };
            }
            for j in (0..self.inner.start).chain(self.inner.end..o2) {
                let t2 = tables[2][j];
                out_line[j] = match (0..t2.count).map(|e| src[t2.first + e * d2]).reduce(|acc, x| {
                    if max {
                        max_nan(acc, x)
                    } else {
                        acc + x
                    }
                }) {
                    Some(v) => v,
                    None => empty,
                };
            }
            if !max {
                for (j, v) in out_line.iter_mut().enumerate() {
                    let t2 = tables[2][j];
                    if t2.count == 0 {
                        continue;
                    }
                    // Divide (not multiply by the reciprocal) to round like ORT.
                    *v /= kind.divisor(rows.len() * t2.count, full_kernel, t0.factor * t1.factor * t2.factor);
                }
            }
        }
    }

    /// Output pixels `pixels` as [`pool_nhwc`]; `taps` is reusable scratch.
    pub(crate) fn run(&self, input: &[f32], pixels: Range<usize>, out: &mut [f32], taps: &mut Vec<usize>) {
        let (kind, g, tables, dil) = (self.kind, self.g, &self.tables, &self.dil);
        let c = g.channels;
        assert!(pixels.end <= g.out_pixels(), "pixel range {pixels:?} beyond {} output pixels", g.out_pixels());
        assert_eq!(input.len(), g.in_pixels() * c, "pool input length");
        assert_eq!(out.len(), pixels.len() * c, "pool output length");
        if c == 0 || pixels.is_empty() {
            return;
        }
        let (o1, o2) = (tables[1].len(), tables[2].len());
        let (i1, i2) = (self.in_dims[1], self.in_dims[2]);

        let full_kernel: usize = g.kernel.iter().product();
        // The reduction runs with the tier's vector width (this module itself is compiled for the baseline ISA).
        let ks = selected_isa().kernels();
        for (p, out_px) in pixels.zip(out.chunks_exact_mut(c)) {
            let (t0, t1, t2) = (tables[0][p / (o1 * o2)], tables[1][p / o2 % o1], tables[2][p % o2]);
            taps.clear();
            for a in 0..t0.count {
                let y0 = t0.first + a * dil[0];
                for b in 0..t1.count {
                    let row = (y0 * i1 + t1.first + b * dil[1]) * i2;
                    taps.extend((0..t2.count).map(|e| row + t2.first + e * dil[2]));
                }
            }
            if taps.is_empty() {
                // A window entirely in the padding (possible with dilations): ORT yields lowest() for max, 0 for average.
                out_px.fill(kind.empty());
                continue;
            }
            let max = kind == PoolKind::Max;
            // SAFETY: `input` and `out_px` are live slices of the lengths passed; every tap is a pixel of the image.
            unsafe { (ks.pool_reduce)(input.as_ptr(), input.len(), c, taps, out_px.as_mut_ptr(), max) };
            match kind {
                PoolKind::Max => {}
                _ => {
                    let divisor = kind.divisor(taps.len(), full_kernel, t0.factor * t1.factor * t2.factor);
                    // Divide (not multiply by the reciprocal) to round like ORT.
                    out_px.iter_mut().for_each(|v| *v /= divisor);
                }
            }
        }
    }
}

/// `max(a, x)` that propagates NaN from either side (f32::max would drop it). ORT's MLAS max pooling keeps or drops a
/// NaN depending on its position in the window, so no rule matches it everywhere; propagating means every window
/// ORT turns NaN is NaN here too.
#[inline(always)]
fn max_nan(a: f32, x: f32) -> f32 {
    // This order (a > x first) compiles to fewer vector ops than `x > a || x.is_nan()`: ~20% faster on 3×3 pools.
    if a > x || a.is_nan() {
        a
    } else {
        x
    }
}

/// [`super::arch::PoolReduceFn`]'s body: max or sum of the taps, per channel.
///
/// # Safety
/// `input` is readable for `len` floats, `out` writable for `c` and not aliased; every tap `t` has
/// `(t + 1) · c ≤ len`.
#[inline(always)]
pub(crate) unsafe fn reduce_body(input: *const f32, len: usize, c: usize, taps: &[usize], out: *mut f32, max: bool) {
    // SAFETY: the caller's contract.
    let (input, out) = unsafe { (std::slice::from_raw_parts(input, len), std::slice::from_raw_parts_mut(out, c)) };
    if max {
        reduce_taps(input, c, taps, out, max_nan)
    } else {
        reduce_taps(input, c, taps, out, |a, x| a + x)
    }
}

/// Whether `v` may hold a NaN: true for any NaN, and also for an infinity (`x · 0` is NaN for both; a false
/// positive only costs the slower NaN-propagating path). Float adds with no early exit: the scan vectorizes (a
/// `bool` formulation compiled to mask shuffles three times slower than the pooling itself).
#[inline(always)]
fn may_hold_nan(v: &[f32]) -> bool {
    const B: usize = 16;
    let mut acc = [0.0f32; B];
    let full = v.len() / B * B;
    for b in (0..full).step_by(B) {
        let block: &[f32; B] = v[b..b + B].try_into().expect("B slice");
        for l in 0..B {
            acc[l] += block[l] * 0.0;
        }
    }
    let tail: f32 = v[full..].iter().map(|&x| x * 0.0).sum();
    (acc.iter().sum::<f32>() + tail).is_nan()
}

/// `dst[p] = f(...f(src[p], src[p + step])..., src[p + (k − 1)·step])` for every `p`: one contiguous sweep (2 and 3
/// taps in a single pass, more as one pass per tap).
#[inline(always)]
fn sweep(dst: &mut [f32], src: &[f32], k: usize, step: usize, f: impl Fn(f32, f32) -> f32 + Copy) {
    // Plain index loops over slices of equal length (bounds checks fold away): iterator adapters here were left
    // out of line by the compiler, i.e. compiled without the tier's vector features.
    let n = dst.len();
    let tap = |e: usize| &src[e * step..e * step + n];
    match k {
        1 => dst.copy_from_slice(tap(0)),
        2 => {
            let (a, b) = (tap(0), tap(1));
            for p in 0..n {
                dst[p] = f(a[p], b[p]);
            }
        }
        3 => {
            let (a, b, c) = (tap(0), tap(1), tap(2));
            for p in 0..n {
                dst[p] = f(f(a[p], b[p]), c[p]);
            }
        }
        _ => {
            dst.copy_from_slice(tap(0));
            for e in 1..k {
                let t = tap(e);
                for p in 0..n {
                    dst[p] = f(dst[p], t[p]);
                }
            }
        }
    }
}

/// `dst[j] = src[j·s]`, `s` = `S` when non-zero, else `stride` (a constant 2 vectorizes as wide loads and a shuffle).
#[inline(always)]
fn sample<const S: usize>(src: &[f32], stride: usize, dst: &mut [f32]) {
    let s = if S == 0 { stride } else { S };
    let n = dst.len();
    assert!(n == 0 || (n - 1) * s < src.len(), "pool sample beyond the row");
    for (j, d) in dst.iter_mut().enumerate() {
        // SAFETY: j·s ≤ (n − 1)·s < src.len() (asserted).
        *d = unsafe { *src.get_unchecked(j * s) };
    }
}

/// Channels-first pooling along one row: `out[j] = max` (or sum) of `src[j·stride + e·dil]` over `e < k`, every
/// `j < n`.
///
/// # Safety
/// `src` readable at every such index (`n ≥ 1`, `k ≥ 1`), `out` writable for `n` floats and not overlapping `src`.
#[inline(always)]
unsafe fn line_body(src: *const f32, n: usize, k: usize, stride: usize, dil: usize, out: *mut f32, max: bool) {
    let len = (n - 1) * stride + (k - 1) * dil + 1;
    // SAFETY: the caller's contract: `src` readable for every tap (the last is `len − 1`), `out` for `n`, disjoint.
    let (src, out) = unsafe { (std::slice::from_raw_parts(src, len), std::slice::from_raw_parts_mut(out, n)) };
    // Common windows (2 or 3 taps, undilated, stride 1 or 2) with every constant known: one vectorized pass, each
    // output stored once.
    match (k, stride, dil, max) {
        (2, 1, 1, true) => return line_fixed::<2, 1>(src, out, max_nan),
        (2, 2, 1, true) => return line_fixed::<2, 2>(src, out, max_nan),
        (3, 1, 1, true) => return line_fixed::<3, 1>(src, out, max_nan),
        (3, 2, 1, true) => return line_fixed::<3, 2>(src, out, max_nan),
        (2, 1, 1, false) => return line_fixed::<2, 1>(src, out, |a, x| a + x),
        (2, 2, 1, false) => return line_fixed::<2, 2>(src, out, |a, x| a + x),
        (3, 1, 1, false) => return line_fixed::<3, 1>(src, out, |a, x| a + x),
        (3, 2, 1, false) => return line_fixed::<3, 2>(src, out, |a, x| a + x),
        _ => {}
    }
    // A constant stride lets the loops below vectorize (shifted or interleaved loads).
    match (stride, max) {
        (1, true) => line_taps::<1>(src, 1, k, dil, out, max_nan),
        (2, true) => line_taps::<2>(src, 2, k, dil, out, max_nan),
        (_, true) => line_taps::<0>(src, stride, k, dil, out, max_nan),
        (1, false) => line_taps::<1>(src, 1, k, dil, out, |a, x| a + x),
        (2, false) => line_taps::<2>(src, 2, k, dil, out, |a, x| a + x),
        (_, false) => line_taps::<0>(src, stride, k, dil, out, |a, x| a + x),
    }
}

/// `out[j] = f(...f(src[j·S], src[j·S + 1])..., src[j·S + K − 1])`: the taps of one output reduced in registers and
/// stored once (the loop vectorizes across outputs with wide loads and shuffles).
#[inline(always)]
fn line_fixed<const K: usize, const S: usize>(src: &[f32], out: &mut [f32], f: impl Fn(f32, f32) -> f32 + Copy) {
    let n = out.len();
    assert!(n > 0 && (n - 1) * S + K <= src.len(), "pool line: taps beyond the row");
    for (j, o) in out.iter_mut().enumerate() {
        // SAFETY: j·S + e ≤ (n − 1)·S + K − 1 < src.len() (asserted).
        let tap = |e: usize| unsafe { *src.get_unchecked(j * S + e) };
        let mut acc = tap(0);
        for e in 1..K {
            acc = f(acc, tap(e));
        }
        *o = acc;
    }
}

/// `out[j] = f(...f(src[j·s], src[j·s + dil])..., src[j·s + (k−1)·dil])`, `s` = `S` when non-zero, else `stride`.
/// One pass over the outputs per tap: each pass is a plain loop that a constant `S` lets the compiler vectorize
/// (shifted loads for 1, wide loads and a deinterleaving shuffle for 2).
#[inline(always)]
fn line_taps<const S: usize>(
    src: &[f32],
    stride: usize,
    k: usize,
    dil: usize,
    out: &mut [f32],
    f: impl Fn(f32, f32) -> f32 + Copy,
) {
    let s = if S == 0 { stride } else { S };
    let n = out.len();
    assert!(n > 0 && k > 0 && (n - 1) * s + (k - 1) * dil < src.len(), "pool line: taps beyond the row");
    sample::<S>(src, stride, out);
    for e in 1..k {
        let off = e * dil;
        for (j, o) in out.iter_mut().enumerate() {
            // SAFETY: j·s + e·dil ≤ (n − 1)·s + (k − 1)·dil < src.len() (asserted).
            *o = f(*o, unsafe { *src.get_unchecked(j * s + off) });
        }
    }
}

/// Global pooling of channel-first planes: `out[i]` = max or mean of `input[i·plane .. (i + 1)·plane]`.
pub(crate) fn global_pool_nchw(max: bool, input: &[f32], plane: usize, out: &mut [f32]) {
    assert!(plane > 0 && input.len() == plane * out.len(), "global pool input length");
    for (o, p) in out.iter_mut().zip(input.chunks_exact(plane)) {
        // Partial results in a block of lanes (vectorized), folded at the end; each starts at f's identity.
        const B: usize = 16;
        let f = |a: f32, x: f32| if max { max_nan(a, x) } else { a + x };
        let mut acc = [if max { f32::NEG_INFINITY } else { 0.0 }; B];
        let mut blocks = p.chunks_exact(B);
        for b in &mut blocks {
            for (a, &x) in acc.iter_mut().zip(b) {
                *a = f(*a, x);
            }
        }
        let v = acc.iter().chain(blocks.remainder()).copied().reduce(f).expect("non-empty block");
        *o = if max { v } else { v / plane as f32 };
    }
}

/// `out[ch] = f(...f(in[taps[0]][ch], in[taps[1]][ch])..., in[taps[last]][ch])` over all channels (`taps` non-empty;
/// each tap is a pixel index). Blocks of [`LANES`] channels accumulate in a stack array across all taps.
#[inline(always)]
fn reduce_taps(input: &[f32], c: usize, taps: &[usize], out: &mut [f32], f: impl Fn(f32, f32) -> f32 + Copy) {
    let (&first, rest) = taps.split_first().expect("reduce_taps needs a tap");
    let mut c0 = 0;
    while c0 + LANES <= c {
        let mut acc: [f32; LANES] = input[first * c + c0..][..LANES].try_into().expect("LANES slice");
        for &t in rest {
            let row: &[f32; LANES] = input[t * c + c0..][..LANES].try_into().expect("LANES slice");
            for (a, &x) in acc.iter_mut().zip(row) {
                *a = f(*a, x);
            }
        }
        out[c0..c0 + LANES].copy_from_slice(&acc);
        c0 += LANES;
    }
    if c0 < c && c >= BLOCK {
        // Blocks of BLOCK channels, the last overlapping the one before (its channels are recomputed, not
        // accumulated, so the overlap is harmless).
        loop {
            let b = c0.min(c - BLOCK);
            let mut acc: [f32; BLOCK] = input[first * c + b..][..BLOCK].try_into().expect("BLOCK slice");
            for &t in rest {
                let row: &[f32; BLOCK] = input[t * c + b..][..BLOCK].try_into().expect("BLOCK slice");
                for (a, &x) in acc.iter_mut().zip(row) {
                    *a = f(*a, x);
                }
            }
            out[b..b + BLOCK].copy_from_slice(&acc);
            if b == c - BLOCK {
                break;
            }
            c0 += BLOCK;
        }
    } else {
        for (ch, o) in out.iter_mut().enumerate().skip(c0) {
            *o = rest.iter().fold(input[first * c + ch], |acc, &t| f(acc, input[t * c + ch]));
        }
    }
}

/// Global pooling of one image over channels `chans`: `out[i]` = max or mean over all pixels of channel
/// `chans.start + i`. `input` is `pixels × channels` (at least one pixel); `out` has `chans.len()` values.
pub(crate) fn global_pool_nhwc(max: bool, input: &[f32], channels: usize, chans: Range<usize>, out: &mut [f32]) {
    assert!(chans.end <= channels, "channel range {chans:?} beyond {channels} channels");
    assert_eq!(out.len(), chans.len(), "global pool output length");
    if chans.is_empty() {
        return;
    }
    assert!(input.len().is_multiple_of(channels) && !input.is_empty(), "global pool input length");
    let pixels = input.len() / channels;
    let mut c0 = chans.start;
    let mut o = 0;
    // Full blocks: the accumulator stays in registers while the pixel loop streams the input.
    while c0 + LANES <= chans.end {
        let mut acc: [f32; LANES] = input[c0..c0 + LANES].try_into().expect("LANES slice");
        for p in 1..pixels {
            let row: &[f32; LANES] = input[p * channels + c0..][..LANES].try_into().expect("LANES slice");
            if max {
                acc.iter_mut().zip(row).for_each(|(a, &x)| *a = max_nan(*a, x));
            } else {
                acc.iter_mut().zip(row).for_each(|(a, &x)| *a += x);
            }
        }
        out[o..o + LANES].copy_from_slice(&acc);
        c0 += LANES;
        o += LANES;
    }
    if c0 < chans.end {
        let tail = &mut out[o..];
        tail.copy_from_slice(&input[c0..chans.end]);
        for p in 1..pixels {
            let row = &input[p * channels + c0..p * channels + chans.end];
            if max {
                tail.iter_mut().zip(row).for_each(|(a, &x)| *a = max_nan(*a, x));
            } else {
                tail.iter_mut().zip(row).for_each(|(a, &x)| *a += x);
            }
        }
    }
    if !max {
        let n = pixels as f32;
        out.iter_mut().for_each(|v| *v /= n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn geom(
        c: usize,
        inp: &[usize],
        out: &[usize],
        k: &[usize],
        s: &[usize],
        d: &[usize],
        pb: &[usize],
        pe: &[usize],
    ) -> PoolGeometry {
        PoolGeometry {
            channels: c,
            in_spatial: inp.to_vec(),
            out_spatial: out.to_vec(),
            kernel: k.to_vec(),
            strides: s.to_vec(),
            dilations: d.to_vec(),
            pads_begin: pb.to_vec(),
            pads_end: pe.to_vec(),
        }
    }

    #[test]
    fn max_and_average_2x2_by_hand() {
        // One channel, 3×3 input 1..9, kernel 2×2 stride 1, pad 1 at the end of each dim (out 3×3).
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let g = geom(1, &[3, 3], &[3, 3], &[2, 2], &[1, 1], &[1, 1], &[0, 0], &[1, 1]);
        let mut y = vec![0.0; 9];
        pool_nhwc(PoolKind::Max, &g, &x, 0..9, &mut y);
        assert_eq!(y, vec![5.0, 6.0, 6.0, 8.0, 9.0, 9.0, 8.0, 9.0, 9.0]);
        pool_nhwc(PoolKind::AvgExcludePad, &g, &x, 0..9, &mut y);
        assert_eq!(y, vec![3.0, 4.0, 4.5, 6.0, 7.0, 7.5, 7.5, 8.5, 9.0]);
        pool_nhwc(PoolKind::AvgIncludePad, &g, &x, 0..9, &mut y);
        assert_eq!(y, vec![3.0, 4.0, 2.25, 6.0, 7.0, 3.75, 3.75, 4.25, 2.25]);
    }

    #[test]
    fn pixel_ranges_and_channel_blocks_agree_with_whole_image() {
        // 70 channels: one full LANES block and a tail; 3-D with dilation and padding.
        let c = 70;
        let g = geom(c, &[4, 5, 6], &[3, 3, 4], &[2, 3, 2], &[1, 2, 2], &[2, 1, 1], &[1, 1, 0], &[0, 1, 1]);
        let x: Vec<f32> = (0..g.in_pixels() * c).map(|i| ((i * 7919) % 1013) as f32 - 500.0).collect();
        for kind in [PoolKind::Max, PoolKind::AvgExcludePad, PoolKind::AvgIncludePad, PoolKind::AvgIncludePadClipped] {
            let n = g.out_pixels();
            let mut whole = vec![0.0; n * c];
            pool_nhwc(kind, &g, &x, 0..n, &mut whole);
            let mut parts = vec![0.0; n * c];
            for r in [0..5, 5..6, 6..n] {
                pool_nhwc(kind, &g, &x, r.clone(), &mut parts[r.start * c..r.end * c]);
            }
            assert_eq!(whole, parts, "{kind:?}");
        }
    }

    #[test]
    fn channels_first_lines_agree_with_channels_last() {
        // 1-D to 3-D, dilations, pads, strides 1–3, ceil-mode-like overhang (pads_end past the input): every line
        // range split against the channels-last result of the same geometry.
        let cases = [
            geom(5, &[4, 5, 6], &[3, 3, 4], &[2, 3, 2], &[1, 2, 2], &[2, 1, 1], &[1, 1, 0], &[0, 1, 1]),
            geom(3, &[11, 13], &[5, 6], &[3, 3], &[2, 2], &[1, 1], &[0, 0], &[0, 0]),
            geom(4, &[9, 10], &[9, 10], &[3, 3], &[1, 1], &[1, 1], &[1, 1], &[1, 1]),
            geom(2, &[7, 23], &[3, 8], &[2, 3], &[3, 3], &[2, 2], &[1, 2], &[1, 2]),
            geom(3, &[17], &[9], &[4], &[2], &[1], &[2], &[3]),
            geom(2, &[3, 2], &[2, 1], &[5, 5], &[2, 2], &[1, 1], &[2, 2], &[2, 2]),
            geom(2, &[2], &[1], &[2], &[1], &[3], &[1], &[1]),
        ];
        for g in &cases {
            let c = g.channels;
            let (ip, op) = (g.in_pixels(), g.out_pixels());
            let mut x: Vec<f32> = (0..ip * c).map(|i| ((i * 7919) % 1013) as f32 - 500.0).collect();
            x[ip / 2] = f32::NAN;
            // Infinities in another channel (the max pool's fast path is only taken for bands without NaN or ±inf).
            if c > 1 {
                x[ip + ip / 3] = f32::INFINITY;
                x[ip + ip / 2] = f32::NEG_INFINITY;
            }
            let x_last: Vec<f32> = (0..ip * c).map(|i| x[(i % c) * ip + i / c]).collect();
            for kind in
                [PoolKind::Max, PoolKind::AvgExcludePad, PoolKind::AvgIncludePad, PoolKind::AvgIncludePadClipped]
            {
                let plan = PoolPlan::new(kind, g);
                let mut want = vec![0.0; op * c];
                plan.run(&x_last, 0..op, &mut want, &mut Vec::new());
                let lines = plan.nchw_lines();
                let o2 = *g.out_spatial.last().unwrap();
                for isa in crate::kernels::Isa::ALL.into_iter().filter(|i| i.is_supported()) {
                    let mut got = vec![f32::INFINITY; op * c];
                    let mut rows = Vec::new();
                    let (mut h, mut v) = Default::default();
                    for r in [0..1.min(lines), 1.min(lines)..lines / 2, lines / 2..lines] {
                        let part = &mut got[r.start * o2..r.end * o2];
                        plan.run_nchw(isa.kernels(), &x, r.clone(), part, &mut rows, [&mut h, &mut v]);
                    }
                    for (i, &v) in got.iter().enumerate() {
                        let w = want[(i % op) * c + i / op];
                        let same = (v.is_nan() && w.is_nan()) || v == w || (v - w).abs() <= 1e-5 * w.abs().max(1.0);
                        let (ch, o) = (i / op, i % op);
                        assert!(same, "{} {kind:?} {g:?}: channel {ch} output {o}: got {v}, want {w}", isa.name());
                    }
                }
            }
        }
    }

    #[test]
    fn channels_first_split_at_every_line() {
        // Several clipped rows on each side of the band (YOLOv5's SPPF pool is 5×5, stride 1, pads 2): a task may
        // start or end before, inside or after the band of every channel.
        for g in [
            geom(2, &[7, 7], &[9, 9], &[3, 3], &[1, 1], &[1, 1], &[2, 2], &[2, 2]),
            geom(2, &[20, 20], &[20, 20], &[5, 5], &[1, 1], &[1, 1], &[2, 2], &[2, 2]),
            geom(2, &[9, 8], &[4, 3], &[2, 3], &[3, 3], &[2, 1], &[1, 1], &[2, 1]),
        ] {
            let (c, ip, op) = (g.channels, g.in_pixels(), g.out_pixels());
            let x: Vec<f32> = (0..ip * c).map(|i| ((i * 7919) % 1013) as f32 - 500.0).collect();
            let x_last: Vec<f32> = (0..ip * c).map(|i| x[(i % c) * ip + i / c]).collect();
            for kind in
                [PoolKind::Max, PoolKind::AvgExcludePad, PoolKind::AvgIncludePad, PoolKind::AvgIncludePadClipped]
            {
                let plan = PoolPlan::new(kind, &g);
                let mut want = vec![0.0; op * c];
                plan.run(&x_last, 0..op, &mut want, &mut Vec::new());
                let (lines, o2) = (plan.nchw_lines(), g.out_spatial[1]);
                for cut in 0..=lines {
                    let mut got = vec![f32::INFINITY; op * c];
                    let (mut rows, (mut h, mut v)) = (Vec::new(), Default::default());
                    for r in [0..cut, cut..lines] {
                        let part = &mut got[r.start * o2..r.end * o2];
                        plan.run_nchw(selected_isa().kernels(), &x, r, part, &mut rows, [&mut h, &mut v]);
                    }
                    for (i, &v) in got.iter().enumerate() {
                        let w = want[(i % op) * c + i / op];
                        assert!((v - w).abs() <= 1e-5 * w.abs().max(1.0), "{kind:?} {g:?} cut {cut}: {i}: {v} vs {w}");
                    }
                }
            }
        }
    }

    #[test]
    fn global_pools_channels_first() {
        for plane in [1, 15, 16, 17, 49, 100] {
            let x: Vec<f32> = (0..3 * plane).map(|i| ((i * 31) % 97) as f32 - 40.0).collect();
            for max in [false, true] {
                let mut got = [0.0; 3];
                global_pool_nchw(max, &x, plane, &mut got);
                for (ch, g) in got.iter().enumerate() {
                    let p = &x[ch * plane..(ch + 1) * plane];
                    let w = if max {
                        p.iter().copied().fold(f32::MIN, f32::max)
                    } else {
                        p.iter().sum::<f32>() / plane as f32
                    };
                    assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "plane {plane} max {max}: {g} vs {w}");
                }
            }
            let mut nan = x[..plane].to_vec();
            nan[plane - 1] = f32::NAN;
            let mut m = [0.0];
            global_pool_nchw(true, &nan, plane, &mut m);
            assert!(m[0].is_nan());
        }
    }

    #[test]
    fn window_fully_in_padding() {
        // in 2, kernel 2 dilation 3, pads 1/1: the window's taps are −1 and 2, both outside.
        let g = geom(2, &[2], &[1], &[2], &[1], &[3], &[1], &[1]);
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut y = [9.0; 2];
        pool_nhwc(PoolKind::Max, &g, &x, 0..1, &mut y);
        assert_eq!(y, [f32::MIN; 2]);
        pool_nhwc(PoolKind::AvgIncludePadClipped, &g, &x, 0..1, &mut y);
        assert_eq!(y, [0.0; 2]);
    }

    #[test]
    fn global_pools_over_channel_ranges() {
        let (p, c) = (13, 131);
        let x: Vec<f32> = (0..p * c).map(|i| ((i * 31) % 97) as f32).collect();
        for max in [false, true] {
            let want: Vec<f32> = (0..c)
                .map(|ch| {
                    let vals = (0..p).map(|q| x[q * c + ch]);
                    if max {
                        vals.fold(f32::MIN, f32::max)
                    } else {
                        vals.sum::<f32>() / p as f32
                    }
                })
                .collect();
            let mut got = vec![0.0; c];
            global_pool_nhwc(max, &x, c, 0..c, &mut got);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "{g} vs {w}");
            }
            let mut part = vec![0.0; 70];
            global_pool_nhwc(max, &x, c, 61..131, &mut part);
            assert_eq!(part, got[61..]);
        }
    }

    #[test]
    fn max_propagates_nan() {
        let x = [1.0, f32::NAN, 3.0, 0.5];
        let g = geom(1, &[4], &[3], &[2], &[1], &[1], &[0], &[0]);
        let mut y = [0.0; 3];
        pool_nhwc(PoolKind::Max, &g, &x, 0..3, &mut y);
        assert!(y[0].is_nan() && y[1].is_nan() && y[2] == 3.0, "{y:?}");
        let mut m = [0.0];
        global_pool_nhwc(true, &x, 1, 0..1, &mut m);
        assert!(m[0].is_nan());
    }
}
