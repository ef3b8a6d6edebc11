//! Transpose, for the layout moves ORT inserts when our convolutions and pools run channels-last
//! (`layout=nhwc`): `[N, C, D…] → [N, D…, C]` (perm `[0, 2, …, r−1, 1]`) and back (perm `[0, r−1, 1, …, r−2]`).
//! Each image is one `C × P` ↔ `P × C` matrix transpose through the tier's in-register blocks, split over the pool
//! (ORT's own Transpose runs on one thread in our sessions). Other permutations are left to the CPU EP.

use super::exec::{Executor, SharedOut};
use super::input_or;
use super::{fmt_shape, numel, Error, NodeDesc, OutputAlloc, Result, TensorView};

/// Which layout move a permutation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Move {
    ToChannelsLast,
    ToChannelsFirst,
}

fn classify(perm: &[i64]) -> Option<Move> {
    let r = perm.len();
    if r < 3 {
        return None;
    }
    let last: Vec<i64> = std::iter::once(0).chain(2..r as i64).chain(std::iter::once(1)).collect();
    let first: Vec<i64> = [0, r as i64 - 1].into_iter().chain(1..r as i64 - 1).collect();
    if perm == last {
        Some(Move::ToChannelsLast)
    } else if perm == first {
        Some(Move::ToChannelsFirst)
    } else {
        None
    }
}

pub(super) fn check(node: &NodeDesc) -> std::result::Result<(), String> {
    if node.inputs.len() != 1 || node.input(0).is_none() {
        return Err(node.unsupported("expects exactly one input"));
    }
    if node.input(0).is_some_and(|x| x.is_constant) {
        // Constant inputs are dropped from the fused node (ORT folds such transposes anyway).
        return Err(node.unsupported("a constant input is left to the CPU EP"));
    }
    let perm = node.attr_ints("perm").map_err(|e| e.message)?;
    let Some(perm) = perm else { return Err(node.unsupported("without perm (a full reversal) is not claimed")) };
    if classify(&perm).is_none() {
        return Err(node.unsupported(format!("perm {perm:?} is not a channels-first ↔ channels-last move")));
    }
    if let Some(r) = node.input(0).and_then(|v| v.shape.as_ref()).map(|s| s.len()) {
        if r != perm.len() {
            return Err(node.unsupported(format!("perm {perm:?} does not match the input's rank {r}")));
        }
    }
    Ok(())
}

#[derive(Debug)]
pub(super) struct Transpose {
    mv: Move,
    rank: usize,
}

impl Transpose {
    pub(super) fn build(node: &NodeDesc) -> Result<Transpose> {
        check(node).map_err(Error::invalid_argument)?;
        let perm = node.attr_ints("perm")?.expect("checked");
        Ok(Transpose { mv: classify(&perm).expect("checked"), rank: perm.len() })
    }

    pub(super) fn describe(&self) -> String {
        format!("Transpose {:?} (rank {})", self.mv, self.rank)
    }

