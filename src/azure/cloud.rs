//! Azure clouds: where ARM and the Entra ID authority live, and which portal shows a resource.
//!
//! Precedence, highest first: `AZURE_RESOURCE_MANAGER_ENDPOINT` / `AZURE_AUTHORITY_HOST`, the
//! environment file's `provider.aks.cloud.resourceManager` / `authorityHost`, then the named
//! cloud. Plain `http` is accepted only for loopback hosts (the tests' fake ARM); everything else
//! must be `https`, and certificates are always verified.

use reqwest::Url;

use super::AzureError;
use crate::config::Cloud;
use crate::probe::Probe;

/// Overrides the ARM endpoint of any cloud.
pub const ENV_RESOURCE_MANAGER: &str = "AZURE_RESOURCE_MANAGER_ENDPOINT";
/// Overrides the Entra ID authority host of any cloud.
pub const ENV_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";

/// The endpoints of one Azure cloud.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudEndpoints {
    /// `AzureCloud`, `AzureChinaCloud`, `AzureUSGovernment` or `Custom`.
    pub name: String,
    /// ARM, e.g. `https://management.azure.com/` (always ends with `/`).
    pub resource_manager: Url,
    /// Entra ID, e.g. `https://login.microsoftonline.com/` (always ends with `/`).
    pub authority_host: Url,
    /// The OAuth scope for ARM tokens.
    pub scope: String,
    /// The portal, for links people can open; `None` for custom clouds.
    pub portal: Option<String>,
}

struct Named {
    name: &'static str,
    resource_manager: &'static str,
    authority_host: &'static str,
    portal: &'static str,
}

const NAMED: [Named; 3] = [
    Named {
        name: "AzureCloud",
        resource_manager: "https://management.azure.com/",
        authority_host: "https://login.microsoftonline.com/",
        portal: "https://portal.azure.com",
    },
    Named {
        name: "AzureChinaCloud",
        resource_manager: "https://management.chinacloudapi.cn/",
        authority_host: "https://login.chinacloudapi.cn/",
        portal: "https://portal.azure.cn",
    },
    Named {
        name: "AzureUSGovernment",
        resource_manager: "https://management.usgovcloudapi.net/",
        authority_host: "https://login.microsoftonline.us/",
        portal: "https://portal.azure.us",
    },
];

impl CloudEndpoints {
    /// Resolves the cloud of an environment file against the process environment.
    ///
    /// # Errors
    /// [`AzureError::Config`] naming `provider.aks.cloud.*` or the variable, for an unknown
    /// cloud name, a custom cloud without endpoints, or an endpoint that is not an absolute
    /// https URL (http only for loopback hosts).
    pub fn resolve(cloud: &Cloud, probe: &dyn Probe) -> Result<Self, AzureError> {
        let named = NAMED
            .iter()
            .find(|n| n.name.eq_ignore_ascii_case(&cloud.name));
        if named.is_none() && !cloud.name.eq_ignore_ascii_case("Custom") {
            return Err(AzureError::Config(format!(
                "provider.aks.cloud.name: unknown cloud {:?} (AzureCloud, AzureChinaCloud, AzureUSGovernment or Custom)",
                cloud.name
            )));
        }
        let pick = |env: &str, file: &Option<String>, field: &str, default: Option<&str>| {
            if let Some(v) = probe.var_nonempty(env) {
                return endpoint(&v, env);
            }
            if let Some(v) = file.as_deref().filter(|v| !v.is_empty()) {
                return endpoint(v, &format!("provider.aks.cloud.{field}"));
            }
            match default {
                Some(d) => endpoint(d, field),
                None => Err(AzureError::Config(format!(
                    "provider.aks.cloud.{field}: a Custom cloud needs it (or set {env})"
                ))),
            }
        };
        let resource_manager = pick(
            ENV_RESOURCE_MANAGER,
            &cloud.resource_manager,
            "resourceManager",
            named.map(|n| n.resource_manager),
        )?;
        let authority_host = pick(
            ENV_AUTHORITY_HOST,
            &cloud.authority_host,
            "authorityHost",
            named.map(|n| n.authority_host),
        )?;
        let base = resource_manager.as_str().trim_end_matches('/');
        Ok(CloudEndpoints {
            name: named.map_or("Custom", |n| n.name).to_string(),
            scope: format!("{base}/.default"),
            portal: named.map(|n| n.portal.to_string()),
            resource_manager,
            authority_host,
        })
    }

    /// A portal link to the resource with ARM id `id`, when the cloud has a known portal.
    pub fn portal_link(&self, id: &str) -> Option<String> {
        self.portal.as_ref().map(|p| format!("{p}/#@/resource{id}"))
    }
}

