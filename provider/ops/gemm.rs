//! Gemm (opset 7, 9, 11, 13): `Y = alpha · op(A) · op(B) + beta · C`, C optional and unidirectionally broadcast.

use super::input_or;
use std::sync::Arc;

use crate::kernels::{AOperand, BOperand, FusedOp, MatMut, MatRef, PackedA, PackedB};

use super::exec::{Executor, GemmJob};
use super::{fmt_shape, Epilogue, Error, NodeDesc, OutputAlloc, Result, Tensor, TensorView};

pub(super) fn check(node: &NodeDesc) -> std::result::Result<(), String> {
    if node.since_version < 7 {
        return Err(node.unsupported(format!(
            "Gemm-{} (legacy 'broadcast' attribute semantics) is left to the CPU EP",
            node.since_version
        )));
    }
    if !(2..=3).contains(&node.inputs.len()) || node.input(0).is_none() || node.input(1).is_none() {
        return Err(node.unsupported("expects inputs A, B and optional C"));
    }
    for i in 0..2 {
        if let Some(shape) = node.input(i).and_then(|v| v.shape.as_ref()) {
            if shape.len() != 2 {
                return Err(node.unsupported(format!("input {i} has rank {}, Gemm needs 2", shape.len())));
            }
        }
    }
    if let Some(shape) = node.input(2).and_then(|v| v.shape.as_ref()) {
        if shape.len() > 2 {
            return Err(node.unsupported(format!("C has rank {}, Gemm allows at most 2", shape.len())));
        }
    }
    for (name, want_int) in [("transA", true), ("transB", true), ("alpha", false), ("beta", false)] {
        let ok = match node.attr(name) {
            None => true,
            Some(super::AttrValue::Int(_)) => want_int,
            Some(super::AttrValue::Float(_)) => !want_int,
            Some(_) => false,
        };
        if !ok {
            return Err(node.unsupported(format!("attribute {name} has an unexpected type")));
        }
    }
    Ok(())
}

#[derive(Debug)]
pub(super) struct Gemm {
    trans_a: bool,
    trans_b: bool,
    alpha: f32,
    beta: f32,
    const_a: Option<(Vec<usize>, PackedA)>,
    const_b: Option<(Vec<usize>, std::sync::Arc<PackedB>)>,
    const_c: Option<Arc<Tensor>>,
}

/// `op(X)` of a row-major 2-D tensor as an (rows × cols) view.
fn op_view<'a>(data: &'a [f32], shape: &[usize], trans: bool) -> MatRef<'a> {
    let m = MatRef::row_major(data, shape[0], shape[1]);
    if trans {
        m.t()
    } else {
        m
    }
}

/// The view of C broadcast to (m × n), or an error naming the shapes.
fn c_view<'a>(c: TensorView<'a>, m: usize, n: usize) -> Result<MatRef<'a>> {
    let (cr, cc) = match *c.shape {
        [] => (1, 1),
        [x] => (1, x),
        [r, x] => (r, x),
        _ => return Err(Error::invalid_argument(format!("Gemm C has rank {}, at most 2 allowed", c.shape.len()))),
    };
    if !(cr == m || cr == 1) || !(cc == n || cc == 1) || (c.data.is_empty() && m * n != 0) {
        return Err(Error::invalid_argument(format!(
            "Gemm C {} does not broadcast to the output [{m}, {n}]",
            fmt_shape(c.shape)
        )));
    }
    let rs = if cr == 1 { 0 } else { cc as isize };
    let cs = if cc == 1 { 0 } else { 1 };
    Ok(MatRef::new(c.data, m, n, rs, cs))
}

impl Gemm {
    pub(super) fn build(node: &NodeDesc, weights: &mut super::SharedWeights) -> Result<Self> {
        let trans_a = node.attr_int("transA", 0)? != 0;
        let trans_b = node.attr_int("transB", 0)? != 0;
        let pack_2d = |t: &Tensor, i: usize| -> Result<()> {
            if t.shape.len() != 2 {
                return Err(Error::invalid_argument(format!("Gemm input {i} {} is not 2-D", fmt_shape(&t.shape))));
            }
            Ok(())
        };
        let const_a = match node.constant(0) {
            Some(t) => {
                pack_2d(&t, 0)?;
                Some((t.shape.clone(), PackedA::pack(op_view(&t.data, &t.shape, trans_a))))
            }
            None => None,
        };
        let const_b = match node.constant(1) {
            Some(t) => {
                pack_2d(&t, 1)?;
                let how = if trans_b { "gemm.b.t" } else { "gemm.b" };
                let packed = weights.packed(
                    how,
                    &t,
                    |t| PackedB::pack(op_view(&t.data, &t.shape, trans_b)),
                    |p, t| super::weights::packed_holds(p, op_view(&t.data, &t.shape, trans_b)),
                );
                Some((t.shape.clone(), packed))
            }
            None => None,
        };
        Ok(Gemm {
            trans_a,
            trans_b,
            alpha: node.attr_float("alpha", 1.0)?,
            beta: node.attr_float("beta", 1.0)?,
            const_a,
            const_b,
            const_c: node.constant(2),
        })
    }

