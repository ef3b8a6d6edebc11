//! MatMul (opset 1, 9, 13): numpy `matmul` semantics — 1-D operands promoted and squeezed, batch dims broadcast.

use super::input_or;
use crate::kernels::{AOperand, BOperand, MatMut, MatRef, PackedB};

use super::exec::{Executor, GemmJob};
use super::{fmt_shape, numel, Epilogue, Error, NodeDesc, OutputAlloc, Result, TensorView};

pub(super) fn check(node: &NodeDesc) -> std::result::Result<(), String> {
    if node.inputs.len() != 2 || node.input(0).is_none() || node.input(1).is_none() {
        return Err(node.unsupported("expects exactly two inputs"));
    }
    for i in 0..2 {
        if let Some(shape) = node.input(i).and_then(|v| v.shape.as_ref()) {
            if shape.is_empty() {
                return Err(node.unsupported("scalar operands are not valid for MatMul"));
            }
        }
    }
    Ok(())
}

#[derive(Debug)]
pub(super) struct MatMul {
    /// A when it is a constant (ORT drops its copy at Compile).
    const_a: Option<std::sync::Arc<super::Tensor>>,
    /// B when it is a constant: its shape and each of its matrices packed once.
    const_b: Option<ConstB>,
}

#[derive(Debug)]
struct ConstB {
    shape: Vec<usize>,
    packed: std::sync::Arc<Vec<PackedB>>,
}

/// Shapes of one MatMul after 1-D promotion.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct MatMulShape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a_batch: Vec<usize>,
    pub b_batch: Vec<usize>,
    pub out_batch: Vec<usize>,
    pub out_shape: Vec<usize>,
}

pub(super) fn matmul_shape(a: &[usize], b: &[usize]) -> Result<MatMulShape> {
    if a.is_empty() || b.is_empty() {
        return Err(Error::invalid_argument(format!(
            "MatMul operands must have rank ≥ 1, got A {} and B {}",
            fmt_shape(a),
            fmt_shape(b)
        )));
    }
    let (a_batch, m, k) = match a.len() {
        1 => (&a[..0], 1, a[0]),
        r => (&a[..r - 2], a[r - 2], a[r - 1]),
    };
    let (b_batch, kb, n) = match b.len() {
        1 => (&b[..0], b[0], 1),
        r => (&b[..r - 2], b[r - 2], b[r - 1]),
    };
    if k != kb {
        return Err(Error::invalid_argument(format!(
            "MatMul inner dimensions differ: A {} has K={k}, B {} has K={kb}",
            fmt_shape(a),
            fmt_shape(b)
        )));
    }
    let out_batch = broadcast(a_batch, b_batch).ok_or_else(|| {
        Error::invalid_argument(format!(
            "MatMul batch dimensions of A {} and B {} do not broadcast",
            fmt_shape(a),
            fmt_shape(b)
        ))
    })?;
    let mut out_shape = out_batch.clone();
    if a.len() > 1 {
        out_shape.push(m);
    }
    if b.len() > 1 {
        out_shape.push(n);
    }
    Ok(MatMulShape { m, k, n, a_batch: a_batch.to_vec(), b_batch: b_batch.to_vec(), out_batch, out_shape })
}

