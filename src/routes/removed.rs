//! API versions Kubernetes stopped serving, and since which release: the one table
//! `--green-kubernetes-version` and `routes check` read. Source: the upstream deprecated API
//! migration guide, <https://kubernetes.io/docs/reference/using-api/deprecation-guide/>
//! (v1.16 to v1.32; nothing was removed in 1.17–1.21, 1.23, 1.24, 1.28, 1.30, 1.31 or since 1.33).
//! An object with such an apiVersion is refused by the API server of that release or later, so
//! ArgoCD cannot sync it and the route never exists on green.

use std::fmt;
use std::str::FromStr;

/// A Kubernetes minor release, `1.25`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubeVersion {
    pub major: u16,
    pub minor: u16,
}

impl FromStr for KubeVersion {
    type Err = String;
    /// `1.25`, `v1.25` or `1.25.3` (the patch release does not matter).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a Kubernetes version (expected X.Y, such as 1.29)");
        let t = s.trim().trim_start_matches('v');
        let mut parts = t.split('.');
        let major = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let minor = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        if parts.next().is_some_and(|p| p.parse::<u32>().is_err()) || parts.next().is_some() {
            return Err(bad());
        }
        Ok(KubeVersion { major, minor })
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// One removed (kind, apiVersion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    pub kind: &'static str,
    pub api_version: &'static str,
    /// The first release that no longer serves it.
    pub removed_in: KubeVersion,
    /// What to use instead (`None`: no replacement, as for PodSecurityPolicy).
    pub replace_with: Option<&'static str>,
}

const fn v(minor: u16) -> KubeVersion {
    KubeVersion { major: 1, minor }
}

const fn r(kind: &'static str, api_version: &'static str, minor: u16, with: &'static str) -> Removal {
    Removal { kind, api_version, removed_in: v(minor), replace_with: Some(with) }
}

