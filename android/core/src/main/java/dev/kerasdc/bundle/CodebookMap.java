package dev.kerasdc.bundle;

/**
 * The {@code codebook_map} of a grouped payload (format spec 7.8, since version 1.2): a
 * HuffmanStream of one symbol per channel, the codebook that channel uses.
 *
 * <p>{@link #read} checks the stream's header (its {@code count} equals the entry's {@code
 * channels}, its alphabet is at most the number of codebooks, so every symbol names one); {@link
 * #decode} then decodes the symbols, which {@link #book} looks up.
 */
final class CodebookMap {
  private final Payload payload;
  private final HuffmanStream stream;
  /** Codebook by channel, once decoded; stays {@code null} for a segment of no elements. */
  private byte[] books;

  private CodebookMap(Payload payload, HuffmanStream stream) {
    this.payload = payload;
    this.stream = stream;
  }

  /** Reads the map's stream header at the read position of {@code payload} and moves past it. */
  static CodebookMap read(Payload payload, int codebooks) throws BundleFormatException {
    HuffmanStream stream = payload.stream("codebook_map", codebooks);
    long channels = payload.entry.getChannels();
    if (stream.count != channels) {
      throw new BundleFormatException(
          stream.offset, // count is the stream's first field
          payload.field("codebook_map.count"),
          Sidecar.unsigned(stream.count) + " codebook_map symbols; expected channels = "
              + channels);
    }
    return new CodebookMap(payload, stream);
  }

  /**
   * Decodes the symbols (every rule of spec 6.4). They are kept only when the segment has
   * elements: then {@code channels <= elements}, so the map is no larger than the segment it
   * describes (and no larger than 8 symbols per byte of the stream, {@code count <= nbits}).
   */
  void decode(Workspace work) throws BundleFormatException {
    long count = stream.count; // = channels >= 1, so the stream is not empty
    if (payload.entry.elements() > 0) {
      books = new byte[(int) count];
    }
    SymbolReader reader = work.reader(payload.b, stream, Workspace.FIRST);
    byte[] block = work.symbolBlock(Workspace.FIRST);
    for (long done = 0; done < count; ) {
      int n = (int) Math.min(Workspace.BLOCK, count - done);
      reader.read(block, n);
      if (books != null) {
        System.arraycopy(block, 0, books, (int) done, n);
      }
      done += n;
    }
    reader.finish();
  }

  /** The codebook of {@code channel}: below the number of codebooks (the alphabet bound). */
  int book(int channel) {
    return books[channel] & 0xFF;
  }
}
