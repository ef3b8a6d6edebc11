//! Panel packing.
//!
//! Layouts (the micro-kernel's, see [`super::arch::GemmUkr`]):
//! - A (`m × kc`) in row panels of MR: panel `q` at `q·MR·kc`, element (i, p) at `q·MR·kc + p·MR + i mod MR`.
//! - B (`kc × n`) in column panels of NR: panel `q` at `q·NR·kc`, element (p, j) at `q·NR·kc + p·NR + j mod NR`.
//!
//! The last panel is zero-padded to a full MR / NR, so the micro-kernel always runs whole tiles. Constant operands
//! ([`PackedA`], [`PackedB`]) are packed once over the full K (`kc = K`): the kernel reads a `kc`-deep slice of a panel
//! at offset `pc·MR` (`pc·NR`), so no K blocking is baked into them.

use super::arch::TransposeFn;
use super::buf::AlignedBuf;
use super::depthwise::Tap;
use super::isa::{selected_isa, Isa};
use super::{Im2col, Im2colNhwc, MatRef};

/// A constant A operand (`M × K`, e.g. convolution weights) packed once at Compile into the MR-row panels of the
/// tier it was packed for (which then also computes with it).
#[derive(Clone, Debug)]
pub struct PackedA {
    isa: Isa,
    mr: usize,
    rows: usize,
    k: usize,
    data: AlignedBuf,
}

impl PackedA {
    /// Pack for the selected tier.
    pub fn pack(a: MatRef<'_>) -> Self {
        Self::pack_for(selected_isa(), a)
    }

    /// Pack for a given tier. Panics if the host cannot run it.
    pub fn pack_for(isa: Isa, a: MatRef<'_>) -> Self {
        let ks = isa.kernels();
        let mr = ks.mr;
        let mut data = AlignedBuf::zeroed(a.rows.div_ceil(mr) * mr * a.cols);
        pack_a(ks.transpose, a, 0, a.rows, 0, a.cols, mr, data.as_mut_slice());
        PackedA { isa, mr, rows: a.rows, k: a.cols, data }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn k(&self) -> usize {
        self.k
    }
    pub fn isa(&self) -> Isa {
        self.isa
    }
    pub(crate) fn mr(&self) -> usize {
        self.mr
    }
    pub(crate) fn data(&self) -> &[f32] {
        self.data.as_slice()
    }

    /// Element (i, p).
    pub fn at(&self, i: usize, p: usize) -> f32 {
        assert!(i < self.rows && p < self.k);
        self.data.as_slice()[(i / self.mr) * self.mr * self.k + p * self.mr + i % self.mr]
    }
}

/// A constant B operand (`K × N`, e.g. MatMul/Gemm weights) packed once at Compile into the NR-column panels of the
/// tier it was packed for. The same layout streams well for GEMV (M = 1): each panel is one contiguous run.
#[derive(Clone, Debug)]
pub struct PackedB {
    isa: Isa,
    nr: usize,
    k: usize,
    cols: usize,
    data: AlignedBuf,
}

impl PackedB {
    /// Pack for the selected tier.
    pub fn pack(b: MatRef<'_>) -> Self {
        Self::pack_for(selected_isa(), b)
    }

    /// Pack for a given tier. Panics if the host cannot run it.
    pub fn pack_for(isa: Isa, b: MatRef<'_>) -> Self {
        let nr = isa.kernels().nr;
        let mut data = AlignedBuf::zeroed(b.cols.div_ceil(nr) * nr * b.rows);
        pack_b(b, 0, b.rows, 0, b.cols, nr, data.as_mut_slice());
        PackedB { isa, nr, k: b.rows, cols: b.cols, data }
    }