/// Every removal of the migration guide, oldest first.
pub const REMOVALS: &[Removal] = &[
    // v1.16
    r("Deployment", "extensions/v1beta1", 16, "apps/v1"),
    r("Deployment", "apps/v1beta1", 16, "apps/v1"),
    r("Deployment", "apps/v1beta2", 16, "apps/v1"),
    r("DaemonSet", "extensions/v1beta1", 16, "apps/v1"),
    r("DaemonSet", "apps/v1beta2", 16, "apps/v1"),
    r("StatefulSet", "apps/v1beta1", 16, "apps/v1"),
    r("StatefulSet", "apps/v1beta2", 16, "apps/v1"),
    r("ReplicaSet", "extensions/v1beta1", 16, "apps/v1"),
    r("ReplicaSet", "apps/v1beta1", 16, "apps/v1"),
    r("ReplicaSet", "apps/v1beta2", 16, "apps/v1"),
    r("NetworkPolicy", "extensions/v1beta1", 16, "networking.k8s.io/v1"),
    r("PodSecurityPolicy", "extensions/v1beta1", 16, "policy/v1beta1"),
    // v1.22
    r("Ingress", "extensions/v1beta1", 22, "networking.k8s.io/v1"),
    r("Ingress", "networking.k8s.io/v1beta1", 22, "networking.k8s.io/v1"),
    r("IngressClass", "networking.k8s.io/v1beta1", 22, "networking.k8s.io/v1"),
    r("MutatingWebhookConfiguration", "admissionregistration.k8s.io/v1beta1", 22, "admissionregistration.k8s.io/v1"),
    r("ValidatingWebhookConfiguration", "admissionregistration.k8s.io/v1beta1", 22, "admissionregistration.k8s.io/v1"),
    r("CustomResourceDefinition", "apiextensions.k8s.io/v1beta1", 22, "apiextensions.k8s.io/v1"),
    r("APIService", "apiregistration.k8s.io/v1beta1", 22, "apiregistration.k8s.io/v1"),
    r("TokenReview", "authentication.k8s.io/v1beta1", 22, "authentication.k8s.io/v1"),
    r("SubjectAccessReview", "authorization.k8s.io/v1beta1", 22, "authorization.k8s.io/v1"),
    r("LocalSubjectAccessReview", "authorization.k8s.io/v1beta1", 22, "authorization.k8s.io/v1"),
    r("SelfSubjectAccessReview", "authorization.k8s.io/v1beta1", 22, "authorization.k8s.io/v1"),
    r("CertificateSigningRequest", "certificates.k8s.io/v1beta1", 22, "certificates.k8s.io/v1"),
    r("Lease", "coordination.k8s.io/v1beta1", 22, "coordination.k8s.io/v1"),
    r("ClusterRole", "rbac.authorization.k8s.io/v1beta1", 22, "rbac.authorization.k8s.io/v1"),
    r("ClusterRoleBinding", "rbac.authorization.k8s.io/v1beta1", 22, "rbac.authorization.k8s.io/v1"),
    r("Role", "rbac.authorization.k8s.io/v1beta1", 22, "rbac.authorization.k8s.io/v1"),
    r("RoleBinding", "rbac.authorization.k8s.io/v1beta1", 22, "rbac.authorization.k8s.io/v1"),
    r("PriorityClass", "scheduling.k8s.io/v1beta1", 22, "scheduling.k8s.io/v1"),
    r("CSIDriver", "storage.k8s.io/v1beta1", 22, "storage.k8s.io/v1"),
    r("CSINode", "storage.k8s.io/v1beta1", 22, "storage.k8s.io/v1"),
    r("StorageClass", "storage.k8s.io/v1beta1", 22, "storage.k8s.io/v1"),
    r("VolumeAttachment", "storage.k8s.io/v1beta1", 22, "storage.k8s.io/v1"),
    // v1.25
    r("CronJob", "batch/v1beta1", 25, "batch/v1"),
    r("EndpointSlice", "discovery.k8s.io/v1beta1", 25, "discovery.k8s.io/v1"),
    r("Event", "events.k8s.io/v1beta1", 25, "events.k8s.io/v1"),
    r("HorizontalPodAutoscaler", "autoscaling/v2beta1", 25, "autoscaling/v2"),
    r("PodDisruptionBudget", "policy/v1beta1", 25, "policy/v1"),
    Removal { kind: "PodSecurityPolicy", api_version: "policy/v1beta1", removed_in: v(25), replace_with: None },
    r("RuntimeClass", "node.k8s.io/v1beta1", 25, "node.k8s.io/v1"),
    // v1.26
    r("FlowSchema", "flowcontrol.apiserver.k8s.io/v1beta1", 26, "flowcontrol.apiserver.k8s.io/v1"),
    r("PriorityLevelConfiguration", "flowcontrol.apiserver.k8s.io/v1beta1", 26, "flowcontrol.apiserver.k8s.io/v1"),
    r("HorizontalPodAutoscaler", "autoscaling/v2beta2", 26, "autoscaling/v2"),
    // v1.27
    r("CSIStorageCapacity", "storage.k8s.io/v1beta1", 27, "storage.k8s.io/v1"),
    // v1.29
    r("FlowSchema", "flowcontrol.apiserver.k8s.io/v1beta2", 29, "flowcontrol.apiserver.k8s.io/v1"),
    r("PriorityLevelConfiguration", "flowcontrol.apiserver.k8s.io/v1beta2", 29, "flowcontrol.apiserver.k8s.io/v1"),
    // v1.32
    r("FlowSchema", "flowcontrol.apiserver.k8s.io/v1beta3", 32, "flowcontrol.apiserver.k8s.io/v1"),
    r("PriorityLevelConfiguration", "flowcontrol.apiserver.k8s.io/v1beta3", 32, "flowcontrol.apiserver.k8s.io/v1"),
];

/// The removal of `kind` at `api_version`, if Kubernetes ever removed it.
pub fn removal(kind: &str, api_version: &str) -> Option<&'static Removal> {
    REMOVALS.iter().find(|r| r.kind == kind && r.api_version == api_version)
}

impl Removal {
    /// Whether a cluster at `version` refuses it.
    pub fn applies_to(&self, version: KubeVersion) -> bool {
        self.removed_in <= version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_like_kubectl_prints_them() {
        assert_eq!("1.25".parse::<KubeVersion>(), Ok(v(25)));
        assert_eq!("v1.29.4".parse::<KubeVersion>(), Ok(v(29)));
        assert!("1".parse::<KubeVersion>().is_err());
        assert!("1.x".parse::<KubeVersion>().unwrap_err().contains("X.Y"));
        assert_eq!(v(25).to_string(), "1.25");
    }

    #[test]
    fn the_cutover_traps_are_in_the_table() {
        let ing = removal("Ingress", "networking.k8s.io/v1beta1").unwrap();
        assert!(ing.applies_to(v(22)) && !ing.applies_to(v(21)));
        assert_eq!(removal("PodDisruptionBudget", "policy/v1beta1").unwrap().removed_in, v(25));
        assert_eq!(removal("CronJob", "batch/v1beta1").unwrap().replace_with, Some("batch/v1"));
        assert_eq!(removal("PodSecurityPolicy", "policy/v1beta1").unwrap().replace_with, None);
        assert!(removal("Ingress", "networking.k8s.io/v1").is_none());
        // One entry per (kind, apiVersion).
        for (i, a) in REMOVALS.iter().enumerate() {
            assert!(REMOVALS[i + 1..].iter().all(|b| (a.kind, a.api_version) != (b.kind, b.api_version)), "{a:?}");
        }
    }
}
