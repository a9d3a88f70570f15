//! `switch-dns` hosts → Route53 change batches, one per hosted zone, exactly the file
//! `aws route53 change-resource-record-sets --hosted-zone-id Z --change-batch file://Z.json` takes
//! (no `ChangeBatch` wrapper). Records keep their shape: weighted sets get green's weight and blue's
//! set UPSERTed to 0 (kept for rollback); a simple record becomes a weighted pair (DELETE exact +
//! CREATE both, one atomic batch); a host answered by a wildcard gets its own weighted pair; alias
//! records carry no TTL and the load balancer's own hosted zone id. Pure: the tool never calls AWS.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::model::{Action, HostReport, Report};
use crate::base::host::lb_name;
use crate::dns::targets::Side;
use crate::dns::zones::RecordEvidence;

/// How changes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSettings {
    /// Green's weight (`--green-weight`).
    pub green_weight: u8,
    /// TTL of non-alias records (`--dns-ttl`).
    pub dns_ttl: u32,
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self { green_weight: 100, dns_ttl: 60 }
    }
}

/// A host whose change could not be written, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub host: String,
    /// Why.
    pub reason: String,
}

/// Route53 takes at most 1 000 changes per batch; a zone with more is split (a host's changes stay
/// together in one batch, so each batch applies on its own).
pub const MAX_CHANGES: usize = 1000;

/// Everything the export writes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Export {
    /// Hosted zone id → its change batches (one, unless it has more than [`MAX_CHANGES`]).
    pub batches: BTreeMap<String, Vec<Value>>,
    /// Hosted zone id → hosts it moves.
    pub hosts: BTreeMap<String, Vec<String>>,
    /// `switch-dns` hosts without a change.
    pub skipped: Vec<Skipped>,
    /// kubectl script for hosts ExternalDNS owns (it would revert a manual edit in sync mode).
    pub externaldns_script: Option<String>,
}

/// Builds the change batches of every `switch-dns` host of `report`.
pub fn export(report: &Report, s: &ExportSettings) -> Export {
    let mut out = Export::default();
    let green = green_name(&report.dns.green_targets);
    let mut script = String::new();
    for h in report.hosts.iter().filter(|h| h.action == Action::SwitchDns) {
        match host_changes(h, green.as_deref(), s) {
            Ok((zone, changes)) => {
                let batches = out.batches.entry(zone.clone()).or_default();
                let fits = batches
                    .last()
                    .and_then(|b| b["Changes"].as_array())
                    .is_some_and(|c| c.len() + changes.len() <= MAX_CHANGES);
                if !fits {
                    batches.push(json!({"Comment": "", "Changes": []}));
                }
                if let Some(list) = batches.last_mut().and_then(|b| b.get_mut("Changes")).and_then(Value::as_array_mut)
                {
                    list.extend(changes);
                }
                out.hosts.entry(zone).or_default().push(h.host.clone());
                if let Some(owner) = &h.dns.external_dns {
                    script.push_str(&externaldns_lines(h, owner.owner.as_str(), owner.resource.as_deref(), s));
                }
            }
            Err(reason) => out.skipped.push(Skipped { host: h.host.clone(), reason }),
        }
    }
    for (zone, batches) in out.batches.iter_mut() {
        let parts = batches.len();
        for (i, batch) in batches.iter_mut().enumerate() {
            let names: Vec<&str> = batch["Changes"]
                .as_array()
                .map(|c| c.iter().filter_map(|c| c["ResourceRecordSet"]["Name"].as_str()).collect())
                .unwrap_or_default();
            let mut hosts: Vec<&str> = names.iter().map(|n| n.trim_end_matches('.')).collect();
            hosts.dedup();
            let part = if parts > 1 { format!(" (part {} of {parts})", i + 1) } else { String::new() };
            let mut comment = format!("cutover-proxy: move {} to green{part}", hosts.join(", "));
            if comment.len() > 256 {
                comment = format!("cutover-proxy: move {} hosts of {zone} to green{part}", hosts.len());
            }
            batch["Comment"] = Value::String(comment);
        }
    }
    if !script.is_empty() {
        out.externaldns_script = Some(format!(
            "#!/bin/sh\n# Hosts owned by ExternalDNS: in sync mode it rewrites Route53 from these annotations and\n\
             # would revert the change batch. Apply these with (or instead of) the batch.\n\
             # BLUE_CONTEXT / GREEN_CONTEXT: kubectl contexts of the two clusters.\nset -eu\n\
             BLUE_CONTEXT=\"${{BLUE_CONTEXT:?set BLUE_CONTEXT}}\"\nGREEN_CONTEXT=\"${{GREEN_CONTEXT:?set GREEN_CONTEXT}}\"\n{script}"
        ));
    }
    out
}

