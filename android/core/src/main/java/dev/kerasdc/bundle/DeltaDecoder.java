package dev.kerasdc.bundle;

import java.util.Arrays;

/**
 * Decodes a DELTA payload (format spec 7.9, since version 1.3): a u8 {@code inner_encoding}, then
 * a payload of that encoding (any other) for a segment with the same entry fields, whose elements
 * d_0 … d_(n−1) are differences. Element k of the segment is {@code (d_0 + … + d_k) mod
 * 2^(8·esize)}, each read and written as an unsigned little-endian integer of esize bytes.
 *
 * <p>The inner payload is decoded by the {@link SegmentDecoder} into a {@link RunningSums} window,
 * which turns the differences into their running sums before it passes the bytes on to the
 * segment's {@link Output}.
 */
final class DeltaDecoder {
  private DeltaDecoder() {}

  /** Reads {@code inner_encoding} and decodes the inner payload's running sums into {@code out}. */
  static void decode(Payload payload, SegmentDecoder decoder, Output out)
      throws BundleFormatException {
    SegmentEntry entry = payload.entry;
    if (entry.getPayloadSize() < Format.Delta.INNER) {
      throw new BundleFormatException(
          entry.payloadSizeOffset(),
          entry.field("payload_size"),
          "a DELTA payload starts with its inner_encoding; payload_size is 0");
    }
    int at = payload.start + Format.Delta.INNER_ENCODING;
    int code = LittleEndian.u8(payload.b, at);
    if (!Format.Encoding.isInner(code)) {
      throw new BundleFormatException(
          at,
          entry.field("inner_encoding"),
          code + " is not the code of an encoding other than DELTA");
    }
    SegmentEntry inner =
        entry.withPayload(
            code,
            payload.start + Format.Delta.INNER,
            entry.getPayloadSize() - Format.Delta.INNER);
    RunningSums sums = new RunningSums(out, entry.getElementSize(), entry.getSize());
    decoder.decodeInner(new Payload(payload.b, inner), sums);
    sums.flush();
  }

  /**
   * An {@link Output} for one DELTA segment: a window of at most {@link Output#CHUNK} bytes (a
   * multiple of esize, or the whole segment) that the inner decoder fills with differences; each
   * flush replaces them by their running sums, carried over from the previous window, and writes
   * them to the segment's output, which hashes them.
   */
  static final class RunningSums extends Output {
    private final Output target;
    private final int esize;
    /** The running sum so far; only its low 8·esize bits count (Java's integers wrap). */
    private long sum;
    private long passed;

    RunningSums(Output target, int esize, long size) {
      // Bounded: size <= restored_size was checked, and the window is at most CHUNK bytes.
      super(new byte[(int) Math.min(size, CHUNK)], true, null);
      this.target = target;
      this.esize = esize;
      this.limit = buf.length;
    }

    @Override
    void put(byte[] src, int offset, int length) {
      putThroughWindow(src, offset, length);
    }

    /** Turns the window's differences into running sums and passes them on; clears the window. */
    @Override
    void flush() {
      if (pos == 0) {
        return;
      }
      accumulate();
      target.put(buf, 0, pos);
      Arrays.fill(buf, 0, pos, (byte) 0);
      passed += pos;
      pos = 0;
    }

    /** Element by element: sum += d_k, e_k = sum mod 2^(8·esize) (narrowing keeps the low bits). */
    private void accumulate() {
      long s = sum;
      switch (esize) {
        case 1:
          for (int i = 0; i < pos; i++) {
            s += buf[i];
            buf[i] = (byte) s;
          }
          break;
        case 2:
          for (int i = 0; i < pos; i += 2) {
            s += view.getShort(i);
            view.putShort(i, (short) s);
          }
          break;
        case 4:
          for (int i = 0; i < pos; i += 4) {
            s += view.getInt(i);
            view.putInt(i, (int) s);
          }
          break;
        case 8:
          for (int i = 0; i < pos; i += 8) {
            s += view.getLong(i);
            view.putLong(i, s);
          }
          break;
        default:
          throw new IllegalStateException("esize " + esize);
      }
      sum = s;
    }

    @Override
    long written() {
      return passed + pos;
    }
  }
}
