//! The upstream hosts of add-on manifests, as one HTTPS server on 127.0.0.1: it serves each file at
//! its upstream URL's path, with a certificate from a CA of the test's own. `ephemera` reaches it
//! through `EPHEMERA_MANIFEST_MIRROR` and trusts it through `SSL_CERT_FILE` (see [`Upstream::vars`]),
//! so the real download path runs, TLS included, and nothing leaves the machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::testcluster::shared_dir;

type Files = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

pub struct Upstream {
    /// `https://127.0.0.1:<port>`.
    pub base: String,
    ca_file: PathBuf,
    files: Files,
    requests: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Upstream {
    /// Starts the server on `rt`, serving `files` by URL path.
    pub fn start(rt: &tokio::runtime::Runtime, files: BTreeMap<String, Vec<u8>>) -> Upstream {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        use tokio_rustls::rustls;

        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, &ca_key);
        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("server params");
        let cert = params.signed_by(&key, &issuer).expect("server certificate");

        let dir = tempfile::tempdir().expect("tempdir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).expect("writing the CA");

        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("a TLS server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let base = format!("https://{}", listener.local_addr().expect("local addr"));
        let files: Files = Arc::new(Mutex::new(files));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (f, r) = (files.clone(), requests.clone());
        rt.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, f, r) = (acceptor.clone(), f.clone(), r.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let path = req.uri().path().to_string();
                            r.lock().expect("requests").push(path.clone());
                            let body = f.lock().expect("files").get(&path).cloned();
                            async move {
                                let resp = match body {
                                    Some(b) => hyper::Response::new(http_body(b)),
                                    None => hyper::Response::builder()
                                        .status(404)
                                        .body(http_body(Vec::new()))
                                        .expect("a 404"),
                                };
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Upstream {
            base,
            ca_file,
            files,
            requests,
            _dir: dir,
        }
    }

    /// The variables that point `ephemera` here: the mirror and the CA to trust.
    pub fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("EPHEMERA_MANIFEST_MIRROR".into(), self.base.clone()),
            ("SSL_CERT_FILE".into(), self.ca_file.display().to_string()),
        ]
    }

    /// Serves `bytes` at `path` from now on.
    pub fn set(&self, path: &str, bytes: Vec<u8>) {
        self.files
            .lock()
            .expect("files")
            .insert(path.to_string(), bytes);
    }

    /// Every path requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests").clone()
    }
}

fn http_body(b: Vec<u8>) -> axum::body::Body {
    axum::body::Body::from(b)
}

/// The upstream files the add-ons of `env_file` need, by URL path, taken from the offline bundles
/// (the shared upstream manifests, then `extra`): what their upstream hosts serve.
pub fn files_for(env_file: &Path, extra: &Path) -> BTreeMap<String, Vec<u8>> {
    let env = ephemera::config::load(env_file).expect("the environment file loads");
    let renderer = ephemera::templates::Renderer::new(None).expect("templates");
    let addons = ephemera::addons::lock::addons_of(&env, &renderer).expect("add-ons resolve");
    let bundles = [shared_dir().join("fixtures/manifests"), extra.to_path_buf()];
    let mut out = BTreeMap::new();
    for a in &addons {
        for s in &a.sources {
            let path = reqwest_path(&s.url);
            let bytes = bundles
                .iter()
                .find_map(|b| std::fs::read(b.join(&s.bundle)).ok())
                .unwrap_or_else(|| panic!("{} is in no bundle", s.bundle));
            out.insert(path, bytes);
        }
    }
    out
}

/// The path of an https URL.
pub fn reqwest_path(url: &str) -> String {
    let rest = url.strip_prefix("https://").expect("an https URL");
    rest.find('/').map_or("/".into(), |i| rest[i..].to_string())
}

/// The bundle holding cert-manager's controllers, rendered from the upstream chart.
pub fn test_bundle() -> PathBuf {
    super::testcluster::rendered_manifests()
}