/// Why a `switch-dns` host's change cannot be written, if it cannot (shown in the report).
pub fn check(h: &HostReport, green_targets: &[String]) -> Option<String> {
    host_changes(h, green_name(green_targets).as_deref(), &ExportSettings::default()).err()
}

fn green_name(targets: &[String]) -> Option<String> {
    let names: Vec<&String> = targets
        .iter()
        .filter(|t| t.parse::<ipnet::IpNet>().is_err() && t.parse::<std::net::IpAddr>().is_err())
        .collect();
    match names.as_slice() {
        [one] => Some((*one).clone()),
        _ => None,
    }
}

/// The changes for one host, in its zone.
fn host_changes(h: &HostReport, green: Option<&str>, s: &ExportSettings) -> Result<(String, Vec<Value>), String> {
    let Some(zone) = h.dns.zone_id.clone() else {
        return Err("no imported Route53 zone holds this host (give its zone with --route53-records)".into());
    };
    let records: Vec<&RecordEvidence> =
        h.dns.records.iter().filter(|r| matches!(r.rtype.as_str(), "A" | "AAAA" | "CNAME")).collect();
    if records.is_empty() {
        return Err(format!("zone {zone} has no A/AAAA/CNAME record for this host"));
    }
    if !records.iter().any(|r| r.side == Side::Blue) {
        return Err("none of its records points at a blue target".into());
    }
    if let Some(other) =
        h.dns.records.iter().find(|r| r.name != h.host && !matches!(r.rtype.as_str(), "A" | "AAAA" | "CNAME"))
    {
        return Err(format!(
            "answered by the wildcard `{}`, which also holds {} records: a record of its own would hide them from this host; switch by hand",
            other.name, other.rtype
        ));
    }
    let mut changes = Vec::new();
    let mut types: Vec<&str> = Vec::new();
    for r in &records {
        if !types.contains(&r.rtype.as_str()) {
            types.push(r.rtype.as_str());
        }
    }
    for rtype in types {
        let group: Vec<&RecordEvidence> = records.iter().copied().filter(|r| r.rtype == rtype).collect();
        let wildcard = group.iter().any(|r| r.name != h.host);
        let weighted = group.iter().any(|r| r.weight.is_some());
        if !weighted && group.iter().any(|r| r.set_identifier.is_some()) {
            return Err(format!(
                "its {rtype} records use a routing policy other than weighted (failover, latency, geolocation, multivalue); switch by hand"
            ));
        }
        let blue: Vec<&RecordEvidence> = group.iter().copied().filter(|r| r.side == Side::Blue).collect();
        let Some(model) = blue.first() else { continue };
        if weighted && !wildcard {
            for r in &group {
                let weight = match r.side {
                    Side::Blue => 0,
                    Side::Green => s.green_weight,
                    Side::Neither => continue,
                };
                changes.push(change("UPSERT", with_weight(&r.record_set, weight)));
            }
            if !group.iter().any(|r| r.side == Side::Green) {
                let id = green_identifier(model.set_identifier.as_deref());
                let ttl = model.record_set.get("TTL").and_then(Value::as_u64).unwrap_or(s.dns_ttl.into());
                changes.push(change("CREATE", green_set(&h.host, model, green, &id, s.green_weight, ttl)?));
            }
        } else {
            // A simple record (or a wildcard's answer) becomes a weighted pair at the host's name.
            if group.len() > 1 && !weighted {
                return Err(format!("{} simple {rtype} records answer for it; switch by hand", group.len()));
            }
            if !wildcard {
                changes.push(change("DELETE", model.record_set.clone()));
            }
            let mut blue_set = model.record_set.clone();
            if let Some(o) = blue_set.as_object_mut() {
                o.insert("Name".into(), Value::String(format!("{}.", h.host)));
                o.insert("SetIdentifier".into(), Value::String("blue".into()));
                o.insert("Weight".into(), json!(0));
                if o.contains_key("ResourceRecords") {
                    o.insert("TTL".into(), json!(s.dns_ttl));
                }
            }
            changes.push(change("CREATE", blue_set));
            changes
                .push(change("CREATE", green_set(&h.host, model, green, "green", s.green_weight, s.dns_ttl.into())?));
        }
    }
    if changes.is_empty() {
        return Err("nothing to change".into());
    }
    Ok((zone, changes))
}

