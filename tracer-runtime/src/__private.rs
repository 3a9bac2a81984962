//! The one seam between `#[traced]` and the runtime: everything the macro expands to, as
//! re-exports of the modules that do the work (`traced`: the span's life; `attrs`: values
//! recorded at entry; `traced_err`: the returned error).
//!
//! Not public API: names and signatures change without notice.

pub use opentelemetry::trace::SpanKind;

pub use crate::attrs::{Attrs, IntoAttrValue, StaticStr, VALUE_CAP, no_attrs};
pub use crate::switch::on;
pub use crate::traced::{
    Begun, CANCELLED, Instrumented, Live, Meta, SyncGuard, enter, no_record, run_sync, start,
};
pub use crate::traced_err::{
    ErrDisplay, ErrRef, TracedResult, ViaDisplay, ViaDynError, ViaDynErrorSend,
    ViaDynErrorSendSync, ViaError, as_result,
};
