//! The one type for values that must never be printed: configuration secrets, CDN keys,
//! the database URL. `Debug` and `Display` show `[redacted]`; the value is wiped from
//! memory when dropped (best effort: copies made by callers of [`Secret::expose`] are
//! theirs to manage).

use std::fmt;

use zeroize::Zeroize;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The only way to read the value; grep for it when auditing secret handling.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: Zeroize> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Secret bytes: CDN keys and PEMs.
pub type KeyMaterial = Secret<Vec<u8>>;

impl KeyMaterial {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for KeyMaterial {
    fn from(s: &str) -> Self {
        Secret(s.as_bytes().to_vec())
    }
}

impl From<String> for KeyMaterial {
    fn from(s: String) -> Self {
        Secret(s.into_bytes())
    }
}

impl From<Vec<u8>> for KeyMaterial {
    fn from(v: Vec<u8>) -> Self {
        Secret(v)
    }
}

impl From<&[u8]> for KeyMaterial {
    fn from(v: &[u8]) -> Self {
        Secret(v.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2-hunter2".to_string());
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        let k = KeyMaterial::from("key");
        assert_eq!(format!("{k:?}"), "[redacted]");
        assert_eq!(k.expose().as_slice(), b"key");
    }
}
