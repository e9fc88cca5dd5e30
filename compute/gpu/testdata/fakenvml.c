/*
 * A stand-in for libnvidia-ml.so.1 with just the functions that Detect
 * calls. FAKE_NVML_MODE picks its behaviour:
 *   ok        two H100 GPUs (the default)
 *   nodriver  nvmlInit_v2 says the driver is not loaded
 *   fail      nvmlInit_v2 fails with an unknown error
 *   lost      the second GPU's memory cannot be read: the GPU is lost
 *   empty     no GPUs
 *   hang      nvmlInit_v2 takes five seconds
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
	unsigned long long total, free, used;
} fakeMemory;

static int mode(const char *m) {
	const char *v = getenv("FAKE_NVML_MODE");
	return strcmp(v ? v : "ok", m) == 0;
}

int nvmlInit_v2(void) {
	if (mode("nodriver")) return 9;
	if (mode("fail")) return 999;
	if (mode("hang")) sleep(5);
	return 0;
}

int nvmlShutdown(void) { return 0; }

const char *nvmlErrorString(int r) {
	switch (r) {
	case 9: return "Driver Not Loaded";
	case 15: return "GPU is lost";
	case 999: return "Unknown Error";
	}
	return "fake error";
}

int nvmlSystemGetDriverVersion(char *v, unsigned int n) {
	snprintf(v, n, "580.65.06");
	return 0;
}

int nvmlSystemGetCudaDriverVersion(int *v) {
	*v = 13000;
	return 0;
}

int nvmlDeviceGetCount_v2(unsigned int *n) {
	*n = mode("empty") ? 0 : 2;
	return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **d) {
	if (i >= 2) return 2;
	*d = (void *)(uintptr_t)(i + 1);
	return 0;
}

int nvmlDeviceGetName(void *d, char *name, unsigned int n) {
	snprintf(name, n, "NVIDIA H100 80GB HBM3");
	return 0;
}

int nvmlDeviceGetUUID(void *d, char *uuid, unsigned int n) {
	snprintf(uuid, n, "GPU-0000000%d-0000-0000-0000-000000000000", (int)(uintptr_t)d - 1);
	return 0;
}

int nvmlDeviceGetMemoryInfo(void *d, fakeMemory *m) {
	if (mode("lost") && (uintptr_t)d == 2) return 15;
	m->total = 81559ULL << 20;
	m->free = 81000ULL << 20;
	m->used = m->total - m->free;
	return 0;
}

int nvmlDeviceGetCudaComputeCapability(void *d, int *major, int *minor) {
	*major = 9;
	*minor = 0;
	return 0;
}