fn change(action: &str, set: Value) -> Value {
    json!({"Action": action, "ResourceRecordSet": set})
}

fn with_weight(set: &Value, weight: u8) -> Value {
    let mut set = set.clone();
    set["Weight"] = json!(weight);
    set
}

/// `eks-blue` → `eks-green`; otherwise `green`.
fn green_identifier(blue: Option<&str>) -> String {
    match blue {
        Some(id) if id.to_ascii_lowercase().contains("blue") => {
            id.replace("blue", "green").replace("BLUE", "GREEN").replace("Blue", "Green")
        }
        _ => "green".into(),
    }
}

/// Green's record, shaped like blue's `model`: an alias stays an alias (to green's load balancer,
/// with that load balancer's canonical zone id), a CNAME a CNAME; plain A/AAAA become an alias.
fn green_set(
    host: &str,
    model: &RecordEvidence,
    green: Option<&str>,
    id: &str,
    weight: u8,
    ttl: u64,
) -> Result<Value, String> {
    let green = green.ok_or("no single green load balancer name is configured (--green-target LB)")?;
    let name = format!("{host}.");
    let alias = model.record_set.get("AliasTarget");
    if model.rtype == "CNAME" {
        return Ok(json!({"Name": name, "Type": "CNAME", "SetIdentifier": id, "Weight": weight, "TTL": ttl,
            "ResourceRecords": [{"Value": green}]}));
    }
    let zone = elb_zone_id(green)
        .map(str::to_owned)
        .or_else(|| {
            // Same kind and region as blue's load balancer: the same canonical zone.
            let blue = alias?.get("DNSName")?.as_str()?;
            (elb_kind_region(&lb_name(blue)) == elb_kind_region(green) && elb_kind_region(green).is_some())
                .then(|| alias?.get("HostedZoneId")?.as_str().map(str::to_owned))
                .flatten()
        })
        .ok_or_else(|| {
            format!("the canonical hosted zone id of `{green}` is unknown (not an ELB name of a known region)")
        })?;
    let dualstack =
        alias.and_then(|a| a.get("DNSName")).and_then(Value::as_str).is_some_and(|n| n.starts_with("dualstack."))
            || model.rtype == "AAAA";
    let dns_name = if dualstack { format!("dualstack.{green}.") } else { format!("{green}.") };
    let evaluate = alias.and_then(|a| a.get("EvaluateTargetHealth")).and_then(Value::as_bool).unwrap_or(true);
    let mut set = Map::new();
    set.insert("Name".into(), Value::String(name));
    set.insert("Type".into(), Value::String(model.rtype.clone()));
    set.insert("SetIdentifier".into(), Value::String(id.into()));
    set.insert("Weight".into(), json!(weight));
    set.insert(
        "AliasTarget".into(),
        json!({"HostedZoneId": zone, "DNSName": dns_name, "EvaluateTargetHealth": evaluate}),
    );
    Ok(Value::Object(set))
}