    pub(super) fn describe(&self) -> String {
        let operand = |c: Option<&Vec<usize>>| c.map_or("dynamic".to_string(), |s| format!("constant {s:?} packed"));
        format!(
            "Gemm transA={} transB={} alpha={} beta={}, A {}, B {}, C {}",
            self.trans_a as i32,
            self.trans_b as i32,
            self.alpha,
            self.beta,
            operand(self.const_a.as_ref().map(|(s, _)| s)),
            operand(self.const_b.as_ref().map(|(s, _)| s)),
            self.const_c.as_ref().map_or("dynamic or absent".to_string(), |c| format!("constant {:?}", c.shape))
        )
    }

    pub(super) fn run(
        &self,
        inputs: &[Option<TensorView<'_>>],
        post: &Epilogue,
        out: &mut dyn OutputAlloc,
        exec: &dyn Executor,
    ) -> Result<()> {
        let a = inputs.first().copied().flatten();
        let b = inputs.get(1).copied().flatten();
        let a_shape: &[usize] = match (&self.const_a, &a) {
            (Some((s, _)), _) => s,
            (None, Some(a)) => a.shape,
            _ => return Err(Error::invalid_argument("Gemm input A is missing")),
        };
        let b_shape: &[usize] = match (&self.const_b, &b) {
            (Some((s, _)), _) => s,
            (None, Some(b)) => b.shape,
            _ => return Err(Error::invalid_argument("Gemm input B is missing")),
        };
        if a_shape.len() != 2 || b_shape.len() != 2 {
            return Err(Error::invalid_argument(format!(
                "Gemm needs 2-D A and B, got A {} and B {}",
                fmt_shape(a_shape),
                fmt_shape(b_shape)
            )));
        }
        let (m, k) = if self.trans_a { (a_shape[1], a_shape[0]) } else { (a_shape[0], a_shape[1]) };
        let (kb, n) = if self.trans_b { (b_shape[1], b_shape[0]) } else { (b_shape[0], b_shape[1]) };
        if k != kb {
            return Err(Error::invalid_argument(format!(
                "Gemm inner dimensions differ: A {} (transA={}) has K={k}, B {} (transB={}) has K={kb}",
                fmt_shape(a_shape),
                self.trans_a as i32,
                fmt_shape(b_shape),
                self.trans_b as i32
            )));
        }
        let c = input_or(inputs, 2, self.const_c.as_deref());
        if let Some(c) = c {
            c_view(c, m, n)?;
        }
        let post = post.bind(inputs, &[m, n])?;
        let y = out.output(0, &[m, n])?;
        if y.is_empty() {
            return Ok(());
        }
        let mut epilogue = Vec::new();
        if k == 0 {
            // As ORT's CPU EP (gemm.cc): with K = 0 the output is C broadcast as given — neither alpha nor beta
            // applied — when C is present and beta ≠ 0, else zeros.
            if let Some(c) = c.filter(|_| self.beta != 0.0) {
                epilogue.push(FusedOp::AddScaled { src: c_view(c, m, n)?, beta: 1.0 });
            }
        } else {
            if self.alpha != 1.0 {
                epilogue.push(FusedOp::Scale(self.alpha));
            }
            if let Some(c) = c.filter(|_| self.beta != 0.0) {
                epilogue.push(FusedOp::AddScaled { src: c_view(c, m, n)?, beta: self.beta });
            }
        }
        epilogue.extend(post.ops(0, m, n));
        let a_op = match (&self.const_a, &a) {
            (Some((_, p)), _) => AOperand::Packed(p),
            (None, Some(a)) => AOperand::View(op_view(a.data, a.shape, self.trans_a)),
            _ => unreachable!("A presence checked above"),
        };
        let b_op = match (&self.const_b, &b) {
            (Some((_, p)), _) => BOperand::Packed(p),
            (None, Some(b)) => BOperand::View(op_view(b.data, b.shape, self.trans_b)),
            _ => unreachable!("B presence checked above"),
        };
        exec.run(&[GemmJob { a: a_op, b: b_op, c: MatMut::row_major(y, m, n), k, epilogue }])
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::*;

    #[allow(clippy::too_many_arguments)]
    fn reference(
        a: &[f32],
        ta: bool,
        b: &[f32],
        tb: bool,
        c: Option<(&[f32], &[usize])>,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        beta: f32,
    ) -> Vec<f32> {
        let mut y = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0;
                for p in 0..k {
                    let av = if ta { a[p * m + i] } else { a[i * k + p] };
                    let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                    acc += av * bv;
                }
                let mut v = alpha * acc;
                if let Some((cd, cs)) = c {
                    let cv = match *cs {
                        [] => cd[0],
                        [x] => cd[if x == 1 { 0 } else { j }],
                        [r, x] => cd[(if r == 1 { 0 } else { i }) * x + if x == 1 { 0 } else { j }],
                        _ => unreachable!(),
                    };
                    if beta != 0.0 {
                        v += beta * cv;
                    }
                }
                y[i * n + j] = v;
            }
        }
        y
    }

