//! Channel-vectorized convolution: `Cᵀ[pixel, c_out] = im2colᵀ[pixel, k] · Wᵀ[k, c_out]`.
//!
//! The pixel-vectorized GEMM (`gemm.rs` with a convolution window) puts output pixels on the vector lanes: a 7×7
//! map fills 49 of 64 lanes (plus the window's padding columns), a 14×14 map 196 of 224, and on larger maps the
//! 32-lane tiles straddle the window's padded rows (masked stores). Here the lanes run along
//! output channels (multiples of 16 / 32 in real networks) and the micro-kernel's rows are pixels: each output row
//! of the block is cut into balanced panels of at most MR pixels (14 → 7 + 7, 7 → 7), so no row of the tile is
//! wasted either (the masked-store kernel computes only the panel's rows).
//!
//! Per block (rows = output channels, cols = output pixels of one image × group):
//! 1. the convolution window of the block's pixels is prepared as for the pixel-vectorized path (`window.rs`):
//!    every im2col row is a contiguous run of it, so a pixel panel's A slice (`m` pixels × kc) is one short copy
//!    per k;
//! 2. `Wᵀ` was packed once (at Compile) as a `PackedB` (K × C_out, NR-column panels);
//! 3. the product accumulates over kc passes into a per-worker `pixels × channels` buffer (L2), then is
//!    transposed into C (NCHW) and the epilogue runs on C's rows as usual (so every epilogue works unchanged).
//!
//! Tiers without a masked-store micro-kernel compute each tile whole into a temp tile (correct, slower; the
//! Compile-time choice in `ops/conv.rs` only picks this path where [`prefer_conv_t`] says so).

use std::ops::Range;

use super::arch::{Ahead, Seg, TileEpi};
use super::gemm::FusedPrefix;
use super::isa::{selected_isa, tile_info_for};
use super::prefetch;
use super::window;
use super::{ConvGeometry, FusedOp, Im2col, MatMut, PackedB, Scratch};

/// One panel of pixels: `m` consecutive virtual columns from `v` of the window, C columns from `pix` (relative to
/// the block's first column).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TPanel {
    v: usize,
    pix: usize,
    m: usize,
}

/// Whether the channel-vectorized lowering is expected to beat the pixel-vectorized one for a convolution of
/// geometry `g` (one image, one group) with `channels` output channels per group, on the selected tier (it needs
/// the masked-store kernel with A read in place: AVX-512). Measured per layer (ResNet-50, MobileNetV1, SqueezeNet,
/// VGG-16 shapes, one core, `tools/ab_conv_t.py`, BENCHMARKS.md "third round" and "fourth round"), with the transposed buffer moved
/// into C by in-register 8 × 8 transposes and one window per job and worker:
/// - spatial kernels (3×3 …) with ≥ 16 input channels and unit strides win 1.05–1.44× at every map size (1.13–1.27×
///   on 160² … 224² maps: the pixel-vectorized tiles straddle the window's padded rows); with fewer input channels
///   (a network's first layer, K = 27 / 147) only on maps of ≥ 128² pixels (1.3–1.9×; 0.95–1.02× on 56² … 112²);
///   strided, they win up to 80² output pixels (1.04–1.09×) and lose beyond (0.82× at 112², from a 224² input),
///   or with 3 input channels (0.92×); ≥ 64 output channels (a multiple of 16, as measured) keep ≥ 2 channel
///   blocks to split;
/// - 1×1 kernels win with ≤ 256 pixels and K ≥ 256 (1.09–1.27×) when their channel tiles waste fewer lanes than
///   the pixel tiles would (channels rounded up to NR × pixels < channels × pixels rounded up to NR): 512→64 and
///   512→32 at 13² / 7² 1.17–1.27×, the 1000-channel classifier at 13² 1.09×, but 48 channels (a half-empty
///   second tile) at 13² / 14² 0.85–0.87×; on larger maps or with smaller K the extra pass through the
///   `pixels × channels` buffer costs more than the lanes it saves (0.73–1.02×).
pub fn prefer_conv_t(g: &ConvGeometry, channels: usize) -> bool {
    let (pixels, k) = (g.n(), g.k());
    let nr = selected_isa().kernels().nr;
    let unit_strides = g.strides.iter().all(|&s| s == 1);
    let spatial = g.kernel.iter().any(|&d| d > 1)
        && channels >= 64
        && channels.is_multiple_of(16)
        && if unit_strides { g.channels >= 16 || pixels >= 128 * 128 } else { g.channels >= 16 && pixels <= 80 * 80 };
    let fewer_idle_lanes = channels.next_multiple_of(nr) * pixels < channels * pixels.next_multiple_of(nr);
    let pointwise_small = pixels <= 256 && k >= 256 && fewer_idle_lanes;
    conv_t_supported(channels) && (spatial || pointwise_small)
}

