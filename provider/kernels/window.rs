//! The B operand of a 1-D / 2-D convolution as shifted windows of a prepared input (no im2col).
//!
//! For a block of output positions, the input rows it needs are copied once into a *window*: zero-padded, and split
//! into stride phases (phase `(py, px)` holds padded pixels `(y·sh + py, x·sw + px)`), each phase plane `pw` floats
//! wide with `pw = out_w + max column shift`. Output `(oy, ox)` of the block is *virtual column*
//! `v = (oy − oy0)·pw + ox`; kernel tap `(c, ky, kx)` then reads window element `row_off[c, ky, kx] + v`, where the
//! offset selects the channel, the phase of `(ky·dh, kx·dw)` and the shift `(ky·dh / sh, kx·dw / sw)`. So every
//! row of the virtual im2col matrix is a contiguous run of the window — packing a B panel is one fixed-size copy per
//! row, whatever the stride, dilation or padding. Virtual columns with `v mod pw ≥ out_w` are padding: computed,
//! never stored (the GEMM driver maps virtual columns to C columns with [`ColMap`]).
//!
//! 1×1 kernels with unit stride and no padding need no window: the input itself is the B matrix (`pw = out_w`).
//! Cost of the window: one pass over the block's input rows (plus halo), against `kh·kw` passes for im2col.

use std::ops::Range;

use super::buf::AlignedBuf;
use super::isa::selected_isa;
use super::pack::copy_strided;
use super::{ConvGeometry, Im2col};

/// Virtual column `v` of a shifted B ↔ C column: `base + (v / pitch)·width + v mod pitch`, valid when
/// `v mod pitch < width`. `pitch == width` is the identity (plus `base`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ColMap {
    pub(crate) pitch: usize,
    pub(crate) width: usize,
    /// C column of virtual column 0.
    pub(crate) base: usize,
}

impl ColMap {
    pub(crate) fn identity() -> Self {
        ColMap { pitch: usize::MAX, width: usize::MAX, base: 0 }
    }

    /// Virtual column of C column `n` (which must be at or after `base`).
    pub(crate) fn virt(&self, n: usize) -> usize {
        if self.pitch == self.width {
            return n - self.base;
        }
        let r = n - self.base;
        (r / self.width) * self.pitch + r % self.width
    }

    /// The C column of virtual column `v`, or of the first valid one after it when `v` falls in a row's padding.
    pub(crate) fn col_of(&self, v: usize) -> usize {
        if self.pitch == self.width {
            return self.base + v;
        }
        self.base + (v / self.pitch) * self.width + (v % self.pitch).min(self.width)
    }

    /// The virtual range covering C columns `cols` (non-empty).
    pub(crate) fn virt_range(&self, cols: &Range<usize>) -> Range<usize> {
        self.virt(cols.start)..self.virt(cols.end - 1) + 1
    }

    /// Call `f(lane0, len, c_col)` for every run of valid virtual columns in `v` (consecutive C columns).
    #[inline]
    pub(crate) fn segments(&self, v: Range<usize>, mut f: impl FnMut(usize, usize, usize)) {
        if self.pitch == self.width {
            if !v.is_empty() {
                f(0, v.len(), self.base + v.start);
            }
            return;
        }
        let mut s = v.start;
        while s < v.end {
            let (row, col) = (s / self.pitch, s % self.pitch);
            let row_end = row * self.pitch + self.pitch;
            if col < self.width {
                let e = (row * self.pitch + self.width).min(v.end);
                f(s - v.start, e - s, self.base + row * self.width + col);
            }
            s = row_end;
        }
    }
}

/// Whether [`prepare`] handles this geometry (1-D and 2-D convolutions).
pub(crate) fn supports(g: &ConvGeometry) -> bool {
    (1..=2).contains(&g.kernel.len())
}

/// A prepared shifted B: element (p, v) is `data[row_off[p] + v]`.
pub(crate) struct Shifted<'s> {
    pub(crate) data: &'s [f32],
    pub(crate) row_off: &'s [usize],
    pub(crate) map: ColMap,
    /// Virtual columns of the block.
    pub(crate) vcols: Range<usize>,
}

