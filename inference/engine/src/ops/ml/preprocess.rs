//! The ONNX-ML feature preparation operators scikit-learn pipelines export in front of a model:
//! `Scaler`, `Imputer` and `OneHotEncoder` (numeric categories), as onnxruntime computes them.

/// `y = (x − offset) · scale`, per column (the last dimension of a row) or one pair for all.
#[derive(Clone, Debug, PartialEq)]
pub struct Scaler {
    pub offset: Vec<f32>,
    pub scale: Vec<f32>,
}

impl Scaler {
    /// Scales `xs` in place; `stride` is the length of a row.
    pub fn apply(&self, xs: &mut [f32], stride: usize) -> Result<(), String> {
        let per_column = self.scale.len() == stride;
        if !per_column && self.scale.len() != 1 {
            return Err(format!("Scaler has {} scales for rows of {stride}", self.scale.len()));
        }
        for (i, x) in xs.iter_mut().enumerate() {
            let c = if per_column { i % stride } else { 0 };
            *x = (*x - self.offset[c]) * self.scale[c];
        }
        Ok(())
    }
}

/// Replaces `replaced` (NaN matches NaN) with a value per column, or the first for all.
#[derive(Clone, Debug, PartialEq)]
pub struct Imputer {
    pub imputed: Vec<f32>,
    pub replaced: f32,
}

impl Imputer {
    pub fn apply(&self, xs: &mut [f32], stride: usize) {
        let per_column = self.imputed.len() == stride;
        for (i, x) in xs.iter_mut().enumerate() {
            let missing = (x.is_nan() && self.replaced.is_nan()) || *x == self.replaced;
            if missing {
                *x = self.imputed[if per_column { i % stride } else { 0 }];
            }
        }
    }
}

/// One column per category, 1.0 where the value is that category (real numbers truncated to
/// integers by the caller); a value of no category gives a row of zeros, or an error without
/// `zeros`.
#[derive(Clone, Debug, PartialEq)]
pub struct OneHotEncoder {
    pub categories: Vec<i64>,
    pub zeros: bool,
}

impl OneHotEncoder {
    pub fn encode(&self, values: &[i64], out: &mut [f32]) -> Result<(), String> {
        let n = self.categories.len();
        out.fill(0.0);
        for (&value, row) in values.iter().zip(out.chunks_exact_mut(n)) {
            // A repeated category counts at its last position, as onnxruntime maps it.
            match self.categories.iter().rposition(|&c| c == value) {
                Some(at) => row[at] = 1.0,
                None if self.zeros => {}
                None => return Err(format!("{value} is none of the OneHotEncoder's categories")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preparation_operators_compute_their_definitions() {
        let mut xs = [1.0, 2.0, 3.0, 4.0];
        Scaler { offset: vec![1.0, 2.0], scale: vec![2.0, 0.5] }.apply(&mut xs, 2).unwrap();
        assert_eq!(xs, [0.0, 0.0, 4.0, 1.0]);
        let mut xs = [f32::NAN, 5.0, 1.0, f32::NAN];
        Imputer { imputed: vec![7.0, 8.0], replaced: f32::NAN }.apply(&mut xs, 2);
        assert_eq!(xs, [7.0, 5.0, 1.0, 8.0]);
        let mut out = [9.0; 6];
        OneHotEncoder { categories: vec![3, 5, 7], zeros: true }.encode(&[5, 4], &mut out).unwrap();
        assert_eq!(out, [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        assert!(OneHotEncoder { categories: vec![3], zeros: false }.encode(&[4], &mut out[..1]).is_err());
        // Integers past f32's 2^24 stay distinct.
        let big = OneHotEncoder { categories: vec![16_777_216, 16_777_217], zeros: true };
        big.encode(&[16_777_217], &mut out[..2]).unwrap();
        assert_eq!(out[..2], [0.0, 1.0]);
    }
}
