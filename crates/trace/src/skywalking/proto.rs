//! The few SkyWalking v3 messages mosn-rs sends, written out by hand so no protoc is
//! needed. Field numbers from apache/skywalking-data-collect-protocol:
//! `language-agent/Tracing.proto` (SegmentObject, SegmentReference, SpanObject, Log,
//! SpanType, RefType, SpanLayer), `common/Common.proto` (KeyStringValuePair),
//! `common/Command.proto` (Commands, Command) and `management/Management.proto`
//! (InstanceProperties, InstancePingPkg).

/// `rpc collect (stream SegmentObject) returns (Commands)`.
pub const COLLECT_PATH: &str = "/skywalking.v3.TraceSegmentReportService/collect";
/// `rpc reportInstanceProperties (InstanceProperties) returns (Commands)`.
pub const REPORT_PROPERTIES_PATH: &str =
    "/skywalking.v3.ManagementService/reportInstanceProperties";
/// `rpc keepAlive (InstancePingPkg) returns (Commands)`.
pub const KEEP_ALIVE_PATH: &str = "/skywalking.v3.ManagementService/keepAlive";

#[derive(Clone, PartialEq, prost::Message)]
pub struct SegmentObject {
    #[prost(string, tag = "1")]
    pub trace_id: String,
    #[prost(string, tag = "2")]
    pub trace_segment_id: String,
    #[prost(message, repeated, tag = "3")]
    pub spans: Vec<SpanObject>,
    #[prost(string, tag = "4")]
    pub service: String,
    #[prost(string, tag = "5")]
    pub service_instance: String,
    #[prost(bool, tag = "6")]
    pub is_size_limited: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SegmentReference {
    #[prost(enumeration = "RefType", tag = "1")]
    pub ref_type: i32,
    #[prost(string, tag = "2")]
    pub trace_id: String,
    #[prost(string, tag = "3")]
    pub parent_trace_segment_id: String,
    #[prost(int32, tag = "4")]
    pub parent_span_id: i32,
    #[prost(string, tag = "5")]
    pub parent_service: String,
    #[prost(string, tag = "6")]
    pub parent_service_instance: String,
    #[prost(string, tag = "7")]
    pub parent_endpoint: String,
    #[prost(string, tag = "8")]
    pub network_address_used_at_peer: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SpanObject {
    #[prost(int32, tag = "1")]
    pub span_id: i32,
    #[prost(int32, tag = "2")]
    pub parent_span_id: i32,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "3")]
    pub start_time: i64,
    #[prost(int64, tag = "4")]
    pub end_time: i64,
    #[prost(message, repeated, tag = "5")]
    pub refs: Vec<SegmentReference>,
    #[prost(string, tag = "6")]
    pub operation_name: String,
    #[prost(string, tag = "7")]
    pub peer: String,
    #[prost(enumeration = "SpanType", tag = "8")]
    pub span_type: i32,
    #[prost(enumeration = "SpanLayer", tag = "9")]
    pub span_layer: i32,
    #[prost(int32, tag = "10")]
    pub component_id: i32,
    #[prost(bool, tag = "11")]
    pub is_error: bool,
    #[prost(message, repeated, tag = "12")]
    pub tags: Vec<KeyStringValuePair>,
    #[prost(message, repeated, tag = "13")]
    pub logs: Vec<Log>,
    #[prost(bool, tag = "14")]
    pub skip_analysis: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Log {
    #[prost(int64, tag = "1")]
    pub time: i64,
    #[prost(message, repeated, tag = "2")]
    pub data: Vec<KeyStringValuePair>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyStringValuePair {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Command {
    #[prost(string, tag = "1")]
    pub command: String,
    #[prost(message, repeated, tag = "2")]
    pub args: Vec<KeyStringValuePair>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Commands {
    #[prost(message, repeated, tag = "1")]
    pub commands: Vec<Command>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InstanceProperties {
    #[prost(string, tag = "1")]
    pub service: String,
    #[prost(string, tag = "2")]
    pub service_instance: String,
    #[prost(message, repeated, tag = "3")]
    pub properties: Vec<KeyStringValuePair>,
    #[prost(string, tag = "4")]
    pub layer: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InstancePingPkg {
    #[prost(string, tag = "1")]
    pub service: String,
    #[prost(string, tag = "2")]
    pub service_instance: String,
    #[prost(string, tag = "3")]
    pub layer: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SpanType {
    Entry = 0,
    Exit = 1,
    Local = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum RefType {
    CrossProcess = 0,
    CrossThread = 1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SpanLayer {
    Unknown = 0,
    Database = 1,
    RpcFramework = 2,
    Http = 3,
    Mq = 4,
    Cache = 5,
    Faas = 6,
}

pub fn kv(key: &str, value: impl Into<String>) -> KeyStringValuePair {
    KeyStringValuePair {
        key: key.to_string(),
        value: value.into(),
    }
}