/// 2-D view of a 1-D / 2-D geometry: (in_h, in_w, k_h, k_w, s_h, s_w, d_h, d_w, p_t, p_l, o_h, o_w).
struct G2 {
    ih: usize,
    iw: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    pt: usize,
    pl: usize,
    oh: usize,
    ow: usize,
}

impl G2 {
    fn of(g: &ConvGeometry) -> G2 {
        if g.kernel.len() == 1 {
            G2 {
                ih: 1,
                iw: g.in_spatial[0],
                kh: 1,
                kw: g.kernel[0],
                sh: 1,
                sw: g.strides[0],
                dh: 1,
                dw: g.dilations[0],
                pt: 0,
                pl: g.pads_begin[0],
                oh: 1,
                ow: g.out_spatial[0],
            }
        } else {
            G2 {
                ih: g.in_spatial[0],
                iw: g.in_spatial[1],
                kh: g.kernel[0],
                kw: g.kernel[1],
                sh: g.strides[0],
                sw: g.strides[1],
                dh: g.dilations[0],
                dw: g.dilations[1],
                pt: g.pads_begin[0],
                pl: g.pads_begin[1],
                oh: g.out_spatial[0],
                ow: g.out_spatial[1],
            }
        }
    }

    /// 1×1, unit stride, no padding: the input is the B matrix as it is.
    fn is_direct(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.pt == 0
            && self.pl == 0
            && self.oh == self.ih
            && self.ow == self.iw
    }
}

/// Identity of a prepared window: (job token, input address and length, geometry address, first and end column).
pub(crate) type WindowKey = (u64, usize, usize, usize, usize, usize);

/// Whether a 1×1 stride-1 convolution `g` with `rows` output channels (per group) should pass its input as a
/// direct window (B rows read in place by the micro-kernel) rather than as a row-major view packed into panels.
/// Packing costs a pass over the whole input, repaid only when many row tiles reuse the panels: measured on one
/// core (`examples/conv_probe`, 55² and 28² maps), in place wins 1.1–2× with ≤ 48 output channels and ≥ 32 input
/// channels (`g.channels`; a squeeze layer: 64→16 35 vs 48 µs, 256→8 73 vs 142 µs) and loses with K = 16 (16→64:
/// 54 vs 43 µs). With more output channels the panels pack: 64→64, 64→128, 32→64 and 64→256 0.90–0.96× in place
/// (through ORT, one core). Where K is at least four times the output channels (ResNet's reduce layers) the hosts
/// disagreed: an AMD Zen 5 ran 256→64 on 56² 1.13× and 512→128 on 28² 1.03× faster in place, the Intel Emerald
/// Rapids host after it 1.32× and 1.17× faster packed (paired in one process; 1024→256 and 2048→512 even;
/// ResNet-50 1.01–1.03× at the median, one and two cores): in place it reads a panel's K rows from as many
/// channel planes at once, latency-bound when the input is beyond L2, and packing follows the newer measurement.
/// Only where that was measured: 1-D / 2-D geometry (the window), a tier whose masked-store kernel reads B in
/// place, and in-place reads not turned off (`ASYMO_CONV_INPLACE=0`).
pub fn pointwise_in_place(g: &ConvGeometry, rows: usize) -> bool {
    rows <= 48 && g.channels >= 32 && supports(g) && super::gemm::reads_b_in_place(selected_isa().kernels())
}

