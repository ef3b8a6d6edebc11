//! `OrtEp`: one per session. Claims nodes (GetCapability), compiles them (Compile) and hosts the run hooks.

use core::ffi::{c_char, c_int};
use std::collections::HashSet;

use parking_lot::{Mutex, RwLock};

use asymo_ep_ffi::sys::{OrtGraph, OrtLogger, OrtNode, OrtRunOptions, OrtValueInfo};
use asymo_ep_ffi::{
    ep_call, Api, Error, LogLevel, OrtEp, OrtEpDataLayout, OrtEpGraphSupportInfo, OrtNodeComputeInfo,
    OrtNodeFusionOptions, Result, StatusPtr, ORT_EP_DATA_LAYOUT_NCHW, ORT_EP_DATA_LAYOUT_NHWC, ORT_VERSION_SUPPORTED,
};

use super::compute::ComputeInfo;
use super::graph::{describe_node, describe_value_shape};
use super::{status_of, value_of, write_out, EP_NAME};
use crate::asym::energy;
use crate::asym::freq::{GovMode, RunPlan};
use crate::asym::reuse::ReuseAccumulator;
use crate::ops::{
    check_support, epilogue, gemm_work, is_standalone, joins_channels, pooled_by, split_concat_subgraph, OpPlan,
    SharedWeights, ValueDesc,
};
use crate::options::{EpConfig, Layout};
use crate::runtime::{CallerSteering, Shared};

/// Our EP. `table` must stay the first field: ORT hands us `*mut OrtEp`, which we cast back.
#[repr(C)]
pub(crate) struct Ep {
    table: OrtEp,
    api: &'static Api,
    /// The session logger (valid for the session's lifetime).
    logger: *const OrtLogger,
    config: EpConfig,
    shared: Shared,
    /// The model's GEMM work so far (all Compile calls of this session), for its data-reuse profile.
    reuse: Mutex<ReuseAccumulator>,
    /// What the governor does at each run, set at Compile.
    freq_plan: RwLock<RunPlan>,
    /// With `caller_affinity`: when to narrow ORT's calling thread.
    steering: Option<CallerSteering>,
}

// SAFETY: the logger pointer is only passed back to ORT's thread-safe logging API; all other fields are Sync/Send.
unsafe impl Send for Ep {}
// SAFETY: as above; run hooks take &self and only touch the (Sync) runtime.
unsafe impl Sync for Ep {}