/// Whether the selected tier runs the channel-vectorized lowering well at all for `channels` output channels per
/// group: it needs the masked-store kernel with A read in place, and at least one whole tile of channels (a ragged
/// last tile is stored through lane masks: SqueezeNet's 1000-channel classifier conv, 1000 = 31·32 + 8, ran 1.09×
/// faster than pixel-vectorized, whose 169-pixel rows leave 23 of 192 lanes idle).
pub fn conv_t_supported(channels: usize) -> bool {
    let ks = selected_isa().kernels();
    ks.gemm_seg_arows.is_some() && channels >= ks.nr
}

/// `C[rows, cols] = epilogue(W · im2col)` with `wt = Wᵀ` packed (`k × C.rows`), computed channel-vectorized.
/// Same contract as `gemm_block` (each element of the block written once, nothing else touched).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_t_block(
    wt: &PackedB,
    im: Im2col<'_>,
    c: MatMut<'_>,
    k: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    ops: &[FusedOp<'_>],
    scratch: &mut Scratch,
) {
    // Large maps run in chunks, so the window copy and the pixels × channels buffer stay bounded (a 224 × 224 map
    // of 64 channels would otherwise hold two 13 MB buffers per worker): whole output rows of a 2-D map, any run of
    // a 1-D map's columns.
    let ow = match im.geometry.out_spatial.as_slice() {
        [_, w] => (*w).max(1),
        _ => 1,
    };
    let chunk = (CT_CHUNK_BYTES / 4 / rows.len().max(1) / ow).max(1) * ow;
    let mut c0 = cols.start;
    while c0 < cols.end {
        let c1 = (c0 / ow * ow + chunk).min(cols.end);
        conv_t_chunk(wt, im, c, k, rows.clone(), c0..c1, ops, scratch);
        c0 = c1;
    }
}

/// The most bytes of pixels × channels buffer one chunk of `conv_t_block` uses (whole output rows, at least one):
/// 8 MB measured as fast as one block on 224 × 224 maps (VGG-16); tests use a small bound so chunks are exercised.
#[cfg(not(test))]
const CT_CHUNK_BYTES: usize = 8 << 20;
#[cfg(test)]
const CT_CHUNK_BYTES: usize = 4 << 10;

