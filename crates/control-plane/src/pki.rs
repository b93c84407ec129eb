//! The cluster's certificates, made fresh for each cluster: one CA that
//! signs the serving certificates (kube-apiserver, policy-server) and the
//! client certificates that give each component its own identity, and the
//! key that signs service-account tokens.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// A certificate and its key, written as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Who a client certificate says its holder is: the API server takes the
/// common name as the user and the organization as a group. (rcgen keeps
/// one value per name attribute, and no identity here needs two groups.)
pub struct Identity<'a> {
    pub user: &'a str,
    pub group: Option<&'a str>,
}

pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub cert: PathBuf,
    dir: PathBuf,
}

impl Ca {
    /// A new CA, its certificate written to `dir/ca.crt`.
    pub fn create(dir: &Path) -> Result<Ca> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name("pod-deletion-cost loopback CA", None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let cert = dir.join("ca.crt");
        write(&cert, &issuer.pem())?;
        Ok(Ca {
            issuer,
            cert,
            dir: dir.to_path_buf(),
        })
    }

    /// A serving certificate for 127.0.0.1 and localhost.
    pub fn serving(&self, file_stem: &str) -> Result<CertFiles> {
        let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.distinguished_name = name(file_stem, None);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        self.sign(file_stem, params)
    }

    /// A client certificate for `identity`.
    pub fn client(&self, file_stem: &str, identity: &Identity) -> Result<CertFiles> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(identity.user, identity.group);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.sign(file_stem, params)
    }

    fn sign(&self, file_stem: &str, params: CertificateParams) -> Result<CertFiles> {
        let key = KeyPair::generate()?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .with_context(|| format!("signing the certificate {file_stem}"))?;
        let files = CertFiles {
            cert: self.dir.join(format!("{file_stem}.crt")),
            key: self.dir.join(format!("{file_stem}.key")),
        };
        write(&files.cert, &cert.pem())?;
        write(&files.key, &key.serialize_pem())?;
        Ok(files)
    }
}

/// The service-account token signing key: the API server signs with the
/// private key and verifies with the public one, the controller-manager's
/// token controller signs with the private key too.
pub struct ServiceAccountKey {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl ServiceAccountKey {
    pub fn create(dir: &Path) -> Result<ServiceAccountKey> {
        let key = KeyPair::generate()?;
        let files = ServiceAccountKey {
            private: dir.join("sa.key"),
            public: dir.join("sa.pub"),
        };
        write(&files.private, &key.serialize_pem())?;
        write(&files.public, &key.public_key_pem())?;
        Ok(files)
    }
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}

fn write(path: &Path, pem: &str) -> Result<()> {
    fs::write(path, pem).with_context(|| format!("writing {}", path.display()))
}