    pub fn k(&self) -> usize {
        self.k
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn isa(&self) -> Isa {
        self.isa
    }
    pub(crate) fn nr(&self) -> usize {
        self.nr
    }
    pub(crate) fn data(&self) -> &[f32] {
        self.data.as_slice()
    }

    /// Element (p, j).
    pub fn at(&self, p: usize, j: usize) -> f32 {
        assert!(p < self.k && j < self.cols);
        self.data.as_slice()[(j / self.nr) * self.nr * self.k + p * self.nr + j % self.nr]
    }
}

/// Per-worker scratch buffers, reused across tasks: once warm (after the largest block it serves) it never
/// allocates again. All buffers are 64-byte aligned.
#[derive(Default, Debug)]
pub struct Scratch {
    pub(crate) a: AlignedBuf,
    pub(crate) b: AlignedBuf,
    pub(crate) tile: AlignedBuf,
    pub(crate) v0: AlignedBuf,
    pub(crate) v1: AlignedBuf,
    pub(crate) out: AlignedBuf,
    pub(crate) taps: Vec<Tap>,
    pub(crate) im2col: Im2colWork,
    /// Convolution window (see `window.rs`) and its K row offsets.
    pub(crate) conv: AlignedBuf,
    pub(crate) conv_off: Vec<usize>,
    /// What `conv` holds: (job token, input, geometry, columns) of the last window prepared under a non-zero token.
    pub(crate) conv_of: Option<super::window::WindowKey>,
    /// The token of the job whose tasks this scratch runs now (see [`Scratch::set_job`]).
    pub(crate) job: u64,
    pub(crate) dw_offs: Vec<usize>,
    /// Channels-last depthwise: each tap's input position relative to the window origin, per dimension.
    pub(crate) dw_taps: Vec<isize>,
    /// Channel-vectorized convolution (`conv_t.rs`): the `pixels × channels` accumulator and the pixel panels.
    pub(crate) ct: AlignedBuf,
    pub(crate) tpanels: Vec<super::conv_t::TPanel>,
    /// A convolution computed band by band ahead of a pool: the band's input rows and its output rows.
    pub(crate) band_in: AlignedBuf,
    pub(crate) band_out: AlignedBuf,
}

impl Scratch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declare that the next blocks computed with this scratch belong to job `token`: a set of tasks over the same,
    /// unchanging inputs (0: unknown). Consecutive blocks of one job on one worker that need the same convolution
    /// window (a convolution split along output channels) then prepare it once. A token must never be reused for
    /// other inputs (the caller draws a fresh one per job).
    pub fn set_job(&mut self, token: u64) {
        self.job = token;
    }

    /// A reusable list of input pixel indices (a pooling window's taps).
    pub(crate) fn pool_taps(&mut self) -> &mut Vec<usize> {
        &mut self.dw_offs
    }

