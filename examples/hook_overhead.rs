//! Cost of the per-run hooks: `Shared::run_start` + `Shared::run_end`, exactly what ORT's `OnRunStart` and
//! `OnRunEnd` callbacks run (steer the caller, ready the pool, apply and release the frequency plan).
//!
//! ```text
//! cargo run --release --example hook_overhead -- [freq=off|auto|max ...]   # options as session options
//! ```
//! Prints the mean and median of start+end over 20 000 iterations, each after a short idle gap (the pool parked).

use std::time::{Duration, Instant};

use asymo_ep::asym::reuse::ReuseAccumulator;
use asymo_ep::options::{EpConfig, OPTION_PREFIX};
use asymo_ep::runtime::{CallerSteering, Shared};

fn main() {
    let args: Vec<(String, String)> = std::env::args()
        .skip(1)
        .filter_map(|a| a.split_once('=').map(|(k, v)| (format!("{OPTION_PREFIX}{k}"), v.to_string())))
        .collect();
    let cfg = EpConfig::from_entries(args.iter().map(|(k, v)| (k.as_str(), v.as_str()))).expect("options");
    let shared = Shared::acquire(&cfg).expect("runtime");
    let plan = shared.governor.prepare(&cfg.freq, &ReuseAccumulator::default().finish(), None).expect("plan");
    let steering = cfg.caller_affinity.then(CallerSteering::default);
    let mut samples = Vec::with_capacity(20_000);
    for i in 0..20_000 {
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(3)); // let workers park now and then
        }
        let t0 = Instant::now();
        shared.run_start(&plan, steering.as_ref());
        shared.run_end(plan.token(), steering.as_ref());
        samples.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    println!(
        "OnRunStart+OnRunEnd work ({}; {}): mean {mean:.2} µs, p50 {:.2} µs, p99 {:.2} µs",
        args.iter().map(|(k, v)| format!("{}={v}", &k[OPTION_PREFIX.len()..])).collect::<Vec<_>>().join(" "),
        plan.summary(),
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100]
    );
}
