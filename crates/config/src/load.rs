//! Loading: JSON text -> normalized keys -> typed model (with paths on every error and
//! every ignored key) -> semantic validation.

use crate::error::{ConfigError, ConfigIssue, Problems};
use crate::keys::{is_mosn_key, normalize_keys};
use crate::model::MosnConfig;
use crate::validate::validate;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A config that passed every check, with the warnings it raised.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: MosnConfig,
    pub warnings: Vec<ConfigIssue>,
    /// The folder relative paths in the config are resolved against.
    pub base_dir: PathBuf,
}

/// Reads and checks a config file.
pub fn load_file(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut loaded = load_str(&text)?;
    loaded.base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    loaded.config.resolve_tls_paths(&loaded.base_dir);
    Ok(loaded)
}

/// Parses and checks config text.
pub fn load_str(text: &str) -> Result<LoadedConfig, ConfigError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::Json {
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    if !value.is_object() {
        return Err(ConfigError::Invalid(vec![ConfigIssue {
            path: String::new(),
            message: "the config must be a JSON object".into(),
        }]));
    }
    let mut problems = Problems::default();
    let Some(mut config) = typed_from_value::<MosnConfig>(&value, "", &mut problems) else {
        return Err(ConfigError::Invalid(problems.errors));
    };
    if problems.errors.is_empty() {
        validate(&mut config, &mut problems);
    }
    if !problems.errors.is_empty() {
        return Err(ConfigError::Invalid(problems.errors));
    }
    Ok(LoadedConfig {
        config,
        warnings: problems.warnings,
        base_dir: PathBuf::from("."),
    })
}

/// Deserializes `value` (found at `base` in the config) into `T`. Records a type error
/// with its full path, and a warning for every key `T` does not read.
pub(crate) fn typed_from_value<T: DeserializeOwned>(
    value: &Value,
    base: &str,
    problems: &mut Problems,
) -> Option<T> {
    let value = if value.is_null() {
        Value::Object(Default::default())
    } else {
        normalize_keys(value.clone())
    };
    let mut ignored = Vec::new();
    let mut on_ignored = |p: serde_ignored::Path<'_>| ignored.push(render_ignored_path(&p));
    let de = serde_ignored::Deserializer::new(value, &mut on_ignored);
    let result: Result<T, _> = serde_path_to_error::deserialize(de);
    for key in ignored {
        let path = join_path(base, &key);
        if is_mosn_key(&key) {
            problems.warn(
                path,
                "valid MOSN key, not implemented by mosn-rs yet: ignored",
            );
        } else {
            problems.warn(path, "unknown key: ignored");
        }
    }
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = strip_position(&e.inner().to_string());
            let at = e.path().to_string();
            let path = if at == "." {
                base.to_string()
            } else {
                join_path(base, &at)
            };
            problems.error(path, inner);
            None
        }
    }
}

/// serde_ignored prints sequence indices as `.0`; make them `[0]` like the rest.
fn render_ignored_path(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match p {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", render_ignored_path(parent)),
        P::Map { parent, key } => join_path(&render_ignored_path(parent), key),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            render_ignored_path(parent)
        }
    }
}

fn join_path(base: &str, rest: &str) -> String {
    match (base.is_empty(), rest.is_empty()) {
        (_, true) => base.to_string(),
        (true, false) => rest.to_string(),
        (false, false) if rest.starts_with('[') => format!("{base}{rest}"),
        (false, false) => format!("{base}.{rest}"),
    }
}

/// serde_json appends " at line L column C", which the path makes redundant.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}
