//! `--route53-records`: what the Route53 zones *say*, from `aws route53 list-resource-record-sets --output
//! json` exports (one page, several pages as a JSON array, or pages concatenated). Decodes `\052`
//! wildcards and other octal escapes, trailing dots and `dualstack.`; understands alias vs CNAME vs
//! A, weighted sets and ExternalDNS TXT ownership records. Pure: no AWS call, no I/O but the read.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::targets::{Side, TargetAddrs, Targets};
use super::verdict::{verdict_of_sides, DnsVerdict};
use crate::base::error::ConfigError;
use crate::base::host::lb_name;

/// One record set, decoded, with its exported JSON kept verbatim (a DELETE must match it exactly).
#[derive(Debug, Clone)]
pub struct RecordSet {
    /// Decoded name: lowercase, no trailing dot, `*` for `\052`.
    pub name: String,
    /// `A`, `AAAA`, `CNAME`, `TXT`, …
    pub rtype: String,
    /// Weighted sets' identifier.
    pub set_identifier: Option<String>,
    /// Weighted sets' weight.
    pub weight: Option<u64>,
    /// TTL (alias records have none).
    pub ttl: Option<u64>,
    /// Alias target (load balancer) name, normalized.
    pub alias: Option<String>,
    /// Plain values (addresses, CNAME target, TXT strings).
    pub values: Vec<String>,
    /// The record set as exported.
    pub raw: Value,
}

/// One hosted zone's records.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Hosted zone id (`Z…`, without `/hostedzone/`).
    pub id: String,
    /// Zone apex, decoded.
    pub name: String,
    /// Its record sets.
    pub records: Vec<RecordSet>,
    /// Name → positions in `records` (a zone may hold tens of thousands of sets).
    by_name: std::collections::HashMap<String, Vec<usize>>,
}

impl Zone {
    /// A zone of these record sets.
    pub fn new(id: &str, name: String, records: Vec<RecordSet>) -> Self {
        let mut by_name: std::collections::HashMap<String, Vec<usize>> = std::collections::HashMap::new();
        for (i, r) in records.iter().enumerate() {
            by_name.entry(r.name.clone()).or_default().push(i);
        }
        Self { id: id.to_owned(), name, records, by_name }
    }

    /// The record sets of one (decoded) name.
    pub fn named<'z>(&'z self, name: &str) -> impl Iterator<Item = &'z RecordSet> + 'z {
        self.by_name.get(name).into_iter().flatten().filter_map(|&i| self.records.get(i))
    }

    /// Whether the name has any record set.
    pub fn has(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
}

/// ExternalDNS ownership of a name (from its TXT registry record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalDnsOwner {
    /// `external-dns/owner`.
    pub owner: String,
    /// `external-dns/resource`, e.g. `ingress/shop/api`.
    pub resource: Option<String>,
}

/// One Route53 record that bears on a host, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordEvidence {
    /// Hosted zone id.
    pub zone_id: String,
    /// Record name (may be a wildcard that covers the host).
    pub name: String,
    /// Record type.
    #[serde(rename = "type")]
    pub rtype: String,
    /// Weighted set identifier.
    pub set_identifier: Option<String>,
    pub weight: Option<u64>,
    /// Alias target or values.
    pub target: String,
    /// `alias`, or the record's TTL.
    pub ttl: Option<u64>,
    /// Which side it points at.
    pub side: Side,
    /// The record set exactly as exported (used to build DELETE/UPSERT changes).
    pub record_set: Value,
}

impl RecordEvidence {
    /// A record set of `zone` as evidence, pointing at `side`.
    fn of(zone: &Zone, r: &RecordSet, side: Side) -> Self {
        Self {
            zone_id: zone.id.clone(),
            name: r.name.clone(),
            rtype: r.rtype.clone(),
            set_identifier: r.set_identifier.clone(),
            weight: r.weight,
            target: r.alias.clone().unwrap_or_else(|| r.values.join(" ")),
            ttl: r.ttl,
            side,
            record_set: r.raw.clone(),
        }
    }
}

