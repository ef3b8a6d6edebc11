//! One convolution as the EP runs it (packed weights, bias + Relu, `parts` column blocks), timed on thread CPU time
//! against the L1-resident micro-kernel in the same process (best of 30 × 5 calls each, interleaved).
//!
//! `cargo run --release --example conv_probe -- C_IN HW C_OUT K STRIDE PARTS` (e.g. `128 28 128 3 1 1`);
//! `VIEW=1` passes a 1×1 convolution's input as a row-major `BOperand::View` instead of the window path. The
//! channel-vectorized lowering (`AOperand::PackedT`, one block) is timed interleaved with it and checked against it.

use asymo_ep::kernels::*;
fn now() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (c_in, hw, c_out, kk, stride, parts): (usize, usize, usize, usize, usize, usize) = (
        a[1].parse().unwrap(),
        a[2].parse().unwrap(),
        a[3].parse().unwrap(),
        a[4].parse().unwrap(),
        a[5].parse().unwrap(),
        a[6].parse().unwrap(),
    );
    assert!(std::env::var("VIEW").is_err() || (kk == 1 && stride == 1), "VIEW=1 needs a 1×1 stride-1 convolution");
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
    let x: Vec<f32> = (0..g.in_size()).map(|i| (i % 7) as f32 * 0.1).collect();
    let w: Vec<f32> = (0..c_out * g.k()).map(|i| (i % 5) as f32 * 0.01).collect();
    let bias = vec![0.1f32; c_out];
    let pa = PackedA::pack(MatRef::row_major(&w, c_out, g.k()));
    let pt = PackedB::pack(MatRef::row_major(&w, c_out, g.k()).t());
    let mut ct = vec![0.0; c_out * g.n()];
    let mut tbest = f64::MAX;
    let (k, n) = (g.k(), g.n());
    let mut c = vec![0.0; c_out * n];
    let mut s = Scratch::new();
    let ops = [FusedOp::RowBias(&bias), FusedOp::Relu];
    let nr = tile_info().nr;
    let gran = n.div_ceil(nr);
    let mut best = f64::MAX;
    let mut ukbest = 0.0f64;
    for _ in 0..30 {
        let t = now();
        for _ in 0..if std::env::var("ONLY_T").is_ok() { 0 } else { 5 } {
            let cm = MatMut::row_major(&mut c, c_out, n);
            for p in 0..parts {
                let c0 = (gran * p / parts * nr).min(n);
                let c1 = (gran * (p + 1) / parts * nr).min(n);
                if std::env::var("VIEW").is_ok() {
                    gemm_block(
                        AOperand::Packed(&pa),
                        BOperand::View(MatRef::row_major(&x, k, n)),
                        cm,
                        k,
                        0..c_out,
                        c0..c1,
                        &ops,
                        &mut s,
                    );
                } else {
                    gemm_block(
                        AOperand::Packed(&pa),
                        BOperand::Im2col(Im2col { input: &x, geometry: &g }),
                        cm,
                        k,
                        0..c_out,
                        c0..c1,
                        &ops,
                        &mut s,
                    );
                }
            }
        }
        best = best.min((now() - t) / 5.0);
        let t = now();
        for _ in 0..5 {
            let cm = MatMut::row_major(&mut ct, c_out, n);
            let b = BOperand::Im2col(Im2col { input: &x, geometry: &g });
            let tparts: usize = std::env::var("TPARTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
            let g32 = c_out.div_ceil(32);
            for p in 0..tparts {
                let (r0, r1) = ((g32 * p / tparts * 32).min(c_out), (g32 * (p + 1) / tparts * 32).min(c_out));
                gemm_block(AOperand::PackedT(&pt), b, cm, k, r0..r1, 0..n, &ops, &mut s);
            }
        }
        tbest = tbest.min((now() - t) / 5.0);
        let t = now();
        let f = microkernel_probe(selected_isa(), 192, 20000);
        ukbest = ukbest.max(f / (now() - t) / 1e9);
    }
    let fl = 2.0 * (c_out * n * k) as f64;
    println!("conv {c_in}->{c_out} {hw}x{hw} k{kk} s{stride} parts {parts}: best {:.3} ms {:.1} GFLOP/s; ukr best {:.1} GFLOP/s; ratio {:.2}", best * 1e3, fl / best / 1e9, ukbest, fl / best / 1e9 / ukbest);
    let err = c.iter().zip(&ct).map(|(a, b)| (a - b).abs() / (1.0 + a.abs())).fold(0.0f32, f32::max);
    println!(
        "  channel-vectorized: best {:.3} ms {:.1} GFLOP/s; ratio {:.2}; speedup {:.2}x; max rel diff {err:.1e}",
        tbest * 1e3,
        fl / tbest / 1e9,
        fl / tbest / 1e9 / ukbest,
        best / tbest
    );
}