#[allow(clippy::too_many_arguments)]
fn conv_t_chunk(
    wt: &PackedB,
    im: Im2col<'_>,
    c: MatMut<'_>,
    k: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    ops: &[FusedOp<'_>],
    scratch: &mut Scratch,
) {
    let ks = wt.isa().kernels();
    let (mr, nr) = (ks.mr, ks.nr);
    debug_assert_eq!(wt.nr(), nr);
    let ti = tile_info_for(ks.isa);
    let kc = k.div_ceil(k.div_ceil(ti.kc_t)).next_multiple_of(8).min(ti.kc_t.max(8));
    let (r0, nch, npix) = (rows.start, rows.len(), cols.len());
    let Scratch { a: abuf, tile, conv, conv_off, conv_of, job, ct: ctbuf, tpanels, .. } = scratch;
    let w = window::prepare(im, cols.clone(), conv, conv_off, ks.stride2, *job, conv_of);
    // Pixel panels: every run of consecutive pixels (one output row of the block, or all of it for a 1×1
    // convolution read directly) cut into balanced panels of at most MR.
    tpanels.clear();
    w.map.segments(w.vcols.clone(), |lane, len, col| {
        let q = len.div_ceil(mr);
        let mut off = 0;
        for t in 0..q {
            let m = (len - off) / (q - t);
            tpanels.push(TPanel { v: w.vcols.start + lane + off, pix: col - cols.start + off, m });
            off += m;
        }
    });
    debug_assert_eq!(tpanels.iter().map(|p| p.m).sum::<usize>(), npix);
    let ldt = nch;
    let ct = ctbuf.get(npix * ldt).as_mut_ptr();
    let tile = tile.get(mr * nr).as_mut_ptr();
    let data = w.data;
    let np = tpanels.len();
    // With A read in place (every tile through the masked-store kernel), the epilogue's simple prefix (biases,
    // then one Relu / Clip) runs in registers on the last pass, C's rows (channels) being the tile's lanes and its
    // columns (pixels) the tile's rows; the rest runs on C after the transpose.
    let fused = ks.gemm_seg_arows.and(FusedPrefix::of(ops, false));
    let rest = &ops[fused.map_or(0, |f| f.len)..];
    let mut pc = 0;
    while pc < k {
        let kb = kc.min(k - pc);
        let first = pc == 0;
        // A: each panel's pixels for this pass, MR floats per k step (rows past m are never used by the masked
        // kernel; tiers without one compute them into the temp tile and drop them).
        let offs = &w.row_off[pc..pc + kb];
        let apack = match ks.gemm_seg_arows {
            // The kernel reads each panel's pixels where they are in the window.
            Some(_) => std::ptr::null(),
            None => {
                let apack = abuf.get(np * mr * kb);
                for (t, pan) in tpanels.iter().enumerate() {
                    let dst = &mut apack[t * mr * kb..(t + 1) * mr * kb];
                    pack_panel(data, offs, pan.v, pan.m, mr, dst);
                }
                apack.as_ptr()
            }
        };
        let (jt0, jt1) = (r0 / nr, rows.end.div_ceil(nr));
        for jt in jt0..jt1 {
            let tj = jt * nr;
            let (l0, l1) = (tj.max(r0), (tj + nr).min(rows.end));
            let full = l0 == tj && l1 == tj + nr;
            let bptr = wt.data()[jt * nr * k + pc * nr..].as_ptr();
            // The next B micro-panel (next channel tile, or the first one of the next pass) is fetched into L2
            // while this one is in use: each is read once from memory and the panels are few (7 for a 7×7 map),
            // so a cold micro-panel would stall the first of them.
            let next = if jt + 1 < jt1 {
                Some((jt + 1, pc, kb))
            } else if pc + kb < k {
                Some((jt0, pc + kb, kc.min(k - pc - kb)))
            } else {
                None
            };
            let (pf, pf_lines) = match next {
                Some((j, p, b)) => (wt.data()[j * nr * k + p * nr..].as_ptr(), (b * nr).div_ceil(16)),
                None => (std::ptr::null(), 0),
            };
            for (t, pan) in tpanels.iter().enumerate() {
                // This panel's share of the next micro-panel's lines: fetched by the kernel as it runs, or here.
                let (q0, q1) = (pf_lines * t / np, pf_lines * (t + 1) / np);
                let ahead = Ahead { start: pf.wrapping_add(q0 * 16), lines: q1 - q0 };
                if ks.gemm_seg_arows.is_none() {
                    for l in q0..q1 {
                        prefetch::read_l2(pf.wrapping_add(l * 16));
                    }
                }
                let aptr = apack.wrapping_add(t * mr * kb);
                // SAFETY: the A panel holds kb·MR floats, the B micro-panel kb·NR (PackedB over the full K, zero-padded
                // to whole panels); the tile rows pan.pix .. +m and lanes l0..l1 (ct columns l0−r0 .. l1−r0) are
                // inside the npix × ldt buffer owned by this worker.
                unsafe {
                    let crow = ct.add(pan.pix * ldt);
                    if let Some(arows) = ks.gemm_seg_arows {
                        // A in place: step p's pixels are data[offs[p] + v ..][..m] (inside the window's run).
                        let (cp, sg) = if full {
                            (crow.add(tj - r0), Seg { delta: 0, mask: u32::MAX })
                        } else {
                            (crow, Seg { delta: tj as isize - r0 as isize, mask: lane_mask(l0 - tj, l1 - tj) })
                        };
                        let a = data.as_ptr().add(pan.v);
                        let epi = fused.filter(|_| pc + kb == k).map(|f| TileEpi {
                            // Tile lane t of segment sg reads col_bias + sg.delta + t = channel tj + t.
                            col_bias: f
                                .row_bias
                                .map_or(std::ptr::null(), |b| b.as_ptr().wrapping_add(if full { tj } else { r0 })),
                            row_bias: f.col_bias.map_or(std::ptr::null(), |b| b.as_ptr().add(cols.start + pan.pix)),
                            ..f.tile
                        });
                        let ep = epi.as_ref().map_or(std::ptr::null(), |e| e as *const TileEpi);
                        arows(kb, pan.m, a, offs.as_ptr(), 1, bptr, cp, ldt as isize, &[sg], !first, ep, ahead);
                    } else if full && pan.m == mr {
                        (ks.gemm)(kb, aptr, bptr, crow.add(tj - r0), ldt as isize, !first, std::ptr::null());
                    } else if let Some(seg) = ks.gemm_seg {
                        let lanes = lane_mask(l0 - tj, l1 - tj);
                        let s = if full {
                            (crow.add(tj - r0), Seg { delta: 0, mask: lanes })
                        } else {
                            (crow, Seg { delta: tj as isize - r0 as isize, mask: lanes })
                        };
                        seg(
                            kb,
                            pan.m,
                            aptr,
                            bptr,
                            std::ptr::null(),
                            s.0,
                            ldt as isize,
                            &[s.1],
                            !first,
                            std::ptr::null(),
                        );
                    } else {
                        (ks.gemm)(kb, aptr, bptr, tile, nr as isize, false, std::ptr::null());
                        for r in 0..pan.m {
                            let src = std::slice::from_raw_parts(tile.add(r * nr + l0 - tj), l1 - l0);
                            let dst = std::slice::from_raw_parts_mut(crow.add(r * ldt + l0 - r0), l1 - l0);
                            if first {
                                dst.copy_from_slice(src);
                            } else {
                                dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                            }
                        }
                    }
                }
            }
        }
        pc += kb;
    }
    // Transpose into C and run the epilogue on C's rows while they are in L1 — one group of rows behind the
    // transpose: read right after the transpose's narrower stores, the epilogue's vector loads could not be
    // forwarded from them and would stall.
    let epilogue_row = |ch: usize| {
        if c.cs == 1 {
            // SAFETY: the row run is npix contiguous floats of the caller's block.
            unsafe { (ks.epilogue)(c.ptr_at(r0 + ch, cols.start), c.rs, 1, npix, r0 + ch, cols.start, rest) };
        } else {
            for p in cols.clone() {
                // SAFETY: (r0 + ch, p) is in the caller's block.
                unsafe {
                    let q = c.ptr_at(r0 + ch, p);
                    *q = super::apply_epilogue(*q, r0 + ch, p, rest);
                }
            }
        }
    };
    // With no epilogue left (the fused prefix took it all: the common case) one transpose over every channel: it
    // walks the buffer pixel block by pixel block, reading each pixel's channels once (whole lines), where a pass
    // per group of eight channels fetched every line of the buffer from L2 once per group.
    if rest.is_empty() && c.cs == 1 && c.rs > 0 {
        // SAFETY: pixels 0..npix × channels 0..nch of the buffer were written above; C rows r0.. (row stride rs,
        // columns contiguous) from column cols.start are npix floats of the caller's block.
        unsafe { (ks.transpose)(npix, nch, ct, ldt, c.ptr_at(r0, cols.start), c.rs as usize) };
        return;
    }
    // Eight channel rows at a time (the tier's in-register 8 × 8 transpose), the epilogue one group behind.
    const G: usize = 8;
    for g0 in (0..nch).step_by(G) {
        let g = G.min(nch - g0);
        if c.cs == 1 && c.rs > 0 {
            // SAFETY: pixels 0..npix × channels g0..g0+g of the buffer were written above; C rows r0+g0.. (row
            // stride rs, columns contiguous) from column cols.start are npix floats of the caller's block.
            unsafe {
                (ks.transpose)(npix, g, ct.add(g0), ldt, c.ptr_at(r0 + g0, cols.start), c.rs as usize);
            }
        } else {
            for ch in g0..g0 + g {
                for p in 0..npix {
                    // SAFETY: (p, ch) is inside the npix × ldt buffer; (r0 + ch, cols.start + p) is in the block.
                    unsafe { *c.ptr_at(r0 + ch, cols.start + p) = *ct.add(p * ldt + ch) };
                }
            }
        }
        if !rest.is_empty() && g0 > 0 {
            (g0 - G..g0).for_each(epilogue_row);
        }
    }
    if !rest.is_empty() && nch > 0 {
        ((nch - 1) / G * G..nch).for_each(epilogue_row);
    }
}

/// Bits `lo..hi` of a lane mask (`hi ≤ 32`).
fn lane_mask(lo: usize, hi: usize) -> u32 {
    let m = |n: usize| if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
    m(hi) & !m(lo)
}

/// `dst[p·MR + i] = data[offs[p] + v + i]` for `i < m` (a pixel panel of A, one pass).
#[inline]
fn pack_panel(data: &[f32], offs: &[usize], v: usize, m: usize, mr: usize, dst: &mut [f32]) {
    match mr {
        12 => pack_panel_n::<12>(data, offs, v, m, dst),
        8 => pack_panel_n::<8>(data, offs, v, m, dst),
        6 => pack_panel_n::<6>(data, offs, v, m, dst),
        4 => pack_panel_n::<4>(data, offs, v, m, dst),
        _ => {
            for (p, &o) in offs.iter().enumerate() {
                dst[p * mr..p * mr + m].copy_from_slice(&data[o + v..o + v + m]);
            }
        }
    }
}

#[inline(always)]
fn pack_panel_n<const MR: usize>(data: &[f32], offs: &[usize], v: usize, m: usize, dst: &mut [f32]) {
    for (p, &o) in offs.iter().enumerate() {
        let d = &mut dst[p * MR..p * MR + MR];
        let s = o + v;
        if s + MR <= data.len() {
            // Fixed-size copy (whole vectors); lanes past m are never used.
            let src: &[f32; MR] = data[s..s + MR].try_into().unwrap();
            d.copy_from_slice(src);
        } else {
            d[..m].copy_from_slice(&data[s..s + m]);
        }
    }
}