    /// Channels-first pooling: the padded rows.
    pub(crate) fn pool_rows(&mut self) -> &mut AlignedBuf {
        &mut self.v0
    }
}

/// Pack `A[i0 .. i0+m, p0 .. p0+kc]` into MR-row panels at `dst` (zero-padding the last panel).
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_a(
    transpose: TransposeFn,
    a: MatRef<'_>,
    i0: usize,
    m: usize,
    p0: usize,
    kc: usize,
    mr: usize,
    dst: &mut [f32],
) {
    assert!(i0 + m <= a.rows && p0 + kc <= a.cols, "pack_a: block outside A");
    let panels = m.div_ceil(mr);
    let dst = &mut dst[..panels * mr * kc];
    for q in 0..panels {
        let pan = &mut dst[q * mr * kc..(q + 1) * mr * kc];
        let h = mr.min(m - q * mr);
        let r0 = i0 + q * mr;
        if a.rs == 1 && h == mr {
            // Column-major A: each k step is MR contiguous floats.
            for p in 0..kc {
                // SAFETY: A(r0 .. r0+mr, p0+p) is in range of the view (i0+m ≤ rows, p0+kc ≤ cols), contiguous.
                let col = unsafe { std::slice::from_raw_parts(a.ptr_at(r0, p0 + p), mr) };
                pan[p * mr..(p + 1) * mr].copy_from_slice(col);
            }
        } else if a.cs == 1 && a.rs >= 0 {
            // Row-major A: the panel is the h × kc block transposed (the tier's in-register transposes).
            // SAFETY: rows r0 .. r0+h and columns p0 .. p0+kc are in range of the view (row stride rs, columns
            // contiguous); the panel holds kc·mr floats, written at p·mr + r for r < h ≤ mr.
            unsafe { transpose(h, kc, a.ptr_at(r0, p0), a.rs as usize, pan.as_mut_ptr(), mr) };
            zero_pad_rows(pan, h, mr, kc);
        } else {
            for p in 0..kc {
                for r in 0..h {
                    pan[p * mr + r] = a.at(r0 + r, p0 + p);
                }
            }
            zero_pad_rows(pan, h, mr, kc);
        }
    }
}

/// Pack `A[i0 .. i0+m, p0 .. p0+kc]` of a channels-last im2col operand into MR-row panels: each row is gathered
/// as contiguous channel runs into `rows` (MR × kc), then the block goes through the tier's transpose.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_a_im2col_nhwc(
    transpose: TransposeFn,
    a: Im2colNhwc<'_>,
    i0: usize,
    m: usize,
    p0: usize,
    kc: usize,
    mr: usize,
    dst: &mut [f32],
    rows: &mut AlignedBuf,
) {
    let panels = m.div_ceil(mr);
    let rb = rows.get(mr * kc);
    let mut tap_pos = [0isize; TAP_POS];
    let tp = a.tap_positions(&mut tap_pos).map_or(&[][..], |n| &tap_pos[..n]);
    for q in 0..panels {
        let pan = &mut dst[q * mr * kc..(q + 1) * mr * kc];
        let h = mr.min(m - q * mr);
        if a.geometry.channels < 16 && !tp.is_empty() && a.gather_panel(i0 + q * mr, h, p0, kc, mr, pan, tp) {
            continue;
        }
        for r in 0..h {
            a.row_into(i0 + q * mr + r, p0..p0 + kc, &mut rb[r * kc..(r + 1) * kc], tp);
        }
        // SAFETY: rb holds h rows of kc floats (row stride kc); the panel holds kc·mr floats, written at p·mr + r
        // for r < h ≤ mr; the two buffers are distinct.
        unsafe { transpose(h, kc, rb.as_ptr(), kc, pan.as_mut_ptr(), mr) };
        zero_pad_rows(pan, h, mr, kc);
    }
}

