//! ONNX semantics of the claimed ops: shapes, attributes, broadcasting, lowering to GEMM jobs.
