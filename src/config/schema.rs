//! The JSON Schema of environment files, for editors (`schema/environment.schema.json`).
//!
//! Generated from the config types with schemars; `tests` keep the committed file in sync
//! (`EPHEMERA_UPDATE_SCHEMA=1 cargo test` rewrites it).

/// The schema as pretty-printed JSON with a trailing newline.
pub fn environment_schema() -> String {
    let schema = schemars::schema_for!(super::Environment);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn committed_schema_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/environment.schema.json");
        let want = super::environment_schema();
        if std::env::var_os("EPHEMERA_UPDATE_SCHEMA").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "schema/environment.schema.json is stale; run EPHEMERA_UPDATE_SCHEMA=1 cargo test --lib config::schema"
        );
    }
}
