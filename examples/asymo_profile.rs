//! `asymo-profile`: measure the cost model (per core class and kernel kind) and write the JSON profile that the EP
//! loads with `profile=<path>`.
//!
//! ```text
//! cargo run --release --example asymo_profile -- [--out profile.json] [--budget-ms 2000] [--topology 0-3:1024,4-7:462]
//!                                                 [--cores 0,1] [--sysfs-root /sys]
//! ```
//! Each class is timed on a thread pinned to its first CPU; progress lines go to stderr.

use std::path::PathBuf;
use std::time::Duration;

use asymo_ep::asym::cost::{self, CalibrationOptions, KernelKind, TaskShape};
use asymo_ep::asym::topology::{Topology, TopologyOptions};
use asymo_ep::kernels::{gemm_block, AOperand, BOperand, ConvGeometry, Im2col, MatMut, MatRef, Scratch};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str| args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).cloned();
    let out = PathBuf::from(get("--out").unwrap_or_else(|| "asymo-profile.json".into()));
    let budget = Duration::from_millis(get("--budget-ms").map(|s| s.parse().expect("--budget-ms N")).unwrap_or(2000));
    let topt = TopologyOptions {
        topology: get("--topology"),
        cores: get("--cores"),
        sysfs_root: get("--sysfs-root").map(PathBuf::from),
        ..Default::default()
    };
    let topo = Topology::detect(&topt).unwrap_or_else(|e| {
        eprintln!("asymo-profile: {e}");
        std::process::exit(2)
    });
    eprintln!("topology: {} ({} cores)", topo.fingerprint(), topo.num_cores());

    // Operands big enough for every calibration shape.
    let shapes: Vec<TaskShape> = KernelKind::ALL.iter().flat_map(|&k| cost::calibration_shapes(k)).collect();
    let max_a = shapes.iter().map(|s| s.m * s.k).max().unwrap();
    let max_b = shapes.iter().map(|s| s.k * s.n).max().unwrap();
    let max_c = shapes.iter().map(|s| s.m * s.n).max().unwrap();
    let a: Vec<f32> = (0..max_a).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
    let b: Vec<f32> = (0..max_b).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect();
    let state = parking_lot::Mutex::new((vec![0.0f32; max_c], Scratch::new()));
    let workload = |s: &TaskShape| {
        let mut st = state.lock();
        let (c, scratch) = &mut *st;
        let am = MatRef::row_major(&a[..s.m * s.k], s.m, s.k);
        let cm = MatMut::row_major(&mut c[..s.m * s.n], s.m, s.n);
        match s.kind {
            KernelKind::Conv => {
                // A 1-D convolution with kernel 1 over `k` channels: the im2col path, `n` output positions.
                let g = ConvGeometry {
                    channels: s.k,
                    in_spatial: vec![s.n],
                    kernel: vec![1],
                    out_spatial: vec![s.n],
                    strides: vec![1],
                    dilations: vec![1],
                    pads_begin: vec![0],
                };
                let im = Im2col { input: &b[..s.k * s.n], geometry: &g };
                gemm_block(AOperand::View(am), BOperand::Im2col(im), cm, s.k, 0..s.m, 0..s.n, &[], scratch);
            }
            _ => {
                let bm = MatRef::row_major(&b[..s.k * s.n], s.k, s.n);
                gemm_block(AOperand::View(am), BOperand::View(bm), cm, s.k, 0..s.m, 0..s.n, &[], scratch);
            }
        }
        std::hint::black_box(&c[0]);
    };
    let progress = |line: &str| eprintln!("  {line}");
    let opts = CalibrationOptions {
        budget,
        kinds: KernelKind::ALL.to_vec(),
        scale_by_capacity: topt.topology.as_deref().is_some_and(|t| t != "auto"),
        progress: Some(&progress),
        sysfs_root: topt.sysfs_root.clone().unwrap_or_else(|| PathBuf::from("/sys")),
        ..Default::default()
    };
    let mut model = cost::calibrate(&topo, &opts, &workload).unwrap_or_else(|e| {
        eprintln!("asymo-profile: {e}");
        std::process::exit(1)
    });
    model.source = format!("asymo-profile budget {} ms", budget.as_millis());
    model.save(&out).unwrap_or_else(|e| {
        eprintln!("asymo-profile: {e}");
        std::process::exit(1)
    });
    eprintln!("wrote {}", out.display());
}
