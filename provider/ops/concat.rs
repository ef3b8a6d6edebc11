//! A Concat along the channels of convolutions we claim (SqueezeNet's and Inception's branches): each convolution,
//! with its fused epilogue, writes its own channel range of the Concat's output, so the concatenated tensor is
//! never copied. The convolutions run one after another, each split across the cores as it would be alone.

use std::ops::Range;

use super::{fmt_shape, Error, Executor, GivenOutput, NodeDesc, OpPlan, OutputAlloc, Result, TensorView};

/// Whether `node` is a Concat along dim 1 of channels-first tensors (the only axis whose per-image slices are
/// contiguous), with enough declared shape to resolve a negative axis.
pub fn joins_channels(node: &NodeDesc) -> bool {
    if node.op_type != "Concat" || !node.domain.is_empty() || node.outputs.len() != 1 {
        return false;
    }
    // Opset 1's axis is optional (default 1); later opsets require it.
    let Ok(axis) = node.attr_int("axis", 1) else { return false };
    if axis >= 0 {
        return axis == 1;
    }
    let rank = node.outputs.iter().chain(&node.inputs).flatten().find_map(|v| v.shape.as_ref().map(Vec::len));
    rank.is_some_and(|r| axis + r as i64 == 1)
}

/// A Conv and the nodes fused into its store, in order.
pub type ConvChain = (NodeDesc, Vec<NodeDesc>);

/// Split the nodes of a fused Concat subgraph (topological order: the chains of the Concat's convolutions and the
/// Concat) into the Concat and, per Concat input in order, the chain that produced it (its Conv, then the nodes
/// fused into the Conv's store). Each chain is a connected piece of the subgraph headed by its Conv; anything
/// else is an error naming the problem.
pub fn split_concat_subgraph(nodes: Vec<NodeDesc>) -> Result<(Vec<ConvChain>, NodeDesc)> {
    let concat_at = match nodes.iter().position(|d| d.op_type == "Concat") {
        Some(i) if nodes.iter().filter(|d| d.op_type == "Concat").count() == 1 => i,
        _ => return Err(Error::fail("a fused Concat subgraph needs exactly one Concat")),
    };
    let mut nodes = nodes;
    let concat = nodes.remove(concat_at);
    // Pieces: nodes joined by the values one produces and another consumes.
    let produced_by = |name: &str| nodes.iter().position(|d| d.outputs.iter().flatten().any(|v| v.name == name));
    let mut piece: Vec<usize> = (0..nodes.len()).collect();
    fn root(piece: &mut [usize], mut i: usize) -> usize {
        while piece[i] != i {
            piece[i] = piece[piece[i]];
            i = piece[i];
        }
        i
    }
    for (i, d) in nodes.iter().enumerate() {
        for v in d.inputs.iter().flatten() {
            if let Some(j) = produced_by(&v.name) {
                let (a, b) = (root(&mut piece, i), root(&mut piece, j));
                piece[a] = b;
            }
        }
    }
    let mut used = vec![false; nodes.len()];
    let mut parts = Vec::with_capacity(concat.inputs.len());
    for input in &concat.inputs {
        let name = input.as_ref().map(|v| v.name.as_str()).unwrap_or_default();
        let Some(end) = produced_by(name) else {
            return Err(Error::fail(format!(
                "Concat '{}': input '{name}' is not computed in the subgraph",
                concat.name
            )));
        };
        let r = root(&mut piece, end);
        let members: Vec<usize> = (0..nodes.len()).filter(|&i| root(&mut piece, i) == r).collect();
        if members.iter().any(|&i| used[i]) || members.last() != Some(&end) || nodes[members[0]].op_type != "Conv" {
            return Err(Error::fail(format!(
                "Concat '{}': input '{name}' is not the end of one Conv's chain",
                concat.name
            )));
        }
        for &i in &members {
            used[i] = true;
        }
        let chain: Vec<NodeDesc> = members[1..].iter().map(|&i| nodes[i].clone()).collect();
        parts.push((nodes[members[0]].clone(), chain));
    }
    if used.iter().any(|u| !u) {
        return Err(Error::fail(format!("Concat '{}': nodes that feed none of its inputs", concat.name)));
    }
    Ok((parts, concat))
}

/// The parts of a channel Concat: one compiled convolution (with its epilogue) per Concat input, in input order.
#[derive(Debug)]
pub(super) struct ConcatConvs {
    /// Each part's plan and its range of the plan's run-time input slots.
    parts: Vec<(OpPlan, Range<usize>)>,
}

impl ConcatConvs {
    pub(super) fn new(parts: Vec<(OpPlan, Range<usize>)>) -> Result<Self> {
        if parts.is_empty() {
            return Err(Error::invalid_argument("Concat of convolutions without parts"));
        }
        for (plan, _) in &parts {
            if !plan.is_channels_first_conv() {
                return Err(Error::invalid_argument(format!(
                    "'{}' joins a Concat but is not a channels-first Conv",
                    plan.node_name
                )));
            }
        }
        Ok(ConcatConvs { parts })
    }

    pub(super) fn describe(&self) -> String {
        let parts: Vec<String> = self.parts.iter().map(|(p, _)| p.describe()).collect();
        format!("Concat along channels, each part writing its channels in place: [{}]", parts.join("; "))
    }

