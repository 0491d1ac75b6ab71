//! A strict, panic-free reader and writer of NumPy `.npy` files (format 1.0, 2.0 and 3.0),
//! for 1-D arrays of unsigned integers and floats: the client inputs and aggregates of
//! `secagg simulate`. Files are untrusted: every byte string gives a typed error, and the
//! declared shape is checked against the file's length before anything is allocated.

use std::fmt;
use std::io::Write;
use std::path::Path;

/// A 1-D array of a supported dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyArray {
    /// uint8.
    U8(Vec<u8>),
    /// uint16.
    U16(Vec<u16>),
    /// uint32.
    U32(Vec<u32>),
    /// uint64.
    U64(Vec<u64>),
    /// float32.
    F32(Vec<f32>),
    /// float64.
    F64(Vec<f64>),
}

impl NpyArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            NpyArray::U8(v) => v.len(),
            NpyArray::U16(v) => v.len(),
            NpyArray::U32(v) => v.len(),
            NpyArray::U64(v) => v.len(),
            NpyArray::F32(v) => v.len(),
            NpyArray::F64(v) => v.len(),
        }
    }
    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// numpy's name of the dtype.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            NpyArray::U8(_) => "uint8",
            NpyArray::U16(_) => "uint16",
            NpyArray::U32(_) => "uint32",
            NpyArray::U64(_) => "uint64",
            NpyArray::F32(_) => "float32",
            NpyArray::F64(_) => "float64",
        }
    }
    /// Whether the dtype is a float.
    pub fn is_float(&self) -> bool {
        matches!(self, NpyArray::F32(_) | NpyArray::F64(_))
    }
    /// The values as u64 (floats are truncated; use [`NpyArray::is_float`] first).
    pub fn into_u64(self) -> Vec<u64> {
        match self {
            NpyArray::U8(v) => v.into_iter().map(u64::from).collect(),
            NpyArray::U16(v) => v.into_iter().map(u64::from).collect(),
            NpyArray::U32(v) => v.into_iter().map(u64::from).collect(),
            NpyArray::U64(v) => v,
            NpyArray::F32(v) => v.into_iter().map(|x| x as u64).collect(),
            NpyArray::F64(v) => v.into_iter().map(|x| x as u64).collect(),
        }
    }

    /// The values as f64.
    pub fn into_f64(self) -> Vec<f64> {
        match self {
            NpyArray::F32(v) => v.into_iter().map(f64::from).collect(),
            NpyArray::F64(v) => v,
            other => other.into_u64().into_iter().map(|x| x as f64).collect(),
        }
    }

    /// A sum mod 2^`bits` in the narrowest unsigned dtype that holds it.
    pub fn unsigned_for_bits(values: &[u64], bits: u8) -> NpyArray {
        match bits {
            0..=8 => NpyArray::U8(values.iter().map(|x| *x as u8).collect()),
            9..=16 => NpyArray::U16(values.iter().map(|x| *x as u16).collect()),
            17..=32 => NpyArray::U32(values.iter().map(|x| *x as u32).collect()),
            _ => NpyArray::U64(values.to_vec()),
        }
    }

    fn descr(&self) -> &'static str {
        match self {
            NpyArray::U8(_) => "|u1",
            NpyArray::U16(_) => "<u2",
            NpyArray::U32(_) => "<u4",
            NpyArray::U64(_) => "<u8",
            NpyArray::F32(_) => "<f4",
            NpyArray::F64(_) => "<f8",
        }
    }
}