impl Im2colNhwc<'_> {
    /// Rows (output pixels).
    pub(crate) fn rows(&self) -> usize {
        self.geometry.n()
    }

    /// Checks the input covers every pixel's channel slice (the gathers index it unchecked).
    pub(crate) fn check(&self) {
        let g = self.geometry;
        let pixels: usize = g.in_spatial.iter().product();
        g.checked_rank("channels-last im2col");
        assert!(pixels == 0 || self.c_off + g.channels <= self.c_stride, "NHWC im2col channel slice");
        assert!(
            self.input.len() >= pixels * self.c_stride,
            "NHWC im2col input: {} values, needs {}",
            self.input.len(),
            pixels * self.c_stride
        );
    }

    /// Each tap's input position relative to the window origin, per dimension (`nd` values per tap), when they
    /// fit in `TAP_POS` values (else `None`: positions are computed per tap).
    pub(crate) fn tap_positions(&self, out: &mut [isize; TAP_POS]) -> Option<usize> {
        let g = self.geometry;
        let nd = g.kernel.len();
        let taps: usize = g.kernel.iter().product();
        if taps * nd > TAP_POS {
            return None;
        }
        let mut kidx = [0usize; 8];
        for t in 0..taps {
            unravel(t, &g.kernel, &mut kidx[..nd]);
            for d in 0..nd {
                out[t * nd + d] = (kidx[d] * g.dilations[d]) as isize - g.pads_begin[d] as isize;
            }
        }
        Some(taps * nd)
    }

    /// Pack rows `i .. i+h` (one panel) by strided gathers straight into the panel, when they lie on one output row
    /// with every window inside the input along the last dimension: then tap `t`'s input pixel for row `i + r` is
    /// `r` strides after row `i`'s. Few channels per tap (first layers) make row runs too short to copy and
    /// transpose. Returns false (nothing written) when the rows do not qualify.
    #[allow(clippy::too_many_arguments)]
    fn gather_panel(&self, i: usize, h: usize, p0: usize, kc: usize, mr: usize, pan: &mut [f32], tp: &[isize]) -> bool {
        let g = self.geometry;
        let nd = g.kernel.len();
        let last = nd - 1;
        let (w_out, w_in, s) = (g.out_spatial[last], g.in_spatial[last], g.strides[last]);
        let ox0 = i % w_out;
        if ox0 + h > w_out {
            return false;
        }
        let (lo, hi) =
            tp.chunks_exact(nd).fold((isize::MAX, isize::MIN), |(lo, hi), t| (lo.min(t[last]), hi.max(t[last])));
        if (ox0 * s) as isize + lo < 0 || ((ox0 + h - 1) * s) as isize + hi >= w_in as isize {
            return false;
        }
        let mut oidx = [0usize; 8];
        unravel(i, &g.out_spatial, &mut oidx[..nd]);
        let cg = g.channels;
        let step = s * self.c_stride;
        let (mut tap, mut c) = (p0 / cg, p0 % cg);
        let mut base: Option<usize> = None;
        for p in 0..kc {
            if p == 0 || c == 0 {
                // Row i's input pixel under this tap (or the padding, along an outer dimension).
                let rel = &tp[tap * nd..(tap + 1) * nd];
                let mut q = Some(0usize);
                for d in 0..nd {
                    let pos = (oidx[d] * g.strides[d]) as isize + rel[d];
                    q = q
                        .filter(|_| pos >= 0 && (pos as usize) < g.in_spatial[d])
                        .map(|q| q * g.in_spatial[d] + pos as usize);
                }
                base = q.map(|q| q * self.c_stride + self.c_off);
            }
            let col = &mut pan[p * mr..(p + 1) * mr];
            match base {
                Some(b) => {
                    for (r, v) in col[..h].iter_mut().enumerate() {
                        *v = self.input[b + c + r * step];
                    }
                }
                None => col[..h].fill(0.0),
            }
            col[h..].fill(0.0);
            c += 1;
            if c == cg {
                c = 0;
                tap += 1;
            }
        }
        true
    }

    /// Where rows `i .. i+h` can be read in place: when they lie on one output row and every window is inside the
    /// input on every dimension, the offset of row `i`'s window origin (its first tap, channel 0), row `i + r`'s
    /// being `r · stride_last · c_stride` further ([`Self::row_step`]); else `None`.
    pub(crate) fn direct_origin(&self, i: usize, h: usize) -> Option<usize> {
        let g = self.geometry;
        let nd = g.kernel.len();
        let last = nd - 1;
        let w_out = g.out_spatial[last];
        let ox0 = i % w_out;
        if h == 0 || ox0 + h > w_out {
            return None;
        }
        let mut oidx = [0usize; 8];
        unravel(i, &g.out_spatial, &mut oidx[..nd]);
        let mut q = 0usize;
        for (d, &o) in oidx[..nd].iter().enumerate() {
            let first = (o * g.strides[d]) as isize - g.pads_begin[d] as isize;
            let o_last = if d == last { o + h - 1 } else { o };
            let reach =
                (o_last * g.strides[d] + (g.kernel[d] - 1) * g.dilations[d]) as isize - g.pads_begin[d] as isize;
            if first < 0 || reach >= g.in_spatial[d] as isize {
                return None;
            }
            q = q * g.in_spatial[d] + first as usize;
        }
        Some(q * self.c_stride + self.c_off)
    }

    /// Floats from one output pixel's window to the next one's along a row.
    pub(crate) fn row_step(&self) -> usize {
        self.geometry.strides[self.geometry.kernel.len() - 1] * self.c_stride
    }

    /// The in-place offsets of columns `p0 .. p0+kc` relative to a window origin: column `tap · C_g + c` is tap's
    /// input pixel (relative) times `c_stride`, plus `c`.
    pub(crate) fn direct_offsets(&self, p0: usize, kc: usize, out: &mut Vec<usize>) {
        let g = self.geometry;
        let nd = g.kernel.len();
        let cg = g.channels;
        out.clear();
        let mut kidx = [0usize; 8];
        let (mut tap, mut c) = (p0 / cg, p0 % cg);
        let mut rel = 0usize;
        for p in 0..kc {
            if p == 0 || c == 0 {
                unravel(tap, &g.kernel, &mut kidx[..nd]);
                rel = 0;
                for (d, &kd) in kidx[..nd].iter().enumerate() {
                    rel = rel * g.in_spatial[d] + kd * g.dilations[d];
                }
                rel *= self.c_stride;
            }
            out.push(rel + c);
            c += 1;
            if c == cg {
                c = 0;
                tap += 1;
            }
        }
    }

    /// `dst[t] = A[i, kr.start + t]`: per kernel tap, one contiguous run of channels (or zeros in the padding).
    /// `tap_pos`: [`Self::tap_positions`], or empty.
    pub(crate) fn row_into(&self, i: usize, kr: std::ops::Range<usize>, dst: &mut [f32], tap_pos: &[isize]) {
        let g = self.geometry;
        let nd = g.kernel.len();
        let cg = g.channels;
        let mut oidx = [0usize; 8];
        unravel(i, &g.out_spatial, &mut oidx[..nd]);
        let mut kidx = [0isize; 8];
        let mut k = kr.start;
        // The first run may start inside a tap; the others start at its channel 0 (no division per run).
        let (mut tap, mut c0) = (k / cg, k % cg);
        while k < kr.end {
            let run = (cg - c0).min(kr.end - k);
            let rel: &[isize] = if tap_pos.is_empty() {
                let mut u = [0usize; 8];
                unravel(tap, &g.kernel, &mut u[..nd]);
                for d in 0..nd {
                    kidx[d] = (u[d] * g.dilations[d]) as isize - g.pads_begin[d] as isize;
                }
                &kidx[..nd]
            } else {
                &tap_pos[tap * nd..(tap + 1) * nd]
            };
            let mut q = 0usize;
            let mut inside = true;
            for d in 0..nd {
                let pos = (oidx[d] * g.strides[d]) as isize + rel[d];
                if pos < 0 || pos as usize >= g.in_spatial[d] {
                    inside = false;
                    break;
                }
                q = q * g.in_spatial[d] + pos as usize;
            }
            let out = &mut dst[k - kr.start..k - kr.start + run];
            if inside {
                let at = q * self.c_stride + self.c_off + c0;
                let src = &self.input[at..at + run];
                if run < 8 {
                    // Short runs (first layers' 3 channels): a loop, not a memcpy call.
                    for (o, &v) in out.iter_mut().zip(src) {
                        *o = v;
                    }
                } else {
                    out.copy_from_slice(src);
                }
            } else {
                out.fill(0.0);
            }
            k += run;
            tap += 1;
            c0 = 0;
        }
    }
}

