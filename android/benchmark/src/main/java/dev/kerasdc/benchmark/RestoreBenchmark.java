package dev.kerasdc.benchmark;

import dev.kerasdc.bundle.BundleRestorer;
import dev.kerasdc.bundle.HuffmanDecoding;
import dev.kerasdc.bundle.Sidecar;
import java.io.File;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Files;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.Locale;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * JVM restore throughput of a bundle, side by side with {@link Inflater} on the gzip -9 of the
 * same restored file.
 *
 * <p>Usage: {@code RestoreBenchmark SKELETON SIDECAR RESTORED.gz [RUNS [WARMUP]]}. Prints one line
 * per measurement: the median wall time over RUNS runs (after WARMUP unmeasured runs of every
 * measurement; the measurements take turns, so that a change in the machine's load hits all of
 * them alike), the throughput in MB (10^6 bytes) of restored file per second, and the median CPU
 * time of the measuring thread (which a busy machine inflates less than wall time). Then the
 * restore side by side with the Inflater, and the share of SHA-256.
 */
public final class RestoreBenchmark {
  private RestoreBenchmark() {}

  private interface Task {
    Object run() throws Exception;
  }

  public static void main(String[] args) throws Exception {
    if (args.length < 3 || args.length > 5) {
      System.err.println("usage: RestoreBenchmark SKELETON SIDECAR RESTORED.gz [RUNS [WARMUP]]");
      System.exit(2);
    }
    final byte[] skeleton = read(args[0]);
    final byte[] sidecar = read(args[1]);
    final byte[] gzip = read(args[2]);
    int runs = args.length > 3 ? Integer.parseInt(args[3]) : 15;
    int warmup = args.length > 4 ? Integer.parseInt(args[4]) : 5;
    final BundleRestorer restorer = new BundleRestorer();
    final BundleRestorer table =
        new BundleRestorer(Sidecar.MAX_RESTORED_SIZE, HuffmanDecoding.TABLE);
    final BundleRestorer inflater =
        new BundleRestorer(Sidecar.MAX_RESTORED_SIZE, HuffmanDecoding.INFLATER);
    final byte[] restored = restorer.restore(skeleton, sidecar);
    final int size = restored.length;
    byte[] inflated = gunzip(gzip, size);
    if (!Arrays.equals(inflated, restored)) {
      throw new IllegalStateException("the gzip file does not hold the restored bundle");
    }
    Sidecar parsed = Sidecar.parse(sidecar);
    System.out.printf(
        Locale.ROOT,
        "restored %d bytes from skeleton %d + sidecar %d bytes (%d segments); gzip -9 %d bytes%n",
        size, skeleton.length, sidecar.length, parsed.getSegments().size(), gzip.length);

    String[] names = {
      "keras-dc restore -> byte[] (all checks, SHA-256)",
      "  same, HuffmanDecoding.TABLE",
      "  same, HuffmanDecoding.INFLATER",
      "keras-dc restoreDirect -> direct ByteBuffer",
      "keras-dc check only (CRCs, skeleton SHA-256)",
      "SHA-256 of the restored file alone",
      "Inflater gzip -9 -> byte[] (+ CRC-32)",
      "Inflater gzip -9 -> byte[] (no CRC)",
    };
    Task[] tasks = {
      () -> restorer.restore(skeleton, sidecar),
      () -> table.restore(skeleton, sidecar),
      () -> inflater.restore(skeleton, sidecar),
      () -> restorer.restoreDirect(skeleton, sidecar),
      () -> restorer.check(skeleton, sidecar),
      () -> MessageDigest.getInstance("SHA-256").digest(restored),
      () -> gunzipChecked(gzip, size),
      () -> gunzip(gzip, size),
    };
    for (int t = 0; t < 3; t++) {
      if (!Arrays.equals((byte[]) tasks[t].run(), restored)) {
        throw new IllegalStateException(names[t] + " restored other bytes");
      }
    }
    for (int w = 0; w < warmup; w++) {
      for (Task task : tasks) {
        task.run();
      }
    }
    ThreadMXBean threads = ManagementFactory.getThreadMXBean();
    boolean cpu = threads.isCurrentThreadCpuTimeSupported();
    long[][] nanos = new long[tasks.length][runs];
    long[][] cpuNanos = new long[tasks.length][runs];
    for (int r = 0; r < runs; r++) {
      for (int t = 0; t < tasks.length; t++) { // interleaved: load changes hit all alike
        long cpuStart = cpu ? threads.getCurrentThreadCpuTime() : 0;
        long start = System.nanoTime();
        Object result = tasks[t].run();
        nanos[t][r] = System.nanoTime() - start;
        cpuNanos[t][r] = cpu ? threads.getCurrentThreadCpuTime() - cpuStart : 0;
        if (result == null) {
          throw new IllegalStateException();
        }
      }
    }
    double[] medians = new double[tasks.length];
    double[] cpuMedians = new double[tasks.length];
    for (int t = 0; t < tasks.length; t++) {
      long[] sorted = nanos[t].clone();
      Arrays.sort(sorted);
      medians[t] = sorted[runs / 2] / 1e6;
      long[] cpuSorted = cpuNanos[t].clone();
      Arrays.sort(cpuSorted);
      cpuMedians[t] = cpuSorted[runs / 2] / 1e6;
      System.out.printf(
          Locale.ROOT,
          "%-50s median %9.3f ms  %8.1f MB/s  (min %.3f ms; cpu median %.3f ms; %d runs)"
              + "%n",
          names[t], medians[t], size / 1e6 / (medians[t] / 1e3), sorted[0] / 1e6,
          cpuMedians[t], runs);
    }
    System.out.printf(
        Locale.ROOT,
        "side by side (medians, wall | cpu): restore %.3f | %.3f ms; Inflater + CRC-32 %.3f | %.3f"
            + " ms (restore / Inflater = %.2f | %.2f); Inflater alone %.3f | %.3f ms"
            + " (%.2f | %.2f)%n",
        medians[0], cpuMedians[0], medians[6], cpuMedians[6], medians[0] / medians[6],
        cpuMedians[0] / cpuMedians[6], medians[7], cpuMedians[7], medians[0] / medians[7],
        cpuMedians[0] / cpuMedians[7]);
    System.out.printf(
        Locale.ROOT,
        "SHA-256 of R alone (mandatory check 18): %.3f ms = %.0f%% of Inflater + CRC-32, %.0f%% of"
            + " Inflater alone (wall medians)%n",
        medians[5], 100 * medians[5] / medians[6], 100 * medians[5] / medians[7]);
  }

