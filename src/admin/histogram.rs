//! `cutover_request_duration_seconds`: the workers' per-class duration counts summed at scrape
//! time and encoded as one OpenMetrics histogram family (the workers keep plain counters; no
//! histogram object is shared on the request path).

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::proxy::stats::{DurationCounts, WorkerView, DURATION_BUCKETS_US};

/// The status classes, as labels.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Every worker's counts summed, per status class.
#[derive(Debug)]
pub struct DurationHistogram {
    classes: [DurationCounts; 5],
}

impl DurationHistogram {
    /// Sums the workers' counts.
    pub fn of(workers: &[WorkerView]) -> Self {
        let mut classes = [DurationCounts::default(); 5];
        for (i, c) in classes.iter_mut().enumerate() {
            for w in workers {
                let d = w.stats.durations(i);
                for (a, b) in c.buckets.iter_mut().zip(d.buckets) {
                    *a += b;
                }
                c.sum_us += d.sum_us;
            }
        }
        Self { classes }
    }
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (class, counts) in CLASSES.iter().zip(&self.classes) {
            let count: u64 = counts.buckets.iter().sum();
            // Upper bounds in seconds; infinity is the encoder's `+Inf`.
            let buckets: Vec<(f64, u64)> = DURATION_BUCKETS_US
                .iter()
                .map(|&us| us as f64 / 1e6)
                .chain(std::iter::once(f64::INFINITY))
                .zip(counts.buckets)
                .collect();
            let labels = [("status_class", *class)];
            encoder.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                counts.sum_us as f64 / 1e6,
                count,
                &buckets,
                None,
            )?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}
