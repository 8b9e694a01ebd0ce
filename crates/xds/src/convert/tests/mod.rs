//! Tests of the conversions: Envoy protos built in Rust the way Istio's control
//! plane sends them, converted, and the result checked field by field and, assembled
//! into one MOSN config, run through `mosn_config::load_str` as a JSON config would be.

mod assembly;
mod clusters;
mod endpoints;
mod fixtures;
mod listeners;
mod routes;
mod secrets;

use super::ConvertError;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::google::protobuf as pbuf;
use mosn_config::{ClusterConfig, ListenerConfig, MosnConfig, RouterConfiguration, ServerConfig};
use prost::{Message, Name};

pub(crate) fn pack<M: Message + Name>(m: &M) -> pbuf::Any {
    pbuf::Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

/// A config given as `udpa.type.v1.TypedStruct` for `type_url`, as Istio sends its
/// Wasm-era filters.
pub(crate) fn typed_struct(type_url: &str) -> pbuf::Any {
    let ts = super::any::TypedStruct {
        type_url: type_url.into(),
        value: Some(pbuf::Struct::default()),
    };
    pbuf::Any {
        type_url: "type.googleapis.com/udpa.type.v1.TypedStruct".into(),
        value: ts.encode_to_vec(),
    }
}

pub(crate) fn secs(s: i64) -> Option<pbuf::Duration> {
    Some(pbuf::Duration {
        seconds: s,
        nanos: 0,
    })
}

pub(crate) fn millis(ms: i32) -> Option<pbuf::Duration> {
    Some(pbuf::Duration {
        seconds: i64::from(ms / 1000),
        nanos: (ms % 1000) * 1_000_000,
    })
}

pub(crate) fn u32v(v: u32) -> Option<pbuf::UInt32Value> {
    Some(pbuf::UInt32Value { value: v })
}

pub(crate) fn boolv(v: bool) -> Option<pbuf::BoolValue> {
    Some(pbuf::BoolValue { value: v })
}

pub(crate) fn addr(ip: &str, port: u32) -> Option<core::Address> {
    Some(core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: ip.into(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    })
}

pub(crate) fn struct_of(pairs: &[(&str, &str)]) -> pbuf::Struct {
    pbuf::Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    pbuf::Value {
                        kind: Some(pbuf::value::Kind::StringValue((*v).to_owned())),
                    },
                )
            })
            .collect(),
    }
}

/// `envoy.lb` metadata with these string pairs.
pub(crate) fn lb_metadata(pairs: &[(&str, &str)]) -> Option<core::Metadata> {
    Some(core::Metadata {
        filter_metadata: [("envoy.lb".to_owned(), struct_of(pairs))]
            .into_iter()
            .collect(),
        ..Default::default()
    })
}

/// The refusal's text, for assertions on what the NACK says.
pub(crate) fn refusal<T: std::fmt::Debug>(r: Result<T, ConvertError>) -> String {
    match r {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

pub(crate) fn assert_has(warnings: &[String], needle: &str) {
    assert!(
        warnings.iter().any(|w| w.contains(needle)),
        "no warning containing {needle:?} in {warnings:#?}"
    );
}

/// One MOSN config of converted pieces.
pub(crate) fn assemble(
    listeners: Vec<ListenerConfig>,
    routers: Vec<RouterConfiguration>,
    clusters: Vec<ClusterConfig>,
) -> MosnConfig {
    MosnConfig {
        servers: vec![ServerConfig {
            routers,
            listeners,
            ..Default::default()
        }],
        cluster_manager: mosn_config::ClusterManagerConfig { clusters },
        ..Default::default()
    }
}

/// The config as JSON, loaded and validated as a MOSN JSON file is: errors, or the
/// warnings.
pub(crate) fn load(config: &MosnConfig) -> Result<Vec<String>, Vec<String>> {
    let text = serde_json::to_string_pretty(config).expect("the model serializes");
    match mosn_config::load_str(&text) {
        Ok(loaded) => Ok(loaded.warnings.iter().map(ToString::to_string).collect()),
        Err(e) => Err(e.issues()),
    }
}
