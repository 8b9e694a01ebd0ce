//! The xDS side of the config: every accepted resource, converted, and the config
//! they compose. An update converts its type's resources into a copy, composes the
//! whole xDS config from the copy and hands it to the [`Applier`]; only when that
//! succeeds does the copy become the state. So a NACKed update changes nothing.
//!
//! Warming, as Envoy: a listener joins the composed config once every route
//! configuration (RDS) and secret (SDS) it names has arrived; a cluster once its
//! secrets have. An EDS cluster without its endpoints yet has no hosts.

use crate::ads::{self, Handler, ResourceSet};
use crate::convert::{self, ClusterOut, ListenerOut, SecretOut};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use mosn_config::{ClusterConfig, HostConfig, ListenerConfig, RouterConfiguration};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// The part of the running config that came over xDS.
#[derive(Debug, Clone, Default)]
pub struct XdsConfig {
    pub clusters: Vec<ClusterConfig>,
    pub listeners: Vec<ListenerConfig>,
    pub routers: Vec<RouterConfiguration>,
}

/// Puts a composed xDS config into service (the binary's side: clusters, snapshot,
/// listener sockets). Err refuses it whole, with the reason for the NACK.
pub trait Applier: Send {
    fn apply(&mut self, config: &XdsConfig) -> Result<(), String>;
}

/// Converted resources by name.
#[derive(Clone, Default)]
struct Resources {
    clusters: BTreeMap<String, ClusterOut>,
    endpoints: BTreeMap<String, Vec<HostConfig>>,
    listeners: BTreeMap<String, ListenerOut>,
    routes: BTreeMap<String, RouterConfiguration>,
    secrets: HashMap<String, SecretOut>,
}

pub struct XdsState<A> {
    applier: A,
    current: Resources,
    /// Warnings already logged (a resource resent unchanged does not log again).
    warned: HashSet<String>,
}

impl<A: Applier> XdsState<A> {
    pub fn new(applier: A) -> Self {
        XdsState {
            applier,
            current: Resources::default(),
            warned: HashSet::new(),
        }
    }

    fn warn(&mut self, warnings: Vec<String>) {
        for w in warnings {
            if self.warned.insert(w.clone()) {
                tracing::warn!("xDS: {w}");
            }
        }
    }
}

/// Decodes and converts every resource of a set; the first failure refuses it.
fn convert_all<M: Message + Default, T>(
    set: &ResourceSet,
    warnings: &mut Vec<String>,
    conv: impl Fn(&M) -> Result<convert::Converted<T>, convert::ConvertError>,
) -> Result<BTreeMap<String, T>, String> {
    let mut out = BTreeMap::new();
    for (name, r) in set {
        let message =
            M::decode(r.body.value.as_slice()).map_err(|e| format!("{name}: undecodable: {e}"))?;
        let converted = conv(&message).map_err(|e| e.to_string())?;
        warnings.extend(converted.warnings);
        out.insert(name.clone(), converted.value);
    }
    Ok(out)
}

impl<A: Applier> Handler for XdsState<A> {
    fn update(&mut self, type_url: &str, set: &ResourceSet) -> Result<(), String> {
        let mut next = self.current.clone();
        let mut warnings = Vec::new();
        match type_url {
            ads::CLUSTER => {
                next.clusters = convert_all::<Cluster, _>(set, &mut warnings, convert::cluster)?
            }
            ads::ENDPOINT => {
                next.endpoints = convert_all::<ClusterLoadAssignment, _>(
                    set,
                    &mut warnings,
                    convert::load_assignment,
                )?
            }
            ads::LISTENER => {
                next.listeners = convert_all::<Listener, _>(set, &mut warnings, convert::listener)?
            }
            ads::ROUTE => {
                next.routes = convert_all::<RouteConfiguration, _>(
                    set,
                    &mut warnings,
                    convert::route_configuration,
                )?
            }
            ads::SECRET => {
                next.secrets = convert_all::<Secret, _>(set, &mut warnings, convert::secret)?
                    .into_iter()
                    .collect()
            }
            other => return Err(format!("unknown resource type {other}")),
        }
        let composed = compose(&next)?;
        self.applier.apply(&composed)?;
        self.current = next;
        self.warn(warnings);
        Ok(())
    }

    fn wanted(&self, type_url: &str) -> BTreeSet<String> {
        let r = &self.current;
        match type_url {
            ads::ENDPOINT => r
                .clusters
                .values()
                .filter_map(|c| c.eds_service.clone())
                .collect(),
            ads::ROUTE => r
                .listeners
                .values()
                .flat_map(|l| l.rds.iter().cloned())
                .collect(),
            ads::SECRET => r
                .listeners
                .values()
                .flat_map(|l| l.secrets.iter().cloned())
                .chain(r.clusters.values().flat_map(|c| c.secrets.iter().cloned()))
                .collect(),
            _ => BTreeSet::new(),
        }
    }
}

/// The config the resources compose, warming applied.
fn compose(r: &Resources) -> Result<XdsConfig, String> {
    let mut out = XdsConfig::default();
    for (name, c) in &r.clusters {
        if !c.secrets.iter().all(|s| r.secrets.contains_key(s)) {
            tracing::debug!(cluster = %name, "xDS: cluster warming (waits for its secrets)");
            continue;
        }
        let mut cluster = c.cluster.clone();
        if let Some(service) = &c.eds_service {
            cluster.hosts = r.endpoints.get(service).cloned().unwrap_or_default();
        }
        if !c.secrets.is_empty() {
            convert::apply_secrets(&mut cluster, &r.secrets).map_err(|e| e.to_string())?;
        }
        out.clusters.push(cluster);
    }
    for (name, l) in &r.listeners {
        let routes_ready = l.rds.iter().all(|n| r.routes.contains_key(n));
        let secrets_ready = l.secrets.iter().all(|s| r.secrets.contains_key(s));
        if !routes_ready || !secrets_ready {
            tracing::debug!(listener = %name, "xDS: listener warming (waits for its routes or secrets)");
            continue;
        }
        let mut listener = l.listener.clone();
        if !l.secrets.is_empty() {
            convert::apply_secrets(&mut listener, &r.secrets).map_err(|e| e.to_string())?;
        }
        out.listeners.push(listener);
        out.routers.extend(l.inline_routes.iter().cloned());
    }
    // Every route configuration, also those no warm listener uses yet.
    out.routers.extend(r.routes.values().cloned());
    Ok(out)
}