    pub(super) fn run(
        &self,
        inputs: &[Option<TensorView<'_>>],
        out: &mut dyn OutputAlloc,
        exec: &dyn Executor,
    ) -> Result<()> {
        let x = input_or(inputs, 0, None).ok_or_else(|| Error::invalid_argument("Transpose input is missing"))?;
        let s = x.shape;
        if s.len() != self.rank {
            return Err(Error::invalid_argument(format!("Transpose X {}: expected rank {}", fmt_shape(s), self.rank)));
        }
        if x.data.len() != numel(s) {
            return Err(Error::invalid_argument(format!(
                "Transpose X {} holds {} values, its shape {}",
                fmt_shape(s),
                x.data.len(),
                numel(s)
            )));
        }
        let r = self.rank;
        // Per image: a `rows × cols` source matrix, transposed.
        let (out_shape, rows, cols) = match self.mv {
            Move::ToChannelsLast => {
                let mut o = vec![s[0]];
                o.extend_from_slice(&s[2..]);
                o.push(s[1]);
                (o, s[1], numel(&s[2..]))
            }
            Move::ToChannelsFirst => {
                let mut o = vec![s[0], s[r - 1]];
                o.extend_from_slice(&s[1..r - 1]);
                (o, numel(&s[1..r - 1]), s[r - 1])
            }
        };
        let y = out.output(0, &out_shape)?;
        if y.is_empty() {
            return Ok(());
        }
        let image = rows * cols;
        let y_ptr = SharedOut::new(y);
        let body = |n: usize, rr: std::ops::Range<usize>, _: &mut crate::kernels::Scratch| {
            let src = &x.data[n * image..(n + 1) * image];
            // SAFETY: source rows rr are destination columns rr of image n: split_rows hands each (image, row
            // range) to one task, so no element is written twice, and `y` outlives the call.
            unsafe {
                crate::kernels::transpose_rows(src, cols, cols, rr.clone(), y_ptr.get().add(n * image + rr.start), rows)
            };
        };
        exec.split_rows(s[0], rows, cols, 1, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{constant, value, Lcg, VecOut};
    use super::super::{AttrValue, SerialExecutor};
    use super::*;

    fn node(perm: &[i64], rank: usize) -> NodeDesc {
        NodeDesc {
            name: "t".into(),
            op_type: "Transpose".into(),
            since_version: 13,
            attrs: vec![("perm".into(), AttrValue::Ints(perm.to_vec()))],
            inputs: vec![value("X", &vec![-1; rank])],
            outputs: vec![value("Y", &[])],
            ..Default::default()
        }
    }

    /// Reference transpose of any permutation (row-major).
    fn permute(x: &[f32], s: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<f32>) {
        let os: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
        let mut y = vec![0.0; x.len()];
        let mut idx = vec![0usize; s.len()];
        for (flat, &v) in x.iter().enumerate() {
            let mut f = flat;
            for d in (0..s.len()).rev() {
                idx[d] = f % s[d];
                f /= s[d];
            }
            let mut o = 0;
            for (d, &p) in perm.iter().enumerate() {
                o = o * os[d] + idx[p];
            }
            y[o] = v;
        }
        (os, y)
    }

    #[test]
    fn layout_moves_match_the_reference_and_others_are_refused() {
        let mut rng = Lcg(9);
        for s in [vec![2, 3, 5, 7], vec![1, 17, 9], vec![3, 8, 2, 3, 4], vec![1, 64, 14, 14], vec![2, 1, 1, 1]] {
            let r = s.len();
            let last: Vec<usize> = std::iter::once(0).chain(2..r).chain(std::iter::once(1)).collect();
            let first: Vec<usize> = [0, r - 1].into_iter().chain(1..r - 1).collect();
            for perm in [last, first] {
                let p64: Vec<i64> = perm.iter().map(|&p| p as i64).collect();
                let n = node(&p64, r);
                check(&n).unwrap();
                let t = Transpose::build(&n).unwrap();
                let x = rng.vec(numel(&s));
                let mut out = VecOut(vec![]);
                t.run(&[Some(TensorView { shape: &s, data: &x })], &mut out, &SerialExecutor).unwrap();
                let (ws, want) = permute(&x, &s, &perm);
                assert_eq!(out.0[0].0, ws, "{s:?} {perm:?}");
                assert_eq!(out.0[0].1, want, "{s:?} {perm:?}");
            }
        }
        for perm in [vec![0, 1, 3, 2], vec![1, 0, 2, 3], vec![0, 3, 2, 1], vec![1, 0]] {
            assert!(check(&node(&perm, perm.len())).is_err(), "{perm:?}");
        }
        // A constant input would be dropped from the fused node: left to the CPU EP.
        let mut constant_x = node(&[0, 2, 3, 1], 4);
        constant_x.inputs[0] = constant("X", super::super::Tensor { shape: vec![1, 2, 1, 1], data: vec![1.0, 2.0] });
        assert!(check(&constant_x).unwrap_err().contains("constant"));
        let mut no_perm = node(&[0, 2, 3, 1], 4);
        no_perm.attrs.clear();
        assert!(check(&no_perm).is_err());
        // A wrong rank at run time is an error, not a panic.
        let t = Transpose::build(&node(&[0, 2, 3, 1], 4)).unwrap();
        let mut out = VecOut(vec![]);
        let e = t.run(&[Some(TensorView { shape: &[2, 3], data: &[0.0; 6] })], &mut out, &SerialExecutor).unwrap_err();
        assert!(e.message.contains("rank 4"), "{}", e.message);
    }
}