/// Why a file was refused.
#[derive(Debug)]
pub enum NpyError {
    /// Reading failed.
    Io(std::io::Error),
    /// Not an .npy file.
    BadMagic,
    /// A format version this reader does not know.
    UnsupportedVersion(u8, u8),
    /// The header dictionary is malformed.
    BadHeader(String),
    /// A dtype that cannot be aggregated.
    UnsupportedDtype(String),
    /// Not a 1-D array.
    NotOneDimensional(Vec<u64>),
    /// The data is shorter than the shape says.
    Truncated {
        /// Bytes the shape implies.
        expected: u64,
        /// Bytes present.
        got: u64,
    },
    /// Bytes after the data.
    TrailingData(u64),
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NpyError::Io(e) => write!(f, "cannot read the file: {e}"),
            NpyError::BadMagic => write!(
                f,
                "not a NumPy .npy file (bad magic bytes); save arrays with numpy.save"
            ),
            NpyError::UnsupportedVersion(a, b) => {
                write!(f, "unsupported .npy format version {a}.{b}")
            }
            NpyError::BadHeader(m) => write!(f, "malformed .npy header: {m}"),
            NpyError::UnsupportedDtype(d) => write!(
                f,
                "dtype {d} is not supported: secure sums take unsigned integers (uint8..uint64, \
                 summed mod 2^bits) or float32/float64 (weighted mean)"
            ),
            NpyError::NotOneDimensional(shape) => {
                let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
                write!(
                    f,
                    "expected a 1-D array, got shape ({}); flatten it with arr.ravel()",
                    dims.join(", ")
                )
            }
            NpyError::Truncated { expected, got } => {
                write!(
                    f,
                    "file truncated: the shape needs {expected} data bytes, found {got}"
                )
            }
            NpyError::TrailingData(n) => write!(f, "{n} unexpected bytes after the array data"),
        }
    }
}

impl std::error::Error for NpyError {}

const MAGIC: &[u8] = b"\x93NUMPY";

#[derive(Clone, Copy)]
enum Kind {
    U,
    F,
}

struct Header {
    kind: Kind,
    size: usize,
    big_endian: bool,
    len: u64,
}

/// Parses the bytes of an .npy file.
pub fn parse(bytes: &[u8]) -> Result<NpyArray, NpyError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(NpyError::BadMagic);
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(NpyError::BadMagic);
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        _ => return Err(NpyError::UnsupportedVersion(major, minor)),
    };
    let end = start
        .checked_add(hlen)
        .filter(|e| *e <= bytes.len())
        .ok_or_else(|| NpyError::BadHeader(String::from("header longer than the file")))?;
    let text = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| NpyError::BadHeader(String::from("header is not text")))?;
    let h = parse_header(text)?;
    let data = &bytes[end..];
    let expected = h
        .len
        .checked_mul(h.size as u64)
        .ok_or_else(|| NpyError::BadHeader(String::from("shape too large")))?;
    let got = data.len() as u64;
    if got < expected {
        return Err(NpyError::Truncated { expected, got });
    }
    if got > expected {
        return Err(NpyError::TrailingData(got - expected));
    }
    let be = h.big_endian;
    macro_rules! collect {
        ($t:ty, $n:expr, $variant:ident) => {
            NpyArray::$variant(
                data.chunks_exact($n)
                    .map(|c| {
                        let mut b = [0u8; $n];
                        b.copy_from_slice(c);
                        if be {
                            <$t>::from_be_bytes(b)
                        } else {
                            <$t>::from_le_bytes(b)
                        }
                    })
                    .collect(),
            )
        };
    }
    Ok(match (h.kind, h.size) {
        (Kind::U, 1) => NpyArray::U8(data.to_vec()),
        (Kind::U, 2) => collect!(u16, 2, U16),
        (Kind::U, 4) => collect!(u32, 4, U32),
        (Kind::U, 8) => collect!(u64, 8, U64),
        (Kind::F, 4) => collect!(f32, 4, F32),
        (Kind::F, 8) => collect!(f64, 8, F64),
        _ => return Err(NpyError::UnsupportedDtype(String::from("unknown size"))),
    })
}

/// Reads and parses an .npy file.
pub fn read(path: &Path) -> Result<NpyArray, NpyError> {
    parse(&std::fs::read(path).map_err(NpyError::Io)?)
}

fn dtype_from_descr(d: &str) -> Result<(Kind, usize, bool), NpyError> {
    let unsupported = |name: &str| Err(NpyError::UnsupportedDtype(name.to_string()));
    let (order, rest) = match d.as_bytes().first() {
        Some(b'<' | b'>' | b'|' | b'=') => (d.as_bytes()[0], &d[1..]),
        _ => (b'=', d),
    };
    let big = order == b'>';
    let (kind, size) = match rest {
        "u1" => (Kind::U, 1),
        "u2" => (Kind::U, 2),
        "u4" => (Kind::U, 4),
        "u8" => (Kind::U, 8),
        "f4" => (Kind::F, 4),
        "f8" => (Kind::F, 8),
        r if r.starts_with('i') => {
            let bits = r[1..].parse::<u32>().map(|b| b * 8).unwrap_or(0);
            return unsupported(&format!("int{bits} (signed)"));
        }
        "b1" => return unsupported("bool"),
        "f2" => return unsupported("float16"),
        other => return unsupported(other),
    };
    Ok((kind, size, big))
}