/// Prepare the shifted B of `im` for C columns `cols` (non-empty): the window goes into `buf`, the K row offsets
/// into `row_off`. `stride2` is the tier's `dst[t] = src[2t]` copy (stride-2 phase splits). With a non-zero `job`
/// token, `held` records what `buf` holds, and a window already held for the same job, input, geometry and columns
/// is not copied again (inputs do not change within a job).
pub(crate) fn prepare<'s>(
    im: Im2col<'s>,
    cols: Range<usize>,
    buf: &'s mut AlignedBuf,
    row_off: &'s mut Vec<usize>,
    stride2: unsafe fn(usize, *const f32, *mut f32),
    job: u64,
    held: &mut Option<WindowKey>,
) -> Shifted<'s> {
    let g = G2::of(im.geometry);
    let channels = im.geometry.channels;
    let plane = g.ih * g.iw;
    let taps = g.kh * g.kw;
    row_off.clear();
    if g.is_direct() {
        row_off.extend((0..channels).map(|c| c * plane));
        let row_off: &'s Vec<usize> = row_off;
        return Shifted { data: &im.input[..channels * plane], row_off, vcols: cols, map: ColMap::identity() };
    }
    // Output rows of the block, phases used, shifts.
    let (oy0, oy1) = (cols.start / g.ow, (cols.end - 1) / g.ow + 1);
    let mut phases: Vec<(usize, usize)> = Vec::with_capacity(4);
    let mut tap_phase = [0usize; 64];
    let big = taps > tap_phase.len();
    let (mut rsh_max, mut csh_max) = (0, 0);
    for ky in 0..g.kh {
        for kx in 0..g.kw {
            let (ry, rx) = (ky * g.dh, kx * g.dw);
            let ph = (ry % g.sh, rx % g.sw);
            let idx = match phases.iter().position(|&p| p == ph) {
                Some(i) => i,
                None => {
                    phases.push(ph);
                    phases.len() - 1
                }
            };
            if !big {
                tap_phase[ky * g.kw + kx] = idx;
            }
            rsh_max = rsh_max.max(ry / g.sh);
            csh_max = csh_max.max(rx / g.sw);
        }
    }
    let pw = g.ow + csh_max;
    let rows = oy1 - oy0 + rsh_max;
    let pstride = rows * pw;
    let cstride = phases.len() * pstride;
    for c in 0..channels {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let (ry, rx) = (ky * g.dh, kx * g.dw);
                let ph = if big {
                    phases.iter().position(|&p| p == (ry % g.sh, rx % g.sw)).unwrap()
                } else {
                    tap_phase[ky * g.kw + kx]
                };
                row_off.push(c * cstride + ph * pstride + (ry / g.sh) * pw + rx / g.sw);
            }
        }
    }
    let row_off: &'s Vec<usize> = row_off;
    // NR floats of slack: a micro-kernel reading rows in place loads whole 32-lane rows past the last column.
    let data = buf.get(channels * cstride + 32);
    let key = (job, im.input.as_ptr() as usize, im.input.len(), im.geometry as *const _ as usize, cols.start, cols.end);
    let reuse = job != 0 && *held == Some(key);
    *held = (job != 0).then_some(key);
    // A reused window keeps its contents (`buf.get` of the same length does not move them): copy no channel.
    let copy_channels = if reuse { 0 } else { channels };
    for c in 0..copy_channels {
        let src_plane = &im.input[c * plane..(c + 1) * plane];
        for (ph, &(py, px)) in phases.iter().enumerate() {
            let dst_phase = &mut data[c * cstride + ph * pstride..][..pstride];
            // Columns u of the phase with input column ix = u·sw + px − pl inside [0, iw).
            let ulo = if g.pl > px { (g.pl - px).div_ceil(g.sw) } else { 0 }.min(pw);
            let uhi = (g.iw + g.pl).saturating_sub(px).div_ceil(g.sw).clamp(ulo, pw);
            for (r, dst) in dst_phase.chunks_exact_mut(pw).enumerate() {
                let y = (oy0 + r) * g.sh + py;
                if y < g.pt || y - g.pt >= g.ih || ulo == uhi {
                    dst.fill(0.0);
                    continue;
                }
                let src = &src_plane[(y - g.pt) * g.iw..][..g.iw];
                dst[..ulo].fill(0.0);
                dst[uhi..].fill(0.0);
                let first = ulo * g.sw + px - g.pl;
                let mid = &mut dst[ulo..uhi];
                match g.sw {
                    1 => mid.copy_from_slice(&src[first..first + mid.len()]),
                    2 if first + 2 * mid.len() - 1 <= src.len() => {
                        // SAFETY: src[first ..] holds 2·len − 1 floats (checked), mid holds len.
                        unsafe { stride2(mid.len(), src.as_ptr().add(first), mid.as_mut_ptr()) }
                    }
                    2 => copy_strided::<2>(mid, &src[first..]),
                    s => mid.iter_mut().zip(src[first..].iter().step_by(s)).for_each(|(m, &v)| *m = v),
                }
            }
        }
    }
    let map = ColMap { pitch: pw, width: g.ow, base: oy0 * g.ow };
    let vcols = map.virt_range(&cols);
    Shifted { data: &*data, row_off, map, vcols }
}

