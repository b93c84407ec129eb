//! What the policy would do to a cluster, before it is installed: the
//! binding of every bound pod of a snapshot is replayed, oldest first,
//! through the real `policy.wasm`, with host calls answered from the
//! snapshot as it stood at that binding; then each ReplicaSet's deletion
//! order is computed as the ReplicaSet controller would, and optional
//! scale-downs are applied.

pub mod apply;
pub mod audit;
pub mod backfill;
pub mod cli;
pub mod expected;
mod export;
pub mod html;
pub mod live;
pub mod manifest;
pub mod policy_source;
pub mod rebalance;
pub mod registry;
pub mod report;
pub mod scale;
pub mod selectors;
pub mod simulate;
pub mod table;

pub use manifest::{DEFAULT_TOPOLOGY_KEY, PolicyConfig, check_settings, zone_label};
pub use report::{
    BindingReport, PodReport, PolicySummary, ReplicaSetReport, Report, ScaleReport, SnapshotSummary,
};
pub use scale::ScaleTarget;
pub use selectors::Selector;
pub use simulate::{Options, simulate, simulate_with_progress};
pub use table::render_table;
pub(crate) use table::table;