    #[test]
    fn all_attribute_combinations() {
        let (m, n, k) = (5, 7, 3);
        let mut rng = Lcg(7);
        for ta in [false, true] {
            for tb in [false, true] {
                for (alpha, beta) in [(1.0, 1.0), (0.5, 2.0), (1.0, 0.0)] {
                    for cshape in
                        [None, Some(vec![]), Some(vec![n]), Some(vec![1, n]), Some(vec![m, 1]), Some(vec![m, n])]
                    {
                        for const_b in [false, true] {
                            let a = rng.vec(m * k);
                            let b = rng.vec(k * n);
                            let ash = if ta { [k as i64, m as i64] } else { [m as i64, k as i64] };
                            let bsh = if tb { vec![n, k] } else { vec![k, n] };
                            let c = cshape.as_ref().map(|s: &Vec<usize>| rng.vec(s.iter().product()));
                            let mut inputs = vec![value("A", &ash)];
                            inputs.push(if const_b {
                                constant("B", Tensor { shape: bsh.clone(), data: b.clone() })
                            } else {
                                value("B", &bsh.iter().map(|&d| d as i64).collect::<Vec<_>>())
                            });
                            if let Some(s) = &cshape {
                                inputs.push(value("C", &s.iter().map(|&d| d as i64).collect::<Vec<_>>()));
                            }
                            let node = NodeDesc {
                                name: "g".into(),
                                op_type: "Gemm".into(),
                                since_version: 13,
                                attrs: vec![
                                    ("transA".into(), AttrValue::Int(ta as i64)),
                                    ("transB".into(), AttrValue::Int(tb as i64)),
                                    ("alpha".into(), AttrValue::Float(alpha)),
                                    ("beta".into(), AttrValue::Float(beta)),
                                ],
                                inputs,
                                outputs: vec![value("Y", &[m as i64, n as i64])],
                                ..Default::default()
                            };
                            let plan = OpPlan::build(&node).unwrap();
                            let ashape = if ta { [k, m] } else { [m, k] };
                            let mut run_inputs = vec![Some(TensorView { shape: &ashape, data: &a })];
                            run_inputs.push(if const_b { None } else { Some(TensorView { shape: &bsh, data: &b }) });
                            if let (Some(s), Some(cd)) = (&cshape, &c) {
                                run_inputs.push(Some(TensorView { shape: s, data: cd }));
                            }
                            let mut out = VecOut(vec![]);
                            plan.run(&run_inputs, &mut out, &SerialExecutor).unwrap();
                            let want =
                                reference(&a, ta, &b, tb, c.as_deref().zip(cshape.as_deref()), m, n, k, alpha, beta);
                            assert_close(&out.0[0].1, &want);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bad_c_is_an_error_naming_shapes() {
        let e = super::c_view(TensorView { shape: &[3, 2], data: &[0.0; 6] }, 4, 2).unwrap_err();
        assert!(e.message.contains("[3, 2]") && e.message.contains("[4, 2]"), "{}", e.message);
    }
}
