//! numpy arrays in and out. Inputs are read through read-only views of the caller's arrays
//! (no intermediate numpy copy; contiguous arrays are read as one slice), with dtype and shape
//! checks whose messages say what to change. Outputs are owned vectors handed to numpy
//! without copying.

use numpy::prelude::*;
use numpy::{Element, PyArray1, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use zeroize::Zeroizing;

/// One client's vector, as the protocol will see it.
pub enum Vector {
    /// Unsigned integers (sum rounds).
    Unsigned(Zeroizing<Vec<u64>>),
    /// Floats (weighted-mean rounds), already checked finite.
    Float(Zeroizing<Vec<f64>>),
}

impl Vector {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Vector::Unsigned(v) => v.len(),
            Vector::Float(v) => v.len(),
        }
    }

    /// The dtype family, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Vector::Unsigned(_) => "unsigned integers",
            Vector::Float(_) => "floats",
        }
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| String::from("?"))
}

/// Reads `obj` as a 1-D unsigned-integer or float array. `what` names it in messages
/// (e.g. "input 3").
pub fn read_vector(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vector> {
    let (arr, dtype) = checked_array(obj, what)?;
    read_range(&arr, dtype, 0, arr.len(), what)
}

/// A sum mod 2^bits as the smallest unsigned dtype holding `bits` bits (no copy for uint64).
pub fn sum_array(py: Python<'_>, sum: Vec<u64>, bits: u8) -> Bound<'_, PyAny> {
    // Every element is below 2^bits, so the narrowing casts below are exact.
    match bits {
        0..=8 => PyArray1::from_vec(py, sum.iter().map(|x| *x as u8).collect()).into_any(),
        9..=16 => PyArray1::from_vec(py, sum.iter().map(|x| *x as u16).collect()).into_any(),
        17..=32 => PyArray1::from_vec(py, sum.iter().map(|x| *x as u32).collect()).into_any(),
        _ => PyArray1::from_vec(py, sum).into_any(),
    }
}

/// A float vector (a mean), handed to numpy without copying.
pub fn float_array(py: Python<'_>, v: Vec<f64>) -> Bound<'_, PyAny> {
    PyArray1::from_vec(py, v).into_any()
}

/// Values per chunk when an input is read piece by piece (512 KiB of u64s; a multiple of 8,
/// as the core's streamed masking needs).
pub const CHUNK: usize = 1 << 16;

/// The element types an input may have.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dtype {
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
}

impl Dtype {
    /// Floats (means) rather than unsigned integers (sums).
    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F64)
    }

    /// The dtype family, for messages.
    pub fn kind(self) -> &'static str {
        if self.is_float() {
            "floats"
        } else {
            "unsigned integers"
        }
    }
}

/// `obj` as a 1-D numpy array of a dtype secagg aggregates, and that dtype; every check of an
/// input (type, shape, dtype) is here, with messages that say what to change.
fn checked_array<'py>(
    obj: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<(Bound<'py, PyUntypedArray>, Dtype)> {
    let arr = obj.cast::<PyUntypedArray>().map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a 1-D numpy array, got {}: wrap it with np.asarray(x, dtype=np.uint32) \
             (sums) or np.asarray(x, dtype=np.float32) (means)",
            type_name(obj)
        ))
    })?;
    if arr.ndim() != 1 {
        return Err(PyValueError::new_err(format!(
            "{what} has shape {:?}: pass a 1-D array (e.g. x.ravel())",
            arr.shape()
        )));
    }
    let dtype = arr.dtype();
    let dname = dtype.str().map(|s| s.to_string()).unwrap_or_default();
    let t = match (dtype.kind(), dtype.itemsize()) {
        (b'u', 1) => Dtype::U8,
        (b'u', 2) => Dtype::U16,
        (b'u', 4) => Dtype::U32,
        (b'u', 8) => Dtype::U64,
        (b'f', 4) => Dtype::F32,
        (b'f', 8) => Dtype::F64,
        (b'f', _) => {
            return Err(PyValueError::new_err(format!(
                "{what} has dtype {dname}: use float32 or float64 (x.astype(np.float32))"
            )));
        }
        (b'i', _) => {
            return Err(PyValueError::new_err(format!(
                "{what} has signed integer dtype {dname}: sums are taken mod 2^bits over \
                 unsigned integers; convert with x.astype(np.uint32) if the values are \
                 non-negative, or pass floats to get a weighted mean"
            )));
        }
        (b'b', _) => {
            return Err(PyValueError::new_err(format!(
                "{what} has dtype bool: convert with x.astype(np.uint8) to count"
            )));
        }
        (b'c', _) => {
            return Err(PyValueError::new_err(format!(
                "{what} has complex dtype {dname}: aggregate the real and imaginary parts as two \
                 float arrays"
            )));
        }
        _ => {
            return Err(PyValueError::new_err(format!(
                "{what} has dtype {dname}: use an unsigned integer dtype (uint8/16/32/64) for \
                 sums or float32/float64 for weighted means"
            )));
        }
    };
    Ok((arr.clone(), t))
}