/// What Route53 says about one host.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneAnswer {
    /// `unresolvable` when the zone holds no such name, `external` when no imported zone holds
    /// it, else the sides its records point at.
    pub verdict: DnsVerdict,
    /// The zone that holds the host.
    pub zone_id: Option<String>,
    /// The records that answer for it.
    pub records: Vec<RecordEvidence>,
    /// ExternalDNS owner, if the name is owned.
    pub owner: Option<ExternalDnsOwner>,
    /// Largest TTL of the records (alias: 60 s, the ELB's own).
    pub max_ttl: Option<u64>,
}

/// Every imported zone.
#[derive(Debug, Clone, Default)]
pub struct Zones {
    /// Zones, as imported.
    pub zones: Vec<Zone>,
}

/// Decodes Route53's escapes (`\052` → `*`, `\\` …), lowercases and drops the trailing dot.
pub fn decode_name(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else if b[i] == b'\\' && i + 1 < b.len() {
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).trim_end_matches('.').to_ascii_lowercase()
}

/// Where a `--route53-records` value came from: `ZONEID=FILE`, or a file named `Z….json`.
pub fn split_arg(arg: &str) -> Result<(String, String), String> {
    if let Some((zone, file)) = arg.split_once('=') {
        let zone = zone.trim().trim_start_matches("/hostedzone/");
        if zone.is_empty() || !zone.bytes().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("`{zone}` is not a hosted zone id (expected ZONEID=FILE)"));
        }
        return Ok((zone.to_owned(), file.to_owned()));
    }
    let stem = Path::new(arg).file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if stem.starts_with('Z') && stem.len() > 1 && stem.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Ok((stem.to_owned(), arg.to_owned()));
    }
    Err(format!("`{arg}`: name the hosted zone as ZONEID=FILE, or name the file after it (Z….json)"))
}

const KIND: &str = "route53 records file";

/// Reads one export file.
pub fn load(zone_id: &str, path: &Path) -> Result<Zone, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Input {
        kind: KIND,
        path: path.to_owned(),
        line: None,
        why: e.to_string(),
    })?;
    parse(zone_id, &text).map_err(|(line, why)| ConfigError::Input { kind: KIND, path: path.to_owned(), line, why })
}

/// Parses an export: one page, a JSON array of pages, or pages one after another. Errors carry the
/// line (when known) and why.
pub fn parse(zone_id: &str, text: &str) -> Result<Zone, (Option<usize>, String)> {
    let mut sets: Vec<Value> = Vec::new();
    let mut take_page = |page: Value, n: usize| -> Result<(), (Option<usize>, String)> {
        match page {
            Value::Object(mut o) => match o.remove("ResourceRecordSets") {
                Some(Value::Array(list)) => {
                    sets.extend(list);
                    Ok(())
                }
                _ => Err((
                    None,
                    format!("page {n} has no `ResourceRecordSets` array (is this list-resource-record-sets output?)"),
                )),
            },
            _ => Err((None, format!("page {n} is not a JSON object"))),
        }
    };
    let mut pages = 0;
    for item in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        let item = item.map_err(|e| (Some(e.line()), e.to_string()))?;
        match item {
            Value::Array(list) => {
                for page in list {
                    pages += 1;
                    take_page(page, pages)?;
                }
            }
            page => {
                pages += 1;
                take_page(page, pages)?;
            }
        }
    }
    if pages == 0 {
        return Err((None, "the file is empty".into()));
    }
    let mut records = Vec::with_capacity(sets.len());
    for (i, raw) in sets.into_iter().enumerate() {
        records.push(record_set(raw).map_err(|why| (None, format!("record set #{}: {why}", i + 1)))?);
    }
    let name = records
        .iter()
        .find(|r| r.rtype == "SOA")
        .or_else(|| records.iter().filter(|r| r.rtype == "NS").min_by_key(|r| r.name.len()))
        .or_else(|| records.iter().min_by_key(|r| r.name.len()))
        .map(|r| r.name.clone())
        .unwrap_or_default();
    Ok(Zone::new(zone_id, name, records))
}

