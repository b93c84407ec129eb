//! Pulling a policy module from an OCI registry, the way kwctl and
//! policy-server do: one layer of Kubewarden's wasm media type.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::WASM_LAYER_MEDIA_TYPE;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

/// How long a registry may take to answer before the pull is given up.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Checks that `reference` (what follows `registry://`) names a registry
/// host and a repository.
pub fn check_reference(reference: &str) -> Result<Reference, String> {
    let parsed: Reference = reference.parse().map_err(|e| {
        format!("registry://{reference}: not an OCI reference (registry://HOST/REPO:TAG): {e}")
    })?;
    // Without a host the reference would silently mean Docker Hub.
    let host = reference.split('/').next().unwrap_or_default();
    if !reference.contains('/')
        || !(host.contains('.') || host.contains(':') || host == "localhost")
    {
        return Err(format!(
            "registry://{reference}: name the registry host, as in registry://ghcr.io/ORG/REPO:TAG"
        ));
    }
    Ok(parsed)
}

/// Whether `registry` (`HOST` or `HOST:PORT`) is this machine: reached over
/// plain HTTP, as Docker does for loopback registries.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The module's bytes, pulled anonymously; `insecure` lists registries
/// (`HOST[:PORT]`) to reach over plain HTTP besides loopback ones.
pub fn pull(reference: &str, insecure: &[String]) -> Result<Vec<u8>, String> {
    let parsed = check_reference(reference)?;
    let registry = parsed.resolve_registry().to_string();
    let mut plain_http = insecure.to_vec();
    if is_loopback(&registry) {
        plain_http.push(registry);
    }
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(plain_http),
        ..ClientConfig::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the network runtime: {e}"))?;
    let pulled = runtime.block_on(async {
        tokio::time::timeout(
            TIMEOUT,
            client.pull(
                &parsed,
                &RegistryAuth::Anonymous,
                vec![WASM_LAYER_MEDIA_TYPE],
            ),
        )
        .await
    });
    let image = match pulled {
        Err(_) => return Err(format!("no answer within {} s", TIMEOUT.as_secs())),
        Ok(Err(e)) => return Err(format!("cannot pull: {e}")),
        Ok(Ok(image)) => image,
    };
    match <[_; 1]>::try_from(image.layers) {
        Ok([layer]) => Ok(layer.data.to_vec()),
        Err(layers) => Err(format!(
            "expected one {WASM_LAYER_MEDIA_TYPE} layer, found {}",
            layers.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::localhost_with_port("localhost:5000", true)]
    #[case::ipv4_loopback("127.0.0.1:41234", true)]
    #[case::ipv4_loopback_range("127.8.0.1", true)]
    #[case::ipv6_loopback("[::1]:5000", true)]
    #[case::remote("ghcr.io", false)]
    #[case::remote_with_port("registry.example.com:5000", false)]
    #[case::lan_address("10.0.0.7:5000", false)]
    fn loopback_registries_are_recognised(#[case] registry: &str, #[case] want: bool) {
        assert_eq!(is_loopback(registry), want);
    }

    #[rstest]
    #[case::no_host("policies/deletion-cost:v1", "name the registry host")]
    #[case::bare_name("deletion-cost", "name the registry host")]
    #[case::upper_case_repository("ghcr.io/Org/Repo:v1", "not an OCI reference")]
    fn bad_references_say_what_is_wrong(#[case] reference: &str, #[case] says: &str) {
        let err = check_reference(reference).unwrap_err();
        assert!(err.contains(says), "{err}");
        assert!(
            err.starts_with(&format!("registry://{reference}: ")),
            "{err}"
        );
    }

    #[test]
    fn a_reference_with_host_and_tag_is_taken() {
        let r = check_reference("127.0.0.1:5000/policies/deletion-cost:v0.1.0").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.tag(), Some("v0.1.0"));
    }
}
