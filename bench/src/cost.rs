//! Cost per million events at AWS us-east-1 list prices, computed from measured figures: invocations and
//! billed duration per event × the template's memory sizes, SQS requests, DynamoDB request units and
//! log bytes. Prices are constants with their page; change them here when the pages change.

use serde::Serialize;

/// When the prices below were recorded from their pages (the bench does not fetch them).
pub const PRICES_AS_OF: &str = "2026-11-22";

/// AWS Lambda, arm64, us-east-1, per GB-second (first 7.5 billion GB-s a month).
/// <https://aws.amazon.com/lambda/pricing/>
pub const LAMBDA_ARM64_PER_GB_S: f64 = 0.000_013_333_4;
/// AWS Lambda, per request (any architecture). <https://aws.amazon.com/lambda/pricing/>
pub const LAMBDA_PER_REQUEST: f64 = 0.20 / 1e6;
/// Lambda bills duration in 1 ms steps.
pub const LAMBDA_BILLING_STEP_MS: f64 = 1.0;
/// Lambda's smallest memory size, for the floor.
pub const LAMBDA_MIN_MEMORY_MB: u32 = 128;
/// Amazon SQS FIFO queues, us-east-1, per request (first 100 billion a month; each 64 KB chunk of a
/// payload is one request). <https://aws.amazon.com/sqs/pricing/>
pub const SQS_FIFO_PER_REQUEST: f64 = 0.50 / 1e6;
/// Amazon DynamoDB on-demand, us-east-1, Standard table class, per write / read request unit.
/// <https://aws.amazon.com/dynamodb/pricing/on-demand/>
pub const DYNAMODB_PER_WRU: f64 = 0.625 / 1e6;
pub const DYNAMODB_PER_RRU: f64 = 0.125 / 1e6;
/// Amazon CloudWatch Logs, us-east-1, Standard log class, per GB ingested.
/// <https://aws.amazon.com/cloudwatch/pricing/>
pub const CLOUDWATCH_LOGS_PER_GB: f64 = 0.50;
/// AWS Secrets Manager, per secret per month. <https://aws.amazon.com/secrets-manager/pricing/>
pub const SECRETS_MANAGER_PER_SECRET_MONTH: f64 = 0.40;

/// Bytes per invocation Lambda itself writes to the function's log group in JSON log format
/// (`platform.start` and `platform.report` records). An estimate, not measured: the bench has no Lambda.
pub const PLATFORM_LOG_BYTES_PER_INVOCATION: f64 = 600.0;

/// Published iPaaS prices per million events (tasks / operations), as quoted in the project's issue 8.
pub const MAKE_PER_MILLION_USD: (f64, f64) = (1_500.0, 2_300.0);
pub const ZAPIER_PER_MILLION_USD: (f64, f64) = (18_000.0, 36_000.0);

const GB: f64 = 1024.0 * 1024.0 * 1024.0;
const MILLION: f64 = 1e6;

/// One function's share of an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionLoad {
    pub function: String,
    pub invocations_per_event: f64,
    /// Wall time per invocation (what Lambda bills), before rounding up to the billing step.
    pub duration_ms: f64,
    pub memory_mb: u32,
    /// What the function writes to its log per invocation (the platform's own lines are added).
    pub log_bytes_per_invocation: f64,
}

/// Everything cost depends on, per event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inputs {
    pub functions: Vec<FunctionLoad>,
    pub sqs_requests_per_event: f64,
    pub rru_per_event: f64,
    pub wru_per_event: f64,
}

/// USD per million events, by service.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Breakdown {
    pub lambda_requests: f64,
    pub lambda_compute: f64,
    pub sqs: f64,
    pub dynamodb: f64,
    pub logs: f64,
    pub total: f64,
}

/// The billed GB-seconds of one invocation.
pub fn gb_seconds(duration_ms: f64, memory_mb: u32) -> f64 {
    let billed_ms = (duration_ms / LAMBDA_BILLING_STEP_MS).ceil().max(1.0) * LAMBDA_BILLING_STEP_MS;
    billed_ms / 1000.0 * f64::from(memory_mb) / 1024.0
}

