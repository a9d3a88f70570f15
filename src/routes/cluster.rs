//! What green's cluster runs, as far as serving a route object goes: its Kubernetes version
//! (`--green-kubernetes-version`), the Ingress classes its controllers watch
//! (`--green-ingress-class`) and the Gateways that take outside traffic (`--green-gateway`). An
//! object these rule out is kept aside with the reason, so a host it would have served is
//! `add-green-route` with that reason rather than `switch-dns`.

use std::fmt;
use std::str::FromStr;

use super::removed::{removal, KubeVersion};
use super::Parsed;

/// A Gateway (Gateway API) or an Istio gateway, as `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GatewayRef {
    pub namespace: String,
    pub name: String,
}

impl FromStr for GatewayRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(GatewayRef { namespace: ns.to_owned(), name: name.to_owned() })
            }
            _ => Err(format!("`{s}` is not NAMESPACE/NAME (such as istio-system/ingressgateway)")),
        }
    }
}

impl fmt::Display for GatewayRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How an object asks to be served: the facts the cluster's rules are checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Attachment {
    /// An Ingress's `spec.ingressClassName`, or its `kubernetes.io/ingress.class` annotation.
    IngressClass(Option<String>),
    /// An HTTPRoute's Gateway `parentRefs`, or a VirtualService's `gateways` (mesh left out),
    /// namespaces resolved.
    Gateways(Vec<GatewayRef>),
    #[default]
    None,
}

/// Green's cluster (what the flags say it runs). The default rules nothing out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GreenCluster {
    pub kubernetes_version: Option<KubeVersion>,
    pub ingress_classes: Vec<String>,
    pub gateways: Vec<GatewayRef>,
}

impl GreenCluster {
    /// Why green would not serve `p` (`None`: nothing rules it out). `default_class` is the
    /// IngressClass marked default among the loaded objects, if any.
    pub(crate) fn why_not_served(&self, p: &Parsed, default_class: Option<&str>) -> Option<String> {
        let object = format!("{} {}/{}", p.route.kind, p.route.namespace, p.route.name);
        if let Some(version) = self.kubernetes_version {
            if let Some(r) = removal(p.route.kind.as_str(), &p.api_version).filter(|r| r.applies_to(version)) {
                return Some(format!(
                    "{object} uses {}, removed in Kubernetes {}: it will not apply on green ({})",
                    r.api_version,
                    r.removed_in,
                    r.replace_with.map_or("no replacement".to_owned(), |w| format!("use {w}"))
                ));
            }
        }
        match &p.attachment {
            Attachment::IngressClass(class) if !self.ingress_classes.is_empty() => {
                let watched = self.ingress_classes.join(", ");
                match (class.as_deref(), default_class) {
                    (Some(c), _) if !self.ingress_classes.iter().any(|w| w == c) => Some(format!(
                        "{object} has ingress class `{c}`; green's controllers watch {watched} (--green-ingress-class): none serves it"
                    )),
                    (None, Some(d)) if !self.ingress_classes.iter().any(|w| w == d) => Some(format!(
                        "{object} has no ingress class and green's default IngressClass is `{d}`; green's controllers watch {watched} (--green-ingress-class)"
                    )),
                    _ => None,
                }
            }
            Attachment::Gateways(parents) if !self.gateways.is_empty() => {
                if parents.iter().any(|g| self.gateways.contains(g)) {
                    return None;
                }
                let wanted: Vec<String> = self.gateways.iter().map(ToString::to_string).collect();
                let bound = if parents.is_empty() {
                    "no gateway".to_owned()
                } else {
                    parents.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                };
                Some(format!(
                    "{object} is bound to {bound}; green's outside traffic enters at {} (--green-gateway)",
                    wanted.join(", ")
                ))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{RouteKind, RouteRef};

    fn parsed(kind: RouteKind, api_version: &str, attachment: Attachment) -> Parsed {
        Parsed {
            route: RouteRef { namespace: "shop".into(), name: "pay".into(), kind },
            rules: Vec::new(),
            api_version: api_version.into(),
            attachment,
        }
    }

    #[test]
    fn removed_api_versions_do_not_serve_from_their_release_on() {
        let old = parsed(RouteKind::Ingress, "networking.k8s.io/v1beta1", Attachment::IngressClass(None));
        let at = |v: &str| GreenCluster { kubernetes_version: Some(v.parse().unwrap()), ..GreenCluster::default() };
        assert_eq!(at("1.21").why_not_served(&old, None), None);
        assert_eq!(
            at("1.25").why_not_served(&old, None).unwrap(),
            "Ingress shop/pay uses networking.k8s.io/v1beta1, removed in Kubernetes 1.22: it will not apply on green (use networking.k8s.io/v1)"
        );
        assert_eq!(GreenCluster::default().why_not_served(&old, None), None);
    }

    #[test]
    fn ingress_classes_and_the_default_class() {
        let green = GreenCluster { ingress_classes: vec!["alb".into()], ..GreenCluster::default() };
        let with = |c: Option<&str>| {
            parsed(RouteKind::Ingress, "networking.k8s.io/v1", Attachment::IngressClass(c.map(str::to_owned)))
        };
        assert_eq!(green.why_not_served(&with(Some("alb")), None), None);
        assert!(green.why_not_served(&with(Some("nginx")), None).unwrap().contains("has ingress class `nginx`"));
        assert_eq!(green.why_not_served(&with(None), Some("alb")), None);
        assert_eq!(green.why_not_served(&with(None), None), None, "no default class known: cannot tell");
        assert!(green.why_not_served(&with(None), Some("nginx")).unwrap().contains("default IngressClass is `nginx`"));
    }

    #[test]
    fn gateways_must_include_one_of_greens() {
        let green =
            GreenCluster { gateways: vec!["istio-system/ingressgateway".parse().unwrap()], ..Default::default() };
        let bound = |g: &[&str]| {
            parsed(
                RouteKind::VirtualService,
                "networking.istio.io/v1",
                Attachment::Gateways(g.iter().map(|g| g.parse().unwrap()).collect()),
            )
        };
        assert_eq!(green.why_not_served(&bound(&["istio-system/ingressgateway", "shop/internal"]), None), None);
        assert!(green.why_not_served(&bound(&["shop/internal"]), None).unwrap().contains("is bound to shop/internal"));
        assert!(green.why_not_served(&bound(&[]), None).unwrap().contains("is bound to no gateway;"));
        assert!("nons".parse::<GatewayRef>().is_err());
    }
}