/// Pack rows `row_off` (a kc slice) and virtual columns `v0 .. v0+n` of a shifted B into NR-column panels
/// (zero-padding the last panel).
pub(crate) fn pack_b_shifted(data: &[f32], row_off: &[usize], v0: usize, n: usize, nr: usize, dst: &mut [f32]) {
    let kc = row_off.len();
    let panels = n.div_ceil(nr);
    let dst = &mut dst[..panels * nr * kc];
    match nr {
        32 => pack_rows::<32>(data, row_off, v0, n, dst),
        16 => pack_rows::<16>(data, row_off, v0, n, dst),
        12 => pack_rows::<12>(data, row_off, v0, n, dst),
        8 => pack_rows::<8>(data, row_off, v0, n, dst),
        _ => pack_rows_any(data, row_off, v0, n, nr, dst),
    }
}

#[inline(always)]
fn pack_rows<const NR: usize>(data: &[f32], row_off: &[usize], v0: usize, n: usize, dst: &mut [f32]) {
    let kc = row_off.len();
    let full = n / NR;
    for (p, &off) in row_off.iter().enumerate() {
        let row = &data[off + v0..off + v0 + n];
        for q in 0..full {
            let d: &mut [f32; NR] = (&mut dst[q * NR * kc + p * NR..][..NR]).try_into().unwrap();
            let s: &[f32; NR] = row[q * NR..q * NR + NR].try_into().unwrap();
            *d = *s;
        }
        let w = n - full * NR;
        if w > 0 {
            let d = &mut dst[full * NR * kc + p * NR..][..NR];
            d[..w].copy_from_slice(&row[full * NR..]);
            d[w..].fill(0.0);
        }
    }
}

fn pack_rows_any(data: &[f32], row_off: &[usize], v0: usize, n: usize, nr: usize, dst: &mut [f32]) {
    let kc = row_off.len();
    for (p, &off) in row_off.iter().enumerate() {
        let row = &data[off + v0..off + v0 + n];
        for q in 0..n.div_ceil(nr) {
            let w = nr.min(n - q * nr);
            let d = &mut dst[q * nr * kc + p * nr..][..nr];
            d[..w].copy_from_slice(&row[q * nr..q * nr + w]);
            d[w..].fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colmap_segments_cover_valid_columns_once() {
        let m = ColMap { pitch: 9, width: 7, base: 14 };
        let mut seen = vec![];
        m.segments(5..40, |lane, len, col| {
            for t in 0..len {
                seen.push((lane + t, col + t));
            }
        });
        let want: Vec<(usize, usize)> =
            (5..40).filter(|v| v % 9 < 7).map(|v| (v - 5, 14 + (v / 9) * 7 + v % 9)).collect();
        assert_eq!(seen, want);
        for n in 14..14 + 35 {
            let v = m.virt(n);
            assert!(v % 9 < 7 && 14 + (v / 9) * 7 + v % 9 == n);
            assert_eq!(m.col_of(v), n);
        }
        // A padding column maps to the next row's first column; the identity map to base + v.
        assert_eq!(m.col_of(9 + 7), m.col_of(18));
        assert_eq!(ColMap { base: 3, ..ColMap::identity() }.col_of(40), 43);
    }
}
