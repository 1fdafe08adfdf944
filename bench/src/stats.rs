//! The arithmetic of the benchmarks, kept apart from the measuring so that it can be
//! tested: medians, the sustained rate over whole rate windows, and the cost model.

use std::time::Duration;

/// The median of `values` (the mean of the two middle ones for an even count); `None`
/// for no values.
pub fn median(values: &[Duration]) -> Option<Duration> {
    let mut sorted = values.to_vec();
    sorted.sort();
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2),
    }
}

/// One rate window of the fake Chatwork: when it started (seconds on any clock) and the
/// requests it counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start_secs: f64,
    pub counted: u32,
}

/// The rate sustained over whole windows, as a share of the allowed rate (`limit` per
/// `window`): the requests counted by every window but the last, over the time from the
/// first window's start to the last one's. The last window is left out because the work
/// ended inside it; time between windows (a window opens only with the first request
/// after the previous one ended) counts as lost. `None` with fewer than two windows.
pub fn sustained_ratio(windows: &[Window], limit: u32, window: Duration) -> Option<f64> {
    let (first, last) = (windows.first()?, windows.last()?);
    if windows.len() < 2 {
        return None;
    }
    let counted: u64 = windows[..windows.len() - 1]
        .iter()
        .map(|w| u64::from(w.counted))
        .sum();
    let span = last.start_secs - first.start_secs;
    if span <= 0.0 || window.is_zero() || limit == 0 {
        return None;
    }
    let achieved = counted as f64 / span;
    let allowed = f64::from(limit) / window.as_secs_f64();
    Some(achieved / allowed)
}

/// Published prices the cost model uses (AWS, us-east-1; see [`PRICES`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// Lambda duration on arm64 (Graviton), per GB-second, first pricing tier.
    pub lambda_arm64_per_gb_second: f64,
    /// Lambda requests, per million invocations.
    pub lambda_per_million_requests: f64,
    /// SQS FIFO requests, per million (each 64 KB chunk of a payload is one request).
    pub sqs_fifo_per_million_requests: f64,
}

/// AWS's published on-demand prices for us-east-1 (Lambda: arm64 duration in the first
/// tier, up to 7.5 billion GB-seconds a month; SQS: FIFO queues past the free tier).
/// Free tiers are left out.
pub const PRICES: Prices = Prices {
    lambda_arm64_per_gb_second: 0.000_013_333_4,
    lambda_per_million_requests: 0.20,
    sqs_fifo_per_million_requests: 0.50,
};

/// Where [`PRICES`] come from, printed with the cost.
pub const PRICES_SOURCE: &str = "AWS public price pages (aws.amazon.com/lambda/pricing, aws.amazon.com/sqs/pricing), us-east-1, as published through 2025 and 2026 (first tiers; free tiers left out)";

/// SQS requests per queue message (one room of a messages sync): its share of a
/// `SendMessageBatch` of ten, of a `ReceiveMessage` that returns ten (the event source
/// mapping's poll), and of a `DeleteMessageBatch` of ten. Bodies are far below 64 KB, so
/// each call is one billed request. Empty polls of an idle queue are a fixed cost per
/// poller, not per message, and are left out.
pub const SQS_REQUESTS_PER_QUEUE_MESSAGE: f64 = 0.1 + 0.1 + 0.1;

/// What one Lambda invocation of the messages consumer did, as measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Invocation {
    pub duration: Duration,
    /// Chatwork messages it synced (stored or updated).
    pub messages: u64,
    /// Queue messages (rooms) in its batch.
    pub records: u64,
}

/// The cost of syncing one million Chatwork messages, by part, in US dollars.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    pub lambda_duration: f64,
    pub lambda_requests: f64,
    pub sqs: f64,
}

impl Cost {
    pub fn total(&self) -> f64 {
        self.lambda_duration + self.lambda_requests + self.sqs
    }
}