fn record_set(raw: Value) -> Result<RecordSet, String> {
    let str_of = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_owned);
    let name = str_of("Name").ok_or("no `Name`")?;
    let rtype = str_of("Type").ok_or_else(|| format!("`{name}` has no `Type`"))?.to_ascii_uppercase();
    let alias = raw.get("AliasTarget").map(|a| {
        a.get("DNSName").and_then(Value::as_str).map(lb_name).ok_or_else(|| format!("`{name}`: alias without DNSName"))
    });
    let values = raw
        .get("ResourceRecords")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(|v| v.get("Value").and_then(Value::as_str)).map(str::to_owned).collect())
        .unwrap_or_default();
    Ok(RecordSet {
        name: decode_name(&name),
        rtype,
        set_identifier: str_of("SetIdentifier"),
        weight: raw.get("Weight").and_then(Value::as_u64),
        ttl: raw.get("TTL").and_then(Value::as_u64),
        alias: alias.transpose()?,
        values,
        raw,
    })
}

/// ELB alias targets answer with this TTL.
pub const ALIAS_TTL: u64 = 60;

/// Whether `*.suffix` style `pattern` or an exact name equals `name`.
fn in_zone(name: &str, zone: &str) -> bool {
    name == zone
        || (name.len() > zone.len() && name.ends_with(zone) && name.as_bytes()[name.len() - zone.len() - 1] == b'.')
}

impl Zones {
    /// Whether any zone was imported.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The zone that holds `host` (the longest apex wins).
    pub fn zone_of(&self, host: &str) -> Option<&Zone> {
        self.zones.iter().filter(|z| !z.name.is_empty() && in_zone(host, &z.name)).max_by_key(|z| z.name.len())
    }

    /// What Route53 says about `host`.
    pub fn answer(&self, host: &str, targets: &Targets, addrs: &TargetAddrs) -> ZoneAnswer {
        let Some(zone) = self.zone_of(host) else {
            return ZoneAnswer {
                verdict: DnsVerdict::External,
                zone_id: None,
                records: vec![],
                owner: None,
                max_ttl: None,
            };
        };
        let sets = address_sets(zone, host);
        let owner = owner(zone, host);
        let mut records = Vec::new();
        for r in &sets {
            records.push(RecordEvidence::of(zone, r, side_of(zone, r, targets, addrs, 0)));
        }
        let max_ttl = sets.iter().map(|r| r.ttl.unwrap_or(ALIAS_TTL)).max();
        let verdict = if records.is_empty() { DnsVerdict::Unresolvable } else { verdict_of(&records) };
        // A wildcard's other record types (TXT, MX…) go along, so the export can tell that an
        // explicit record for this host would hide them.
        if let Some(wild) = sets.first().map(|r| r.name.as_str()).filter(|n| n.starts_with("*.") && *n != host) {
            for r in zone.named(wild).filter(|r| !matches!(r.rtype.as_str(), "A" | "AAAA" | "CNAME")) {
                records.push(RecordEvidence::of(zone, r, Side::Neither));
            }
        }
        ZoneAnswer { verdict, zone_id: Some(zone.id.clone()), records, owner, max_ttl }
    }
}

/// The side of the active answers: weight 0 sets get no traffic unless every weight is 0 (then
/// Route53 splits equally).
fn verdict_of(records: &[RecordEvidence]) -> DnsVerdict {
    let all_zero = records.iter().all(|r| r.weight == Some(0));
    let active = records.iter().filter(|r| all_zero || r.weight != Some(0));
    verdict_of_sides(active.map(|r| r.side))
}

/// A/AAAA/CNAME sets answering for `host`: its own, else the closest wildcard (RFC 4592: a name
/// that exists stops the search).
fn address_sets<'z>(zone: &'z Zone, host: &str) -> Vec<&'z RecordSet> {
    let at = |name: &str| -> Vec<&'z RecordSet> {
        zone.named(name).filter(|r| matches!(r.rtype.as_str(), "A" | "AAAA" | "CNAME")).collect()
    };
    let exists = |name: &str| zone.has(name);
    if exists(host) {
        return at(host);
    }
    let mut rest = host;
    while let Some((_, parent)) = rest.split_once('.') {
        if parent.len() < zone.name.len() {
            break;
        }
        let sets = at(&format!("*.{parent}"));
        if !sets.is_empty() || exists(parent) {
            return sets;
        }
        rest = parent;
    }
    Vec::new()
}

