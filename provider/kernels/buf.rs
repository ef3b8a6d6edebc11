//! A growable f32 buffer aligned to 64 bytes (one cache line; a whole AVX-512 vector).

/// One cache line of f32. `repr(C)` over an array: no padding, so a `[Line]` is a contiguous run of f32.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

const LINE: usize = 16;

/// 64-byte aligned f32 storage that only grows (so a warm [`super::Scratch`] never allocates).
#[derive(Clone, Default)]
pub(crate) struct AlignedBuf {
    lines: Vec<Line>,
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} f32)", self.lines.len() * LINE)
    }
}

impl AlignedBuf {
    /// A zeroed buffer of at least `len` floats.
    pub(crate) fn zeroed(len: usize) -> Self {
        AlignedBuf { lines: vec![Line([0.0; LINE]); len.div_ceil(LINE)] }
    }

    pub(crate) fn as_slice(&self) -> &[f32] {
        // SAFETY: `Line` is `repr(C)` around `[f32; 16]` (size 64, align 64, no padding), so the vector's storage is
        // `lines.len() * 16` initialized, contiguous f32 values, borrowed for the lifetime of `&self`.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<f32>(), self.lines.len() * LINE) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, with the unique borrow of `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), self.lines.len() * LINE) }
    }

    /// The first `len` floats, growing the buffer if needed (new space is zeroed; old contents are kept).
    pub(crate) fn get(&mut self, len: usize) -> &mut [f32] {
        let need = len.div_ceil(LINE);
        if self.lines.len() < need {
            self.lines.resize(need, Line([0.0; LINE]));
        }
        &mut self.as_mut_slice()[..len]
    }
}
