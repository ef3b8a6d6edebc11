//! Compute kernels (no ORT types): GEMM, GEMV, convolution lowering, epilogues.
