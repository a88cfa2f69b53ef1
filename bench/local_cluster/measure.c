/*===- measure.c - measure this machine as a cluster file ------------------===
 *
 * Two MPI ranks on this machine, one core each (as the CPU executables run
 * under `mpirun -np 2`): single-core SGEMM throughput (OpenBLAS, one thread),
 * single-core memory bandwidth (a triad over 256 MiB), and MPI point-to-point
 * bandwidth (4-64 MiB messages) and latency (8 bytes) over shared memory.
 * Rank 0 prints the cluster file (DESIGN.md section 5) on stdout.
 *
 *   mpicc -O2 measure.c -o measure -lopenblas -lm
 *   mpirun -np 2 ./measure > examples/clusters/local-cpu.json
 *
 *===----------------------------------------------------------------------===*/
#include <cblas.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void openblas_set_num_threads(int);

static double now(void) { return MPI_Wtime(); }

static double sgemmGflops(void) {
  const int n = 1024;
  float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
        *c = malloc(sizeof(float) * n * n);
  for (int i = 0; i < n * n; ++i) {
    a[i] = (float)(i % 7) * 0.1f;
    b[i] = (float)(i % 5) * 0.2f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b,
              n, 0, c, n);
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    double t = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n,
                b, n, 0, c, n);
    t = now() - t;
    double g = 2.0 * n * n * n / t / 1e9;
    if (g > best)
      best = g;
  }
  free(a), free(b), free(c);
  return best;
}

static double triadGBps(void) {
  const size_t n = (256u << 20) / sizeof(double) / 3;
  double *a = malloc(n * sizeof(double)), *b = malloc(n * sizeof(double)),
         *c = malloc(n * sizeof(double));
  for (size_t i = 0; i < n; ++i)
    a[i] = 1, b[i] = 2, c[i] = 0;
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    double t = now();
    for (size_t i = 0; i < n; ++i)
      c[i] = a[i] + 1.5 * b[i];
    t = now() - t;
    double g = 3.0 * n * sizeof(double) / t / 1e9;
    if (g > best)
      best = g;
  }
  volatile double sink = c[n / 2];
  (void)sink;
  free(a), free(b), free(c);
  return best;
}

/* Ping-pong between ranks 0 and 1: one-way time of `bytes`. */
static double oneWay(char *buf, int bytes, int reps, int rank) {
  MPI_Barrier(MPI_COMM_WORLD);
  double t = now();
  for (int r = 0; r < reps; ++r) {
    if (rank == 0) {
      MPI_Send(buf, bytes, MPI_CHAR, 1, 0, MPI_COMM_WORLD);
      MPI_Recv(buf, bytes, MPI_CHAR, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
      MPI_Recv(buf, bytes, MPI_CHAR, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(buf, bytes, MPI_CHAR, 0, 0, MPI_COMM_WORLD);
    }
  }
  return (now() - t) / (2.0 * reps);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size != 2) {
    if (rank == 0)
      fprintf(stderr, "measure: run with mpirun -np 2 (got %d ranks)\n", size);
    MPI_Finalize();
    return 1;
  }
  openblas_set_num_threads(1);
  /* One rank at a time, so that each measures a core of an idle machine's
   * share, then both at once for the figures under load. */
  double gflops = 0, gbps = 0;
  for (int turn = 0; turn < 2; ++turn) {
    MPI_Barrier(MPI_COMM_WORLD);
    double g = sgemmGflops(), m = triadGBps();
    if (turn == 1)
      gflops = g, gbps = m;
  }
  double g1 = 0, m1 = 0;
  MPI_Reduce(&gflops, &g1, 1, MPI_DOUBLE, MPI_MIN, 0, MPI_COMM_WORLD);
  MPI_Reduce(&gbps, &m1, 1, MPI_DOUBLE, MPI_MIN, 0, MPI_COMM_WORLD);

  int big = 64 << 20;
  char *buf = malloc(big);
  memset(buf, 1, big);
  double lat = oneWay(buf, 8, 2000, rank);
  double bw = 0;
  for (int bytes = 4 << 20; bytes <= big; bytes <<= 2) {
    double t = oneWay(buf, bytes, 10, rank);
    if (bytes / t / 1e9 > bw)
      bw = bytes / t / 1e9;
  }
  free(buf);
  if (rank == 0) {
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGE_SIZE);
    double memGiB = (double)pages * psize / (1024.0 * 1024 * 1024) / size;
    printf("{\n \"name\": \"local-cpu\",\n"
           " \"_comment\": \"measured by bench/local_cluster/measure.c: one "
           "core per rank, MPI over shared memory; peaks are achieved rates "
           "(sgemm, copy); the ranks share the cores; a training step reaches "
           "0.63 of the sgemm rate, and a GEMM of f FLOPs per thread "
           "f / (f + 2e7) of that (fit on 8 measured steps, "
           "docs/benchmarks.md)\",\n"
           " \"nodes\": 1, \"devices_per_node\": %d, \"ranks_share_node\": true,\n"
           " \"device\": {\"kind\": \"x86-64 core\", \"peak_tflops\": "
           "{\"fp32\": %.4f}, \"memory_gib\": %.1f, \"memory_bw_gbps\": %.2f},\n"
           " \"links\": {\"intra_node\": {\"bw_gbps\": %.2f, \"latency_us\": "
           "%.2f},\n           \"inter_node\": {\"bw_gbps\": %.2f, "
           "\"latency_us\": %.2f}},\n"
           " \"efficiency\": {\"compute\": 0.63, \"gemm_flops_half\": 2e7, \"memory\": 1.0, "
           "\"intra_node\": 1.0, \"inter_node\": 1.0, \"dp_overlap\": 0.0}\n}\n",
           size, g1 / 1000.0, memGiB, m1, bw, lat * 1e6, bw, lat * 1e6);
  }
  MPI_Finalize();
  return 0;
}