/// The cost per million synced messages of invocations like `invocation` on a function
/// configured with `memory_mb` (Lambda bills the configured memory, not the memory
/// used, and each invocation's duration rounded up to the millisecond).
pub fn cost_per_million_messages(invocation: Invocation, memory_mb: u32, prices: Prices) -> Cost {
    let invocations = 1e6 / invocation.messages.max(1) as f64;
    let billed_secs = (invocation.duration.as_secs_f64() * 1000.0).ceil() / 1000.0;
    let gb = f64::from(memory_mb) / 1024.0;
    let queue_messages = invocations * invocation.records as f64;
    Cost {
        lambda_duration: invocations * billed_secs * gb * prices.lambda_arm64_per_gb_second,
        lambda_requests: invocations * prices.lambda_per_million_requests / 1e6,
        sqs: queue_messages * SQS_REQUESTS_PER_QUEUE_MESSAGE * prices.sqs_fifo_per_million_requests
            / 1e6,
    }
}

/// Bytes in mebibytes, for sizes and memory.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_two_middle_ones() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[ms(5)]), Some(ms(5)));
        assert_eq!(median(&[ms(9), ms(1), ms(5)]), Some(ms(5)));
        assert_eq!(median(&[ms(4), ms(1), ms(10), ms(2)]), Some(ms(3)));
    }

    #[test]
    fn the_sustained_ratio_leaves_out_the_last_window_and_counts_gaps_as_lost() {
        let w = |start_secs, counted| Window {
            start_secs,
            counted,
        };
        // Full windows back to back: the allowed rate exactly.
        let back_to_back = [w(0.0, 30), w(3.0, 30), w(6.0, 30), w(9.0, 4)];
        let ratio = sustained_ratio(&back_to_back, 30, Duration::from_secs(3)).unwrap();
        assert!((ratio - 1.0).abs() < 1e-9, "{ratio}");
        // A second lost after each window: 90 requests in 12 s against 10/s.
        let gaps = [w(0.0, 30), w(4.0, 30), w(8.0, 30), w(12.0, 1)];
        let ratio = sustained_ratio(&gaps, 30, Duration::from_secs(3)).unwrap();
        assert!((ratio - 0.75).abs() < 1e-9, "{ratio}");
        assert_eq!(
            sustained_ratio(&[w(0.0, 30)], 30, Duration::from_secs(3)),
            None
        );
        assert_eq!(sustained_ratio(&[], 30, Duration::from_secs(3)), None);
    }

    #[test]
    fn the_cost_model_bills_rounded_milliseconds_at_the_configured_memory() {
        let prices = Prices {
            lambda_arm64_per_gb_second: 1.0,
            lambda_per_million_requests: 1.0,
            sqs_fifo_per_million_requests: 1.0,
        };
        // 1,000 messages in 10 rooms per invocation: 1,000 invocations per million.
        let invocation = Invocation {
            duration: Duration::from_micros(499_200),
            messages: 1000,
            records: 10,
        };
        let cost = cost_per_million_messages(invocation, 128, prices);
        // 1,000 invocations x 0.5 s (rounded up from 499.2 ms) x 0.125 GB.
        assert!((cost.lambda_duration - 62.5).abs() < 1e-9, "{cost:?}");
        assert!((cost.lambda_requests - 0.001).abs() < 1e-12, "{cost:?}");
        // 10,000 queue messages x 0.3 requests.
        assert!((cost.sqs - 0.003).abs() < 1e-12, "{cost:?}");
        assert!((cost.total() - 62.504).abs() < 1e-9);
    }

    #[test]
    fn published_prices_give_cents_per_million_messages_for_a_half_second_batch() {
        let invocation = Invocation {
            duration: Duration::from_millis(500),
            messages: 1000,
            records: 10,
        };
        let cost = cost_per_million_messages(invocation, 128, PRICES);
        // 1,000 x 0.5 s x 0.125 GB x $0.0000133334 = $0.00083; + $0.0002 + $0.0015.
        assert!((cost.total() - 0.002_533_3).abs() < 1e-6, "{cost:?}");
    }
}