  private static byte[] read(String path) throws IOException {
    return Files.readAllBytes(new File(path).toPath());
  }

  /** Offset of the DEFLATE data in a gzip member (RFC 1952 header with optional fields). */
  private static int gzipBody(byte[] gz) {
    if (gz.length < 18 || (gz[0] & 0xFF) != 0x1F || (gz[1] & 0xFF) != 0x8B || gz[2] != 8) {
      throw new IllegalArgumentException("not a gzip file");
    }
    int flags = gz[3];
    int p = 10;
    if ((flags & 4) != 0) {
      p += 2 + ((gz[p] & 0xFF) | (gz[p + 1] & 0xFF) << 8);
    }
    if ((flags & 8) != 0) {
      while (gz[p++] != 0) {}
    }
    if ((flags & 16) != 0) {
      while (gz[p++] != 0) {}
    }
    if ((flags & 2) != 0) {
      p += 2;
    }
    return p;
  }

  private static byte[] gunzip(byte[] gz, int size) throws DataFormatException {
    int body = gzipBody(gz);
    Inflater inflater = new Inflater(true);
    try {
      inflater.setInput(gz, body, gz.length - body);
      byte[] out = new byte[size];
      int n = 0;
      while (n < size) {
        int k = inflater.inflate(out, n, size - n);
        if (k == 0 && (inflater.finished() || inflater.needsInput())) {
          throw new DataFormatException("gzip stream ends early");
        }
        n += k;
      }
      return out;
    } finally {
      inflater.end();
    }
  }

  private static byte[] gunzipChecked(byte[] gz, int size) throws DataFormatException {
    byte[] out = gunzip(gz, size);
    CRC32 crc = new CRC32();
    crc.update(out, 0, out.length);
    int p = gz.length - 8;
    long stored =
        (gz[p] & 0xFFL) | (gz[p + 1] & 0xFFL) << 8 | (gz[p + 2] & 0xFFL) << 16
            | (gz[p + 3] & 0xFFL) << 24;
    if (crc.getValue() != stored) {
      throw new DataFormatException("gzip CRC-32 mismatch");
    }
    return out;
  }

}