/// Capacity of [`Im2colNhwc::tap_positions`] (taps × spatial rank).
pub(crate) const TAP_POS: usize = 512;

/// Pack `A[i0 .. i0+m, p0 .. p0+kc]` of an operand packed for another tier (element access; rare).
pub(crate) fn pack_a_from(a: &PackedA, i0: usize, m: usize, p0: usize, kc: usize, mr: usize, dst: &mut [f32]) {
    let panels = m.div_ceil(mr);
    for q in 0..panels {
        let pan = &mut dst[q * mr * kc..(q + 1) * mr * kc];
        let h = mr.min(m - q * mr);
        for p in 0..kc {
            for r in 0..h {
                pan[p * mr + r] = a.at(i0 + q * mr + r, p0 + p);
            }
        }
        zero_pad_rows(pan, h, mr, kc);
    }
}

fn zero_pad_rows(pan: &mut [f32], h: usize, mr: usize, kc: usize) {
    if h < mr {
        for p in 0..kc {
            pan[p * mr + h..(p + 1) * mr].fill(0.0);
        }
    }
}

/// Pack `B[p0 .. p0+kc, j0 .. j0+n]` into NR-column panels at `dst` (zero-padding the last panel).
pub(crate) fn pack_b(b: MatRef<'_>, p0: usize, kc: usize, j0: usize, n: usize, nr: usize, dst: &mut [f32]) {
    let panels = n.div_ceil(nr);
    let dst = &mut dst[..panels * nr * kc];
    if b.cs == 1 {
        // Row-major B: each row read once, contiguously, and cut into the panels (fixed-size copies).
        match nr {
            32 => pack_b_rows::<32>(b, p0, kc, j0, n, dst),
            16 => pack_b_rows::<16>(b, p0, kc, j0, n, dst),
            12 => pack_b_rows::<12>(b, p0, kc, j0, n, dst),
            8 => pack_b_rows::<8>(b, p0, kc, j0, n, dst),
            _ => pack_b_rows_any(b, p0, kc, j0, n, nr, dst),
        }
        return;
    }
    for q in 0..panels {
        let pan = &mut dst[q * nr * kc..(q + 1) * nr * kc];
        let w = nr.min(n - q * nr);
        let c0 = j0 + q * nr;
        if b.rs == 1 {
            // Column-major B (e.g. Gemm transB): read each column contiguously.
            for c in 0..w {
                // SAFETY: B(p0 .. p0+kc, c0+c) is in range and contiguous.
                let col = unsafe { std::slice::from_raw_parts(b.ptr_at(p0, c0 + c), kc) };
                for (p, &v) in col.iter().enumerate() {
                    pan[p * nr + c] = v;
                }
            }
        } else {
            for p in 0..kc {
                for c in 0..w {
                    pan[p * nr + c] = b.at(p0 + p, c0 + c);
                }
            }
        }
        zero_pad_cols(pan, w, nr, kc);
    }
}