impl Ep {
    pub(crate) fn new(api: &'static Api, entries: &[(String, String)], logger: *const OrtLogger) -> Result<Box<Self>> {
        let config = EpConfig::from_entries(entries.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let shared = Shared::acquire(&config)?;
        let caller_affinity = config.caller_affinity;
        Ok(Box::new(Ep {
            table: OrtEp {
                ort_version_supported: ORT_VERSION_SUPPORTED,
                GetName: Some(get_name),
                GetCapability: Some(get_capability),
                Compile: Some(compile),
                ReleaseNodeComputeInfos: Some(release_node_compute_infos),
                GetPreferredDataLayout: Some(get_preferred_data_layout),
                ShouldConvertDataLayoutForOp: Some(should_convert_data_layout),
                SetDynamicOptions: None,
                OnRunStart: Some(on_run_start),
                OnRunEnd: Some(on_run_end),
                CreateAllocator: None,
                CreateSyncStreamForDevice: None,
                GetCompiledModelCompatibilityInfo: None,
                GetKernelRegistry: None,
                IsConcurrentRunSupported: Some(is_concurrent_run_supported),
                Sync: None,
                CreateProfiler: None,
                IsGraphCaptureEnabled: None,
                IsGraphCaptured: None,
                ReplayGraph: None,
                GetGraphCaptureNodeAssignmentPolicy: None,
                GetAvailableResource: None,
                OnSessionInitializationEnd: None,
                GetDefaultMemoryDevice: None,
                ReleaseCapturedGraph: None,
                GetWeightlessSupport: None,
            },
            api,
            logger,
            config,
            shared,
            reuse: Mutex::new(ReuseAccumulator::default()),
            freq_plan: RwLock::new(RunPlan::inert("no compiled nodes")),
            steering: caller_affinity.then(CallerSteering::default),
        }))
    }

    /// # Safety
    /// `this` must point to a live `Ep` created by `new`.
    unsafe fn from_ptr<'a>(this: *const OrtEp) -> &'a Ep {
        // SAFETY: Ep is repr(C) with the table first (caller contract).
        unsafe { &*(this as *const Ep) }
    }

    fn log(&self, level: LogLevel, msg: &str) {
        // SAFETY: the session logger outlives the EP.
        unsafe { self.api.log(self.logger, level, msg) };
    }

    /// Claim every node we compute exactly, each together with the chain of single-consumer elementwise nodes
    /// that follows it (fused into its store, see `ops::epilogue`), as one fused node whose constant weights we
    /// copy at Compile (ORT may then free its copy).
    ///
    /// # Safety
    /// `graph` and `support` are live for this call.
    unsafe fn get_capability(&self, graph: *const OrtGraph, support: *mut OrtEpGraphSupportInfo) -> Result<()> {
        // SAFETY: graph is live (caller contract).
        let nodes = unsafe { self.api.graph_nodes(graph) }?;
        let options =
            OrtNodeFusionOptions { ort_version_supported: ORT_VERSION_SUPPORTED, drop_constant_initializers: true };
        let mut taken: HashSet<usize> = HashSet::new();
        for node in nodes {
            // SAFETY (all calls): node and everything reached from it belong to the live graph.
            unsafe {
                if taken.contains(&self.api.node_id(node)?) {
                    continue;
                }
                let desc = describe_node(self.api, node, false)?;
                // Transposes are claimed only where ORT inserts them to move values between layouts (NHWC
                // preferred; multi-threaded here). Pooling is claimed in either layout.
                if desc.op_type == "Transpose" && self.config.layout != Layout::Nhwc {
                    continue;
                }
                match check_support(&desc) {
                    Ok(()) => {
                        let mut chain =
                            if is_standalone(&desc.op_type) { vec![node] } else { self.epilogue_chain(node, &taken)? };
                        if desc.op_type == "Conv" && desc.domain.is_empty() && self.config.layout != Layout::Nhwc {
                            if let Some(group) = self.concat_group(&chain, &taken)? {
                                chain = group;
                            } else if let Some(pool) = self.pool_after(&chain, &taken)? {
                                chain.push(pool);
                            }
                        }
                        for n in &chain {
                            taken.insert(self.api.node_id(*n)?);
                        }
                        ep_call!(
                            self.api,
                            EpGraphSupportInfo_AddNodesToFuse(support, chain.as_ptr(), chain.len(), &options)
                        )?;
                    }
                    Err(reason) if matches!(desc.op_type.as_str(), "MatMul" | "Gemm" | "Conv") => {
                        self.log(LogLevel::Info, &format!("AsyMo EP leaves {reason}"));
                    }
                    Err(_) => {}
                }
            }
        }
        Ok(())
    }

    /// `node` followed by the elementwise nodes that can be fused into its store: each the only consumer of the
    /// previous value, which is not a graph output (or the two consumers of the `x · HardSigmoid(x)` pattern).
    ///
    /// # Safety
    /// `node` is a live node of the graph being partitioned.
    unsafe fn epilogue_chain(&self, node: *const OrtNode, taken: &HashSet<usize>) -> Result<Vec<*const OrtNode>> {
        let api = self.api;
        let mut chain = vec![node];
        let mut current = node;
        // SAFETY (all calls): every node and value reached is part of the live graph.
        unsafe {
            while let [Some(value)] = api.node_outputs(current)?[..] {
                if api.value_is_graph_output(value)? {
                    break;
                }
                let value_desc = describe_value_shape(api, value)?;
                let consumers = api.value_consumers(value)?;
                let next: Vec<*const OrtNode> = match consumers[..] {
                    [(c, _)] => {
                        let c_desc = describe_node(api, c, false)?;
                        if taken.contains(&api.node_id(c)?) || !epilogue::fusable(&c_desc, &value_desc) {
                            break;
                        }
                        vec![c]
                    }
                    [(a, _), (b, _)] => {
                        let (da, db) = (describe_node(api, a, false)?, describe_node(api, b, false)?);
                        let (hs, mul, hs_desc, mul_desc) =
                            if da.op_type == "HardSigmoid" { (a, b, da, db) } else { (b, a, db, da) };
                        if !epilogue::hardswish_pattern(&value_desc, &hs_desc, &mul_desc) {
                            break;
                        }
                        // The HardSigmoid's output must feed only the Mul.
                        let [Some(hs_out)] = api.node_outputs(hs)?[..] else { break };
                        if api.value_is_graph_output(hs_out)? || api.value_consumers(hs_out)?.len() != 1 {
                            break;
                        }
                        vec![hs, mul]
                    }
                    _ => break,
                };
                current = *next.last().expect("non-empty");
                chain.extend(next);
            }
        }
        Ok(chain)
    }

    /// A Conv's chain (`chain`) and, when its only consumer is a channel Concat (see `ops::joins_channels`) whose
    /// every input is likewise the end of a claimable Conv's chain, all those chains and the Concat: one fused node
    /// whose convolutions write their channels of the Concat's output in place. `None` otherwise.
    ///
    /// # Safety
    /// Every node in `chain` is a live node of the graph being partitioned.
    unsafe fn concat_group(
        &self,
        chain: &[*const OrtNode],
        taken: &HashSet<usize>,
    ) -> Result<Option<Vec<*const OrtNode>>> {
        let api = self.api;
        // SAFETY (all calls): every node and value reached is part of the live graph.
        unsafe {
            // The value a chain hands to the Concat: its last node's only output, consumed by the Concat alone.
            let end_value = |last: *const OrtNode| -> Result<Option<(String, *const OrtNode)>> {
                let [Some(value)] = api.node_outputs(last)?[..] else { return Ok(None) };
                if api.value_is_graph_output(value)? {
                    return Ok(None);
                }
                let [(consumer, _)] = api.value_consumers(value)?[..] else { return Ok(None) };
                Ok(Some((api.value_name(value)?, consumer)))
            };
            let Some(&last) = chain.last() else { return Ok(None) };
            let Some((own_value, concat)) = end_value(last)? else { return Ok(None) };
            if taken.contains(&api.node_id(concat)?) || !joins_channels(&describe_node(api, concat, false)?) {
                return Ok(None);
            }
            let mut in_group: HashSet<usize> = HashSet::new();
            for &n in chain {
                in_group.insert(api.node_id(n)?);
            }
            let mut group = Vec::new();
            for input in api.node_inputs(concat)? {
                let Some(value) = input else { return Ok(None) };
                let name = api.value_name(value)?;
                if name == own_value {
                    if group.iter().any(|n| chain.contains(n)) {
                        return Ok(None); // the same value twice
                    }
                    group.extend_from_slice(chain);
                    continue;
                }
                let Some(producer) = api.value_producer(value)? else { return Ok(None) };
                let Some(conv) = self.conv_upstream(producer, 4)? else { return Ok(None) };
                let conv_id = api.node_id(conv)?;
                if taken.contains(&conv_id) || in_group.contains(&conv_id) {
                    return Ok(None);
                }
                let blocked: HashSet<usize> = taken.union(&in_group).copied().collect();
                let part = self.epilogue_chain(conv, &blocked)?;
                let Some(&part_last) = part.last() else { return Ok(None) };
                match end_value(part_last)? {
                    Some((end, consumer)) if end == name && consumer == concat => {}
                    _ => return Ok(None),
                }
                for &n in &part {
                    if !in_group.insert(api.node_id(n)?) {
                        return Ok(None);
                    }
                }
                group.extend(part);
            }
            group.push(concat);
            Ok(Some(group))
        }
    }

    /// The MaxPool that alone consumes a Conv chain's output, when it can be fused after it (`ops::pooled_by`; the
    /// chain without a residual Add, whose operand is not read band by band).
    ///
    /// # Safety
    /// Every node in `chain` is a live node of the graph being partitioned.
    unsafe fn pool_after(&self, chain: &[*const OrtNode], taken: &HashSet<usize>) -> Result<Option<*const OrtNode>> {
        let api = self.api;
        // SAFETY (all calls): every node and value reached is part of the live graph.
        unsafe {
            for &n in &chain[1..] {
                if api.node_op_type(n)? == "Add" {
                    return Ok(None);
                }
            }
            let Some(&last) = chain.last() else { return Ok(None) };
            let [Some(value)] = api.node_outputs(last)?[..] else { return Ok(None) };
            if api.value_is_graph_output(value)? {
                return Ok(None);
            }
            let [(pool, _)] = api.value_consumers(value)?[..] else { return Ok(None) };
            let conv = describe_node(api, chain[0], false)?;
            if taken.contains(&api.node_id(pool)?) || !pooled_by(&conv, &describe_node(api, pool, false)?) {
                return Ok(None);
            }
            Ok(Some(pool))
        }
    }

    /// The claimable (NCHW) Conv at most `depth` nodes upstream of `node` (itself included), searching every
    /// input: the candidate head of the chain that produced a Concat input (`concat_group` checks the chain).
    ///
    /// # Safety
    /// `node` is a live node of the graph being partitioned.
    unsafe fn conv_upstream(&self, node: *const OrtNode, depth: usize) -> Result<Option<*const OrtNode>> {
        let api = self.api;
        // SAFETY (all calls): every node and value reached is part of the live graph.
        unsafe {
            let desc = describe_node(api, node, false)?;
            if desc.op_type == "Conv" && desc.domain.is_empty() {
                return Ok(check_support(&desc).is_ok().then_some(node));
            }
            if depth == 0 {
                return Ok(None);
            }
            for value in api.node_inputs(node)?.into_iter().flatten() {
                if let Some(producer) = api.value_producer(value)? {
                    if let Some(conv) = self.conv_upstream(producer, depth - 1)? {
                        return Ok(Some(conv));
                    }
                }
            }
            Ok(None)
        }
    }

    /// Build one compute info per fused node. On failure nothing is leaked and every output slot is null.
    ///
    /// # Safety
    /// Arrays hold `count` live entries; outputs are writable.
    unsafe fn compile(
        &self,
        graphs: *const *const OrtGraph,
        fused_nodes: *const *const OrtNode,
        count: usize,
        infos: *mut *mut OrtNodeComputeInfo,
        ep_context_nodes: *mut *mut OrtNode,
    ) -> Result<()> {
        if graphs.is_null() || fused_nodes.is_null() || infos.is_null() {
            return Err(Error::invalid_argument("Compile: null arrays"));
        }
        let mut built: Vec<Box<ComputeInfo>> = Vec::with_capacity(count);
        let mut reuse = self.reuse.lock();
        let mut weights = SharedWeights::default();
        for i in 0..count {
            // SAFETY: i < count entries in both arrays (caller contract).
            let (graph, fused) = unsafe { (*graphs.add(i), *fused_nodes.add(i)) };
            // SAFETY: graph and fused node are live for this call.
            let (info, works) = unsafe { self.compile_one(graph, fused, &mut weights) }?;
            for work in works {
                reuse.add(work);
            }
            built.push(info);
        }
        self.plan_frequencies(&reuse)?;
        drop(reuse);
        for (i, info) in built.into_iter().enumerate() {
            // SAFETY: i < count slots; ORT returns each info through ReleaseNodeComputeInfos.
            unsafe {
                *infos.add(i) = Box::into_raw(info) as *mut OrtNodeComputeInfo;
                if !ep_context_nodes.is_null() {
                    *ep_context_nodes.add(i) = std::ptr::null_mut();
                }
            }
        }
        Ok(())
    }

    /// # Safety
    /// `graph` and `fused` are live for this call.
    unsafe fn compile_one(
        &self,
        graph: *const OrtGraph,
        fused: *const OrtNode,
        weights: &mut SharedWeights,
    ) -> Result<(Box<ComputeInfo>, Vec<crate::asym::reuse::GemmWork>)> {
        // SAFETY (all calls): graph, its nodes and the fused node are live for this callback.
        unsafe {
            let fused_name = self.api.node_name(fused)?;
            // The fused subgraph holds one MatMul/Gemm/Conv and its epilogue chain, in topological order, or the
            // chains of a channel Concat's convolutions and the Concat (`concat_group`).
            let mut descs = self
                .api
                .graph_nodes(graph)?
                .into_iter()
                .map(|n| describe_node(self.api, n, true))
                .collect::<Result<Vec<_>>>()?;
            if descs.iter().any(|d| d.op_type == "Concat") {
                let (parts, concat) =
                    split_concat_subgraph(descs).map_err(|e| e.context(format!("fused node '{fused_name}'")))?;
                let (plan, slots) = OpPlan::build_concat(&parts, &concat, weights)?;
                let works = parts.iter().filter_map(|(conv, _)| gemm_work(conv)).collect();
                return self.compute_info(fused, fused_name, plan, &slots, &concat.outputs).map(|info| (info, works));
            }
            let main_index = descs
                .iter()
                .position(|d| matches!(d.op_type.as_str(), "MatMul" | "Gemm" | "Conv") || is_standalone(&d.op_type))
                .ok_or_else(|| {
                    Error::fail(format!(
                        "fused node '{fused_name}' holds no MatMul, Gemm, Conv, pool or layout Transpose"
                    ))
                })?;
            if main_index != 0 {
                return Err(Error::fail(format!(
                    "fused node '{fused_name}': the chain starts at a {}, not at its {}",
                    descs[0].op_type, descs[main_index].op_type
                )));
            }
            let chain = descs.split_off(1);
            let desc = descs.pop().expect("main node");
            let (plan, slots) = OpPlan::build_fused(&desc, &chain, weights)?;
            // The fused node's output is the chain's last output.
            let last = chain.last().unwrap_or(&desc);
            let info = self.compute_info(fused, fused_name, plan, &slots, &last.outputs)?;
            Ok((info, gemm_work(&desc).into_iter().collect()))
        }
    }

    /// The compute info running `plan` as fused node `fused`: each of the plan's run-time input `slots` found among
    /// the fused node's inputs by name (constants were copied into the plan), `outputs` among its outputs.
    ///
    /// # Safety
    /// `fused` is live for this call.
    unsafe fn compute_info(
        &self,
        fused: *const OrtNode,
        fused_name: String,
        plan: OpPlan,
        slots: &[Option<ValueDesc>],
        outputs: &[Option<ValueDesc>],
    ) -> Result<Box<ComputeInfo>> {
        // SAFETY (all calls): the fused node is live for this callback.
        unsafe {
            if self.config.log_plan {
                self.log(LogLevel::Warning, &format!("AsyMo EP plan {}", plan.describe()));
            }
            let names = |values: Vec<Option<*const OrtValueInfo>>| -> Result<Vec<Option<String>>> {
                values.into_iter().map(|vi| vi.map(|vi| self.api.value_name(vi)).transpose()).collect()
            };
            let fused_inputs = names(self.api.node_inputs(fused)?)?;
            let fused_outputs = names(self.api.node_outputs(fused)?)?;
            let position = |names: &[Option<String>], want: &str| names.iter().position(|n| n.as_deref() == Some(want));
            // Constant inputs were copied into the plan; every other input is found on the fused node by name
            // (its input order differs from the node's once initializers are dropped).
            let input_map = slots
                .iter()
                .map(|v| match v {
                    Some(v) if v.constant.is_some() => Ok(None),
                    Some(v) => position(&fused_inputs, &v.name).map(Some).ok_or_else(|| {
                        Error::fail(format!(
                            "input '{}' of '{}' is not an input of fused node '{fused_name}'",
                            v.name, plan.node_name
                        ))
                    }),
                    None => Ok(None),
                })
                .collect::<Result<Vec<_>>>()?;
            let output_map =
                outputs.iter().map(|v| v.as_ref().and_then(|v| position(&fused_outputs, &v.name))).collect();
            Ok(ComputeInfo::new(self.api, plan, fused_name, input_map, output_map, self.shared.asym.clone()))
        }
    }

    /// The governor's plan for this model's data reuse (energy curves from the profile in `mode=energy`).
    fn plan_frequencies(&self, reuse: &ReuseAccumulator) -> Result<()> {
        let model = reuse.finish();
        let curves = match (&self.config.asym.profile, self.config.freq.mode) {
            (Some(path), GovMode::Energy) => {
                energy::read_energy(path).map_err(|e| Error::invalid_argument(e.to_string()))?
            }
            _ => None,
        };
        let plan = self
            .shared
            .governor
            .prepare(&self.config.freq, &model, curves.as_ref())
            .map_err(|e| Error::invalid_argument(format!("frequency plan: {e}")))?;
        if self.config.log_plan {
            self.log(LogLevel::Warning, &format!("AsyMo EP model {model}; {}", plan.summary()));
        }
        *self.freq_plan.write() = plan;
        Ok(())
    }

    fn run_start(&self) {
        self.shared.run_start(&self.freq_plan.read(), self.steering.as_ref());
    }

    fn run_end(&self) {
        let token = self.freq_plan.read().token();
        self.shared.run_end(token, self.steering.as_ref());
    }
}

unsafe extern "system" fn get_name(_this: *const OrtEp) -> *const c_char {
    EP_NAME.as_ptr()
}

unsafe extern "system" fn get_capability(
    this: *mut OrtEp,
    graph: *const OrtGraph,
    support: *mut OrtEpGraphSupportInfo,
) -> StatusPtr {
    status_of("GetCapability", || {
        // SAFETY: `this` is our EP; graph and support are live for the call.
        unsafe { Ep::from_ptr(this).get_capability(graph, support) }
    })
}

unsafe extern "system" fn compile(
    this: *mut OrtEp,
    graphs: *const *const OrtGraph,
    fused_nodes: *const *const OrtNode,
    count: usize,
    infos: *mut *mut OrtNodeComputeInfo,
    ep_context_nodes: *mut *mut OrtNode,
) -> StatusPtr {
    status_of("Compile", || {
        // SAFETY: `this` is our EP; the arrays come from ORT with `count` entries.
        unsafe { Ep::from_ptr(this).compile(graphs, fused_nodes, count, infos, ep_context_nodes) }
    })
}

unsafe extern "system" fn release_node_compute_infos(
    _this: *mut OrtEp,
    infos: *mut *mut OrtNodeComputeInfo,
    count: usize,
) {
    value_of((), || {
        if infos.is_null() {
            return;
        }
        for i in 0..count {
            // SAFETY: ORT passes back the `count` infos Compile returned, each exactly once.
            let info = unsafe { *infos.add(i) };
            if !info.is_null() {
                // SAFETY: created by Box::into_raw in compile (ComputeInfo is repr(C), table first).
                drop(unsafe { Box::from_raw(info as *mut ComputeInfo) });
            }
        }
    })
}

unsafe extern "system" fn get_preferred_data_layout(this: *mut OrtEp, layout: *mut OrtEpDataLayout) -> StatusPtr {
    status_of("GetPreferredDataLayout", || {
        // SAFETY: `this` is our EP.
        let nhwc = unsafe { Ep::from_ptr(this) }.config.layout == Layout::Nhwc;
        let preferred = if nhwc { ORT_EP_DATA_LAYOUT_NHWC } else { ORT_EP_DATA_LAYOUT_NCHW };
        // SAFETY: ORT's out-pointer.
        unsafe { write_out(layout, preferred, "GetPreferredDataLayout") }
    })
}

unsafe extern "system" fn should_convert_data_layout(
    _this: *mut OrtEp,
    _domain: *const c_char,
    _op_type: *const c_char,
    _target: OrtEpDataLayout,
    should_convert: *mut c_int,
) -> StatusPtr {
    status_of("ShouldConvertDataLayoutForOp", || {
        // SAFETY: ORT's out-pointer; -1 lets ORT decide: with NHWC preferred it converts the layout-sensitive ops
        // we claimed (Conv, the pools), which GetCapability then claims again in their channels-last form.
        unsafe { write_out(should_convert, -1, "ShouldConvertDataLayoutForOp") }
    })
}

unsafe extern "system" fn on_run_start(this: *mut OrtEp, _run_options: *const OrtRunOptions) -> StatusPtr {
    status_of("OnRunStart", || {
        // SAFETY: `this` is our EP (shared across concurrent runs; run_start is thread-safe).
        unsafe { Ep::from_ptr(this) }.run_start();
        Ok(())
    })
}

unsafe extern "system" fn on_run_end(
    this: *mut OrtEp,
    _run_options: *const OrtRunOptions,
    _sync_stream: bool,
) -> StatusPtr {
    status_of("OnRunEnd", || {
        // SAFETY: as in on_run_start.
        unsafe { Ep::from_ptr(this) }.run_end();
        Ok(())
    })
}

unsafe extern "system" fn is_concurrent_run_supported(_this: *mut OrtEp, supported: *mut bool) -> StatusPtr {
    status_of("IsConcurrentRunSupported", || {
        // SAFETY: ORT's out-pointer. Compute is re-entrant: plans are immutable and scratch is per thread.
        unsafe { write_out(supported, true, "IsConcurrentRunSupported") }
    })
}
