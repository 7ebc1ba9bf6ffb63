//! The `securetunnel.dev/v1alpha1` API: the `SecureTunnel` resource, its
//! status and the conditions the operator reports.

pub mod cel;
mod cidrs;
pub mod conditions;
mod labels;
mod origin_request;
mod platform;
mod tunnel;

pub use cidrs::*;
pub use labels::*;
pub use origin_request::*;
pub use platform::*;
pub use tunnel::*;