/// [`pack_b`] of a B with contiguous rows: `pan_q[p·NR + t] = B[p0 + p, j0 + q·NR + t]`, last panel zero-padded.
#[inline(always)]
fn pack_b_rows<const NR: usize>(b: MatRef<'_>, p0: usize, kc: usize, j0: usize, n: usize, dst: &mut [f32]) {
    let full = n / NR;
    let w = n - full * NR;
    for p in 0..kc {
        // SAFETY: B(p0+p, j0 .. j0+n) is in range of the view and contiguous (cs = 1).
        let row = unsafe { std::slice::from_raw_parts(b.ptr_at(p0 + p, j0), n) };
        for q in 0..full {
            let d: &mut [f32; NR] = (&mut dst[q * NR * kc + p * NR..][..NR]).try_into().unwrap();
            *d = row[q * NR..q * NR + NR].try_into().unwrap();
        }
        if w > 0 {
            let d = &mut dst[full * NR * kc + p * NR..][..NR];
            d[..w].copy_from_slice(&row[full * NR..]);
            d[w..].fill(0.0);
        }
    }
}

fn pack_b_rows_any(b: MatRef<'_>, p0: usize, kc: usize, j0: usize, n: usize, nr: usize, dst: &mut [f32]) {
    for p in 0..kc {
        // SAFETY: as in `pack_b_rows`.
        let row = unsafe { std::slice::from_raw_parts(b.ptr_at(p0 + p, j0), n) };
        for q in 0..n.div_ceil(nr) {
            let w = nr.min(n - q * nr);
            let d = &mut dst[q * nr * kc + p * nr..][..nr];
            d[..w].copy_from_slice(&row[q * nr..q * nr + w]);
            d[w..].fill(0.0);
        }
    }
}

/// Pack `B[p0 .. p0+kc, j0 .. j0+n]` of an operand packed for another tier (element access; rare).
pub(crate) fn pack_b_from(b: &PackedB, p0: usize, kc: usize, j0: usize, n: usize, nr: usize, dst: &mut [f32]) {
    for q in 0..n.div_ceil(nr) {
        let pan = &mut dst[q * nr * kc..(q + 1) * nr * kc];
        let w = nr.min(n - q * nr);
        for p in 0..kc {
            for c in 0..w {
                pan[p * nr + c] = b.at(p0 + p, j0 + q * nr + c);
            }
        }
        zero_pad_cols(pan, w, nr, kc);
    }
}

fn zero_pad_cols(pan: &mut [f32], w: usize, nr: usize, kc: usize) {
    if w < nr {
        for p in 0..kc {
            pan[p * nr + w..(p + 1) * nr].fill(0.0);
        }
    }
}

