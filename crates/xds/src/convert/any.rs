//! Typed configs: `google.protobuf.Any` decoded by its type URL, and the extensions
//! Istio installs that mosn-rs does not run (telemetry and metadata exchange), which
//! are skipped with a warning rather than refused.

use super::error::{ConvertError, Ctx};
use envoy_types::pb::google::protobuf::{Any, Struct};
use prost::{Message, Name};

/// The message name of a type URL (`type.googleapis.com/a.b.C` -> `a.b.C`).
pub(crate) fn type_name(type_url: &str) -> &str {
    type_url.rsplit('/').next().unwrap_or(type_url)
}

/// Whether `any` holds an `M`.
pub(crate) fn is<M: Name>(any: &Any) -> bool {
    type_name(&any.type_url) == M::full_name()
}

/// Decodes `any` as an `M`; refuses another type.
pub(crate) fn decode<M: Message + Name + Default>(
    any: &Any,
    ctx: &Ctx,
    path: &str,
) -> Result<M, ConvertError> {
    if !is::<M>(any) {
        return Err(ctx.refuse(
            path,
            format!("expected {}, got {:?}", M::full_name(), any.type_url),
        ));
    }
    M::decode(any.value.as_slice()).map_err(|e| ctx.decode_error(path, &any.type_url, e))
}

/// `udpa.type.v1.TypedStruct` and `xds.type.v3.TypedStruct` (same layout): a config
/// given as JSON under the type URL it stands for.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct TypedStruct {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Struct>,
}

const TYPED_STRUCTS: &[&str] = &["udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"];

/// The type an extension config stands for: the Any's, or the one a TypedStruct
/// wraps. A TypedStruct's JSON is never decoded into the typed message (that needs
/// the proto JSON mapping), so a wrapped config mosn-rs would have to read is refused
/// by the callers.
pub(crate) fn effective_type(any: &Any) -> String {
    let outer = type_name(&any.type_url);
    if TYPED_STRUCTS.contains(&outer) {
        if let Ok(ts) = TypedStruct::decode(any.value.as_slice()) {
            return type_name(&ts.type_url).to_owned();
        }
    }
    outer.to_owned()
}

/// How a refusal names a config's type: a TypedStruct is said to be one, since the
/// type it wraps may well be supported when given as itself.
pub(crate) fn describe(any: &Any) -> String {
    let ty = effective_type(any);
    if TYPED_STRUCTS.contains(&type_name(&any.type_url)) {
        format!("{ty} given as a TypedStruct, which is not decoded")
    } else {
        ty
    }
}

/// Filter names Istio installs for telemetry, metadata exchange and peer
/// authentication bookkeeping; mosn-rs does not run them.
const SKIPPED_NAMES: &[&str] = &[
    "istio.stats",
    "istio.metadata_exchange",
    "istio.alpn",
    "istio_authn",
    "istio.authn",
    "envoy.filters.http.grpc_stats",
    "envoy.filters.http.peer_metadata",
    "envoy.filters.network.metadata_exchange",
    "envoy.filters.network.upstream.metadata_exchange",
];

/// Their config types (the names vary between Istio versions, the types less so).
const SKIPPED_TYPES: &[&str] = &[
    "stats.PluginConfig",
    "io.istio.http.peer_metadata.Config",
    "io.istio.network.metadata_exchange.Config",
    "envoy.tcp.metadataexchange.config.MetadataExchange",
    "envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
    "istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig",
    "istio.envoy.config.filter.http.authn.v2alpha1.FilterConfig",
];

const WASM_TYPES: &[&str] = &[
    "envoy.extensions.filters.http.wasm.v3.Wasm",
    "envoy.extensions.filters.network.wasm.v3.Wasm",
];

/// Whether a filter is one of Istio's that mosn-rs skips (with one warning each):
/// by name, by config type, or a Wasm module whose name says it computes stats.
pub(crate) fn istio_skipped(name: &str, config: Option<&Any>) -> bool {
    if SKIPPED_NAMES.contains(&name) {
        return true;
    }
    let Some(any) = config else {
        return false;
    };
    let ty = effective_type(any);
    SKIPPED_TYPES.contains(&ty.as_str())
        || (WASM_TYPES.contains(&ty.as_str()) && name.contains("stats"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_struct_reveals_the_wrapped_type() {
        let ts = TypedStruct {
            type_url: "type.googleapis.com/stats.PluginConfig".into(),
            value: None,
        };
        let any = Any {
            type_url: "type.googleapis.com/udpa.type.v1.TypedStruct".into(),
            value: ts.encode_to_vec(),
        };
        assert_eq!(effective_type(&any), "stats.PluginConfig");
        assert!(istio_skipped("whatever", Some(&any)));
        assert!(!istio_skipped("envoy.filters.http.rbac", None));
    }
}