/// A tiny tokenizer for the header dict: {'descr': '<u4', 'fortran_order': False, 'shape': (5,), }
fn parse_header(text: &str) -> Result<Header, NpyError> {
    let bad = |m: &str| NpyError::BadHeader(m.to_string());
    let t = text.trim_end_matches(['\n', ' ', '\0']).trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| bad("not a dict"))?;
    let mut descr = None;
    let mut shape: Option<Vec<u64>> = None;
    let mut fortran = None;
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (key, after) = take_string(rest).ok_or_else(|| bad("expected a quoted key"))?;
        let after = after
            .trim_start()
            .strip_prefix(':')
            .ok_or_else(|| bad("expected ':'"))?
            .trim_start();
        let after = match key.as_str() {
            "descr" => {
                if after.starts_with('[') {
                    return Err(NpyError::UnsupportedDtype(String::from("structured dtype")));
                }
                let (v, a) = take_string(after).ok_or_else(|| bad("descr must be a string"))?;
                descr = Some(v);
                a
            }
            "fortran_order" => {
                if let Some(a) = after.strip_prefix("True") {
                    fortran = Some(true);
                    a
                } else if let Some(a) = after.strip_prefix("False") {
                    fortran = Some(false);
                    a
                } else {
                    return Err(bad("fortran_order must be True or False"));
                }
            }
            "shape" => {
                let a = after
                    .strip_prefix('(')
                    .ok_or_else(|| bad("shape must be a tuple"))?;
                let close = a.find(')').ok_or_else(|| bad("unterminated shape"))?;
                let dims: Result<Vec<u64>, _> = a[..close]
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.trim_end_matches('L').parse::<u64>())
                    .collect();
                shape = Some(dims.map_err(|_| bad("shape entries must be integers"))?);
                &a[close + 1..]
            }
            other => return Err(bad(&format!("unknown key '{other}'"))),
        };
        let after = after.trim_start();
        rest = match after.strip_prefix(',') {
            Some(a) => a.trim_start(),
            None if after.is_empty() => after,
            None => return Err(bad("expected ',' between entries")),
        };
    }
    let descr = descr.ok_or_else(|| bad("missing 'descr'"))?;
    let shape = shape.ok_or_else(|| bad("missing 'shape'"))?;
    fortran.ok_or_else(|| bad("missing 'fortran_order'"))?;
    let (kind, size, big_endian) = dtype_from_descr(&descr)?;
    if shape.len() != 1 {
        return Err(NpyError::NotOneDimensional(shape));
    }
    Ok(Header {
        kind,
        size,
        big_endian: big_endian && size > 1,
        len: shape[0],
    })
}

fn take_string(s: &str) -> Option<(String, &str)> {
    let q = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &s[1..];
    let end = body.find(q)?;
    Some((body[..end].to_string(), &body[end + 1..]))
}

/// Writes `a` in format 1.0 exactly as `numpy.save` does (little-endian, header padded so the
/// data starts at a multiple of 64 bytes).
pub fn write<W: Write>(mut w: W, a: &NpyArray) -> std::io::Result<()> {
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({},), }}",
        a.descr(),
        a.len()
    );
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    w.write_all(MAGIC)?;
    w.write_all(&[1, 0])?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    let mut buf = Vec::with_capacity(a.len() * 8);
    match a {
        NpyArray::U8(v) => buf.extend_from_slice(v),
        NpyArray::U16(v) => v
            .iter()
            .for_each(|x| buf.extend_from_slice(&x.to_le_bytes())),
        NpyArray::U32(v) => v
            .iter()
            .for_each(|x| buf.extend_from_slice(&x.to_le_bytes())),
        NpyArray::U64(v) => v
            .iter()
            .for_each(|x| buf.extend_from_slice(&x.to_le_bytes())),
        NpyArray::F32(v) => v
            .iter()
            .for_each(|x| buf.extend_from_slice(&x.to_le_bytes())),
        NpyArray::F64(v) => v
            .iter()
            .for_each(|x| buf.extend_from_slice(&x.to_le_bytes())),
    }
    w.write_all(&buf)
}

