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

/* Option keys (values are strings). An unknown key or a bad value fails session creation with a message naming
 * the key, the value and the accepted values. See README.md for defaults and details. */
#define ASYMO_EP_OPTION_TOPOLOGY "topology"             /* "auto" | classes "cpus:capacity[,cpus:capacity...]" */
#define ASYMO_EP_OPTION_CORES "cores"                   /* "all" | cpu list, e.g. "0,2-3" */
#define ASYMO_EP_OPTION_SYSFS_ROOT "sysfs_root"         /* directory holding devices/system/cpu (default /sys) */
#define ASYMO_EP_OPTION_PROFILE "profile"               /* JSON profile from asymo-profile */
#define ASYMO_EP_OPTION_CALIBRATION_CACHE "calibration_cache" /* directory for cached quick calibrations */
#define ASYMO_EP_OPTION_SCHEDULE "schedule"             /* "asymo" | "equal" */
#define ASYMO_EP_OPTION_STEAL "steal"                   /* "1" | "0" */
#define ASYMO_EP_OPTION_ADAPT "adapt"                   /* "1" | "0" */
#define ASYMO_EP_OPTION_LOG_PLAN "log_plan"             /* "1" | "0" */
#define ASYMO_EP_OPTION_SMT "smt"                       /* "1" | "0": a worker per hardware thread or per core */
#define ASYMO_EP_OPTION_MIN_TASK_US "min_task_us"       /* tuning: smallest predicted task, microseconds */
#define ASYMO_EP_OPTION_TASKS_PER_CORE "tasks_per_core" /* tuning: most tasks per core in a plan */
#define ASYMO_EP_OPTION_SPIN_US "spin_us"               /* tuning: idle spin before parking, microseconds */
#define ASYMO_EP_OPTION_LAYOUT "layout"                 /* "nchw" | "nhwc": data layout asked of ORT (nhwc: channels-last convolutions and pools) */
#define ASYMO_EP_OPTION_CALLER_AFFINITY "caller_affinity" /* "1" | "0": keep ORT's calling thread on the fastest cores during Run */
#define ASYMO_EP_OPTION_MODE "mode"                     /* "latency" | "energy" */
#define ASYMO_EP_OPTION_FREQ "freq"                     /* "off" | "auto" | "max" | frequency in kHz */
#define ASYMO_EP_OPTION_FREQ_HOLD_MS "freq_hold_ms"     /* milliseconds frequencies stay set after a run */
#define ASYMO_EP_OPTION_FREQ_BACKEND "freq_backend"     /* "auto" | "sysfs" | "uclamp" | "none" */
#define ASYMO_EP_OPTION_FREQ_STATE_DIR "freq_state_dir" /* directory recording original frequency settings */

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
