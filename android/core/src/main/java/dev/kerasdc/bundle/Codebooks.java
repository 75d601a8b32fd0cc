package dev.kerasdc.bundle;

import dev.kerasdc.bundle.Format.Clustered;

/**
 * The codebooks at the start of a clustered payload (format spec 7.3): how many, how many entries
 * each, and where each one's entries lie. Element {@code p} of the segment belongs to codebook
 * {@code p / perBook}.
 */
final class Codebooks {
  private final byte[] b;
  /** Bytes per entry: the segment's element size. */
  final int esize;
  /** Number of codebooks: 1 or the segment's channels. */
  final int count;
  /** Elements per codebook: {@code elements / count}. */
  final long perBook;
  private final int[] entryCounts;
  /** Sidecar offset of each codebook's first entry. */
  private final int[] bases;

  private Codebooks(byte[] b, int esize, long perBook, int[] entryCounts, int[] bases) {
    this.b = b;
    this.esize = esize;
    this.count = entryCounts.length;
    this.perBook = perBook;
    this.entryCounts = entryCounts;
    this.bases = bases;
  }

  /** Reads the codebooks at the start of {@code payload} and moves past them. */
  static Codebooks read(Payload payload) throws BundleFormatException {
    SegmentEntry entry = payload.entry;
    byte[] b = payload.b;
    int esize = entry.getElementSize();
    long channels = entry.getChannels();
    int at = payload.p;
    int books = payload.u16("codebook_count");
    if (books != 1 && books != channels) {
      throw new BundleFormatException(
          at,
          payload.field("codebook_count"),
          books + " codebooks; expected 1 or channels = " + channels);
    }
    payload.require(Clustered.COUNT_SIZE * books, "entry_count");
    int[] entryCounts = new int[books];
    int entries = 0;
    for (int c = 0; c < books; c++) {
      int p = payload.p + Clustered.COUNT_SIZE * c;
      int k = LittleEndian.u16(b, p);
      if (k > Clustered.MAX_ENTRIES) {
        throw new BundleFormatException(
            p,
            payload.field("entry_count"),
            "codebook " + c + " has " + k + " > " + Clustered.MAX_ENTRIES + " entries");
      }
      entryCounts[c] = k;
      entries += k;
    }
    payload.p += Clustered.COUNT_SIZE * books;
    payload.require(entries * esize, "entries");
    int[] bases = new int[books];
    for (int c = 0, base = payload.p; c < books; c++) {
      bases[c] = base;
      base += entryCounts[c] * esize;
    }
    payload.p += entries * esize;
    return new Codebooks(b, esize, entry.elements() / books, entryCounts, bases);
  }

  /** Entries in codebook {@code book}. */
  int entryCount(int book) {
    return entryCounts[book];
  }

  /**
   * Reads codebook {@code book}'s entries into {@code values} as little-endian bit patterns;
   * returns their number.
   */
  int load(int book, long[] values) {
    int n = entryCounts[book];
    for (int k = 0, p = bases[book]; k < n; k++, p += esize) {
      values[k] = pattern(b, p, esize);
    }
    return n;
  }

  /** The {@code esize}-byte little-endian bit pattern at {@code b[p]}. */
  private static long pattern(byte[] b, int p, int esize) {
    long v = 0;
    for (int j = esize - 1; j >= 0; j--) {
      v = v << 8 | (b[p + j] & 0xFFL);
    }
    return v;
  }
}
