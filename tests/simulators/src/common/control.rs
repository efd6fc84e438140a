//! Control-API routes every simulator shares: call counts, faults, webhook deliveries.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{CallCounter, Calls, DeliveryRecord, Dispatcher, Faults, SharedFaults};

/// What the shared control routes need from a simulator.
pub trait Controllable: Send + Sync + 'static {
    /// The call counter.
    fn counter(&self) -> &CallCounter;
    /// The fault switchboard.
    fn fault_switch(&self) -> &SharedFaults;
    /// The webhook dispatcher.
    fn dispatcher(&self) -> &Dispatcher;
}

/// `/_control/calls`, `/_control/calls/reset`, `/_control/faults`, `/_control/deliveries`,
/// `/_control/deliveries/release`, `/_control/settle`.
pub fn router<T: Controllable>(sim: Arc<T>) -> Router {
    Router::new()
        .route("/_control/calls", get(calls::<T>))
        .route("/_control/calls/reset", post(reset_calls::<T>))
        .route("/_control/faults", get(get_faults::<T>).put(put_faults::<T>))
        .route("/_control/deliveries", get(deliveries::<T>).delete(clear_deliveries::<T>))
        .route("/_control/deliveries/release", post(release::<T>))
        .route("/_control/settle", post(settle::<T>))
        .with_state(sim)
}

async fn calls<T: Controllable>(State(sim): State<Arc<T>>) -> Json<Calls> {
    Json(sim.counter().snapshot())
}

async fn reset_calls<T: Controllable>(State(sim): State<Arc<T>>) -> StatusCode {
    sim.counter().reset();
    StatusCode::NO_CONTENT
}

async fn get_faults<T: Controllable>(State(sim): State<Arc<T>>) -> Json<Faults> {
    Json(sim.fault_switch().get())
}

async fn put_faults<T: Controllable>(State(sim): State<Arc<T>>, Json(faults): Json<Faults>) -> Json<Faults> {
    sim.fault_switch().set(faults);
    Json(sim.fault_switch().get())
}

async fn deliveries<T: Controllable>(State(sim): State<Arc<T>>) -> Json<Vec<DeliveryRecord>> {
    Json(sim.dispatcher().log())
}

async fn clear_deliveries<T: Controllable>(State(sim): State<Arc<T>>) -> StatusCode {
    sim.dispatcher().clear_log();
    StatusCode::NO_CONTENT
}

async fn release<T: Controllable>(State(sim): State<Arc<T>>) -> StatusCode {
    sim.dispatcher().release_held();
    StatusCode::NO_CONTENT
}

async fn settle<T: Controllable>(State(sim): State<Arc<T>>) -> StatusCode {
    sim.dispatcher().settle().await;
    StatusCode::NO_CONTENT
}
