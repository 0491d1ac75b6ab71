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

/// Copies a 1-D array of `T` into a vector of `U`, reading contiguous arrays as one slice.
fn collect<T, U>(arr: &Bound<'_, PyUntypedArray>, f: impl Fn(T) -> U) -> PyResult<Vec<U>>
where
    T: Element + Copy,
{
    let typed = arr.cast::<PyArray1<T>>().map_err(|_| {
        PyValueError::new_err(
            "array has a non-native byte order: convert it with x.astype(x.dtype.newbyteorder('='))",
        )
    })?;
    let view = typed.readonly();
    Ok(match view.as_slice() {
        Ok(s) => s.iter().map(|x| f(*x)).collect(),
        Err(_) => view.as_array().iter().map(|x| f(*x)).collect(),
    })
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
    let size = dtype.itemsize();
    let dname = dtype.str().map(|s| s.to_string()).unwrap_or_default();
    let float = |v: Vec<f64>| -> PyResult<Vector> {
        if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "{what} has a non-finite value {x} at index {i}: remove NaN/inf before aggregating \
                 (e.g. np.nan_to_num)"
            )));
        }
        Ok(Vector::Float(Zeroizing::new(v)))
    };
    match (dtype.kind(), size) {
        (b'u', 1) => Ok(Vector::Unsigned(Zeroizing::new(collect(arr, |x: u8| {
            u64::from(x)
        })?))),
        (b'u', 2) => Ok(Vector::Unsigned(Zeroizing::new(collect(arr, |x: u16| {
            u64::from(x)
        })?))),
        (b'u', 4) => Ok(Vector::Unsigned(Zeroizing::new(collect(arr, |x: u32| {
            u64::from(x)
        })?))),
        (b'u', 8) => Ok(Vector::Unsigned(Zeroizing::new(collect(arr, |x: u64| x)?))),
        (b'f', 4) => float(collect(arr, |x: f32| f64::from(x))?),
        (b'f', 8) => float(collect(arr, |x: f64| x)?),
        (b'f', _) => Err(PyValueError::new_err(format!(
            "{what} has dtype {dname}: use float32 or float64 (x.astype(np.float32))"
        ))),
        (b'i', _) => Err(PyValueError::new_err(format!(
            "{what} has signed integer dtype {dname}: sums are taken mod 2^bits over unsigned \
             integers; convert with x.astype(np.uint32) if the values are non-negative, or pass \
             floats to get a weighted mean"
        ))),
        (b'b', _) => Err(PyValueError::new_err(format!(
            "{what} has dtype bool: convert with x.astype(np.uint8) to count"
        ))),
        (b'c', _) => Err(PyValueError::new_err(format!(
            "{what} has complex dtype {dname}: aggregate the real and imaginary parts as two \
             float arrays"
        ))),
        _ => Err(PyValueError::new_err(format!(
            "{what} has dtype {dname}: use an unsigned integer dtype (uint8/16/32/64) for sums or \
             float32/float64 for weighted means"
        ))),
    }
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