/// `(nlb?, region)` of an ELB hostname: `name-id.elb.REGION.amazonaws.com` is an NLB,
/// `name-id.REGION.elb.amazonaws.com` an ALB or CLB.
fn elb_kind_region(name: &str) -> Option<(bool, &str)> {
    let name = name.trim_end_matches('.');
    if let Some(rest) = name.strip_suffix(".elb.amazonaws.com") {
        return rest.rsplit_once('.').map(|(_, region)| (false, region));
    }
    let rest = name.strip_suffix(".amazonaws.com")?;
    let (before, region) = rest.rsplit_once('.')?;
    before.ends_with(".elb").then_some((true, region))
}

/// Canonical hosted zone ids of Elastic Load Balancing, per region: (ALB/CLB, NLB), as the AWS
/// General Reference lists them ("Elastic Load Balancing endpoints and quotas").
const ELB_ZONES: &[(&str, &str, &str)] = &[
    ("af-south-1", "Z268VQBMOI5EKX", "Z203XCE67M25HM"),
    ("ap-east-1", "Z3DQVH9N71FHZ0", "Z12Y7K3UBGUAD1"),
    ("ap-east-2", "Z02789141MW7T1WBU19PO", "Z09176273OC2HWIAUNYW"),
    ("ap-northeast-1", "Z14GRHDCWA56QT", "Z31USIVHYNEOWT"),
    ("ap-northeast-2", "ZWKZPGTI48KDX", "ZIBE1TIR4HY56"),
    ("ap-northeast-3", "Z5LXEXXYW11ES", "Z1GWIQ4HH19I5X"),
    ("ap-south-1", "ZP97RAFLXTNZK", "ZVDDRBQ08TROA"),
    ("ap-south-2", "Z0173938T07WNTVAEPZN", "Z0711778386UTO08407HT"),
    ("ap-southeast-1", "Z1LMS91P8CMLE5", "ZKVM4W9LS7TM"),
    ("ap-southeast-2", "Z1GM3OXH4ZPM65", "ZCT6FZBF4DROD"),
    ("ap-southeast-3", "Z08888821HLRG5A9ZRTER", "Z01971771FYVNCOVWJU1G"),
    ("ap-southeast-4", "Z09517862IB2WZLPXG76F", "Z01156963G8MIIL7X90IV"),
    ("ap-southeast-5", "Z06010284QMVVW7WO5J", "Z026317210H9ACVTRO6FB"),
    ("ap-southeast-6", "Z023301818UFJ50CIO0MV", "Z01392953RKV2Q3RBP0KU"),
    ("ap-southeast-7", "Z0390008CMBRTHFGWBCB", "Z054363131YWATEMWRG5L"),
    ("ca-central-1", "ZQSVJUPU6J1EY", "Z2EPGBW3API2WT"),
    ("ca-west-1", "Z06473681N0SF6OS049SD", "Z02754302KBB00W2LKWZ9"),
    ("eu-central-1", "Z215JYRZR1TBD5", "Z3F0SRJ5LGBH90"),
    ("eu-central-2", "Z06391101F2ZOEP8P5EB3", "Z02239872DOALSIDCX66S"),
    ("eu-north-1", "Z23TAZ6LKFMNIO", "Z1UDT6IFJ4EJM"),
    ("eu-south-1", "Z3ULH7SSC9OV64", "Z23146JA1KNAFP"),
    ("eu-south-2", "Z0956581394HF5D5LXGAP", "Z1011216NVTVYADP1SSV"),
    ("eu-west-1", "Z32O12XQLNTSW2", "Z2IFOLAFXWLO4F"),
    ("eu-west-2", "ZHURV8PSTC4K8", "ZD4D7Y8KGAS4G"),
    ("eu-west-3", "Z3Q77PNBQS71R4", "Z1CMS0P5QUZ6D5"),
    ("il-central-1", "Z09170902867EHPV2DABU", "Z0313266YDI6ZRHTGQY4"),
    ("me-central-1", "Z08230872XQRWHG2XF6I", "Z00282643NTTLPANJJG2P"),
    ("me-south-1", "ZS929ML54UICD", "Z3QSRYVP46NYYV"),
    ("mx-central-1", "Z023552324OKD1BB28BH5", "Z02031231H3ID6HYJ9A7U"),
    ("sa-east-1", "Z2P70J7HTTTPLU", "ZTK26PT1VY4CU"),
    ("us-east-1", "Z35SXDOTRQ7X7K", "Z26RNL4JYFTOTI"),
    ("us-east-2", "Z3AADJGX6KTTL2", "ZLMOA37VPKANP"),
    ("us-gov-east-1", "Z166TLBEWOO7G0", "Z1ZSMQQ6Q24QQ8"),
    ("us-gov-west-1", "Z33AYJ8TM3BH4J", "ZMG1MZ2THAWF1"),
    ("us-west-1", "Z368ELLRRE2KJ0", "Z24FKFUX50B4VW"),
    ("us-west-2", "Z1H1FL5HABSF5", "Z18D5FSROUN65G"),
];

