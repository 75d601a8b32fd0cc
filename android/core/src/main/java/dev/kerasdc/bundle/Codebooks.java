package dev.kerasdc.bundle;

import dev.kerasdc.bundle.Format.Clustered;

/**
 * The codebooks at the start of a clustered payload (format spec 7.3) or a grouped one (7.8): how
 * many, how many entries each, where each one's entries lie, and which one each slice of the
 * segment uses.
 *
 * <p>A slice is a run of {@link #perSlice} elements that share a codebook: element {@code p} lies
 * in slice {@code p / perSlice}. In a clustered payload slice {@code s} uses codebook {@code s}
 * (one slice for the whole segment, or one per channel); in a grouped payload the slices are the
 * channels, and channel {@code c} uses codebook {@code codebook_map[c]} ({@link CodebookMap}).
 */
final class Codebooks {
  private final byte[] b;
  /** Bytes per entry: the segment's element size. */
  final int esize;
  /** Number of codebooks: 1 or the segment's channels (7.3), or G (7.8). */
  final int count;
  /** Elements per slice: {@code elements / count}, or {@code elements / channels} if grouped. */
  final long perSlice;
  private final int[] entryCounts;
  /** Sidecar offset of each codebook's first entry. */
  private final int[] bases;
  /** Codebook of each channel of a grouped payload; {@code null} for a clustered one. */
  final CodebookMap map;

  private Codebooks(
      byte[] b, int esize, long perSlice, int[] entryCounts, int[] bases, CodebookMap map) {
    this.b = b;
    this.esize = esize;
    this.count = entryCounts.length;
    this.perSlice = perSlice;
    this.entryCounts = entryCounts;
    this.bases = bases;
    this.map = map;
  }

  /**
   * Reads the codebooks at the start of {@code payload}, and for a grouped encoding the header of
   * the codebook map that follows them, and moves past them. Call {@link #decodeMap} before
   * {@link #load}.
   */
  static Codebooks read(Payload payload) throws BundleFormatException {
    SegmentEntry entry = payload.entry;
    byte[] b = payload.b;
    int esize = entry.getElementSize();
    long channels = entry.getChannels();
    boolean grouped = Format.Encoding.isGrouped(entry.getEncoding());
    int at = payload.p;
    int books = payload.u16("codebook_count");
    if (grouped) {
      long most = Math.min(channels, Clustered.MAX_GROUPS);
      if (books < 1 || books > most) {
        throw new BundleFormatException(
            at,
            payload.field("codebook_count"),
            books + " codebooks; expected 1..min(channels, " + Clustered.MAX_GROUPS + ") = "
                + most);
      }
    } else if (books != 1 && books != channels) {
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
    if (!grouped) {
      return new Codebooks(b, esize, entry.elements() / books, entryCounts, bases, null);
    }
    CodebookMap map = CodebookMap.read(payload, books);
    return new Codebooks(b, esize, entry.elements() / channels, entryCounts, bases, map);
  }

  /** Decodes the codebook map of a grouped payload (nothing to do for a clustered one). */
  void decodeMap(Workspace work) throws BundleFormatException {
    if (map != null) {
      map.decode(work);
    }
  }

  /** The codebook that slice {@code slice} uses. */
  int book(int slice) {
    return map == null ? slice : map.book(slice);
  }

  /**
   * Reads the entries of slice {@code slice}'s codebook into {@code values} as little-endian bit
   * patterns; returns their number.
   */
  int load(int slice, long[] values) {
    int book = book(slice);
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