/// Values `[lo, hi)` of an array `checked_array` accepted as `dtype`, widened to a `Vector`
/// (floats checked finite; a message gives the index in `arr`).
fn read_range(
    arr: &Bound<'_, PyUntypedArray>,
    dtype: Dtype,
    lo: usize,
    hi: usize,
    what: &str,
) -> PyResult<Vector> {
    let n = hi - lo;
    if dtype.is_float() {
        let mut v = Zeroizing::new(Vec::with_capacity(n));
        match dtype {
            Dtype::F32 => extend_from(arr, lo, hi, &mut v, |x: f32| f64::from(x))?,
            _ => extend_from(arr, lo, hi, &mut v, |x: f64| x)?,
        }
        if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "{what} has a non-finite value {x} at index {}: remove NaN/inf before \
                 aggregating (e.g. np.nan_to_num)",
                lo + i
            )));
        }
        Ok(Vector::Float(v))
    } else {
        let mut v = Zeroizing::new(Vec::with_capacity(n));
        match dtype {
            Dtype::U8 => extend_from(arr, lo, hi, &mut v, |x: u8| u64::from(x))?,
            Dtype::U16 => extend_from(arr, lo, hi, &mut v, |x: u16| u64::from(x))?,
            Dtype::U32 => extend_from(arr, lo, hi, &mut v, |x: u32| u64::from(x))?,
            _ => extend_from(arr, lo, hi, &mut v, |x: u64| x)?,
        }
        Ok(Vector::Unsigned(v))
    }
}

/// Appends `arr[lo..hi]` (a 1-D array of `T`) to `out` as `U`, through a read-only view.
fn extend_from<T, U>(
    arr: &Bound<'_, PyUntypedArray>,
    lo: usize,
    hi: usize,
    out: &mut Vec<U>,
    f: impl Fn(T) -> U,
) -> PyResult<()>
where
    T: Element + Copy,
{
    let typed = arr.cast::<PyArray1<T>>().map_err(|_| {
        PyValueError::new_err(
            "array has a non-native byte order: convert it with x.astype(x.dtype.newbyteorder('='))",
        )
    })?;
    let view = typed.readonly();
    match view.as_slice() {
        Ok(s) => out.extend(s[lo..hi].iter().map(|x| f(*x))),
        Err(_) => out.extend(view.as_array().iter().skip(lo).take(hi - lo).map(|x| f(*x))),
    }
    Ok(())
}

/// An input read piece by piece: a 1-D numpy array (borrowed read-only, never copied whole)
/// or an iterable of 1-D arrays whose concatenation is the input (e.g. a generator that
/// encodes a model array by array). Every piece is checked as a whole input is
/// (`checked_array`), and all must be of one family (unsigned integers or floats).
pub struct Chunks<'py> {
    source: Source<'py>,
    what: String,
    kind: Option<Dtype>,
    pieces: usize,
}

enum Source<'py> {
    Array {
        arr: Bound<'py, PyUntypedArray>,
        dtype: Dtype,
        at: usize,
        len: usize,
    },
    Iter(Bound<'py, pyo3::types::PyIterator>),
}

impl<'py> Chunks<'py> {
    /// Reads `obj`; `what` names it in messages.
    pub fn new(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Self> {
        let source = if obj.cast::<PyUntypedArray>().is_ok() {
            let (arr, dtype) = checked_array(obj, what)?;
            let len = arr.len();
            Source::Array {
                arr,
                dtype,
                at: 0,
                len,
            }
        } else {
            let it = obj.try_iter().map_err(|_| {
                PyValueError::new_err(format!(
                    "{what} must be a 1-D numpy array or an iterable of them (chunks), got {}",
                    type_name(obj)
                ))
            })?;
            Source::Iter(it)
        };
        let kind = match &source {
            Source::Array { dtype, .. } => Some(*dtype),
            Source::Iter(_) => None,
        };
        Ok(Self {
            source,
            what: what.to_owned(),
            kind,
            pieces: 0,
        })
    }

    /// The array's length and element type, when the input is one array (known before any
    /// value is read); `None` for an iterable.
    pub fn known(&self) -> Option<(usize, Dtype)> {
        match &self.source {
            Source::Array { len, dtype, .. } => Some((*len, *dtype)),
            Source::Iter(_) => None,
        }
    }

    /// The next piece (at most `CHUNK` values of an array), or `None` at the end.
    pub fn next_piece(&mut self) -> PyResult<Option<Vector>> {
        match &mut self.source {
            Source::Array {
                arr,
                dtype,
                at,
                len,
            } => {
                if *at >= *len {
                    return Ok(None);
                }
                let (lo, hi) = (*at, (*at + CHUNK).min(*len));
                *at = hi;
                read_range(arr, *dtype, lo, hi, &self.what).map(Some)
            }
            Source::Iter(it) => {
                let Some(item) = it.next() else {
                    return Ok(None);
                };
                let item = item?;
                let what = format!("{} (chunk {})", self.what, self.pieces);
                self.pieces += 1;
                let (arr, dtype) = checked_array(&item, &what)?;
                if let Some(k) = self.kind
                    && k.is_float() != dtype.is_float()
                {
                    return Err(PyValueError::new_err(format!(
                        "{what} holds {}, the chunks before it {}: give every chunk one dtype \
                         family",
                        dtype.kind(),
                        k.kind()
                    )));
                }
                self.kind = Some(dtype);
                read_range(&arr, dtype, 0, arr.len(), &what).map(Some)
            }
        }
    }
}