/// The canonical hosted zone id an alias to this load balancer needs.
pub fn elb_zone_id(name: &str) -> Option<&'static str> {
    let name = lb_name(name);
    let (nlb, region) = elb_kind_region(&name)?;
    ELB_ZONES.iter().find(|(r, _, _)| *r == region).map(|(_, alb, n)| if nlb { *n } else { *alb })
}

fn externaldns_lines(h: &HostReport, owner: &str, resource: Option<&str>, s: &ExportSettings) -> String {
    let blue_id = h.dns.records.iter().find(|r| r.side == Side::Blue).and_then(|r| r.set_identifier.clone());
    let green_id = green_identifier(blue_id.as_deref());
    let mut out = format!("\n# {} (ExternalDNS owner `{owner}`)\n", h.host);
    match resource.and_then(|r| {
        let mut it = r.splitn(3, '/');
        Some((it.next()?, it.next()?, it.next()?))
    }) {
        Some((kind, ns, name)) => out.push_str(&format!(
            "kubectl --context \"$BLUE_CONTEXT\" -n {} annotate {} {} --overwrite \\\n  external-dns.alpha.kubernetes.io/set-identifier={} external-dns.alpha.kubernetes.io/aws-weight=0\n",
            shell_word(ns), shell_word(kind), shell_word(name), shell_word(blue_id.as_deref().unwrap_or("blue"))
        )),
        None => out.push_str("# blue: the TXT record names no resource; annotate the object that owns it with aws-weight=0\n"),
    }
    let green_ingress = h.paths.iter().filter_map(|p| p.matched_route.as_deref()).find(|r| r.ends_with("(Ingress)"));
    match green_ingress.and_then(|r| r.trim_end_matches(" (Ingress)").split_once('/')) {
        Some((ns, name)) => out.push_str(&format!(
            "kubectl --context \"$GREEN_CONTEXT\" -n {} annotate ingress {} --overwrite \\\n  external-dns.alpha.kubernetes.io/set-identifier={} external-dns.alpha.kubernetes.io/aws-weight={}\n",
            shell_word(ns), shell_word(name), shell_word(&green_id), s.green_weight
        )),
        None => out.push_str(&format!(
            "# green: annotate the object serving {} with set-identifier={} and aws-weight={}\n",
            h.host, green_id, s.green_weight
        )),
    }
    out
}

