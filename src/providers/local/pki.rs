//! The certificates of one local cluster, made in-process: a CA, the API server's serving
//! certificate for 127.0.0.1/localhost, an admin client certificate in `system:masters`, and the
//! service-account signing key. All keys are ECDSA P-256, which kube-apiserver accepts for serving,
//! client certificates and service-account tokens (ES256), and which is fast to generate.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::providers::{ProviderError, write_private};

/// The Service network's first address, which the `kubernetes` Service would get.
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// The files of a cluster's PKI, under `<state>/pki`.
#[derive(Clone, Debug)]
pub struct Pki {
    dir: PathBuf,
}

const FILES: [&str; 8] = [
    "ca.crt",
    "ca.key",
    "apiserver.crt",
    "apiserver.key",
    "admin.crt",
    "admin.key",
    "sa.key",
    "sa.pub",
];

impl Pki {
    pub fn new(dir: PathBuf) -> Self {
        Pki { dir }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Whether every file is there (a half-written PKI is made again).
    pub fn complete(&self) -> bool {
        FILES.iter().all(|f| self.dir.join(f).is_file())
    }

    /// Makes the PKI unless it is complete.
    ///
    /// # Errors
    /// Key generation or signing fails, or a file cannot be written.
    pub fn ensure(&self, cluster: &str) -> Result<(), ProviderError> {
        if self.complete() {
            return Ok(());
        }
        let files = generate(cluster).map_err(|e| ProviderError::Transport {
            context: format!("generating certificates for local cluster {cluster}"),
            source: Box::new(e),
        })?;
        for (name, contents) in files {
            write_private(&self.dir.join(name), contents.as_bytes())?;
        }
        Ok(())
    }

    /// Reads one file (kubeconfigs embed the CA and admin credentials).
    ///
    /// # Errors
    /// I/O errors, naming the file.
    pub fn read(&self, file: &str) -> Result<Vec<u8>, ProviderError> {
        let p = self.dir.join(file);
        std::fs::read(&p).map_err(|e| ProviderError::io(format!("reading {}", p.display()), e))
    }
}

fn dn(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

/// Validity from yesterday (clock skew) for `years`.
fn validity(params: &mut CertificateParams, years: i16) {
    let today = jiff::Zoned::now().date();
    let start = today.yesterday().unwrap_or(today);
    let end = start
        .checked_add(jiff::Span::new().years(years))
        .unwrap_or(start);
    let ymd = |d: jiff::civil::Date| {
        rcgen::date_time_ymd(i32::from(d.year()), d.month() as u8, d.day() as u8)
    };
    params.not_before = ymd(start);
    params.not_after = ymd(end);
}

/// Every file of a new PKI, as (file name, PEM text).
fn generate(cluster: &str) -> Result<Vec<(&'static str, String)>, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = dn(&format!("ephemera-local-{cluster}-ca"), None);
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca, 10);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::default();
    server.distinguished_name = dn("kube-apiserver", None);
    server.subject_alt_names = vec![
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V4(SERVICE_IP)),
    ];
    for name in [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ] {
        server
            .subject_alt_names
            .push(SanType::DnsName(name.try_into()?));
    }
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    validity(&mut server, 1);
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let admin_key = KeyPair::generate()?;
    let mut admin = CertificateParams::default();
    admin.distinguished_name = dn("ephemera-admin", Some("system:masters"));
    admin.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    admin.use_authority_key_identifier_extension = true;
    validity(&mut admin, 1);
    let admin_cert = admin.signed_by(&admin_key, &issuer)?;

    let sa_key = KeyPair::generate()?;
    Ok(vec![
        ("ca.crt", ca_cert.pem()),
        ("ca.key", ca_key.serialize_pem()),
        ("apiserver.crt", server_cert.pem()),
        ("apiserver.key", server_key.serialize_pem()),
        ("admin.crt", admin_cert.pem()),
        ("admin.key", admin_key.serialize_pem()),
        ("sa.key", sa_key.serialize_pem()),
        ("sa.pub", sa_key.public_key_pem()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_writes_every_file_private_and_keeps_a_complete_set() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path().join("pki"));
        assert!(!pki.complete());
        pki.ensure("t").unwrap();
        assert!(pki.complete());
        for f in FILES {
            let mode = std::fs::metadata(pki.path(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let before = std::fs::read(pki.path("ca.crt")).unwrap();
        pki.ensure("t").unwrap();
        assert_eq!(
            std::fs::read(pki.path("ca.crt")).unwrap(),
            before,
            "a complete PKI is kept"
        );
        let key = String::from_utf8(std::fs::read(pki.path("sa.key")).unwrap()).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        let public = String::from_utf8(std::fs::read(pki.path("sa.pub")).unwrap()).unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
    }
}