/// Reusable index work of the im2col packer (per worker, inside [`Scratch`]).
#[derive(Default, Debug)]
pub(crate) struct Im2colWork {
    segs: Vec<Seg>,
    /// Distinct outer output multi-indices of the block, `nd − 1` values each.
    outer: Vec<usize>,
    /// Per distinct outer index: offset of the input row the current packed row reads, or −1 (padding).
    rowbase: Vec<isize>,
    /// Channels-last A read in place (`gemm.rs`): this pass's K offsets, and each A panel's window origin
    /// ([`NO_ORIGIN`] when the panel is packed).
    pub(crate) aoffs: Vec<usize>,
    pub(crate) origins: Vec<usize>,
}

/// An A panel without an in-place origin (packed instead).
pub(crate) const NO_ORIGIN: usize = usize::MAX;

/// A run of columns inside one panel and one output row.
#[derive(Clone, Copy, Debug)]
struct Seg {
    /// Offset in the packed block of the run's first lane, without the packed-row term.
    dst: usize,
    len: usize,
    /// Last-dimension output index of the run's first column.
    ow: usize,
    /// Index into the distinct outer output indices.
    outer: usize,
}

/// Pack rows `p0 .. p0+kc`, columns `j0 .. j0+n` of the virtual im2col matrix straight into NR-column panels.
///
/// Row `p` is (channel, kernel tap); column `j` an output position. The block's columns are cut once into runs that
/// stay inside one panel and one output row; for every packed row, each run is then a left padding part, a copy
/// (contiguous for stride 1), and a right padding part — the input index is affine along a run.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_b_im2col(
    im: Im2col<'_>,
    p0: usize,
    kc: usize,
    j0: usize,
    n: usize,
    nr: usize,
    dst: &mut [f32],
    work: &mut Im2colWork,
) {
    let g = im.geometry;
    let nd = g.kernel.len();
    assert!((1..=8).contains(&nd), "im2col supports 1 to 8 spatial dimensions");
    let taps: usize = g.kernel.iter().product();
    let in_plane: usize = g.in_spatial.iter().product();
    let last = nd - 1;
    let (w_out, w_in) = (g.out_spatial[last], g.in_spatial[last]);
    let (s, d, pad) = (g.strides[last] as isize, g.dilations[last] as isize, g.pads_begin[last] as isize);
    let panels = n.div_ceil(nr);
    let dst = &mut dst[..panels * nr * kc];
    let Im2colWork { segs, outer, rowbase, .. } = work;
    // 1. Cut the columns into runs (the same for every packed row).
    segs.clear();
    outer.clear();
    let mut oidx = [0usize; 8];
    unravel(j0, &g.out_spatial, &mut oidx[..nd]);
    outer.extend_from_slice(&oidx[..last]);
    let (mut q, mut lane, mut j, mut outer_id) = (0usize, 0usize, j0, 0usize);
    while j < j0 + n {
        let ow = oidx[last];
        let len = (w_out - ow).min(nr - lane).min(j0 + n - j);
        segs.push(Seg { dst: q * nr * kc + lane, len, ow, outer: outer_id });
        lane += len;
        if lane == nr {
            lane = 0;
            q += 1;
        }
        j += len;
        oidx[last] += len;
        if oidx[last] == w_out {
            oidx[last] = 0;
            let mut dd = last;
            while dd > 0 {
                dd -= 1;
                oidx[dd] += 1;
                if oidx[dd] < g.out_spatial[dd] {
                    break;
                }
                oidx[dd] = 0;
            }
            if j < j0 + n {
                outer_id += 1;
                outer.extend_from_slice(&oidx[..last]);
            }
        }
    }
    let n_outer = outer_id + 1;
    // 2. Every packed row.
    let mut kidx = [0usize; 8];
    for p in p0..p0 + kc {
        let (c, t) = (p / taps, p % taps);
        unravel(t, &g.kernel, &mut kidx[..nd]);
        let plane = &im.input[c * in_plane..(c + 1) * in_plane];
        rowbase.clear();
        for o in 0..n_outer {
            let mut base = 0isize;
            for dd in 0..last {
                let pos = (outer[o * last + dd] * g.strides[dd] + kidx[dd] * g.dilations[dd]) as isize
                    - g.pads_begin[dd] as isize;
                if pos < 0 || pos as usize >= g.in_spatial[dd] {
                    base = -1;
                    break;
                }
                base = base * g.in_spatial[dd] as isize + pos;
            }
            rowbase.push(if base < 0 { -1 } else { base * w_in as isize });
        }
        // iw(ow) = ow·s + off is inside the input row for ow in [lo, hi).
        let off = kidx[last] as isize * d - pad;
        let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
        let hi = if (w_in as isize) > off { (w_in as isize - off + s - 1) / s } else { 0 };
        let prow = (p - p0) * nr;
        let run = RowRuns { plane, w_in, s, off, lo, hi };
        match nr {
            8 => run.pack::<8>(segs, rowbase, &mut dst[prow..]),
            12 => run.pack::<12>(segs, rowbase, &mut dst[prow..]),
            16 => run.pack::<16>(segs, rowbase, &mut dst[prow..]),
            32 => run.pack::<32>(segs, rowbase, &mut dst[prow..]),
            _ => run.pack::<0>(segs, rowbase, &mut dst[prow..]),
        }
    }
    let w = n - (panels - 1) * nr;
    zero_pad_cols(&mut dst[(panels - 1) * nr * kc..], w, nr, kc);
}

