//! Strict scalar types: a value the YAML parser reads as text (quoted, `"3"` or `"true"`) is
//! refused where the field takes a number or a boolean, instead of being converted silently.
//!
//! The typed pass over the text converts scalars whatever their style, so the check reads the
//! file a second way: as plain data (where a quoted scalar stays a string) deserialized into the
//! same types, which refuses a string where a number or boolean belongs. Only that kind of
//! mismatch is reported here; every other problem was reported by the typed pass already.

use super::{Environment, cut};

/// The first field, as a path like `app.replicas`, whose value is text in `doc` but takes a
/// number or a boolean, with the message for it.
pub(super) fn quoted_scalar(doc: &serde_json::Value) -> Option<(String, String)> {
    let e = serde_path_to_error::deserialize::<_, Environment>(doc).err()?;
    let message = e.inner().to_string();
    let rest = message.strip_prefix("invalid type: string ")?;
    let (given, expected) = rest.rsplit_once(", expected ")?;
    let kind = if expected.contains("bool") {
        "true or false"
    } else if [
        "u8", "u16", "u32", "u64", "i32", "i64", "f64", "integer", "number",
    ]
    .iter()
    .any(|t| expected.contains(t))
    {
        "a number"
    } else {
        return None;
    };
    let given = cut(given, 40);
    Some((
        e.path().to_string(),
        format!(
            "{given} is quoted, so it is text, but this field takes {kind}; write it without quotes"
        ),
    ))
}

/// A value the file gives that ephemera would otherwise change without a word: an AKS system
/// pool's `count` outside its `autoscale` range (it would be clamped into it). A count the file
/// leaves out is the default, and is moved into the range as before.
pub(super) fn rewritten(env: &Environment, doc: &serde_json::Value) -> Option<(String, String)> {
    let super::ProviderConfig::Aks(aks) = &env.provider else {
        return None;
    };
    let pool = &aks.system_pool;
    let a = pool.autoscale.as_ref()?;
    doc.pointer("/provider/aks/systemPool/count")?;
    if (a.min..=a.max).contains(&pool.count) {
        return None;
    }
    Some((
        "provider.aks.systemPool.count".into(),
        format!(
            "{} is outside autoscale {}..{}: it is the pool's starting size, so give one in the range or leave it out",
            pool.count, a.min, a.max
        ),
    ))
}

/// An endpoint beside a named cloud: `provider.aks.cloud.name: AzureCloud` with a
/// `resourceManager` or `authorityHost` of its own would send requests elsewhere while links and
/// the portal still point at the named cloud. Custom endpoints belong to `name: Custom` (the
/// `AZURE_*` variables still override either, for tests and sovereign setups).
pub(super) fn endpoint_beside_named_cloud(env: &Environment) -> Option<(String, String)> {
    let super::ProviderConfig::Aks(aks) = &env.provider else {
        return None;
    };
    let cloud = &aks.cloud;
    if cloud.name.eq_ignore_ascii_case("Custom") {
        return None;
    }
    [
        ("resourceManager", &cloud.resource_manager),
        ("authorityHost", &cloud.authority_host),
    ]
    .into_iter()
    .find(|(_, v)| v.is_some())
    .map(|(field, _)| {
        (
            format!("provider.aks.cloud.{field}"),
            format!(
                "{} has its own endpoints; set provider.aks.cloud.name: Custom to use this one",
                cut(&cloud.name, 40)
            ),
        )
    })
}

/// Checks that a host pattern uses plain substitution only: every `{{` opens a variable name
/// (letters and digits) closed by `}}`. Block helpers, partials, comments, triple braces and
/// helper calls (`{{#if}}`, `{{> x}}`, `{{!c}}`, `{{{env}}}`, `{{lookup ..}}`) would let the
/// pattern compute a host nobody can read off the file.
///
/// # Errors
/// A message quoting the first expression that is not a plain variable.
pub fn plain_variables(pattern: &str) -> Result<(), String> {
    let mut rest = pattern;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let name_len = after
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        if name_len == 0 || !after[name_len..].starts_with("}}") {
            let shown: String = rest[i..].chars().take(30).collect();
            return Err(format!(
                "{shown:?} is not a plain variable: the host pattern takes only {{{{name}}}} substitutions such as {{{{env}}}}"
            ));
        }
        rest = &after[name_len + 2..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml_replacing: (&str, &str)) -> Option<(String, String)> {
        let text = "apiVersion: ephemera.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: t\nprovider:\n  local:\n    nodes: 1\naddons:\n  argoCd:\n    enabled: false\napp:\n  name: cats\n  replicas: 1\n"
            .replace(yaml_replacing.0, yaml_replacing.1);
        let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        quoted_scalar(&doc)
    }

    #[test]
    fn quoted_numbers_and_booleans_are_named() {
        let (path, message) = check(("replicas: 1", "replicas: \"3\"")).unwrap();
        assert_eq!(path, "app.replicas");
        assert!(
            message.starts_with("\"3\" is quoted, so it is text, but this field takes a number"),
            "{message}"
        );
        let (path, message) = check(("enabled: false", "enabled: 'true'")).unwrap();
        assert_eq!(path, "addons.argoCd.enabled");
        assert!(message.contains("takes true or false"), "{message}");
    }

    #[test]
    fn a_count_outside_the_autoscale_range_is_refused_and_a_missing_one_is_not() {
        let aks = |pool: &str| {
            let text = format!(
                "apiVersion: ephemera.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: t\nprovider:\n  aks:\n    subscription: 00000000-0000-0000-0000-000000000000\n    location: westeurope\n    resourceGroup:\n      strategy: perEnvironment\n    systemPool:\n{pool}app:\n  name: cats\n"
            );
            let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
            let env: Environment = serde_saphyr::from_str(&text).unwrap();
            rewritten(&env, &doc)
        };
        let (path, message) =
            aks("      count: 0\n      autoscale:\n        min: 1\n        max: 3\n").unwrap();
        assert_eq!(path, "provider.aks.systemPool.count");
        assert!(
            message.starts_with("0 is outside autoscale 1..3"),
            "{message}"
        );
        assert_eq!(
            aks("      count: 2\n      autoscale:\n        min: 1\n        max: 3\n"),
            None
        );
        assert_eq!(
            aks("      autoscale:\n        min: 2\n        max: 3\n"),
            None
        );
    }

    #[test]
    fn host_patterns_take_plain_variables_only() {
        assert_eq!(plain_variables("{{env}}.{{baseDomain}}"), Ok(()));
        assert_eq!(plain_variables("pr-{{pr}}.acme.dev"), Ok(()));
        for bad in [
            "{{#if pr}}x{{/if}}.acme.dev",
            "{{> x}}.acme.dev",
            "{{{env}}}.acme.dev",
            "{{lookup this \"env\"}}.acme.dev",
            "{{env}}{{!c}}.acme.dev",
            "{{env}.acme.dev",
        ] {
            assert!(plain_variables(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_values_and_quoted_text_pass() {
        assert_eq!(check(("", "")), None);
        assert_eq!(check(("name: cats", "name: \"cats\"")), None);
    }
}