fn side_of(zone: &Zone, r: &RecordSet, targets: &Targets, addrs: &TargetAddrs, depth: u8) -> Side {
    let by_name = |name: &str| -> Side {
        if let Some(side) = targets.side_of_name(name) {
            return side;
        }
        // An alias or CNAME to another name of the same zone: follow it (a few hops at most).
        let name = lb_name(name);
        if depth < 4 && in_zone(&name, &zone.name) {
            let sides: Vec<Side> =
                address_sets(zone, &name).iter().map(|n| side_of(zone, n, targets, addrs, depth + 1)).collect();
            if let Some(first) = sides.first() {
                if sides.iter().all(|s| s == first) {
                    return *first;
                }
            }
        }
        Side::Neither
    };
    if let Some(alias) = &r.alias {
        return by_name(alias);
    }
    match r.rtype.as_str() {
        "CNAME" => r.values.first().map_or(Side::Neither, |v| by_name(v)),
        _ => {
            let sides: Vec<Side> =
                r.values.iter().filter_map(|v| v.parse().ok()).map(|ip| targets.side_of_ip(ip, addrs)).collect();
            match sides.first() {
                Some(first) if sides.iter().all(|s| s == first) => *first,
                _ => Side::Neither,
            }
        }
    }
}

/// ExternalDNS's TXT registry record for `host`: at the name itself, or with the record-type
/// prefixes newer ExternalDNS versions write (`a-`, `aaaa-`, `cname-`).
fn owner(zone: &Zone, host: &str) -> Option<ExternalDnsOwner> {
    let names = [host.to_owned(), format!("a-{host}"), format!("aaaa-{host}"), format!("cname-{host}")];
    names
        .iter()
        .flat_map(|n| zone.named(n))
        .filter(|r| r.rtype == "TXT")
        .flat_map(|r| r.values.iter())
        .find_map(|v| parse_owner(v))
}