/// Parses an endpoint URL, allowing http only on loopback hosts. The result ends with `/`.
///
/// # Errors
/// [`AzureError::Config`] naming `what`.
pub fn endpoint(value: &str, what: &str) -> Result<Url, AzureError> {
    let mut url = Url::parse(value)
        .map_err(|e| AzureError::Config(format!("{what}: {value:?} is not a URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(AzureError::Config(format!(
                "{what}: {value:?} uses plain http; only loopback hosts may (use https)"
            )));
        }
        other => {
            return Err(AzureError::Config(format!(
                "{what}: {value:?} has scheme {other:?}; use https"
            )));
        }
    }
    if url.host_str().is_none_or(str::is_empty) || url.query().is_some() || url.fragment().is_some()
    {
        return Err(AzureError::Config(format!(
            "{what}: {value:?} must be a base URL with a host"
        )));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Whether the URL's host is a loopback address (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::FakeProbe;

    fn cloud(name: &str) -> Cloud {
        Cloud {
            name: name.into(),
            resource_manager: None,
            authority_host: None,
            extra_locations: Vec::new(),
        }
    }

    #[test]
    fn named_clouds_have_their_endpoints_and_portals() {
        let none = FakeProbe::new([]);
        let c = CloudEndpoints::resolve(&cloud("AzureCloud"), &none).unwrap();
        assert_eq!(c.resource_manager.as_str(), "https://management.azure.com/");
        assert_eq!(c.scope, "https://management.azure.com/.default");
        assert_eq!(
            c.portal_link("/subscriptions/s").unwrap(),
            "https://portal.azure.com/#@/resource/subscriptions/s"
        );
        let c = CloudEndpoints::resolve(&cloud("azurechinacloud"), &none).unwrap();
        assert_eq!(c.authority_host.as_str(), "https://login.chinacloudapi.cn/");
        assert_eq!(c.portal.as_deref(), Some("https://portal.azure.cn"));
        let c = CloudEndpoints::resolve(&cloud("AzureUSGovernment"), &none).unwrap();
        assert_eq!(
            c.resource_manager.as_str(),
            "https://management.usgovcloudapi.net/"
        );
        assert_eq!(
            c.authority_host.as_str(),
            "https://login.microsoftonline.us/"
        );
    }

    #[test]
    fn environment_beats_file_beats_named_cloud() {
        let mut c = cloud("AzureCloud");
        c.resource_manager = Some("https://arm.example.test".into());
        let p = FakeProbe::new([]);
        let e = CloudEndpoints::resolve(&c, &p).unwrap();
        assert_eq!(e.resource_manager.as_str(), "https://arm.example.test/");
        assert_eq!(
            e.authority_host.as_str(),
            "https://login.microsoftonline.com/"
        );
        let p = FakeProbe::new([
            (ENV_RESOURCE_MANAGER, "http://127.0.0.1:8080"),
            (ENV_AUTHORITY_HOST, "http://localhost:9"),
        ]);
        let e = CloudEndpoints::resolve(&c, &p).unwrap();
        assert_eq!(e.resource_manager.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(e.authority_host.as_str(), "http://localhost:9/");
        assert_eq!(e.scope, "http://127.0.0.1:8080/.default");
    }

    #[test]
    fn custom_clouds_need_endpoints_and_have_no_portal() {
        let err = CloudEndpoints::resolve(&cloud("Custom"), &FakeProbe::new([]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("provider.aks.cloud.resourceManager:"),
            "{err}"
        );
        let c = Cloud {
            name: "Custom".into(),
            resource_manager: Some("https://arm.stack.local/".into()),
            authority_host: Some("https://login.stack.local/adfs".into()),
            extra_locations: Vec::new(),
        };
        let e = CloudEndpoints::resolve(&c, &FakeProbe::new([])).unwrap();
        assert_eq!(e.authority_host.as_str(), "https://login.stack.local/adfs/");
        assert_eq!(e.portal_link("/x"), None);
        let err = CloudEndpoints::resolve(&cloud("Mars"), &FakeProbe::new([]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("provider.aks.cloud.name:"), "{err}");
    }

    #[test]
    fn plain_http_only_on_loopback() {
        for ok in [
            "http://127.0.0.1:1/",
            "http://127.3.4.5",
            "http://localhost:80",
            "http://[::1]:5/",
            "https://a.b",
        ] {
            endpoint(ok, "x").unwrap();
        }
        for bad in [
            "http://10.0.0.1/",
            "http://example.com",
            "ftp://127.0.0.1/",
            "not a url",
            "https://a.b/?q=1",
        ] {
            let err = endpoint(bad, "AZURE_AUTHORITY_HOST")
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("AZURE_AUTHORITY_HOST: "), "{err}");
        }
        let p = FakeProbe::new([(ENV_AUTHORITY_HOST, "http://login.evil.test")]);
        let err = CloudEndpoints::resolve(&cloud("AzureCloud"), &p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("only loopback"), "{err}");
    }
}