/// Quotes a word for sh unless it is plainly safe.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:".contains(&b)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::stats::StatusClasses;

    fn host(name: &str, zone: Option<&str>, records: Value) -> HostReport {
        serde_json::from_value(json!({
            "host": name, "requests": 1, "first_seen": "2026-11-25T22:00:00Z", "last_seen": "2026-11-25T22:00:00Z",
            "hardcoded": false, "green": {"routed": "all", "missing_paths": []},
            "dns": {"verdict": "blue", "zone_id": zone, "records": records},
            "action": "switch-dns", "urgent": false, "reason": "", "methods": [], "status": StatusClasses::default(),
            "bytes_in": 0, "bytes_out": 0, "oldest_connection_age_s": 0.0, "requests_per_minute": [], "paths": [],
            "top_clients": [], "top_user_agents": []
        }))
        .unwrap()
    }

    fn rec(name: &str, rtype: &str, side: &str, set: Value) -> Value {
        json!({"zone_id": "Z1", "name": name, "type": rtype, "set_identifier": set.get("SetIdentifier"),
               "weight": set.get("Weight"), "target": "", "ttl": set.get("TTL"), "side": side, "record_set": set})
    }

    const GREEN: &str = "k8s-green-1.eu-west-1.elb.amazonaws.com";

    #[test]
    fn each_record_type_is_changed_once_and_blocked_hosts_say_why() {
        let alias = |t: &str, id: &str, lb: &str| {
            json!({"Name": "a.example.com.", "Type": t, "SetIdentifier": id, "Weight": 10,
                   "AliasTarget": {"HostedZoneId": "Z32O12XQLNTSW2", "DNSName": format!("dualstack.{lb}."), "EvaluateTargetHealth": false}})
        };
        let blue = "k8s-blue-1.eu-west-1.elb.amazonaws.com";
        let h = host(
            "a.example.com",
            Some("Z1"),
            json!([
                rec("a.example.com", "A", "blue", alias("A", "blue-a", blue)),
                rec("a.example.com", "AAAA", "blue", alias("AAAA", "blue-a", blue)),
                rec("a.example.com", "A", "green", alias("A", "green-a", GREEN)),
            ]),
        );
        let (zone, changes) = host_changes(&h, Some(GREEN), &ExportSettings::default()).unwrap();
        assert_eq!(zone, "Z1");
        let summary: Vec<(String, String, String, u64)> = changes
            .iter()
            .map(|c| {
                let s = &c["ResourceRecordSet"];
                (
                    c["Action"].as_str().unwrap().into(),
                    s["Type"].as_str().unwrap().into(),
                    s["SetIdentifier"].as_str().unwrap().into(),
                    s["Weight"].as_u64().unwrap(),
                )
            })
            .collect();
        let want = [
            ("UPSERT", "A", "blue-a", 0),
            ("UPSERT", "A", "green-a", 100),
            ("UPSERT", "AAAA", "blue-a", 0),
            ("CREATE", "AAAA", "green-a", 100),
        ];
        assert_eq!(summary, want.map(|(a, t, i, w)| (a.to_string(), t.to_string(), i.to_string(), w)));
        let created = &changes[3]["ResourceRecordSet"]["AliasTarget"];
        assert_eq!(created["DNSName"], format!("dualstack.{GREEN}."));
        assert_eq!(created["HostedZoneId"], "Z32O12XQLNTSW2", "eu-west-1 ALB zone");

        assert!(host_changes(&host("b.example.com", None, json!([])), Some(GREEN), &ExportSettings::default())
            .unwrap_err()
            .contains("no imported Route53 zone"));
        let cname =
            json!({"Name": "c.example.com.", "Type": "CNAME", "TTL": 300, "ResourceRecords": [{"Value": blue}]});
        let c = host("c.example.com", Some("Z1"), json!([rec("c.example.com", "CNAME", "blue", cname)]));
        assert!(check(&c, &[]).unwrap().contains("green load balancer"));
        assert!(
            check(&c, &[GREEN.into(), "k8s-green-2.eu-west-1.elb.amazonaws.com".into()]).is_some(),
            "ambiguous green"
        );
        assert_eq!(check(&c, &[GREEN.into(), "10.2.0.0/16".into()]), None, "CIDRs do not count as names");
    }

    #[test]
    fn other_policies_and_wildcards_with_other_types_are_left_to_the_operator() {
        let failover = json!({"Name": "f.example.com.", "Type": "CNAME", "SetIdentifier": "primary", "Failover": "PRIMARY",
                              "TTL": 60, "ResourceRecords": [{"Value": "k8s-blue-1.eu-west-1.elb.amazonaws.com"}]});
        let h = host("f.example.com", Some("Z1"), json!([rec("f.example.com", "CNAME", "blue", failover)]));
        assert!(check(&h, &[GREEN.into()]).unwrap().contains("routing policy"));
        let wild = json!({"Name": "*.t.example.com.", "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": "k8s-blue-1.eu-west-1.elb.amazonaws.com"}]});
        let txt = json!({"Name": "*.t.example.com.", "Type": "TXT", "TTL": 60, "ResourceRecords": [{"Value": "\"v=spf1 -all\""}]});
        let h = host(
            "a.t.example.com",
            Some("Z1"),
            json!([
                rec("*.t.example.com", "CNAME", "blue", wild.clone()),
                rec("*.t.example.com", "TXT", "neither", txt)
            ]),
        );
        assert!(check(&h, &[GREEN.into()]).unwrap().contains("TXT"));
        let h = host("a.t.example.com", Some("Z1"), json!([rec("*.t.example.com", "CNAME", "blue", wild)]));
        assert_eq!(check(&h, &[GREEN.into()]), None, "a wildcard alone gets the host its own weighted pair");
    }

    #[test]
    fn a_zone_beyond_1000_changes_is_split_between_hosts() {
        let hosts: Vec<HostReport> = (0..400)
            .map(|i| {
                let name = format!("h{i}.example.com");
                let set = json!({"Name": format!("{name}."), "Type": "CNAME", "TTL": 300,
                                 "ResourceRecords": [{"Value": "k8s-blue-1.eu-west-1.elb.amazonaws.com"}]});
                host(&name, Some("Z1"), json!([rec(&name, "CNAME", "blue", set)]))
            })
            .collect();
        let report: Report = serde_json::from_value(json!({
            "schema": crate::report::model::SCHEMA, "generated_at": "2026-11-25T22:00:00Z", "started_at": "2026-11-25T22:00:00Z",
            "totals": crate::report::model::Totals::default(), "green": {"loaded": true, "objects": 1},
            "dns": {"live": false, "zones": [], "blue_targets": [], "green_targets": [GREEN]}, "hosts": hosts
        }))
        .unwrap();
        let out = export(&report, &ExportSettings::default());
        let parts = &out.batches["Z1"];
        let sizes: Vec<usize> = parts.iter().map(|b| b["Changes"].as_array().unwrap().len()).collect();
        assert_eq!(sizes, [999, 201], "3 changes per host, never split across batches");
        assert!(parts[1]["Comment"].as_str().unwrap().contains("part 2 of 2"));
        assert!(parts[0]["Comment"].as_str().unwrap().len() <= 256);
    }

    #[test]
    fn elb_zones_by_kind_and_region() {
        assert_eq!(
            elb_zone_id("dualstack.k8s-green-api-3c4d.ap-northeast-2.elb.amazonaws.com."),
            Some("ZWKZPGTI48KDX")
        );
        assert_eq!(elb_zone_id("k8s-green-legacy-9f.elb.ap-northeast-2.amazonaws.com"), Some("ZIBE1TIR4HY56"));
        assert_eq!(elb_zone_id("my-lb-123.us-east-1.elb.amazonaws.com"), Some("Z35SXDOTRQ7X7K"));
        assert_eq!(elb_zone_id("nlb-1.elb.us-east-1.amazonaws.com"), Some("Z26RNL4JYFTOTI"));
        assert_eq!(elb_zone_id("green.example.com"), None);
        assert_eq!(green_identifier(Some("eks-blue")), "eks-green");
        assert_eq!(green_identifier(Some("primary")), "green");
        assert_eq!(shell_word("shop"), "shop");
        assert_eq!(shell_word("a b'c"), "'a b'\\''c'");
    }
}
