//! The converted config must pass the checks a MOSN JSON config passes, so the
//! converter never hands the proxy something it rejects later: each converted
//! resource is run through mosn-config's validation (and a route configuration
//! through the router's own build) on its own, with the resources it refers to
//! (clusters, route configurations, SDS secrets) stood in for. A failure becomes
//! the resource's NACK; the checks' warnings join the conversion's.

use super::error::{ConvertError, Ctx};
use super::listener::ListenerOut;
use super::tls::{SDS_CERTIFICATE, SDS_VALIDATION};
use mosn_config::error::Problems;
use mosn_config::{
    ClusterConfig, ClusterManagerConfig, ConfigIssue, MosnConfig, RouterConfiguration, ServerConfig,
};
use serde_json::Value;
use std::collections::BTreeSet;

/// Stands in for an SDS certificate until the secret arrives (the checks look at the
/// shape only; the TLS crate reads the real PEM when the config is applied).
const PLACEHOLDER_PEM: &str =
    "-----BEGIN CERTIFICATE-----\n(from SDS)\n-----END CERTIFICATE-----\n";

pub(crate) fn cluster(c: &ClusterConfig, ctx: &mut Ctx) -> Result<(), ConvertError> {
    let mut stand_in = c.clone();
    fill_placeholders(stand_in.tls_context.iter_mut());
    match mosn_config::check_cluster(&stand_in) {
        Ok(warnings) => {
            note(ctx, warnings, "cluster.");
            Ok(())
        }
        Err(errors) => Err(rejected(ctx, errors, "cluster.")),
    }
}

pub(crate) fn router(rc: &RouterConfiguration, ctx: &mut Ctx) -> Result<(), ConvertError> {
    let config = MosnConfig {
        servers: vec![ServerConfig {
            routers: vec![rc.clone()],
            ..Default::default()
        }],
        cluster_manager: stand_in_clusters(route_clusters(rc)),
        ..Default::default()
    };
    run(config, ctx, "servers[0].routers[0].")?;
    // The router's build is what the proxy runs: it must accept the table too.
    mosn_router::RouteTable::build(rc).map_err(|e| ConvertError::Rejected {
        resource: ctx.resource().to_owned(),
        issues: vec![ConfigIssue {
            path: String::new(),
            message: e.to_string(),
        }],
    })?;
    Ok(())
}

pub(crate) fn listener(out: &ListenerOut, ctx: &mut Ctx) -> Result<(), ConvertError> {
    let mut l = out.listener.clone();
    fill_placeholders(
        l.filter_chains
            .iter_mut()
            .flat_map(|c| c.tls_context.iter_mut().chain(c.tls_context_set.iter_mut())),
    );
    let mut clusters = BTreeSet::new();
    let mut routers: Vec<RouterConfiguration> = out.inline_routes.clone();
    for rc in &out.inline_routes {
        clusters.extend(route_clusters(rc));
    }
    for name in &out.rds {
        routers.push(RouterConfiguration {
            router_config_name: name.clone(),
            ..Default::default()
        });
    }
    for chain in &l.filter_chains {
        for f in chain.filters.iter().filter(|f| f.kind == "tcp_proxy") {
            if let Some(Value::String(c)) = f.config.get("cluster") {
                clusters.insert(c.clone());
            }
        }
    }
    let config = MosnConfig {
        servers: vec![ServerConfig {
            routers,
            listeners: vec![l],
            ..Default::default()
        }],
        cluster_manager: stand_in_clusters(clusters),
        ..Default::default()
    };
    run(config, ctx, "servers[0].listeners[0].")?;
    for rc in &out.inline_routes {
        mosn_router::RouteTable::build(rc).map_err(|e| ConvertError::Rejected {
            resource: ctx.resource().to_owned(),
            issues: vec![ConfigIssue {
                path: rc.router_config_name.clone(),
                message: e.to_string(),
            }],
        })?;
    }
    Ok(())
}

/// Runs the whole-config validation; issues under `prefix` are the resource's own.
fn run(mut config: MosnConfig, ctx: &mut Ctx, prefix: &str) -> Result<(), ConvertError> {
    let mut problems = Problems::default();
    mosn_config::validate::validate(&mut config, &mut problems);
    if !problems.errors.is_empty() {
        return Err(rejected(ctx, problems.errors, prefix));
    }
    note(ctx, problems.warnings, prefix);
    Ok(())
}

fn note(ctx: &mut Ctx, issues: Vec<ConfigIssue>, prefix: &str) {
    for issue in issues {
        // Warnings about the stand-ins are not the resource's.
        if !issue.path.starts_with(prefix.trim_end_matches('.')) {
            continue;
        }
        let path = issue
            .path
            .strip_prefix(prefix)
            .unwrap_or(&issue.path)
            .to_owned();
        ctx.warn(
            "",
            format!("mosn-rs config check: {path}: {}", issue.message),
        );
    }
}

fn rejected(ctx: &Ctx, issues: Vec<ConfigIssue>, prefix: &str) -> ConvertError {
    ConvertError::Rejected {
        resource: ctx.resource().to_owned(),
        issues: issues
            .into_iter()
            .map(|i| ConfigIssue {
                path: i.path.strip_prefix(prefix).unwrap_or(&i.path).to_owned(),
                message: i.message,
            })
            .collect(),
    }
}

/// SDS references become placeholder material, as the filled context will have.
fn fill_placeholders<'a>(contexts: impl Iterator<Item = &'a mut mosn_config::tls::TlsConfig>) {
    for t in contexts {
        if t.sds_source.get(SDS_CERTIFICATE).is_some() && t.cert_chain.is_empty() {
            t.cert_chain = PLACEHOLDER_PEM.to_owned();
            t.private_key = PLACEHOLDER_PEM.to_owned();
        }
        if t.sds_source.get(SDS_VALIDATION).is_some() && t.ca_cert.is_empty() {
            t.ca_cert = PLACEHOLDER_PEM.to_owned();
        }
        t.sds_source = Value::Null;
    }
}

/// Every cluster a route table names.
pub(crate) fn route_clusters(rc: &RouterConfiguration) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for vh in &rc.virtual_hosts {
        for r in &vh.routers {
            names.extend(r.request_mirror_policies.iter().map(|m| m.cluster.clone()));
            if let Some(a) = &r.route {
                if !a.cluster_name.is_empty() {
                    names.insert(a.cluster_name.clone());
                }
                names.extend(a.weighted_clusters.iter().map(|w| w.cluster.name.clone()));
                names.extend(a.request_mirror_policies.iter().map(|m| m.cluster.clone()));
            }
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

fn stand_in_clusters(names: BTreeSet<String>) -> ClusterManagerConfig {
    ClusterManagerConfig {
        clusters: names
            .into_iter()
            .map(|name| ClusterConfig {
                name,
                kind: "EDS".into(),
                ..Default::default()
            })
            .collect(),
    }
}
