/*
 * AsyMo EP — an ONNX Runtime plugin execution provider for asymmetric multicore CPUs.
 *
 * Applications do not call these entry points themselves: register the library with ONNX Runtime
 * (OrtApi::RegisterExecutionProviderLibrary, or onnxruntime.register_execution_provider_library in Python), pick the
 * OrtEpDevice whose ep_name is ASYMO_EP_NAME from OrtApi::GetEpDevices, and append it to the session options with
 * OrtApi::SessionOptionsAppendExecutionProvider_V2, passing options by their short keys (e.g. "log_plan"). ORT hands
 * them to the EP as session config entries ASYMO_EP_OPTION_PREFIX + key.
 *
 * Requires ONNX Runtime 1.24 or newer (tested with 1.31.1).
 */
#ifndef ASYMO_EP_H
#define ASYMO_EP_H

#include <stddef.h>

#define ASYMO_EP_NAME "AsyMoExecutionProvider"
#define ASYMO_EP_VENDOR "AsyMo"
#define ASYMO_EP_VERSION "0.1.0"

/* Prefix of the session config keys the EP reads: "ep." + lowercased EP name + ".". */
#define ASYMO_EP_OPTION_PREFIX "ep.asymoexecutionprovider."

/* Option keys (values are strings). An unknown key or a bad value fails session creation. */
#define ASYMO_EP_OPTION_LOG_PLAN "log_plan" /* "0" | "1": log each compiled node's plan at WARNING level */

#ifdef __cplusplus
extern "C" {
#endif

struct OrtStatus;
struct OrtApiBase;
struct OrtLogger;
struct OrtEpFactory;

/* Called by ONNX Runtime when the library is registered: creates the EP factory. */
struct OrtStatus* CreateEpFactories(const char* registered_name, const struct OrtApiBase* ort_api_base,
                                    const struct OrtLogger* default_logger, struct OrtEpFactory** factories,
                                    size_t max_factories, size_t* num_factories);

/* Called by ONNX Runtime when the library is unregistered. */
struct OrtStatus* ReleaseEpFactory(struct OrtEpFactory* factory);

#ifdef __cplusplus
}
#endif

#endif /* ASYMO_EP_H */