/// Numpy broadcast of two shapes, `None` if incompatible.
pub(super) fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
            let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
            match (da, db) {
                (x, y) if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// For each flat index of `out` (a broadcast shape), the flat index into `input` (right-aligned, size-1 dims repeat).
pub(super) fn broadcast_indices(out: &[usize], input: &[usize]) -> Vec<usize> {
    let total = numel(out);
    let off = out.len() - input.len();
    let mut idx = vec![0usize; out.len()];
    let mut result = Vec::with_capacity(total);
    for _ in 0..total {
        let mut flat = 0;
        for (d, &dim) in input.iter().enumerate() {
            flat = flat * dim + if dim == 1 { 0 } else { idx[d + off] };
        }
        result.push(flat);
        for d in (0..out.len()).rev() {
            idx[d] += 1;
            if idx[d] < out[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    result
}

impl MatMul {
    pub(super) fn build(node: &NodeDesc, weights: &mut super::SharedWeights) -> Result<Self> {
        let const_b = node.constant(1).map(|t| {
            let (k, n, count) = match t.shape.len() {
                1 => (t.shape[0], 1, 1),
                r => (t.shape[r - 2], t.shape[r - 1], numel(&t.shape[..r - 2])),
            };
            // Matrix i of the (batched) B.
            fn matrix(t: &super::Tensor, i: usize, k: usize, n: usize) -> MatRef<'_> {
                MatRef::row_major(&t.data[i * k * n..(i + 1) * k * n], k, n)
            }
            let packed = weights.packed(
                "matmul.b",
                &t,
                |t| (0..count).map(|i| PackedB::pack(matrix(t, i, k, n))).collect::<Vec<_>>(),
                |p, t| {
                    p.len() == count
                        && p.iter().enumerate().all(|(i, m)| super::weights::packed_holds(m, matrix(t, i, k, n)))
                },
            );
            ConstB { shape: t.shape.clone(), packed }
        });
        Ok(MatMul { const_a: node.constant(0), const_b })
    }

    pub(super) fn describe(&self) -> String {
        match &self.const_b {
            Some(c) => format!("MatMul, constant B {:?} packed ({} matrices)", c.shape, c.packed.len()),
            None => "MatMul, dynamic B".to_string(),
        }
    }

    pub(super) fn run(
        &self,
        inputs: &[Option<TensorView<'_>>],
        post: &Epilogue,
        out: &mut dyn OutputAlloc,
        exec: &dyn Executor,
    ) -> Result<()> {
        let a = input_or(inputs, 0, self.const_a.as_deref())
            .ok_or_else(|| Error::invalid_argument("MatMul input A is missing"))?;
        let b = inputs.get(1).copied().flatten();
        let b_shape: &[usize] = match (&self.const_b, &b) {
            (Some(c), _) => &c.shape,
            (None, Some(b)) => b.shape,
            (None, None) => return Err(Error::invalid_argument("MatMul input B is missing")),
        };
        let s = matmul_shape(a.shape, b_shape)?;
        let post = post.bind(inputs, &s.out_shape)?;
        let y = out.output(0, &s.out_shape)?;
        if y.is_empty() {
            return Ok(());
        }
        let (m, k, n) = (s.m, s.k, s.n);
        let b_operand = |bi: usize| -> BOperand<'_> {
            match (&self.const_b, &b) {
                (Some(c), _) => BOperand::Packed(&c.packed[bi]),
                (None, Some(b)) => BOperand::View(MatRef::row_major(&b.data[bi * k * n..(bi + 1) * k * n], k, n)),
                (None, None) => unreachable!("B presence checked above"),
            }
        };
        let jobs: Vec<GemmJob<'_>> =
            if s.b_batch.iter().product::<usize>() == 1 && numel(&s.a_batch) == numel(&s.out_batch) {
                // One B matrix shared by every batch of A: fold A's batch into M (A is contiguous).
                let rows = numel(&s.a_batch) * m;
                vec![GemmJob {
                    a: AOperand::View(MatRef::row_major(a.data, rows, k)),
                    b: b_operand(0),
                    c: MatMut::row_major(y, rows, n),
                    k,
                    epilogue: post.ops(0, rows, n),
                }]
            } else {
                let a_idx = broadcast_indices(&s.out_batch, &s.a_batch);
                let b_idx = broadcast_indices(&s.out_batch, &s.b_batch);
                y.chunks_mut(m * n)
                    .zip(a_idx.iter().zip(&b_idx))
                    .enumerate()
                    .map(|(t, (yc, (&ai, &bi)))| GemmJob {
                        a: AOperand::View(MatRef::row_major(&a.data[ai * m * k..(ai + 1) * m * k], m, k)),
                        b: b_operand(bi),
                        c: MatMut::row_major(yc, m, n),
                        k,
                        epilogue: post.ops(t * m * n, m, n),
                    })
                    .collect()
            };
        exec.run(&jobs)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::*;
    use super::*;

    fn reference(a: &[f32], ash: &[usize], b: &[f32], bsh: &[usize]) -> (Vec<usize>, Vec<f32>) {
        let s = matmul_shape(ash, bsh).unwrap();
        let ai = broadcast_indices(&s.out_batch, &s.a_batch);
        let bi = broadcast_indices(&s.out_batch, &s.b_batch);
        let mut y = vec![0.0; numel(&s.out_shape)];
        let (m, k, n) = (s.m, s.k, s.n);
        for (t, (&x, &w)) in ai.iter().zip(&bi).enumerate() {
            for i in 0..m {
                for j in 0..n {
                    let mut acc = 0.0;
                    for p in 0..k {
                        acc += a[x * m * k + i * k + p] * b[w * k * n + p * n + j];
                    }
                    y[t * m * n + i * n + j] = acc;
                }
            }
        }
        (s.out_shape, y)
    }

    fn check_case(ash: &[usize], bsh: &[usize], const_b: bool) {
        let mut rng = Lcg(ash.len() as u64 * 31 + bsh.iter().sum::<usize>() as u64);
        let a = rng.vec(numel(ash));
        let b = rng.vec(numel(bsh));
        let ib: Vec<i64> = bsh.iter().map(|&d| d as i64).collect();
        let node = NodeDesc {
            name: "mm".into(),
            op_type: "MatMul".into(),
            since_version: 13,
            inputs: vec![
                value("A", &ash.iter().map(|&d| d as i64).collect::<Vec<_>>()),
                if const_b { constant("B", Tensor { shape: bsh.to_vec(), data: b.clone() }) } else { value("B", &ib) },
            ],
            outputs: vec![value("Y", &[])],
            ..Default::default()
        };
        let plan = OpPlan::build(&node).unwrap();
        let mut out = VecOut(vec![]);
        let av = TensorView { shape: ash, data: &a };
        let bv = TensorView { shape: bsh, data: &b };
        let inputs = [Some(av), if const_b { None } else { Some(bv) }];
        plan.run(&inputs, &mut out, &SerialExecutor).unwrap();
        let (shape, want) = reference(&a, ash, &b, bsh);
        assert_eq!(out.0[0].0, shape);
        assert_close(&out.0[0].1, &want);
    }

    #[test]
    fn shapes_and_broadcasting() {
        for const_b in [false, true] {
            check_case(&[3], &[3], const_b);
            check_case(&[3], &[3, 4], const_b);
            check_case(&[2, 3], &[3], const_b);
            check_case(&[5, 7], &[7, 3], const_b);
            check_case(&[2, 1, 3, 4], &[5, 4, 6], const_b);
            check_case(&[2, 5, 3, 4], &[4, 6], const_b);
            check_case(&[4], &[2, 4, 3], const_b);
            check_case(&[1, 3, 4], &[2, 4, 2], const_b);
        }
    }

    #[test]
    fn errors_name_the_shapes() {
        let e = matmul_shape(&[2, 3], &[4, 5]).unwrap_err();
        assert!(e.message.contains("[2, 3]") && e.message.contains("[4, 5]"), "{}", e.message);
        assert!(matmul_shape(&[2, 2, 3], &[3, 3, 1]).is_err());
    }

    #[test]
    fn broadcast_rules() {
        assert_eq!(broadcast(&[2, 1, 3], &[4, 1]), Some(vec![2, 4, 3]));
        assert_eq!(broadcast(&[], &[5]), Some(vec![5]));
        assert_eq!(broadcast(&[2], &[3]), None);
        assert_eq!(broadcast_indices(&[2, 3], &[3]), vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(broadcast_indices(&[2, 3], &[2, 1]), vec![0, 0, 0, 1, 1, 1]);
    }
}