/// `"heritage=external-dns,external-dns/owner=eks-blue,external-dns/resource=ingress/shop/api"`.
pub fn parse_owner(value: &str) -> Option<ExternalDnsOwner> {
    let v = value.trim().trim_matches('"');
    let mut heritage = false;
    let (mut owner, mut resource) = (None, None);
    for pair in v.split(',') {
        match pair.trim().split_once('=') {
            Some(("heritage", "external-dns")) => heritage = true,
            Some(("external-dns/owner", o)) => owner = Some(o.to_owned()),
            Some(("external-dns/resource", r)) => resource = Some(r.to_owned()),
            _ => {}
        }
    }
    if heritage {
        Some(ExternalDnsOwner { owner: owner.unwrap_or_default(), resource })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &str = r#"{"ResourceRecordSets": [
  {"Name": "example.com.", "Type": "SOA", "TTL": 900, "ResourceRecords": [{"Value": "ns-1.awsdns-01.org. hostmaster.example.com. 1 7200 900 1209600 86400"}]},
  {"Name": "api.example.com.", "Type": "A", "SetIdentifier": "eks-blue", "Weight": 100,
   "AliasTarget": {"HostedZoneId": "ZWKZPGTI48KDX", "DNSName": "dualstack.k8s-blue-api-1a2b.ap-northeast-2.elb.amazonaws.com.", "EvaluateTargetHealth": true}},
  {"Name": "api.example.com.", "Type": "A", "SetIdentifier": "eks-green", "Weight": 0,
   "AliasTarget": {"HostedZoneId": "ZWKZPGTI48KDX", "DNSName": "dualstack.k8s-green-api-3c4d.ap-northeast-2.elb.amazonaws.com.", "EvaluateTargetHealth": true}},
  {"Name": "legacy.example.com.", "Type": "CNAME", "TTL": 300, "ResourceRecords": [{"Value": "k8s-blue-legacy-9f.elb.ap-northeast-2.amazonaws.com"}]},
  {"Name": "\\052.tenant.example.com.", "Type": "CNAME", "TTL": 300, "ResourceRecords": [{"Value": "k8s-blue-tenant-77.elb.ap-northeast-2.amazonaws.com"}]},
  {"Name": "api.example.com.", "Type": "TXT", "TTL": 300, "ResourceRecords": [{"Value": "\"heritage=external-dns,external-dns/owner=eks-blue,external-dns/resource=ingress/shop/api\""}]}
 ],
 "IsTruncated": false, "MaxItems": "300"}"#;

    fn targets() -> Targets {
        Targets {
            blue: vec![
                "k8s-blue-api-1a2b.ap-northeast-2.elb.amazonaws.com".parse().unwrap(),
                "k8s-blue-legacy-9f.elb.ap-northeast-2.amazonaws.com".parse().unwrap(),
                "k8s-blue-tenant-77.elb.ap-northeast-2.amazonaws.com".parse().unwrap(),
            ],
            green: vec!["k8s-green-api-3c4d.ap-northeast-2.elb.amazonaws.com".parse().unwrap()],
        }
    }

    #[test]
    fn decodes_the_formats_traps() {
        assert_eq!(decode_name("\\052.tenant.Example.com."), "*.tenant.example.com");
        assert_eq!(decode_name("api.example.com"), "api.example.com");
        assert_eq!(split_arg("Z123=zone.json"), Ok(("Z123".into(), "zone.json".into())));
        assert_eq!(split_arg("/tmp/Z0ABC.json"), Ok(("Z0ABC".into(), "/tmp/Z0ABC.json".into())));
        assert!(split_arg("records.json").is_err());
    }

    #[test]
    fn pages_and_verdicts() {
        let two_pages = format!("[{EXPORT}, {{\"ResourceRecordSets\": [], \"IsTruncated\": false}}]");
        for text in [EXPORT.to_owned(), two_pages, format!("{EXPORT}\n{EXPORT}")] {
            let zone = parse("Z1", &text).unwrap();
            assert_eq!(zone.name, "example.com");
        }
        let r53 = Zones { zones: vec![parse("Z1", EXPORT).unwrap()] };
        let (t, a) = (targets(), TargetAddrs::default());
        let api = r53.answer("api.example.com", &t, &a);
        assert_eq!(api.verdict, DnsVerdict::Blue, "green's weight 0 gets nothing");
        assert_eq!(api.records.len(), 2);
        assert_eq!(api.max_ttl, Some(ALIAS_TTL));
        assert_eq!(api.owner.as_ref().map(|o| o.owner.as_str()), Some("eks-blue"));
        assert_eq!(r53.answer("legacy.example.com", &t, &a).verdict, DnsVerdict::Blue);
        let tenant = r53.answer("a.b.tenant.example.com", &t, &a);
        assert_eq!((tenant.verdict, tenant.records[0].name.as_str()), (DnsVerdict::Blue, "*.tenant.example.com"));
        assert_eq!(r53.answer("nothing.example.com", &t, &a).verdict, DnsVerdict::Unresolvable);
        assert_eq!(r53.answer("shop.other.org", &t, &a).verdict, DnsVerdict::External);
        let moved = EXPORT.replace("\"Weight\": 100", "\"Weight\": 0");
        let r53 = Zones { zones: vec![parse("Z1", &moved).unwrap()] };
        assert_eq!(r53.answer("api.example.com", &t, &a).verdict, DnsVerdict::Split, "all weights 0 split equally");
    }

    #[test]
    fn bad_exports_say_why() {
        assert!(parse("Z1", "").unwrap_err().1.contains("empty"));
        assert!(parse("Z1", "{\"x\": 1}").unwrap_err().1.contains("ResourceRecordSets"));
        assert_eq!(parse("Z1", "{\n\"ResourceRecordSets\": [\n,]}").unwrap_err().0, Some(3));
        assert!(parse("Z1", "{\"ResourceRecordSets\": [{\"Type\": \"A\"}]}").unwrap_err().1.contains("#1"));
    }
}