/// Writes `a` to `path`.
pub fn write_file(path: &Path, a: &NpyArray) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    write(&mut f, a)?;
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(a: NpyArray) {
        let mut buf = Vec::new();
        write(&mut buf, &a).unwrap();
        assert_eq!(parse(&buf).unwrap(), a);
    }

    #[test]
    fn roundtrips() {
        roundtrip(NpyArray::U8(vec![1, 2, 255]));
        roundtrip(NpyArray::U16(vec![1, 65535]));
        roundtrip(NpyArray::U32(vec![0, u32::MAX]));
        roundtrip(NpyArray::U64(vec![]));
        roundtrip(NpyArray::F32(vec![0.5, -1.25]));
        roundtrip(NpyArray::F64(vec![1e300, -0.0]));
    }

    #[test]
    fn matches_numpy_bytes() {
        // np.save(f, np.array([1, 2, 3], dtype='<u4'))
        let mut want =
            b"\x93NUMPY\x01\x00v\x00{'descr': '<u4', 'fortran_order': False, 'shape': (3,), }"
                .to_vec();
        want.extend(std::iter::repeat_n(b' ', 127 - want.len()));
        want.push(b'\n');
        want.extend([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
        let mut got = Vec::new();
        write(&mut got, &NpyArray::U32(vec![1, 2, 3])).unwrap();
        assert_eq!(got, want);
    }

    fn file(header: &str, data: &[u8], version: u8) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.push(version);
        v.push(0);
        if version == 1 {
            v.extend((header.len() as u16).to_le_bytes());
        } else {
            v.extend((header.len() as u32).to_le_bytes());
        }
        v.extend(header.as_bytes());
        v.extend(data);
        v
    }

    #[test]
    fn big_endian_v2_and_variants() {
        let f = file(
            "{'descr': '>u2', 'fortran_order': False, 'shape': (2,), }\n",
            &[0, 1, 1, 0],
            2,
        );
        assert_eq!(parse(&f).unwrap(), NpyArray::U16(vec![1, 256]));
        let f = file(
            "{\"shape\": (1), \"fortran_order\": True, \"descr\": \"<f8\"}",
            &1.5f64.to_le_bytes(),
            3,
        );
        assert_eq!(parse(&f).unwrap(), NpyArray::F64(vec![1.5]));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = parse(&file(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }",
            &[0; 4],
            1,
        ))
        .unwrap_err();
        assert!(
            e.to_string().contains("int32") && e.to_string().contains("unsigned"),
            "{e}"
        );
        let e = parse(&file(
            "{'descr': '<u1', 'fortran_order': False, 'shape': (2, 2), }",
            &[0; 4],
            1,
        ))
        .unwrap_err();
        assert!(
            e.to_string().contains("(2, 2)") && e.to_string().contains("ravel"),
            "{e}"
        );
        assert!(matches!(
            parse(&file(
                "{'descr': '<u4', 'fortran_order': False, 'shape': (3,), }",
                &[0; 4],
                1
            )),
            Err(NpyError::Truncated {
                expected: 12,
                got: 4
            })
        ));
        assert!(matches!(
            parse(&file(
                "{'descr': '<u1', 'fortran_order': False, 'shape': (1,), }",
                &[0; 3],
                1
            )),
            Err(NpyError::TrailingData(2))
        ));
        // A forged huge shape is refused without allocating.
        assert!(matches!(
            parse(&file(
                "{'descr': '<u8', 'fortran_order': False, 'shape': (18446744073709551615,), }",
                &[],
                1
            )),
            Err(NpyError::BadHeader(_) | NpyError::Truncated { .. })
        ));
        assert!(matches!(parse(b"hello world"), Err(NpyError::BadMagic)));
        assert!(matches!(
            parse(&file("", &[], 9)),
            Err(NpyError::UnsupportedVersion(9, 0))
        ));
        assert!(matches!(
            parse(&file("{'descr': '<u1'}", &[], 1)),
            Err(NpyError::BadHeader(_))
        ));
        assert!(matches!(
            parse(&file(
                "{'descr': [('a', '<u1')], 'fortran_order': False, 'shape': (1,), }",
                &[0],
                1
            )),
            Err(NpyError::UnsupportedDtype(_))
        ));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
        }
        #[test]
        fn mutated_files_never_panic(pos in 0usize..140, val in any::<u8>()) {
            let mut buf = Vec::new();
            write(&mut buf, &NpyArray::U32(vec![1, 2, 3])).unwrap();
            let p = pos % buf.len();
            buf[p] = val;
            let _ = parse(&buf);
            buf.truncate(p);
            let _ = parse(&buf);
        }
    }
}
