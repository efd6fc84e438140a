//! The AWS SDK's configuration, built one way for every AWS client campbridge makes (the functions, the
//! operator commands, the tests and the bench).
//!
//! The workspace builds the SDK without its default HTTPS client (rustls on aws-lc-rs): the upstream
//! clients (reqwest) use rustls on ring, and linking both crypto libraries made every function about a
//! megabyte larger (decision 0004). So each SDK configuration gets [`https_client`] — the SDK's own hyper +
//! rustls client with ring as the crypto provider, trusting the system's root certificates as the default
//! client does. An SDK client built without it has no HTTP client and fails its first call with the SDK's
//! "no HTTP client" error, so every place that loads or builds a configuration goes through here.

use aws_config::{BehaviorVersion, ConfigLoader};
use aws_sdk_sqs::config::SharedHttpClient;
use aws_smithy_http_client::Builder;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// The SDK's HTTPS client (plain HTTP too, for emulators on loopback) on rustls with ring.
pub fn https_client() -> SharedHttpClient {
    Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// `aws_config::defaults` with the latest behaviour version and [`https_client`]: region, credentials and
/// endpoints (`AWS_ENDPOINT_URL*`) from the standard AWS environment.
pub fn defaults() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(https_client())
}

/// [`defaults`], loaded.
pub async fn load() -> aws_config::SdkConfig {
    defaults().load().await
}
