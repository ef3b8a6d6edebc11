//! The ORT glue: the only code that sees `ffi` types.

pub(crate) mod entry;