    pub(super) fn run(
        &self,
        inputs: &[Option<TensorView<'_>>],
        out: &mut dyn OutputAlloc,
        exec: &dyn Executor,
    ) -> Result<()> {
        let part_inputs = |r: &Range<usize>| inputs.get(r.clone()).unwrap_or(&[]);
        let shapes =
            self.parts.iter().map(|(p, r)| p.conv_output_shape(part_inputs(r))).collect::<Result<Vec<Vec<usize>>>>()?;
        let first = &shapes[0];
        for (s, (p, _)) in shapes.iter().zip(&self.parts) {
            if s.len() != first.len() || s[0] != first[0] || s[2..] != first[2..] {
                return Err(Error::invalid_argument(format!(
                    "Concat inputs {} ('{}') and {} ('{}') differ outside the channel axis",
                    fmt_shape(first),
                    self.parts[0].0.node_name,
                    fmt_shape(s),
                    p.node_name
                )));
            }
        }
        let mut total = first.clone();
        total[1] = shapes.iter().map(|s| s[1]).sum();
        let y = out.output(0, &total)?;
        if y.is_empty() {
            return Ok(());
        }
        let (batch, plane) = (total[0], total[2..].iter().product::<usize>());
        if batch == 1 {
            // One image: each part's channels are one contiguous run of the output.
            let mut rest = y;
            for ((plan, r), shape) in self.parts.iter().zip(&shapes) {
                let (mine, tail) = rest.split_at_mut(shape[1] * plane);
                plan.run(part_inputs(r), &mut GivenOutput::new(mine, shape), exec)?;
                rest = tail;
            }
            return Ok(());
        }
        // Several images: a part's channels are one run per image; compute it whole, then move its runs.
        let image = total[1] * plane;
        let mut offset = 0;
        let mut part_out = Vec::new();
        for ((plan, r), shape) in self.parts.iter().zip(&shapes) {
            let run = shape[1] * plane;
            part_out.clear();
            part_out.resize(batch * run, 0.0);
            plan.run(part_inputs(r), &mut GivenOutput::new(&mut part_out, shape), exec)?;
            for (dst, src) in y.chunks_exact_mut(image).zip(part_out.chunks_exact(run.max(1))) {
                dst[offset..offset + run].copy_from_slice(src);
            }
            offset += run;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::value;
    use crate::ops::AttrValue;

    fn node(name: &str, op: &str, inputs: &[&str], output: &str) -> NodeDesc {
        NodeDesc {
            name: name.into(),
            op_type: op.into(),
            inputs: inputs.iter().map(|i| value(i, &[1, 4, 5, 5])).collect(),
            outputs: vec![value(output, &[1, 4, 5, 5])],
            ..Default::default()
        }
    }

    fn concat(inputs: &[&str], axis: i64) -> NodeDesc {
        NodeDesc { attrs: vec![("axis".into(), AttrValue::Int(axis))], ..node("cat", "Concat", inputs, "y") }
    }

    #[test]
    fn channel_axis_only() {
        assert!(joins_channels(&concat(&["a", "b"], 1)));
        assert!(joins_channels(&concat(&["a", "b"], -3)));
        assert!(!joins_channels(&concat(&["a", "b"], 2)));
        assert!(!joins_channels(&concat(&["a", "b"], -1)));
        let mut unranked = concat(&["a", "b"], -3);
        for v in unranked.inputs.iter_mut().chain(&mut unranked.outputs).flatten() {
            v.shape = None;
        }
        assert!(!joins_channels(&unranked), "a negative axis needs a known rank");
        assert!(joins_channels(&NodeDesc { attrs: vec![], ..concat(&["a"], 1) }), "opset 1 defaults to 1");
    }

    #[test]
    fn parts_follow_the_concat_inputs() {
        // Topological order interleaves the two chains.
        let nodes = vec![
            node("c1", "Conv", &["x", "w1"], "a"),
            node("c2", "Conv", &["x", "w2"], "b"),
            node("r2", "Relu", &["b"], "b2"),
            node("r1", "Relu", &["a"], "a2"),
            node("add1", "Add", &["a2", "res"], "a3"),
            concat(&["b2", "a3"], 1),
        ];
        let (parts, cat) = split_concat_subgraph(nodes).unwrap();
        assert_eq!(cat.name, "cat");
        let names: Vec<(String, Vec<String>)> =
            parts.iter().map(|(c, ch)| (c.name.clone(), ch.iter().map(|n| n.name.clone()).collect())).collect();
        assert_eq!(names, vec![("c2".into(), vec!["r2".into()]), ("c1".into(), vec!["r1".into(), "add1".into()])]);
    }

    #[test]
    fn malformed_subgraphs_are_errors() {
        let conv = |n: &str, out: &str| node(n, "Conv", &["x", "w"], out);
        let cases: Vec<(&str, Vec<NodeDesc>)> = vec![
            ("no concat", vec![conv("c1", "a")]),
            ("input from outside", vec![conv("c1", "a"), concat(&["a", "z"], 1)]),
            (
                "chain not headed by a Conv",
                vec![node("r", "Relu", &["x"], "a"), conv("c2", "b"), concat(&["a", "b"], 1)],
            ),
            ("one chain twice", vec![conv("c1", "a"), concat(&["a", "a"], 1)]),
            (
                "stray node",
                vec![conv("c1", "a"), conv("c2", "b"), node("s", "Relu", &["x"], "q"), concat(&["a", "b"], 1)],
            ),
            (
                "a chain value that is not its end",
                vec![conv("c1", "a"), node("r", "Relu", &["a"], "b"), concat(&["a", "b"], 1)],
            ),
        ];
        for (what, nodes) in cases {
            assert!(split_concat_subgraph(nodes).is_err(), "{what}");
        }
    }
}
