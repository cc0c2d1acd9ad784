//! A value with the line it was written on.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::ops::Deref;

/// A value read from YAML together with its 1-based line (0 when built in code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Line where the value starts.
    pub line: u64,
}

impl<T> Located<T> {
    /// Wraps a value built in code (line 0).
    pub fn new(value: T) -> Self {
        Located { value, line: 0 }
    }

    /// The line, or `None` when unknown.
    pub fn line(&self) -> Option<u64> {
        (self.line > 0).then_some(self.line)
    }
}

impl<T> Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(d)?;
        Ok(Located {
            line: spanned.referenced.line(),
            value: spanned.value,
        })
    }
}

impl<T: Serialize> Serialize for Located<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}
