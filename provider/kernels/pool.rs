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
//! last spatial dim of one channel, [`PoolPlan::run_nchw`]). Each line reduces the input rows its windows cover
//! along the outer dims into one row padded with the reduction's identity (so no output is clipped at the row's
//! ends), then reduces along that row with loops specialized on the common windows (a constant stride of 1 or 2
//! vectorizes as shifted or interleaved loads). Both steps run in blocks of 16, 8 or 4 values held in registers, the
//! last block overlapping the one before, so rows of 13 floats take no scalar tail. Max pooling takes the
//! one-instruction maximum and redoes a channel's lines with the NaN-propagating one only when the values it read
//! were not all finite. Tiers with a fused max-pooling line kernel ([`MaxLines`]) run the common max pools (2 or 3
//! taps at stride 1 or 2 along the row) through it instead, reducing rows and windows in registers.
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
    /// The input's last two dims (unit dims prepended).
    rows_cols: [usize; 2],
    dil: [usize; 3],
    /// Channels-first: every line position's input rows (offsets in a channel plane), shared by all channels:
    /// position p's are `line_rows[starts[p]..starts[p + 1]]`, `starts` being the first `positions + 1` entries.
    line_rows: Vec<usize>,
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
        let in_dim = |d: usize| if d < lead { 1 } else { g.in_spatial[d - lead] };
        let dil = std::array::from_fn(|d| if d < lead { 1 } else { g.dilations[d - lead] });
        let (rows_cols, positions) = ([in_dim(1), in_dim(2)], tables[0].len() * tables[1].len());
        let mut line_rows = vec![0; positions + 1];
        for p in 0..positions {
            let (t0, t1) = (tables[0][p / tables[1].len()], tables[1][p % tables[1].len()]);
            for ia in 0..t0.count {
                let y0 = t0.first + ia * dil[0];
                line_rows.extend((0..t1.count).map(|ib| (y0 * rows_cols[0] + t1.first + ib * dil[1]) * rows_cols[1]));
            }
            line_rows[p + 1] = line_rows.len() - positions - 1;
        }
        PoolPlan { kind, g, tables, rows_cols, dil, line_rows }
    }

    /// Output lines per channel-first image: `channels × Π out_spatial[..last]`, each `out_spatial[last]` values.
    pub(crate) fn nchw_lines(&self) -> usize {
        self.g.channels * self.tables[0].len() * self.tables[1].len()
    }

    /// Channels-first output lines `lines` of one image (`input`: `channels × in_pixels`, `out`: `lines.len()` rows
    /// of `out_spatial[last]` values) with the kernels of tier `ks` (one this host supports). `row` is reusable
    /// scratch. Panics on wrong lengths.
    pub(crate) fn run_nchw(
        &self,
        ks: &super::arch::KernelSet,
        input: &[f32],
        lines: Range<usize>,
        out: &mut [f32],
        row: &mut super::buf::AlignedBuf,
    ) {
        assert!(ks.isa.is_supported(), "tier {} is not supported here", ks.isa.name());
        // SAFETY: the tier's features are present (asserted); the body checks its own slice lengths.
        unsafe { (ks.pool_nchw)(self, input, lines, out, row, ks.pool_max_lines) }
    }

    /// [`super::arch::PoolNchwFn`]'s body, compiled with the tier's features so the loops below inline into it.
    ///
    /// Per output line: the input rows its windows cover along the outer dims are reduced into one padded row
    /// (`row`: the reduction's identity where windows reach into the padding or past the end), which is then reduced
    /// along its length (in groups of lines, see [`LineJob`]). Max pooling runs the one-instruction maximum and sums
    /// every value it reads on the way; a non-finite sum over a channel's lines (a NaN, or an infinity: a false
    /// positive only costs time) redoes them with the NaN-propagating [`max_nan`].
    ///
    /// Max pooling over undilated 2- or 3-tap windows at stride 1 or 2 along the row (every common max pool) runs
    /// the tier's fused line kernel instead when it has one (`max_lines`): the rows' maximum and the windows along
    /// it in registers, no padded row in between (3 × 3 / 2 pools 1.1–1.2× faster alone, `bench_pool_nchw`;
    /// SqueezeNet's first two inside the model 108 → 96 and 66 → 57 µs); a channel where it read a NaN is redone
    /// by the path above with the NaN-propagating maximum directly.
    ///
    /// # Safety
    /// `max_lines`, when given, is a kernel whose CPU features this CPU has (the tier's own, as `run_nchw`
    /// passes it from the tier it asserted).
    #[inline(always)]
    pub(crate) unsafe fn nchw_body(
        &self,
        input: &[f32],
        lines: Range<usize>,
        out: &mut [f32],
        row: &mut super::buf::AlignedBuf,
        max_lines: Option<super::arch::PoolMaxLinesFn>,
    ) {
        let (kind, g, tables, dil) = (self.kind, self.g, &self.tables, &self.dil);
        let (o0, o1, o2) = (tables[0].len(), tables[1].len(), tables[2].len());
        assert!(lines.end <= self.nchw_lines(), "line range {lines:?} beyond {} lines", self.nchw_lines());
        assert_eq!(input.len(), g.channels * g.in_pixels(), "pool input length");
        assert_eq!(out.len(), lines.len() * o2, "pool output length");
        if o2 == 0 || lines.is_empty() {
            return;
        }
        let i2 = self.rows_cols[1];
        let last = g.kernel.len() - 1;
        let (k2, s2, d2, pb) = (g.kernel[last], g.strides[last], dil[2], g.pads_begin[last]);
        let max = kind == PoolKind::Max;
        // The padded row covers every tap of the line; input column x sits at `pb + x`, and only the columns
        // `0..cols` are reached.
        let span = (o2 - 1) * s2 + (k2 - 1) * d2 + 1;
        let lead = pb.min(span);
        let cols = i2.min(span - lead);
        let pitch = span.next_multiple_of(16);
        // Rows of a few thousand floats need no grouping (a row is long read back well after its stores), and a
        // long 1-D row must not take eight times its size in scratch.
        let group = (LINE_GROUP_FLOATS / pitch).clamp(1, LINE_GROUP);
        // Set up on first use only: the fused kernel needs none (a convolution's band pooled one channel per call
        // made this fill a tenth of the pool's time).
        let identity = if max { f32::NEG_INFINITY } else { 0.0 };
        let mut filled = false;
        let mut fill_padded = |row: &mut super::buf::AlignedBuf| {
            let padded = row.get(group * pitch);
            if !std::mem::replace(&mut filled, true) {
                for r in padded.chunks_exact_mut(pitch) {
                    r[..lead].fill(identity);
                    r[lead + cols..span].fill(identity);
                }
            }
        };
        // Max windows with no tap in the input (dilations can make them) yield ORT's lowest(), not −∞.
        let hollow = max && tables[2].iter().any(|t| t.count == 0);
        let fused_ok = max && !hollow && d2 == 1 && matches!((k2, s2), (2 | 3, 1 | 2));
        let per_channel = o0 * o1;
        let (starts, rows) = self.line_rows.split_at(per_channel + 1);
        let job = LineJob { starts, rows, body: lead..lead + cols, span, pitch, window: (k2, s2, d2) };
        let plane = g.in_pixels();
        let full_kernel: usize = g.kernel.iter().product();
        let mut l = lines.start;
        while l < lines.end {
            // One channel's lines; max pooling checks them for NaN together.
            let ch = l / per_channel;
            let image = &input[ch * plane..(ch + 1) * plane];
            let positions = l - ch * per_channel..lines.end.min((ch + 1) * per_channel) - ch * per_channel;
            let outs = &mut out[(l - lines.start) * o2..][..positions.len() * o2];
            l += positions.len();
            let mut sum = [0.0f32; 16];
            if max {
                // The fused kernel when it applies; a NaN it read sends the lines to the exact maximum straight away.
                let fused = max_lines.filter(|_| fused_ok).map(|fused| {
                    let lines = MaxLines { image, starts, rows, positions: positions.clone(), w: i2, k: k2, s: s2, pb };
                    // SAFETY: `max_lines` runs on this CPU (this function's contract); `MaxLines` is checked inside.
                    unsafe { fused(&lines, outs) }
                });
                let fast = |a: f32, x: f32| if a > x { a } else { x };
                if fused.is_none() {
                    fill_padded(row);
                    job.run(image, positions.clone(), row.get(group * pitch), outs, fast, &mut sum);
                }
                if fused.unwrap_or_else(|| !sum.iter().all(|v| v.is_finite())) {
                    fill_padded(row);
                    job.run(image, positions.clone(), row.get(group * pitch), outs, max_nan, &mut sum);
                }
                for (p, out_line) in positions.zip(outs.chunks_exact_mut(o2)) {
                    if starts[p] == starts[p + 1] {
                        out_line.fill(kind.empty());
                    } else if hollow {
                        for (o, t2) in out_line.iter_mut().zip(&tables[2]) {
                            if t2.count == 0 {
                                *o = kind.empty();
                            }
                        }
                    }
                }
            } else {
                fill_padded(row);
                job.run(image, positions.clone(), row.get(group * pitch), outs, |a, x| a + x, &mut sum);
                for (p, out_line) in positions.zip(outs.chunks_exact_mut(o2)) {
                    let taps = starts[p + 1] - starts[p];
                    let (t0, t1) = (tables[0][p / o1], tables[1][p % o1]);
                    for (v, t2) in out_line.iter_mut().zip(&tables[2]) {
                        *v = if taps * t2.count == 0 {
                            kind.empty()
                        } else {
                            // Divide (not multiply by the reciprocal) to round like ORT.
                            *v / kind.divisor(taps * t2.count, full_kernel, t0.factor * t1.factor * t2.factor)
                        };
                    }
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
        let [i1, i2] = self.rows_cols;

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
                // A window entirely in the padding (possible with dilations): ORT yields lowest() for max, 0 for
                // average.
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

/// Lines of one channel plane for a fused max-pooling kernel ([`super::arch::PoolMaxLinesFn`]): line position
/// `p` (of `positions`) reduces the input rows at `image[r..r + w]`, `r` in `rows[starts[p]..starts[p + 1]]`, and
/// output `j` of it the columns `j·s − pb .. j·s − pb + k` of them that lie in `0..w` (at least one: no hollow
/// window). (Only the AVX-512 tier has such a kernel: the fields go unread on other targets.)
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct MaxLines<'a> {
    pub(crate) image: &'a [f32],
    pub(crate) starts: &'a [usize],
    pub(crate) rows: &'a [usize],
    pub(crate) positions: Range<usize>,
    pub(crate) w: usize,
    pub(crate) k: usize,
    pub(crate) s: usize,
    pub(crate) pb: usize,
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

/// Channels-first lines computed together: the outer reductions of a group's lines go to separate padded rows
/// before any of them is reduced along its length, so a row's loads do not closely follow its stores (a 64-byte
/// load overlapping a store still in flight cannot be forwarded and stalls: 25% of a 13-wide pool's time when each
/// row was reduced right after it was written).
const LINE_GROUP: usize = 8;

/// The most floats of padded rows one group takes (16 KB).
const LINE_GROUP_FLOATS: usize = 4096;

/// What every line of one channels-first pool call shares.
struct LineJob<'a> {
    /// Line position p's input rows (offsets in a channel plane) are `rows[starts[p]..starts[p + 1]]`.
    starts: &'a [usize],
    rows: &'a [usize],
    /// Where the input columns go in a padded row, the row's length and the distance between rows.
    body: Range<usize>,
    span: usize,
    pitch: usize,
    /// Taps, stride and dilation along the row.
    window: (usize, usize, usize),
}

impl LineJob<'_> {
    /// Line positions `positions` of the channel plane `image` into `outs` (one line each) with reduction `f`, in
    /// groups of up to [`LINE_GROUP`] through `padded` (as many rows of `pitch` as it holds, identities outside
    /// `body`); lines with no input row are left unwritten. Adds every value read to `sum`.
    #[inline(always)]
    fn run(
        &self,
        image: &[f32],
        positions: Range<usize>,
        padded: &mut [f32],
        outs: &mut [f32],
        f: impl Fn(f32, f32) -> f32 + Copy,
        sum: &mut [f32; 16],
    ) {
        let o2 = outs.len() / positions.len();
        let (k, s, d) = self.window;
        let size = padded.len() / self.pitch;
        for (g0, out_group) in positions.clone().step_by(size).zip(outs.chunks_mut(size * o2)) {
            let group = g0..(g0 + size).min(positions.end);
            for (p, row) in group.clone().zip(padded.chunks_exact_mut(self.pitch)) {
                let taps = &self.rows[self.starts[p]..self.starts[p + 1]];
                if !taps.is_empty() {
                    reduce_rows(image, taps, &mut row[self.body.clone()], f, sum);
                }
            }
            for ((p, row), out_line) in group.zip(padded.chunks_exact(self.pitch)).zip(out_group.chunks_exact_mut(o2)) {
                if self.starts[p] != self.starts[p + 1] {
                    reduce_line(&row[..self.span], k, s, d, out_line, f);
                }
            }
        }
    }
}

/// `dst[x] = f(...f(image[r₀ + x], image[r₁ + x])..., image[r_last + x])` over the row offsets `rows` (non-empty),
/// every `x < dst.len()`; adds every value read to `sum` (non-finite if any of them is NaN or infinite; values may
/// be counted twice).
#[inline(always)]
fn reduce_rows(
    image: &[f32],
    rows: &[usize],
    dst: &mut [f32],
    f: impl Fn(f32, f32) -> f32 + Copy,
    sum: &mut [f32; 16],
) {
    let n = dst.len();
    assert!(!rows.is_empty() && rows.iter().all(|&r| r + n <= image.len()), "pool rows beyond the image");
    // Two and three rows (the common windows) with the row loop unrolled.
    match (n, rows.len()) {
        (0, _) => {}
        (16.., 2) => reduce_rows_blocks::<16, 2>(image, rows, dst, f, sum),
        (16.., 3) => reduce_rows_blocks::<16, 3>(image, rows, dst, f, sum),
        (16.., _) => reduce_rows_blocks::<16, 0>(image, rows, dst, f, sum),
        (8.., 2) => reduce_rows_blocks::<8, 2>(image, rows, dst, f, sum),
        (8.., 3) => reduce_rows_blocks::<8, 3>(image, rows, dst, f, sum),
        (8.., _) => reduce_rows_blocks::<8, 0>(image, rows, dst, f, sum),
        (4.., _) => reduce_rows_blocks::<4, 0>(image, rows, dst, f, sum),
        _ => reduce_rows_blocks::<1, 0>(image, rows, dst, f, sum),
    }
}

/// [`reduce_rows`] in blocks of `B` values (`B ≤ dst.len()`, `B ≤ 16`) accumulated in registers across the rows
/// (`R` of them when non-zero, else `rows.len()`); the last block overlaps the one before (recomputed, not
/// accumulated, so the overlap is harmless).
#[inline(always)]
fn reduce_rows_blocks<const B: usize, const R: usize>(
    image: &[f32],
    rows: &[usize],
    dst: &mut [f32],
    f: impl Fn(f32, f32) -> f32 + Copy,
    sum: &mut [f32; 16],
) {
    let n = dst.len();
    let count = if R == 0 { rows.len() } else { R };
    let rows = &rows[..count];
    let mut x = 0;
    loop {
        let x0 = x.min(n - B);
        let mut acc: [f32; B] = image[rows[0] + x0..][..B].try_into().expect("B slice");
        // The block's own sum first: one add per block on `sum`'s dependency chain, not one per row.
        let mut block_sum = acc;
        for &r in &rows[1..] {
            let block: &[f32; B] = image[r + x0..][..B].try_into().expect("B slice");
            for l in 0..B {
                acc[l] = f(acc[l], block[l]);
                block_sum[l] += block[l];
            }
        }
        for l in 0..B {
            sum[l] += block_sum[l];
        }
        dst[x0..x0 + B].copy_from_slice(&acc);
        if x0 + B == n {
            return;
        }
        x += B;
    }
}

/// Pooling along one padded row: `out[j] = f(...f(src[j·s], src[j·s + d])..., src[j·s + (k − 1)·d])` for every
/// `j < out.len()` (`src` holds every tap). The common windows run with every constant known.
#[inline(always)]
fn reduce_line(src: &[f32], k: usize, s: usize, d: usize, out: &mut [f32], f: impl Fn(f32, f32) -> f32 + Copy) {
    let n = out.len();
    assert!(n > 0 && k > 0 && (n - 1) * s + (k - 1) * d < src.len(), "pool line: taps beyond the row");
    match (k, s, d) {
        (2, 2, 1) => line_fixed::<2, 2>(src, out, f),
        (3, 2, 1) => line_fixed::<3, 2>(src, out, f),
        (2, 1, 1) => line_fixed::<2, 1>(src, out, f),
        (3, 1, 1) => line_fixed::<3, 1>(src, out, f),
        (5, 1, 1) => line_fixed::<5, 1>(src, out, f),
        (_, 1, _) => line_taps::<1>(src, 1, k, d, out, f),
        (_, 2, _) => line_taps::<2>(src, 2, k, d, out, f),
        _ => line_taps::<0>(src, s, k, d, out, f),
    }
}

/// [`reduce_line`] for `K` undilated taps at stride `S`.
#[inline(always)]
fn line_fixed<const K: usize, const S: usize>(src: &[f32], out: &mut [f32], f: impl Fn(f32, f32) -> f32 + Copy) {
    match out.len() {
        16.. => line_fixed_blocks::<K, S, 16>(src, out, f),
        8.. => line_fixed_blocks::<K, S, 8>(src, out, f),
        4.. => line_fixed_blocks::<K, S, 4>(src, out, f),
        _ => line_fixed_blocks::<K, S, 1>(src, out, f),
    }
}

/// [`line_fixed`] in blocks of `B` outputs (`B ≤ out.len()`), each reduced in registers and stored once (the loop
/// vectorizes across outputs with wide loads and shuffles); the last block overlaps the one before.
#[inline(always)]
fn line_fixed_blocks<const K: usize, const S: usize, const B: usize>(
    src: &[f32],
    out: &mut [f32],
    f: impl Fn(f32, f32) -> f32 + Copy,
) {
    let n = out.len();
    let mut j = 0;
    loop {
        let j0 = j.min(n - B);
        let taps = &src[j0 * S..][..(B - 1) * S + K];
        let block: &mut [f32; B] = (&mut out[j0..j0 + B]).try_into().expect("B slice");
        for l in 0..B {
            let mut acc = taps[l * S];
            for e in 1..K {
                acc = f(acc, taps[l * S + e]);
            }
            block[l] = acc;
        }
        if j0 + B == n {
            return;
        }
        j += B;
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
            // Rows wide enough for the 16-value blocks (an overlapping last block), SPPF's 5 × 5 stride-1 window,
            // 2 × 2 stride 2, and a 1-D ceil-mode overhang.
            geom(3, &[9, 70], &[4, 35], &[3, 3], &[2, 2], &[1, 1], &[0, 1], &[0, 1]),
            geom(3, &[6, 20], &[6, 20], &[5, 5], &[1, 1], &[1, 1], &[2, 2], &[2, 2]),
            geom(3, &[4, 37], &[2, 18], &[2, 2], &[2, 2], &[1, 1], &[0, 0], &[0, 0]),
            geom(3, &[40], &[21], &[3], &[2], &[1], &[1], &[2]),
            // A row longer than one line group's scratch (groups of one line).
            geom(2, &[3, 5001], &[2, 2500], &[2, 3], &[1, 2], &[1, 1], &[0, 0], &[0, 0]),
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
                    let mut h = Default::default();
                    for r in [0..1.min(lines), 1.min(lines)..lines / 2, lines / 2..lines] {
                        let part = &mut got[r.start * o2..r.end * o2];
                        plan.run_nchw(isa.kernels(), &x, r.clone(), part, &mut h);
                    }
                    for (i, &v) in got.iter().enumerate() {
                        let w = want[(i % op) * c + i / op];
                        let same = close(v, w);
                        let (ch, o) = (i / op, i % op);
                        assert!(same, "{} {kind:?} {g:?}: channel {ch} output {o}: got {v}, want {w}", isa.name());
                    }
                }
            }
        }
    }

    /// Equal, both NaN, or within 1e-5 relative of a finite `w` (an infinite `w` must be matched exactly).
    fn close(v: f32, w: f32) -> bool {
        (v.is_nan() && w.is_nan()) || v == w || (w.is_finite() && (v - w).abs() <= 1e-5 * w.abs().max(1.0))
    }

    /// ONNX's pooling straight from the definition (channels-first, every tap checked against the bounds): the
    /// reference for the random geometries below.
    fn brute_force(kind: PoolKind, g: &PoolGeometry, x: &[f32]) -> Vec<f32> {
        let nd = g.in_spatial.len();
        let (ip, op) = (g.in_pixels(), g.out_pixels());
        let full: usize = g.kernel.iter().product();
        let unravel = |mut r: usize, dims: &[usize]| {
            let mut at = vec![0; dims.len()];
            for d in (0..dims.len()).rev() {
                at[d] = r % dims[d];
                r /= dims[d];
            }
            at
        };
        let mut y = vec![0.0; g.channels * op];
        for ch in 0..g.channels {
            for o in 0..op {
                let oi = unravel(o, &g.out_spatial);
                let vals: Vec<f32> = (0..full)
                    .filter_map(|t| {
                        let ki = unravel(t, &g.kernel);
                        let mut idx = 0;
                        for d in 0..nd {
                            let pos = (oi[d] * g.strides[d] + ki[d] * g.dilations[d]) as i64 - g.pads_begin[d] as i64;
                            if pos < 0 || pos >= g.in_spatial[d] as i64 {
                                return None;
                            }
                            idx = idx * g.in_spatial[d] + pos as usize;
                        }
                        Some(x[ch * ip + idx])
                    })
                    .collect();
                y[ch * op + o] = if vals.is_empty() {
                    kind.empty()
                } else if kind == PoolKind::Max {
                    if vals.iter().any(|v| v.is_nan()) {
                        f32::NAN
                    } else {
                        vals.iter().copied().fold(f32::NEG_INFINITY, f32::max)
                    }
                } else {
                    let clipped: usize = (0..nd)
                        .map(|d| {
                            let start = (oi[d] * g.strides[d]) as i64 - g.pads_begin[d] as i64;
                            let end = (start + (g.kernel[d] * g.dilations[d]) as i64)
                                .min((g.in_spatial[d] + g.pads_end[d]) as i64);
                            (1 + (end - start - 1) / g.dilations[d] as i64) as usize
                        })
                        .product();
                    vals.iter().sum::<f32>() / kind.divisor(vals.len(), full, clipped)
                };
            }
        }
        y
    }

    #[test]
    fn channels_first_random_geometries_match_the_definition() {
        // 1-D to 3-D; kernels 1–6, strides 1–3, dilations 1–3; pads up to 3k + 1 (beyond the window's span,
        // leaving no input column in reach); ceil-mode and further overhanging outputs; last dims up to 3000 (every
        // line-group size, every block width); NaN and ±inf, sometimes an all −∞ input; every tier; each run cut
        // into up to four tasks anywhere, the scratch poisoned with NaN before each.
        let mut rng = crate::kernels::tests::Rng::new(0x5eed);
        let mut scratch = crate::kernels::buf::AlignedBuf::default();
        for case in 0..1500 {
            let nd = rng.range(1, 3);
            let mut g = geom(rng.range(1, 3), &[], &[], &[], &[], &[], &[], &[]);
            for d in 0..nd {
                let wide = d == nd - 1 && rng.range(0, 2) == 0;
                let i = if wide && nd < 3 && rng.range(0, 5) == 0 {
                    rng.range(1, 3000)
                } else if wide {
                    rng.range(1, 60)
                } else {
                    rng.range(1, 8)
                };
                let k_max = if rng.range(0, 3) == 0 { 6 } else { 3 };
                let k = rng.range(1, k_max);
                let (s, dil) = (rng.range(1, 3), if rng.range(0, 2) == 0 { rng.range(1, 3) } else { 1 });
                let far = rng.range(0, 7) == 0;
                let pad = |rng: &mut crate::kernels::tests::Rng| rng.range(0, if far { 3 * k + 1 } else { k - 1 });
                let (pb, pe) = (pad(&mut rng), pad(&mut rng));
                let (ext, total) = ((k - 1) * dil + 1, i + pb + pe);
                let o = if total < ext {
                    1
                } else if rng.range(0, 1) == 0 {
                    (total - ext) / s + 1
                } else {
                    (total - ext).div_ceil(s) + 1
                } + if rng.range(0, 9) == 0 { rng.range(0, 2) } else { 0 };
                for (v, x) in [
                    (&mut g.in_spatial, i),
                    (&mut g.out_spatial, o),
                    (&mut g.kernel, k),
                    (&mut g.strides, s),
                    (&mut g.dilations, dil),
                    (&mut g.pads_begin, pb),
                    (&mut g.pads_end, pe),
                ] {
                    v.push(x);
                }
            }
            let (c, op) = (g.channels, g.out_pixels());
            let mut x: Vec<f32> = (0..g.in_pixels() * c).map(|_| rng.range(0, 2000) as f32 - 1000.0).collect();
            for _ in 0..rng.range(0, 3) {
                let at = rng.range(0, x.len() - 1);
                x[at] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][rng.range(0, 2)];
            }
            if rng.range(0, 9) == 0 {
                x.fill(f32::NEG_INFINITY);
            }
            for kind in
                [PoolKind::Max, PoolKind::AvgExcludePad, PoolKind::AvgIncludePad, PoolKind::AvgIncludePadClipped]
            {
                let plan = PoolPlan::new(kind, &g);
                let want = brute_force(kind, &g, &x);
                let (lines, o2) = (plan.nchw_lines(), *g.out_spatial.last().unwrap());
                for isa in crate::kernels::Isa::ALL.into_iter().filter(|i| i.is_supported()) {
                    let mut got = vec![12345.0; op * c];
                    let mut cuts: Vec<usize> = (0..rng.range(0, 3)).map(|_| rng.range(0, lines)).collect();
                    cuts.extend([0, lines]);
                    cuts.sort();
                    for w in cuts.windows(2) {
                        scratch.get(1 << 16).fill(f32::NAN);
                        let part = &mut got[w[0] * o2..w[1] * o2];
                        plan.run_nchw(isa.kernels(), &x, w[0]..w[1], part, &mut scratch);
                    }
                    for (i, (&v, &w)) in got.iter().zip(&want).enumerate() {
                        let same = close(v, w);
                        assert!(same, "case {case} {} {kind:?} {g:?}: output {i}: got {v}, want {w}", isa.name());
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
                    let mut h = Default::default();
                    for r in [0..cut, cut..lines] {
                        let part = &mut got[r.start * o2..r.end * o2];
                        plan.run_nchw(selected_isa().kernels(), &x, r, part, &mut h);
                    }
                    for (i, &v) in got.iter().enumerate() {
                        let w = want[(i % op) * c + i / op];
                        assert!(close(v, w), "{kind:?} {g:?} cut {cut}: {i}: {v} vs {w}");
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
                    assert!(close(*g, w), "plane {plane} max {max}: {g} vs {w}");
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

    /// Thread-CPU-time per call of channels-first pools (`cargo test --release --lib bench_pool_nchw -- --ignored
    /// --nocapture`).
    #[test]
    #[ignore]
    fn bench_pool_nchw() {
        let cases = [
            ("64@111 3s2", geom(64, &[111, 111], &[55, 55], &[3, 3], &[2, 2], &[1, 1], &[0, 0], &[0, 0])),
            ("2@64 3s2", geom(2, &[64, 64], &[31, 31], &[3, 3], &[2, 2], &[1, 1], &[0, 0], &[0, 0])),
            ("16@111 3s2", geom(16, &[111, 111], &[55, 55], &[3, 3], &[2, 2], &[1, 1], &[0, 0], &[0, 0])),
            ("128@55 3s2", geom(128, &[55, 55], &[27, 27], &[3, 3], &[2, 2], &[1, 1], &[0, 0], &[0, 0])),
            ("256@27 3s2", geom(256, &[27, 27], &[13, 13], &[3, 3], &[2, 2], &[1, 1], &[0, 0], &[0, 0])),
            ("64@112 3s2p1", geom(64, &[112, 112], &[56, 56], &[3, 3], &[2, 2], &[1, 1], &[1, 1], &[1, 1])),
            ("64@224 2s2", geom(64, &[224, 224], &[112, 112], &[2, 2], &[2, 2], &[1, 1], &[0, 0], &[0, 0])),
            ("512@14 2s2", geom(512, &[14, 14], &[7, 7], &[2, 2], &[2, 2], &[1, 1], &[0, 0], &[0, 0])),
            ("256@20 5s1p2", geom(256, &[20, 20], &[20, 20], &[5, 5], &[1, 1], &[1, 1], &[2, 2], &[2, 2])),
        ];
        let now = || {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: clock_gettime writes one timespec through a valid pointer.
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
            ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
        };
        let only = std::env::var("ASYMO_POOL_BENCH").unwrap_or_default();
        for (name, g) in cases.into_iter().filter(|(n, _)| n.contains(&only)) {
            let x: Vec<f32> = (0..g.in_pixels() * g.channels).map(|i| ((i * 7919) % 1013) as f32).collect();
            let plan = PoolPlan::new(PoolKind::Max, &g);
            let lines = plan.nchw_lines();
            let mut y = vec![0.0; lines * g.out_spatial[g.out_spatial.len() - 1]];
            let mut h = crate::kernels::buf::AlignedBuf::default();
            let mut best = f64::MAX;
            for _ in 0..7 * (1 + 20 * usize::from(!only.is_empty())) {
                let t = now();
                for _ in 0..50 {
                    plan.run_nchw(selected_isa().kernels(), &x, 0..lines, &mut y, &mut h);
                }
                best = best.min((now() - t) / 50.0);
            }
            println!("{name:14} {:8.1} us", best * 1e6);
        }
    }
}