/// Cost per million events.
pub fn per_million(inputs: &Inputs) -> Breakdown {
    let invocations: f64 = inputs.functions.iter().map(|f| f.invocations_per_event).sum();
    let gb_s: f64 =
        inputs.functions.iter().map(|f| f.invocations_per_event * gb_seconds(f.duration_ms, f.memory_mb)).sum();
    let log_bytes: f64 = inputs
        .functions
        .iter()
        .map(|f| f.invocations_per_event * (f.log_bytes_per_invocation + PLATFORM_LOG_BYTES_PER_INVOCATION))
        .sum();
    let lambda_requests = invocations * LAMBDA_PER_REQUEST * MILLION;
    let lambda_compute = gb_s * LAMBDA_ARM64_PER_GB_S * MILLION;
    let sqs = inputs.sqs_requests_per_event * SQS_FIFO_PER_REQUEST * MILLION;
    let dynamodb = (inputs.wru_per_event * DYNAMODB_PER_WRU + inputs.rru_per_event * DYNAMODB_PER_RRU) * MILLION;
    let logs = log_bytes * MILLION / GB * CLOUDWATCH_LOGS_PER_GB;
    Breakdown {
        lambda_requests,
        lambda_compute,
        sqs,
        dynamodb,
        logs,
        total: lambda_requests + lambda_compute + sqs + dynamodb + logs,
    }
}

/// The floor for any design of this shape: per event one invocation (shortest billed duration at the
/// smallest memory), one queue send and one conditional write, and no logs.
pub fn floor() -> Breakdown {
    let lambda_requests = LAMBDA_PER_REQUEST * MILLION;
    let lambda_compute = gb_seconds(LAMBDA_BILLING_STEP_MS, LAMBDA_MIN_MEMORY_MB) * LAMBDA_ARM64_PER_GB_S * MILLION;
    let sqs = SQS_FIFO_PER_REQUEST * MILLION;
    let dynamodb = DYNAMODB_PER_WRU * MILLION;
    Breakdown {
        lambda_requests,
        lambda_compute,
        sqs,
        dynamodb,
        logs: 0.0,
        total: lambda_requests + lambda_compute + sqs + dynamodb,
    }
}

/// The cost of one cold start's init phase (billed for custom runtimes), in USD.
pub fn init_cost(init_ms: f64, memory_mb: u32) -> f64 {
    gb_seconds(init_ms, memory_mb) * LAMBDA_ARM64_PER_GB_S
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn duration_is_billed_in_whole_milliseconds_at_the_functions_memory() {
        assert!(close(gb_seconds(0.2, 1024), 0.001));
        assert!(close(gb_seconds(1.5, 256), 0.002 * 0.25));
        assert!(close(gb_seconds(1000.0, 512), 0.5));
    }

    #[test]
    fn the_floor_is_one_request_one_send_and_one_write_unit() {
        let f = floor();
        let expected = 0.20 + 0.50 + 0.625 + 1e6 * gb_seconds(1.0, 128) * LAMBDA_ARM64_PER_GB_S;
        assert!(close(f.total, expected), "{f:?}");
        assert!(close(f.logs, 0.0));
    }

    #[test]
    fn every_service_adds_its_share() {
        let inputs = Inputs {
            functions: vec![
                FunctionLoad {
                    function: "receiver".into(),
                    invocations_per_event: 1.0,
                    duration_ms: 10.0,
                    memory_mb: 256,
                    log_bytes_per_invocation: 400.0,
                },
                FunctionLoad {
                    function: "mapper".into(),
                    invocations_per_event: 1.0,
                    duration_ms: 100.0,
                    memory_mb: 256,
                    log_bytes_per_invocation: 1000.0,
                },
            ],
            sqs_requests_per_event: 3.0,
            rru_per_event: 2.0,
            wru_per_event: 4.0,
        };
        let b = per_million(&inputs);
        assert!(close(b.lambda_requests, 0.40));
        assert!(close(b.lambda_compute, 1e6 * (0.0025 + 0.025) * LAMBDA_ARM64_PER_GB_S));
        assert!(close(b.sqs, 1.50));
        assert!(close(b.dynamodb, 4.0 * 0.625 + 2.0 * 0.125));
        assert!(close(b.logs, 1e6 * (400.0 + 1000.0 + 2.0 * PLATFORM_LOG_BYTES_PER_INVOCATION) / GB * 0.50));
        assert!(close(b.total, b.lambda_requests + b.lambda_compute + b.sqs + b.dynamodb + b.logs));
    }
}
