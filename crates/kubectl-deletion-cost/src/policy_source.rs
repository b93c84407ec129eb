//! Where the policy module comes from: the one built into this command (the
//! same version), a file, or an OCI registry as kwctl pulls it.

use std::fmt;
use std::path::PathBuf;

/// policy.wasm of this version, embedded by build.rs.
pub const EMBEDDED_POLICY: &[u8] = include_bytes!(env!("DELETION_COST_EMBEDDED_POLICY"));

const REGISTRY_SCHEME: &str = "registry://";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PolicySource {
    #[default]
    Embedded,
    File(PathBuf),
    /// An OCI reference, `HOST/REPO:TAG` or `HOST/REPO@sha256:...`.
    Registry(String),
}

impl std::str::FromStr for PolicySource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(reference) = s.strip_prefix(REGISTRY_SCHEME) {
            crate::registry::check_reference(reference)?;
            return Ok(PolicySource::Registry(reference.to_string()));
        }
        if s.is_empty() {
            return Err("expected a .wasm file or registry://HOST/REPO:TAG".into());
        }
        Ok(PolicySource::File(PathBuf::from(s)))
    }
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySource::Embedded => write!(
                f,
                "the built-in policy module (pod-deletion-cost-policy {})",
                env!("CARGO_PKG_VERSION")
            ),
            PolicySource::File(path) => write!(f, "{}", path.display()),
            PolicySource::Registry(reference) => write!(f, "{REGISTRY_SCHEME}{reference}"),
        }
    }
}

impl PolicySource {
    /// The module's bytes. `insecure` names registries reached over plain
    /// HTTP besides loopback ones.
    pub fn fetch(&self, insecure: &[String]) -> Result<Vec<u8>, String> {
        match self {
            PolicySource::Embedded => Ok(EMBEDDED_POLICY.to_vec()),
            PolicySource::File(path) => {
                std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
            }
            PolicySource::Registry(reference) => {
                crate::registry::pull(reference, insecure).map_err(|e| format!("{self}: {e}"))
            }
        }
    }
}
