/* Register AsyMo EP from C, run a model on it and compare with the expected output.
 *
 * usage: asymo_c_api_test MODEL.onnx INPUT.f32 N,C,H,W EXPECTED.f32
 * INPUT.f32 / EXPECTED.f32 are raw little-endian float32 (written by the Python driver from ORT's CPU EP).
 * Exit status 0 when the output matches within 1e-4 x max|expected| and a bad option is rejected cleanly.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <onnxruntime_c_api.h>

#include "asymo_ep.h"

static const OrtApi* api;

#define CHECK(expr)                                                         \
  do {                                                                      \
    OrtStatus* status_ = (expr);                                            \
    if (status_) {                                                          \
      fprintf(stderr, "%s failed: %s\n", #expr, api->GetErrorMessage(status_)); \
      api->ReleaseStatus(status_);                                          \
      return 1;                                                             \
    }                                                                       \
  } while (0)

static float* read_floats(const char* path, size_t* count) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  float* data = malloc((size_t)bytes);
  *count = fread(data, sizeof(float), (size_t)bytes / sizeof(float), f);
  fclose(f);
  return data;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s MODEL INPUT N,C,H,W EXPECTED\n", argv[0]);
    return 2;
  }
  api = OrtGetApiBase()->GetApi(ORT_API_VERSION);
  OrtEnv* env;
  CHECK(api->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "asymo-c", &env));
  CHECK(api->RegisterExecutionProviderLibrary(env, "asymo", ASYMO_EP_LIBRARY_PATH));

  const OrtEpDevice* const* devices;
  size_t num_devices;
  CHECK(api->GetEpDevices(env, &devices, &num_devices));
  const OrtEpDevice* ours = NULL;
  for (size_t i = 0; i < num_devices; ++i) {
    if (strcmp(api->EpDevice_EpName(devices[i]), ASYMO_EP_NAME) == 0) ours = devices[i];
  }
  if (!ours) {
    fprintf(stderr, "no %s device among %zu devices\n", ASYMO_EP_NAME, num_devices);
    return 1;
  }
  printf("device: %s by %s\n", api->EpDevice_EpName(ours), api->EpDevice_EpVendor(ours));
  const char* kernels = api->GetKeyValue(api->EpDevice_EpMetadata(ours), "asymo.kernels");
  printf("asymo.kernels=%s\n", kernels ? kernels : "?");

  /* A bad option must fail session creation with a message naming it. */
  {
    OrtSessionOptions* bad;
    CHECK(api->CreateSessionOptions(&bad));
    const char* keys[] = {"bogus_key"};
    const char* values[] = {"42"};
    CHECK(api->SessionOptionsAppendExecutionProvider_V2(bad, env, &ours, 1, keys, values, 1));
    OrtSession* session = NULL;
    OrtStatus* status = api->CreateSession(env, argv[1], bad, &session);
    if (!status || !strstr(api->GetErrorMessage(status), "bogus_key")) {
      fprintf(stderr, "a bogus option was not rejected with a message naming it\n");
      return 1;
    }
    printf("bad option rejected: %s\n", api->GetErrorMessage(status));
    api->ReleaseStatus(status);
    api->ReleaseSessionOptions(bad);
  }

  OrtSessionOptions* options;
  CHECK(api->CreateSessionOptions(&options));
  const char* keys[] = {ASYMO_EP_OPTION_LOG_PLAN};
  const char* values[] = {"0"};
  CHECK(api->SessionOptionsAppendExecutionProvider_V2(options, env, &ours, 1, keys, values, 1));
  OrtSession* session;
  CHECK(api->CreateSession(env, argv[1], options, &session));

  int64_t shape[4];
  if (sscanf(argv[3], "%ld,%ld,%ld,%ld", &shape[0], &shape[1], &shape[2], &shape[3]) != 4) return 2;
  size_t n_in, n_expected;
  float* input = read_floats(argv[2], &n_in);
  float* expected = read_floats(argv[4], &n_expected);
  if (!input || !expected || (int64_t)n_in != shape[0] * shape[1] * shape[2] * shape[3]) {
    fprintf(stderr, "cannot read input/expected files\n");
    return 2;
  }
  OrtMemoryInfo* mem;
  CHECK(api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &mem));
  OrtValue* in_value = NULL;
  CHECK(api->CreateTensorWithDataAsOrtValue(mem, input, n_in * sizeof(float), shape, 4,
                                            ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &in_value));
  OrtAllocator* allocator;
  CHECK(api->GetAllocatorWithDefaultOptions(&allocator));
  char *in_name, *out_name;
  CHECK(api->SessionGetInputName(session, 0, allocator, &in_name));
  CHECK(api->SessionGetOutputName(session, 0, allocator, &out_name));
  const char* in_names[] = {in_name};
  const char* out_names[] = {out_name};
  OrtValue* out_value = NULL;
  CHECK(api->Run(session, NULL, in_names, (const OrtValue* const*)&in_value, 1, out_names, 1, &out_value));

  OrtTensorTypeAndShapeInfo* info;
  CHECK(api->GetTensorTypeAndShape(out_value, &info));
  size_t n_out;
  CHECK(api->GetTensorShapeElementCount(info, &n_out));
  float* out;
  CHECK(api->GetTensorMutableData(out_value, (void**)&out));
  if (n_out != n_expected) {
    fprintf(stderr, "output has %zu elements, expected %zu\n", n_out, n_expected);
    return 1;
  }
  double max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < n_out; ++i) {
    max_diff = fmax(max_diff, fabs((double)out[i] - expected[i]));
    max_ref = fmax(max_ref, fabs((double)expected[i]));
  }
  printf("output elements %zu, max |diff| %.3g, max |expected| %.3g\n", n_out, max_diff, max_ref);

  api->ReleaseTensorTypeAndShapeInfo(info);
  api->ReleaseValue(out_value);
  api->ReleaseValue(in_value);
  allocator->Free(allocator, in_name);
  allocator->Free(allocator, out_name);
  api->ReleaseMemoryInfo(mem);
  api->ReleaseSession(session);
  api->ReleaseSessionOptions(options);
  CHECK(api->UnregisterExecutionProviderLibrary(env, "asymo"));
  api->ReleaseEnv(env);
  free(input);
  free(expected);
  if (max_diff > 1e-4 * fmax(max_ref, 1e-6)) {
    fprintf(stderr, "output differs from the CPU EP\n");
    return 1;
  }
  printf("OK\n");
  return 0;
}
