package dev.kerasdc.bundle;

import java.util.zip.Inflater;

/**
 * What one restore reuses from segment to segment: the symbol buffers, the Inflaters, and the
 * choice of HuffmanStream decoder ({@link HuffmanDecoding}). One instance serves one restore, on
 * one thread; call {@link #end} when done.
 */
final class Workspace {
  /** Symbols per block. */
  static final int BLOCK = 1 << 14;

  /**
   * With {@link HuffmanDecoding#AUTO} on Android, streams of fewer symbols than this use the table
   * decoder: the Inflater's set-up (a 142-byte header whose code zlib builds, a JNI call per
   * block) does not pay off.
   */
  static final long MIN_INFLATER_SYMBOLS = 1024;

  /**
   * Whether {@link HuffmanDecoding#AUTO} prefers the Inflater: on Android, where zlib is native
   * code and the table decoder's speed would rest on ART's compiler. On the JVM (HotSpot's C2) the
   * table decoder is measured faster (benchmarks/java_restore.py prints both).
   */
  static final boolean AUTO_INFLATES = isAndroid();

  private static boolean isAndroid() {
    String vm = System.getProperty("java.vm.name", "");
    String vendor = System.getProperty("java.vendor", "");
    return vm.contains("Dalvik") || vendor.contains("Android");
  }

  /** Stream slot of a dense index stream or a sparse gap stream. */
  static final int FIRST = 0;

  /** Stream slot of a sparse index stream (read alongside the gap stream). */
  static final int SECOND = 1;

  private final HuffmanDecoding huffman;
  /** Symbol blocks by stream slot, made on first use. */
  private final byte[][] symbols = new byte[2][];
  /** Raw Inflaters by stream slot, made on first use. */
  private final Inflater[] raw = new Inflater[2];
  /** The Inflater of ZLIB segments, made on first use. */
  private Inflater zlib;
  /** Emitted positions of a block of gap symbols, made on first use. */
  private int[] positions;
  /** The current codebook's entries, as little-endian bit patterns. */
  final long[] entries = new long[Format.Clustered.MAX_ENTRIES];

  Workspace(HuffmanDecoding huffman) {
    this.huffman = huffman;
  }

  /**
   * A reader of a non-empty stream, with the Inflater of {@code slot} if the decoding mode says
   * so.
   */
  SymbolReader reader(byte[] b, HuffmanStream stream, int slot) throws BundleFormatException {
    boolean inflate =
        huffman == HuffmanDecoding.INFLATER
            || (huffman == HuffmanDecoding.AUTO
                && AUTO_INFLATES
                && stream.count >= MIN_INFLATER_SYMBOLS);
    Inflater inflater = null;
    if (inflate) {
      if (raw[slot] == null) {
        raw[slot] = new Inflater(true);
      }
      inflater = raw[slot];
    }
    return new SymbolReader(b, stream, inflater);
  }

  /** The {@link #BLOCK}-symbol buffer of {@code slot}. */
  byte[] symbolBlock(int slot) {
    if (symbols[slot] == null) {
      symbols[slot] = new byte[BLOCK];
    }
    return symbols[slot];
  }

  /** A buffer of {@link #BLOCK} element positions. */
  int[] positions() {
    if (positions == null) {
      positions = new int[BLOCK];
    }
    return positions;
  }

  /** The zlib Inflater, reset. */
  Inflater zlib() {
    if (zlib == null) {
      zlib = new Inflater();
    } else {
      zlib.reset();
    }
    return zlib;
  }

  /** Releases the native memory of the Inflaters. */
  void end() {
    for (int i = 0; i < raw.length; i++) {
      if (raw[i] != null) {
        raw[i].end();
        raw[i] = null;
      }
    }
    if (zlib != null) {
      zlib.end();
      zlib = null;
    }
  }
}