/// One packed im2col row: the input plane of its channel and the affine map `iw = ow·s + off` of its kernel tap
/// along the last dimension (in bounds for `ow ∈ [lo, hi)`).
struct RowRuns<'a> {
    plane: &'a [f32],
    w_in: usize,
    s: isize,
    off: isize,
    lo: isize,
    hi: isize,
}

impl RowRuns<'_> {
    /// Write the row's runs (`dst` starts at the row's lane 0 of panel 0). `W` is the panel width when it is one
    /// of the tiers' (full, unit-stride, in-bounds runs are then fixed-size copies), or 0.
    #[inline(always)]
    fn pack<const W: usize>(&self, segs: &[Seg], rowbase: &[isize], dst: &mut [f32]) {
        for seg in segs {
            let out = &mut dst[seg.dst..][..seg.len];
            let rb = rowbase[seg.outer];
            if rb < 0 {
                out.fill(0.0);
                continue;
            }
            let row = &self.plane[rb as usize..rb as usize + self.w_in];
            let (a, b) = (seg.ow as isize, (seg.ow + seg.len) as isize);
            if W > 0 && seg.len == W && self.s == 1 && a >= self.lo && b <= self.hi {
                let first = (a + self.off) as usize;
                let out: &mut [f32; W] = out.try_into().unwrap();
                out.copy_from_slice(&row[first..first + W]);
                continue;
            }
            let vlo = self.lo.clamp(a, b);
            let vhi = self.hi.clamp(vlo, b);
            let (m0, m1) = ((vlo - a) as usize, (vhi - a) as usize);
            out[..m0].fill(0.0);
            out[m1..].fill(0.0);
            if m1 > m0 {
                let first = (vlo * self.s + self.off) as usize;
                let mid = &mut out[m0..m1];
                match self.s {
                    1 => mid.copy_from_slice(&row[first..first + mid.len()]),
                    2 => copy_strided::<2>(mid, &row[first..]),
                    st => mid.iter_mut().zip(row[first..].iter().step_by(st as usize)).for_each(|(m, &v)| *m = v),
                }
            }
        }
    }
}

/// `dst[t] = src[t·S]` (`dst.len() ≤ ceil(src.len() / S)`), written so the compiler vectorizes the gather.
#[inline(always)]
pub(crate) fn copy_strided<const S: usize>(dst: &mut [f32], src: &[f32]) {
    let full = src.len() / S;
    for (d, c) in dst.iter_mut().zip(src.chunks_exact(S)) {
        *d = c[0];
    }
    if dst.len() > full {
        dst[full] = src[full * S];
    }
}

/// Row-major multi-index of `flat` within `dims`.
pub(crate) fn unravel(mut flat: usize, dims: &[usize], out: &mut [usize]) {
    for d in (0..dims.len()).rev() {
        out[d] = flat % dims[d];
        flat /= dims[d];
    }
}
