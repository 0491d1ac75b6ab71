//! Identity key files and rosters for the PKI (malicious-server model).
//!
//! - A key file holds one line `secagg-identity-v1 <64 hex chars of the Ed25519 seed>`; it is
//!   created with mode 0600.
//! - A roster holds one line per client: `<64 hex chars of the public key> [name]`; `#` starts
//!   a comment.

use std::io::Write;
use std::path::Path;

use secagg_core::crypto::IdentityKey;

const TAG: &str = "secagg-identity-v1";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Creates a new identity key at `path` (refusing to overwrite) and returns it.
pub fn generate(path: &Path) -> Result<IdentityKey, String> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| format!("no OS randomness: {e}"))?;
    let key = IdentityKey::from_seed(&seed);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| {
        format!(
            "cannot create {}: {e} (keys are never overwritten)",
            path.display()
        )
    })?;
    let line = zeroize::Zeroizing::new(format!("{TAG} {}\n", hex(seed.as_ref())));
    f.write_all(line.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(key)
}

/// Reads an identity key file.
pub fn load(path: &Path) -> Result<IdentityKey, String> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next().and_then(unhex32), parts.next()) {
        (Some(TAG), Some(seed), None) => {
            let seed = zeroize::Zeroizing::new(seed);
            Ok(IdentityKey::from_seed(&seed))
        }
        _ => Err(format!(
            "{} is not a secagg identity key file (expected '{TAG} <64 hex>')",
            path.display()
        )),
    }
}

/// The roster line of a public key.
pub fn roster_line(public: &[u8; 32], name: &str) -> String {
    format!("{} {name}\n", hex(public)).replace(" \n", "\n")
}

/// Reads a roster: public keys in file order, client id i + 1 on the i-th key line. A key
/// listed twice is refused (one party at two ids would be several clients, e.g. all of a
/// victim's neighbours), as is a roster without keys.
pub fn load_roster(path: &Path) -> Result<Vec<[u8; 32]>, String> {
    let keys = check_roster_file(path)?;
    if keys.is_empty() {
        return Err(format!("{} lists no keys", path.display()));
    }
    Ok(keys)
}

/// Reads and checks a roster file that may list no keys yet (`secagg keygen` appends to it).
pub fn check_roster_file(path: &Path) -> Result<Vec<[u8; 32]>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut keys: Vec<[u8; 32]> = Vec::new();
    let mut lines: Vec<usize> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let k = line
            .split_whitespace()
            .next()
            .and_then(unhex32)
            .ok_or_else(|| {
                format!(
                    "{} line {}: expected 64 hex characters of a public key",
                    path.display(),
                    i + 1
                )
            })?;
        if let Some(j) = keys.iter().position(|x| *x == k) {
            return Err(format!(
                "{} line {}: the key of line {} again (ids {} and {}): one identity key at two \
                 ids would make one party several clients; each key must appear once",
                path.display(),
                i + 1,
                lines[j],
                j + 1,
                keys.len() + 1
            ));
        }
        keys.push(k);
        lines.push(i + 1);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_rosters_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.key");
        let k = generate(&p).unwrap();
        assert!(generate(&p).is_err(), "never overwrite a key");
        assert_eq!(load(&p).unwrap().public(), k.public());
        let r = dir.path().join("roster.txt");
        std::fs::write(
            &r,
            format!("# clients\n{}", roster_line(&k.public(), "alice")),
        )
        .unwrap();
        assert_eq!(load_roster(&r).unwrap(), vec![k.public()]);
        let twice = format!(
            "{}{}",
            roster_line(&k.public(), "alice"),
            roster_line(&k.public(), "mallory")
        );
        std::fs::write(&r, twice).unwrap();
        let e = load_roster(&r).unwrap_err();
        assert!(e.contains("line 2: the key of line 1 again"), "{e}");
        assert!(check_roster_file(&r).is_err());
        std::fs::write(&r, "# nobody yet\n").unwrap();
        assert!(load_roster(&r).is_err());
        assert_eq!(check_roster_file(&r).unwrap(), Vec::<[u8; 32]>::new());
        std::fs::write(&r, "zz\n").unwrap();
        assert!(load_roster(&r).unwrap_err().contains("line 1"));
        std::fs::write(p.with_extension("bad"), "nope").unwrap();
        assert!(load(&p.with_extension("bad")).is_err());
    }
}
